"""TLS with a throwaway CA, per-gateway passwords and the example ACL on a real mosquitto.

A gateway publishing as another gateway is refused (MQTT 5 PUBACK "not
authorised", nothing delivered, its records stay in its outbox); its own
messages go through TLS to the ingest worker and into InfluxDB.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import shutil
import subprocess
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion

from bench.localservices import Influxd, free_port
from cloud.influx import InfluxWriter
from cloud.ingest import IngestWorker
from edge.outbox import Outbox
from edge.uplink import Uplink
from tests.uplink_fixtures import REPO, assert_exactly_once, own_broker, raw, seq_counts, wait_for_count

pytestmark = pytest.mark.integration

ACL = REPO / "examples" / "mosquitto" / "pulsegate.acl"


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None,
          issuer_key: ec.EllipticCurvePrivateKey, ca: bool) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    b = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer.subject if issuer else name)
         .public_key(key.public_key()).serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(hours=1))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                         x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                            critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def make_pki(d: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for localhost/127.0.0.1."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("pulsegate-test-ca", ca_key, None, ca_key, ca=True)
    srv_key = ec.generate_private_key(ec.SECP256R1())
    srv = _cert("localhost", srv_key, ca, ca_key, ca=False)
    paths = d / "ca.crt", d / "server.crt", d / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(srv.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(srv_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
    return paths


def make_passwd(path: Path, users: dict[str, str]) -> None:
    tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    path.touch()
    for user, pw in users.items():
        subprocess.run([tool, "-b", str(path), user, pw], check=True, capture_output=True)


async def test_gateway_cannot_publish_as_another_gateway(influx: Influxd, unique: str, tmp_path: Path) -> None:
    ca, crt, key = make_pki(tmp_path)
    users = {"gwA": "pw-a", "gwB": "pw-b", "ingest": "pw-i", "models": "pw-m"}
    make_passwd(tmp_path / "passwd", users)
    tls_port = free_port()
    mq = own_broker(tmp_path / "mq", extra_conf=(
        f"listener {tls_port} 127.0.0.1\ncafile {ca}\ncertfile {crt}\nkeyfile {key}\n"
        f"allow_anonymous false\npassword_file {tmp_path / 'passwd'}\nacl_file {ACL}\n"))
    db = InfluxWriter(influx.url, unique)
    await db.create_database()
    worker = IngestWorker("localhost", tls_port, InfluxWriter(influx.url, unique), client_id=f"i-{unique}",
                          group="ingest", flush_s=0.2, tls_ca_file=str(ca), username="ingest", password="pw-i")
    honest_box = Outbox(tmp_path / "a.sqlite", "gwA")
    liar_box = Outbox(tmp_path / "b.sqlite", "gwB")  # claims to be gwB ...
    honest = Uplink(honest_box, "localhost", tls_port, "s1", "gwA", tls_ca_file=str(ca), username="gwA",
                    password="pw-a")
    liar = Uplink(liar_box, "localhost", tls_port, "s1", "gwB", client_id="liar", tls_ca_file=str(ca),
                  username="gwA", password="pw-a")  # ... with gwA's credentials
    for i in range(1, 31):
        honest_box.append("bulk", raw(i))
        liar_box.append("bulk", raw(i))
    comps: list[IngestWorker | Uplink] = [worker, honest, liar]
    await worker.start()
    tasks = [asyncio.create_task(worker.run())]
    for _ in range(600):  # subscribed (SUBACK) before anything is published: the broker drops what no one takes
        if worker.connected:
            break
        await asyncio.sleep(0.05)
    for comp in (honest, liar):
        await comp.start()
        tasks.append(asyncio.create_task(comp.run()))
    try:
        counts = await wait_for_count(db, "raw", "gwA", 30)
        for _ in range(100):
            if liar.refused >= 2 and honest_box.backlog() == 0:  # refused, and gwA's records receipted
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # anything wrongly delivered would have landed by now
        impostor = await seq_counts(db, "raw", "gwB")
    finally:
        for comp in comps:
            await comp.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 20)
        honest_box.close()
        liar_box.close()
        await db.close()
    try:
        assert_exactly_once(counts, 30)
        assert honest.connected is False and honest.acked == 30
        # contract v2: the ingest (user ingest) may write gwA's receipts topic and gwA may read it
        assert honest.receipts_received >= 1 and honest.ledger.receipted == 30 and honest_box.backlog() == 0
        assert liar.receipts_received == 0  # gwB's receipts topic is not readable with gwA's credentials
        assert not impostor, impostor
        # mosquitto 2.0 answers PUBACK 0x87 "not authorised" and then drops the connection
        assert liar.refused >= 2 and liar.acked == 0 and liar.connects >= 2
        assert liar_box.backlog() == 30  # refused records are kept, never deleted
        assert worker.connects >= 1

        # wrong password and plain (non-TLS) clients are turned away; gateways read only their model topic
        def connect(user: str, pw: str, tls: bool = True) -> tuple[mqtt.Client, int]:
            c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="", protocol=mqtt.MQTTv5)
            if tls:
                c.tls_set(ca_certs=str(ca))
            c.username_pw_set(user, pw)
            result: list[int] = []
            c.on_connect = lambda cl, u, f, rc, p: result.append(rc.value)
            c.connect("localhost", tls_port)
            for _ in range(50):
                c.loop(0.1)
                if result:
                    break
            return c, result[0] if result else -1

        c, rc = connect("gwA", "wrong")
        assert rc in (134, 135)  # bad user name or password / not authorised (mosquitto 2.0.11 says 135)
        c, rc = connect("gwA", "pw-a", tls=False)
        assert rc != 0  # no plain-text MQTT on the TLS listener
        c, rc = connect("gwA", "pw-a")
        assert rc == 0
        # mosquitto grants any SUBSCRIBE and applies the read ACL per message: a gateway subscribed to
        # its own and another gateway's model topic receives only its own manifest
        pub, rc = connect("models", "pw-m")
        assert rc == 0
        for gw in ("gwA", "gwB"):
            pub.publish(f"pg/v1/s1/{gw}/models", f"manifest-{gw}".encode(), qos=1, retain=True)
        for _ in range(10):
            pub.loop(0.05)
        got: list[str] = []
        c.on_message = lambda cl, u, m: got.append(m.topic)
        c.subscribe([("pg/v1/s1/gwA/models", 1), ("pg/v1/s1/gwB/models", 1), ("pg/v1/s1/+/bulk", 1),
                     ("pg/v1/s1/gwA/receipts", 1), ("pg/v1/s1/gwB/receipts", 1)])
        for _ in range(20):
            c.loop(0.05)
        assert got == ["pg/v1/s1/gwA/models"]
        # receipts: only the ingest writes them, each gateway reads only its own
        ing, rc = connect("ingest", "pw-i")
        assert rc == 0
        for gw in ("gwA", "gwB"):
            ing.publish(f"pg/v1/s1/{gw}/receipts", f"receipt-{gw}".encode(), qos=1)
        for _ in range(20):
            ing.loop(0.05)
            c.loop(0.05)
        assert got == ["pg/v1/s1/gwA/models", "pg/v1/s1/gwA/receipts"]
        refused: list[int] = []
        c.on_publish = lambda cl, u, mid, rc, p: refused.append(rc.value)
        c.publish("pg/v1/s1/gwB/receipts", b"forged", qos=1)  # a gateway forging another's receipt
        for _ in range(20):
            c.loop(0.05)
        assert refused == [0x87]  # not authorised (and mosquitto 2.0 then drops gwA's connection)
        ing.disconnect()
        pub.disconnect()
        c.disconnect()
    finally:
        mq.stop()
