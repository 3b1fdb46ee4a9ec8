"""InfluxDB 2.x/3.x paths: token auth, /api/v2/write with org/bucket, the influxdb-client writer.

Real servers: influxd 1.6.7 with auth-enabled (Debian's; it has neither
tokens nor /api/v2/write, both are 1.8+), and victoria-metrics behind vmauth
(bench/v2services.py), a real /api/v2/write line-protocol server whose
tokens vmauth checks. No InfluxDB 2.x/3.x server is installable here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.localservices import Influxd
from bench.v2services import V2WriteServer
from cloud.delivery import Delivery, DeliveryAborted
from cloud.influx import InfluxConfig, InfluxWriter, LineWriter
from cloud.influx_client import InfluxClientWriter, open_writer

pytestmark = pytest.mark.integration

T = (time.time_ns() // 10**9 - 3600) * 10**9  # victoria-metrics drops points older than its retention (1 month)


@pytest.fixture(scope="module")
def v2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[V2WriteServer]:
    with V2WriteServer(tmp_path_factory.mktemp("v2")).start() as s:
        yield s


@pytest.fixture(scope="module")
def influx_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    i = Influxd(tmp_path_factory.mktemp("influx-auth"), admin=("pgadmin", "s3cret-pw")).start()
    yield i
    i.stop()


def _secret(tmp_path: Path, name: str, value: str) -> str:
    p = tmp_path / name
    p.write_text(value + "\n")
    p.chmod(0o600)
    return str(p)


def _lines(tag: str, n: int) -> list[str]:
    return [f"pgv2,gateway={tag},bed=b{i % 4} value={i}i,seq={i}i {T + i}" for i in range(n)]


async def _refused_then_aborted(writer: LineWriter) -> Delivery:
    """A write the server refuses is retried (backoff), never split or dead-lettered; stop aborts it."""
    d = Delivery(writer, backoff_min_s=0.01, backoff_max_s=0.05)
    task = asyncio.create_task(d.deliver(_lines("refused", 8)))
    while d.requests < 3:  # noqa: ASYNC110 - watching a counter
        await asyncio.sleep(0.02)
    d.stop.set()
    with pytest.raises(DeliveryAborted):
        await task
    assert d.splits == 0 and d.rejected == 0 and d.written == 0
    return d


@pytest.mark.parametrize("writer_kind", ["http", "influxdb-client"])
async def test_v2_write_with_token_from_file(v2: V2WriteServer, tmp_path: Path, writer_kind: str) -> None:
    cfg = InfluxConfig(url=v2.url, api="v2", writer=writer_kind, org="hospital-group", bucket="pulsegate",
                       token_file=_secret(tmp_path, "influx-token", v2.token))
    w = open_writer(cfg)
    assert isinstance(w, InfluxClientWriter if writer_kind == "influxdb-client" else InfluxWriter)
    d = Delivery(w)
    assert await d.deliver(_lines(writer_kind, 40)) == [] and d.written == 40
    await w.close()
    rows = v2.export("pgv2_value", expect=40)
    mine = [r for r in rows if r["metric"].get("gateway") == writer_kind]
    assert sum(len(r["values"]) for r in mine) == 40
    assert sorted(v for r in mine for v in r["values"]) == list(range(40))


@pytest.mark.parametrize("writer_kind", ["http", "influxdb-client"])
async def test_v2_wrong_or_missing_token_is_retried_never_dead_lettered(
        v2: V2WriteServer, tmp_path: Path, writer_kind: str) -> None:
    for token in ("not-the-token", None):
        cfg = InfluxConfig(url=v2.url, api="v2", writer=writer_kind, org="o", bucket="pulsegate",
                           token_file=_secret(tmp_path, "t", token) if token else None)
        w = open_writer(cfg)
        d = await _refused_then_aborted(w)
        assert set(d.retries) <= {"400", "401"} and d.retries  # vmauth 1.79 refuses with 400 "auth token"
        await w.close()


async def test_token_from_systemd_credential(v2: V2WriteServer, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    _secret(creds, "influx-token", v2.token)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    w = InfluxWriter.from_config(InfluxConfig(url=v2.url, api="v2", org="o", bucket="cred",
                                              token_file="credential:influx-token"))
    assert (await w.write(_lines("cred", 3))).status == 204
    await w.close()


async def test_influx1_auth_enabled_password_token_and_refusals(influx_auth: Influxd, tmp_path: Path) -> None:
    pw = _secret(tmp_path, "pw", "s3cret-pw")
    good = InfluxWriter.from_config(InfluxConfig(url=influx_auth.url, database="authdb", username="pgadmin",
                                                 password_file=pw))
    await good.create_database()
    d = Delivery(good)
    assert await d.deliver(_lines("basic", 10)) == [] and d.written == 10
    rows = await good.rows("SELECT count(value) FROM pgv2")
    assert rows[0]["count"] == 10
    # no credentials, a wrong password, and a 1.8+ style "Token user:password" (1.6.7 does not know the
    # Token scheme): refused with 401, retried, never dead-lettered
    for writer in (InfluxWriter(influx_auth.url, "authdb"),
                   InfluxWriter(influx_auth.url, "authdb", "pgadmin", "wrong"),
                   InfluxWriter(influx_auth.url, "authdb", token="pgadmin:s3cret-pw")):
        d = await _refused_then_aborted(writer)
        assert set(d.retries) == {"401"}
        await writer.close()
    assert (await good.rows("SELECT count(value) FROM pgv2"))[0]["count"] == 10
    await good.close()


def test_config_rules() -> None:
    with pytest.raises(ValueError, match="exclude"):
        InfluxConfig(token_file="t", username="u")
    with pytest.raises(ValueError, match="needs org"):
        InfluxConfig(api="v2", token_file="t")
    with pytest.raises(ValueError, match='needs api = "v2"'):
        InfluxConfig(writer="influxdb-client")
    assert InfluxConfig(api="v2", org="o", database="pg").bucket_name == "pg"
    # victoria-metrics 1.79 ignores org and bucket, so the request itself is checked here
    w = InfluxWriter.from_config(InfluxConfig(url="http://h:1/", api="v2", org="acme", bucket="icu"))
    assert w._write_target() == ("http://h:1/api/v2/write", {"org": "acme", "bucket": "icu", "precision": "ns"})
    w1 = InfluxWriter("http://h:1", "pg", retention_policy="raw")
    assert w1._write_target() == ("http://h:1/write", {"db": "pg", "precision": "ns", "rp": "raw"})


async def test_v2_missing_bucket_is_not_created_by_the_ingest(v2: V2WriteServer) -> None:
    from cloud.influx import InfluxError

    for w in (InfluxWriter(v2.url, "x", api="v2", org="o", token=v2.token),
              InfluxClientWriter(v2.url, "o", "x", v2.token)):
        with pytest.raises(InfluxError, match="created by the operator"):
            await w.create_database()
        await w.close()
