"""The Gradio Space: each tab end to end through gradio_client, limits, path traversal, concurrency, a browser check."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

gr = pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

from pyratok_hf import bundled_model_path, bundled_pipeline_path  # noqa: E402
from pyratok_hf import space_app  # noqa: E402

pytestmark = pytest.mark.skipif(
    not os.path.isfile(os.path.join(bundled_model_path(), "config.json")), reason="the bundled pyratok-tiny is not built yet"
)
SAMPLE = str(Path(space_app.__file__).resolve().parent / "assets" / "city_sample.mp4")


def _upload_dir():
    from pyratok_hf import space_app as _space

    folder = _space.upload_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    demo = space_app.build_demo()
    port = _free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, max_file_size="50mb", show_error=True)
    url = f"http://127.0.0.1:{port}/"
    client = gradio_client.Client(url, verbose=False)
    yield url, client
    demo.close()


def test_reconstruct_tab(server):
    _, client = server
    video, pyramid, side, metrics = client.predict(gradio_client.handle_file(SAMPLE), 4, "a city street", api_name="/reconstruct")
    assert os.path.isfile(video["video"] if isinstance(video, dict) else video)
    assert os.path.isfile(pyramid) and os.path.isfile(side)
    assert metrics["psnr_db"] > 10 and metrics["num_levels"] == 4 and len(metrics["token_grids"]) == 4


def test_reconstruct_with_fewer_levels_uses_fewer_bits(server):
    _, client = server
    *_, two = client.predict(gradio_client.handle_file(SAMPLE), 2, "", api_name="/reconstruct")
    *_, four = client.predict(gradio_client.handle_file(SAMPLE), 4, "", api_name="/reconstruct")
    assert two["bits_per_pixel"] < four["bits_per_pixel"]


@pytest.mark.skipif(not os.path.isfile(os.path.join(bundled_pipeline_path(), "model_index.json")), reason="no bundled T2V pipeline")
def test_text_to_video_tab(server):
    _, client = server
    video = client.predict("a red circle moves right", 0, 3.0, api_name="/generate")
    assert os.path.isfile(video["video"] if isinstance(video, dict) else video)


def test_zero_shot_tabs(server):
    _, client = server
    scores = client.predict(gradio_client.handle_file(SAMPLE), "skyscrapers at night, a red circle, a cat", api_name="/classify")
    assert scores["label"] in {"skyscrapers at night", "a red circle", "a cat"}
    timeline, segments = client.predict(gradio_client.handle_file(SAMPLE), "a car drives by", api_name="/localize")
    assert os.path.isfile(timeline) and "segments" in segments
    heat = client.predict(gradio_client.handle_file(SAMPLE), "the lit windows", False, api_name="/segment")
    assert os.path.isfile(heat)


def test_friendly_errors_for_bad_input(server, tmp_path):
    _, client = server
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("this is not a video")
    with pytest.raises(Exception, match="Could not read this video"):
        client.predict(gradio_client.handle_file(str(not_video)), 4, "", api_name="/reconstruct")
    with pytest.raises(Exception, match="at least two labels"):
        client.predict(gradio_client.handle_file(SAMPLE), "only-one", api_name="/classify")
    with pytest.raises(Exception, match="no content words|content word"):
        client.predict(gradio_client.handle_file(SAMPLE), "the of and", False, api_name="/segment")


def test_limits_and_path_traversal(tmp_path, monkeypatch):
    with pytest.raises(space_app.UserInputError, match="not an upload"):
        space_app.check_video_file("/etc/passwd")
    with pytest.raises(space_app.UserInputError, match="not an upload"):
        space_app.check_video_file(os.path.join(str(space_app.upload_dir()), "..", "..", "etc", "passwd"))
    inside = Path(tempfile.mkdtemp(dir=_upload_dir())) / "clip.txt"
    inside.write_text("x")
    with pytest.raises(space_app.UserInputError, match="Unsupported file type"):
        space_app.check_video_file(str(inside))
    big = Path(tempfile.mkdtemp(dir=_upload_dir())) / "big.mp4"
    with open(big, "wb") as f:
        f.truncate(2 * 2**20)
    monkeypatch.setattr(space_app, "MAX_UPLOAD_MB", 1)
    with pytest.raises(space_app.UserInputError, match="limit is 1 MB"):
        space_app.check_video_file(str(big))
    shutil.rmtree(inside.parent)
    shutil.rmtree(big.parent)


def test_eight_concurrent_requests(server):
    _, client = server

    def one(i):
        return client.predict(gradio_client.handle_file(SAMPLE), 1 + i % 4, "", api_name="/reconstruct")

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, range(8)))
    assert len(results) == 8 and all(r[3]["num_levels"] == 1 + i % 4 for i, r in enumerate(results))


def test_page_renders_in_headless_chromium(server, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian chromium is not installed (.ci/run installs it with apt-get)")
    url, _ = server
    shot = tmp_path / "page.png"
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000", "--dump-dom", url],
        capture_output=True, text=True, timeout=120,
    ).stdout
    for tab in ("Tokenize &amp; reconstruct", "Text to video", "Zero-shot"):
        assert tab in dom or tab.replace("&amp;", "&") in dom, f"tab {tab!r} not rendered"
    subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         f"--user-data-dir={tmp_path / 'profile2'}", "--virtual-time-budget=15000", f"--screenshot={shot}", "--window-size=1280,900", url],
        capture_output=True, timeout=120,
    )
    assert shot.is_file() and shot.stat().st_size > 5000
