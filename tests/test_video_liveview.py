"""The pipeline as a supervised component, and its live view served by a real aiohttp server."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from clinical.endoscopy.postprocess import PolypFinding
from edge.video.config import DEFAULT_MODELS_DIR, DEFAULT_TRUSTED_KEYS, REPO_ROOT, VideoConfig
from edge.video.liveview import BOUNDARY, LIVE_RULES, LiveView
from edge.video.pipeline import VideoPipeline
from edge.video.service import video_components
from runtime.security.config import AuthSection
from runtime.security.listener import ListenerSecurity, secure_listener
from runtime.supervisor import Progress, Supervisor, Tier
from tests.artifacts import artifacts_dir
from tests.security_fixtures import PASSWORDS, make_users

CLIP = REPO_ROOT / "examples" / "video" / "kvasir-demo.mp4"


async def wait_for(cond: Callable[[], object], limit_s: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + limit_s
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def guarded(tmp_path: Path) -> ListenerSecurity:
    users, _ = make_users(tmp_path / "users.json")
    return secure_listener("live", "127.0.0.1", AuthSection(), None, LIVE_RULES, users=users)


async def login(http: aiohttp.ClientSession, base: str, user: str) -> None:
    r = await http.post(base + "/auth/login", json={"user": user, "password": PASSWORDS[user]})
    assert r.status == 200


def config(**kw: object) -> VideoConfig:
    return VideoConfig.model_validate({"source": str(CLIP), "room": "endo-1", "live_port": 0,
                                       "trusted_keys": [str(k) for k in DEFAULT_TRUSTED_KEYS], **kw})


def test_config_defaults_find_the_shipped_model() -> None:
    cfg = config()
    assert cfg.models_dir == DEFAULT_MODELS_DIR and (cfg.models_dir / "endoscopy-seg").is_dir()
    keyless = VideoConfig.model_validate({"source": str(CLIP), "room": "endo-1"})
    assert keyless.trusted_keys == ()  # never trusts the development key by default
    with pytest.raises(ValueError, match="no trusted key"):
        video_components(keyless, lambda f: None)
    with pytest.raises(ValueError):
        VideoConfig.model_validate({"source": "0", "room": "r", "colour": "red"})  # unknown keys are errors


async def test_supervised_pipeline_serves_page_jpeg_stream_and_status(tmp_path: Path) -> None:
    findings: list[PolypFinding] = []
    loop_thread: list[bool] = []

    def on_finding(f: PolypFinding) -> None:
        findings.append(f)
        loop_thread.append(threading.current_thread() is threading.main_thread())

    progress = Progress()
    comps = video_components(config(fps_limit=30.0), on_finding, progress, security=guarded(tmp_path))
    pipe, live = comps
    assert isinstance(pipe, VideoPipeline) and pipe.tier == Tier.SOURCE
    assert isinstance(live, LiveView) and live.tier == Tier.SINK
    stop = asyncio.Event()
    sup = asyncio.create_task(Supervisor(comps).run(stop, install_signals=False))
    try:
        await wait_for(lambda: pipe.stats.processed >= 20 and live.port != 0 and findings)
        base = f"http://127.0.0.1:{live.port}"
        async with aiohttp.ClientSession() as anon:  # nothing without a login
            for path in ("/", "/status", "/frame.jpg", "/stream.mjpg", "/live/static/liveview.js"):
                async with anon.get(base + path, allow_redirects=False) as r:
                    assert r.status == 401, path
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as viewer:
            await login(viewer, base, "vic")  # a ward viewer is not a clinician
            for path in ("/", "/status", "/frame.jpg", "/stream.mjpg"):
                async with viewer.get(base + path) as r:
                    assert r.status == 403, path
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            await login(http, base, "clara")
            async with http.get(base + "/") as r:
                page = await r.text()
                assert r.status == 200 and "stream.mjpg" in page and "endo-1" in page
                assert "http://" not in page and "https://" not in page  # no external assets
                assert "<script>" not in page and "<style>" not in page  # nothing inline (the CSP forbids it)
                assert "script-src 'self'" in r.headers["Content-Security-Policy"]
            async with http.get(base + "/frame.jpg") as r:
                body = await r.read()
                assert r.status == 200 and r.content_type == "image/jpeg"
                assert body[:2] == b"\xff\xd8" and body[-2:] == b"\xff\xd9"
            async with http.get(base + "/stream.mjpg") as r:
                assert r.content_type == "multipart/x-mixed-replace"
                head = await r.content.readuntil(b"\r\n\r\n")
                assert head.startswith(f"--{BOUNDARY}".encode()) and b"image/jpeg" in head
                length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                jpg = await r.content.readexactly(length)
                assert jpg[:2] == b"\xff\xd8"
            async with http.get(base + "/status") as r:
                st = await r.json()
                assert st["room"] == "endo-1" and st["processed"] >= 20 and st["fps"] > 0
                assert st["latency_ms_p95"] is not None and st["dropped_frames"] >= 0
        assert progress.count >= 20  # the pipeline beats the watchdog progress
    finally:
        stop.set()
        assert await asyncio.wait_for(sup, 20) == 0
    assert pipe.grabber is None  # capture released on stop
    assert findings[0].present and findings[0].room == "endo-1" and findings[0].box is not None
    assert all(loop_thread)  # delivered on the event loop, not the inference thread


async def test_bad_source_fails_start_clearly() -> None:
    from clinical.endoscopy.segmodel import MODEL_NAME, load_verified
    from edge.video.capture import CaptureError
    from wire.model_manifest import resolve_model_dir

    runner, _ = load_verified(resolve_model_dir(DEFAULT_MODELS_DIR, MODEL_NAME), config().trusted_keys)
    pipe = VideoPipeline("/nonexistent/clip.mp4", runner, lambda f: None, "r")
    with pytest.raises(CaptureError):
        await pipe.start()


def test_clip_is_small_with_citation() -> None:
    assert CLIP.stat().st_size < 3_000_000
    cite = (CLIP.parent / "CITATION").read_text()
    assert "Kvasir-SEG" in cite and "research and educational" in cite
    names = [ln for ln in cite.splitlines() if ln.endswith(".jpg")]
    assert 0 < len(names) <= 20
    segments = json.loads(CLIP.with_suffix(".segments.json").read_text())
    assert {s["frame"] for s in segments} <= set(names)  # polyp-free stretches are crops of the same frames
    assert sum(s["end_s"] - s["start_s"] for s in segments if not s["polyp"]) >= 4.0


def test_clip_polyp_free_stretches_show_no_finding() -> None:
    """The newest shipped model through the real pipeline, frame by frame in clip order."""
    import cv2

    from clinical.endoscopy.segmodel import MODEL_NAME, load_verified
    from edge.video.capture import Frame
    from wire.model_manifest import resolve_model_dir

    runner, manifest = load_verified(resolve_model_dir(DEFAULT_MODELS_DIR, MODEL_NAME), DEFAULT_TRUSTED_KEYS)
    if len(manifest.outputs) < 2:
        pytest.skip(f"endoscopy-seg {manifest.version} has no polyp-present output (1.x)")
    segments = json.loads(CLIP.with_suffix(".segments.json").read_text())
    cap = cv2.VideoCapture(str(CLIP))
    fps = cap.get(cv2.CAP_PROP_FPS)
    pipe = VideoPipeline(str(CLIP), runner, lambda f: None, "endo-1")
    labels: dict[bool, list[bool]] = {True: [], False: []}  # polyp stretch? -> finding shown per frame
    i = 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        t = i / fps
        seg = next(s for s in segments if s["start_s"] <= t < s["end_s"] + 1e-6)
        pipe.process(Frame(i + 1, img, t, int(t * 1e9)))
        if t - seg["start_s"] >= 0.5:  # the smoother's window has moved past the stretch before
            labels[seg["polyp"]].append(pipe.smoother.active)
        i += 1
    cap.release()
    assert labels[False] and not any(labels[False]), f"{sum(labels[False])} of {len(labels[False])} frames"
    assert sum(labels[True]) > len(labels[True]) // 2  # the polyps are still found




@pytest.mark.browser
async def test_live_view_page_in_chromium(tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    comps = video_components(config(fps_limit=15.0), lambda f: None, security=guarded(tmp_path))
    live = comps[1]
    assert isinstance(live, LiveView)
    stop = asyncio.Event()
    sup = asyncio.create_task(Supervisor(comps).run(stop, install_signals=False))
    try:
        await wait_for(lambda: live.port != 0)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            try:
                page = await browser.new_page()
                await page.goto(f"http://127.0.0.1:{live.port}/")
                await page.wait_for_url("**/login?next=/")  # the clinician logs in first
                await page.fill("#user", "clara")
                await page.fill("#password", PASSWORDS["clara"])
                await page.click("#submit")
                await page.wait_for_url(f"http://127.0.0.1:{live.port}/")
                await page.wait_for_function("document.getElementById('video').naturalWidth === 1280", timeout=15000)
                await page.wait_for_function(
                    "/[0-9.]+ of [0-9]+ fps analysed/.test(document.getElementById('fps').textContent)", timeout=15000)
                await page.wait_for_function("/latency [0-9.]+ ms/.test(document.getElementById('lat').textContent)",
                                             timeout=15000)
                assert "dropped" not in await page.content()  # the policy is explained, not shown as a fault
                assert await page.get_attribute("#lat", "title") == "capture -> overlay ready (median of recent frames)"
                # the header's latency is the overlay's: the same median of recent frames
                st = await (await page.request.get(f"http://127.0.0.1:{live.port}/status")).json()
                assert st["latency_ms"] is not None and st["source_fps"] > 0 and st["processed_fps"] > 0
                assert st["policy"].startswith("latest-frame policy")
                await page.screenshot(path=str(artifacts_dir("liveview", tmp_path) / "liveview.png"))
                assert live.viewers >= 1
            finally:
                await browser.close()
    finally:
        stop.set()
        assert await asyncio.wait_for(sup, 20) == 0


async def test_http_mjpeg_url_is_a_capture_source() -> None:
    """An http:// source (here the gateway's own MJPEG stream) read by the grabber thread."""
    from edge.video.capture import Frame, FrameGrabber

    comps = video_components(config(fps_limit=30.0), lambda f: None)
    pipe, live = comps
    assert isinstance(pipe, VideoPipeline) and isinstance(live, LiveView)
    stop = asyncio.Event()
    sup = asyncio.create_task(Supervisor(comps).run(stop, install_signals=False))
    try:
        await wait_for(lambda: live.port != 0 and pipe.stats.processed > 3)
        grabber = FrameGrabber(f"http://127.0.0.1:{live.port}/stream.mjpg")
        assert grabber.kind == "url"

        def grab() -> list[Frame | None]:
            grabber.start()
            try:
                return [grabber.slot.take(timeout=5.0) for _ in range(5)]
            finally:
                grabber.stop()

        frames = await asyncio.to_thread(grab)
        assert all(f is not None and f.image.shape == (720, 1280, 3) for f in frames)
        seqs = [f.seq for f in frames if f is not None]
        assert seqs == sorted(seqs)
    finally:
        stop.set()
        assert await asyncio.wait_for(sup, 20) == 0
