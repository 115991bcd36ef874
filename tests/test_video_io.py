"""Video decoding/encoding, typed read errors, and atomic writes."""

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import av
import numpy as np
import pytest
import torch
from PIL import Image

from pyratok_hf.errors import PyraTokError, VideoNotFoundError, VideoReadError, VideoWriteError
from pyratok_hf.video_io import (
    MAX_FRAME_PIXELS,
    MAX_FRAME_SIDE,
    atomic_save_safetensors,
    atomic_write,
    atomic_write_json,
    from_uint8_frames,
    probe_video,
    read_video,
    to_uint8_frames,
    write_video,
)


def smooth_clip(num_frames=9, height=32, width=48):
    """A moving colour gradient: smooth content that H.264 reproduces closely."""
    t = torch.linspace(0, 1, num_frames)[:, None, None]
    y = torch.linspace(-1, 1, height)[None, :, None]
    x = torch.linspace(-1, 1, width)[None, None, :]
    red = torch.sin(3 * x + 2 * t) * 0.8
    green = torch.cos(2 * y - t) * 0.8
    blue = (x * y).expand(num_frames, height, width) * 0.8
    return torch.stack([red.expand(num_frames, height, width), green.expand(num_frames, height, width), blue])


def leftover_temp_files(directory):
    return [name for name in os.listdir(directory) if name.startswith(".")]


def test_uint8_helpers_round_trip_exactly():
    array = np.random.default_rng(0).integers(0, 256, size=(3, 8, 10, 3), dtype=np.uint8)
    tensor = from_uint8_frames(array)
    assert tensor.shape == (3, 3, 8, 10) and tensor.min() >= -1 and tensor.max() <= 1
    np.testing.assert_array_equal(to_uint8_frames(tensor), array)
    assert to_uint8_frames(torch.full((3, 1, 2, 2), 5.0)).max() == 255  # clipped, not wrapped


def test_mp4_round_trip_and_probe(tmp_path):
    clip = smooth_clip()
    path = write_video(clip, tmp_path / "clip.mp4", fps=12.5)
    decoded = read_video(path)
    assert decoded.frames.shape == clip.shape
    assert decoded.fps == pytest.approx(12.5)
    assert (decoded.frames - clip).abs().mean() < 0.03
    info = probe_video(path)
    assert (info.width, info.height, info.num_frames, info.codec) == (48, 32, 9, "h264")
    assert not leftover_temp_files(tmp_path)


def test_mp4_odd_size_is_padded_to_even(tmp_path):
    clip = smooth_clip(5, 33, 47)
    decoded = read_video(write_video(clip, tmp_path / "odd.mp4"))
    assert decoded.frames.shape == (3, 5, 34, 48)
    assert (decoded.frames[:, :, :33, :47] - clip).abs().mean() < 0.05


def test_uint8_numpy_input_and_gif(tmp_path):
    array = to_uint8_frames(smooth_clip(4, 24, 24))
    decoded = read_video(write_video(array, tmp_path / "clip.gif", fps=10))
    assert decoded.frames.shape == (3, 4, 24, 24)
    assert (decoded.frames - from_uint8_frames(array)).abs().mean() < 0.05


def test_images_read_as_one_frame_videos(tmp_path):
    image = np.zeros((20, 30, 3), dtype=np.uint8)
    image[:, :15] = (255, 0, 0)
    Image.fromarray(image).save(tmp_path / "still.png")
    clip = read_video(tmp_path / "still.png")
    assert clip.frames.shape == (3, 1, 20, 30)
    assert clip.frames[0, 0, 0, 0] == 1 and clip.frames[1, 0, 0, 0] == -1
    from_bytes = read_video((tmp_path / "still.png").read_bytes(), size=(10, 16))
    assert from_bytes.frames.shape == (3, 1, 10, 16)


def test_read_options_and_in_memory_sources(tmp_path):
    path = write_video(smooth_clip(17, 32, 32), tmp_path / "clip.mp4", fps=8)
    full = read_video(path)
    part = read_video(path, start_frame=3, max_frames=4, frame_stride=2, size=(16, 24))
    assert part.frames.shape == (3, 4, 16, 24)
    assert part.fps == pytest.approx(4.0)
    same = read_video(path, start_frame=3, max_frames=4, frame_stride=2)
    assert torch.allclose(same.frames, full.frames[:, 3:11:2])
    with open(path, "rb") as handle:
        assert torch.equal(read_video(handle).frames, full.frames)
    assert torch.equal(read_video(path.read_bytes()).frames, full.frames)


def expect_read_error(source, reason, *fragments):
    with pytest.raises(VideoReadError) as caught:
        read_video(source)
    error = caught.value
    assert error.reason == reason, str(error)
    assert isinstance(error, (PyraTokError, ValueError))
    message = str(error)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    return error


def test_missing_file(tmp_path):
    error = expect_read_error(tmp_path / "nope.mp4", "missing", "nope.mp4", "no such video file")
    assert isinstance(error, (VideoNotFoundError, FileNotFoundError))


def test_text_file_with_video_extension(tmp_path):
    path = tmp_path / "fake.mp4"
    path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n")
    expect_read_error(path, "not_video", "contains text", "git lfs pull")


def test_random_bytes_and_empty_file(tmp_path):
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    expect_read_error(tmp_path / "noise.mp4", "corrupt", "re-encode")
    (tmp_path / "empty.mp4").write_bytes(b"")
    expect_read_error(tmp_path / "empty.mp4", "no_frames", "empty")


def test_truncated_and_corrupted_mp4(tmp_path):
    data = write_video(smooth_clip(17, 32, 32), tmp_path / "good.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: int(len(data) * 0.6)])
    expect_read_error(tmp_path / "cut.mp4", "corrupt", "truncated")
    (tmp_path / "head.mp4").write_bytes(data[:300])
    with pytest.raises(VideoReadError):
        read_video(tmp_path / "head.mp4")


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


def test_zero_frames(tmp_path):
    path = encode_raw(tmp_path / "zero.avi", "avi", "mpeg4", 0)
    expect_read_error(path, "no_frames", "no decodable video frame")


def test_unsupported_codec(tmp_path):
    path = encode_raw(tmp_path / "clip.avi", "avi", "mpeg4", 3)
    path.write_bytes(path.read_bytes().replace(b"FMP4", b"QQQQ"))  # a fourcc no FFmpeg decoder knows
    expect_read_error(path, "unsupported_codec", "not supported", "libx264")


def test_audio_only_file(tmp_path):
    path = tmp_path / "sound.mp4"
    container = av.open(str(path), "w")
    stream = container.add_stream("aac", rate=16000)
    frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
    frame.sample_rate = 16000
    for packet in list(stream.encode(frame)) + list(stream.encode()):
        container.mux(packet)
    container.close()
    expect_read_error(path, "no_video_stream", "no video stream")


def test_absurd_resolutions_are_refused(tmp_path):
    wide = encode_raw(tmp_path / "wide.mp4", "mp4", "libx264", 1, width=MAX_FRAME_SIDE + 8, height=16)
    expect_read_error(wide, "too_large", str(MAX_FRAME_SIDE))
    Image.new("1", (9000, 8)).save(tmp_path / "wide.png")
    expect_read_error(tmp_path / "wide.png", "too_large", str(MAX_FRAME_SIDE))
    Image.new("1", (8192, 4200)).save(tmp_path / "big.png")  # each side is fine, the pixel count is not
    expect_read_error(tmp_path / "big.png", "too_large", str(MAX_FRAME_PIXELS))


def test_write_video_validates_input(tmp_path):
    with pytest.raises(VideoWriteError, match=r"\[3, T, H, W\]"):
        write_video(torch.zeros(2, 3, 8, 8), tmp_path / "x.mp4")
    with pytest.raises(VideoWriteError, match="unsupported extension"):
        write_video(smooth_clip(1, 8, 8), tmp_path / "x.xyz")
    assert not list(tmp_path.iterdir())


def test_interrupted_video_write_keeps_previous_file(tmp_path, monkeypatch):
    target = write_video(smooth_clip(5, 16, 16), tmp_path / "clip.mp4")
    before = target.read_bytes()
    calls = {"n": 0}
    original = av.VideoFrame.from_ndarray

    def failing_from_ndarray(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # simulates Ctrl-C in the middle of encoding
        return original(*args, **kwargs)

    monkeypatch.setattr(av.VideoFrame, "from_ndarray", failing_from_ndarray)
    with pytest.raises(KeyboardInterrupt):
        write_video(smooth_clip(9, 16, 16), target)
    assert target.read_bytes() == before
    assert not leftover_temp_files(tmp_path)


def test_atomic_write_leaves_nothing_on_exception(tmp_path):
    target = tmp_path / "sub" / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_write(target, "w") as handle:
            handle.write("partial")
            raise RuntimeError("boom")
    assert not target.exists()
    assert not leftover_temp_files(tmp_path / "sub")
    with atomic_write(target, "w") as handle:
        handle.write("héllo")
    assert target.read_text(encoding="utf-8") == "héllo"
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)  # not mkstemp's owner-only mode
    with pytest.raises(ValueError, match="append"):
        with atomic_write(target, "a"):
            pass


def test_atomic_json_and_safetensors(tmp_path):
    atomic_write_json({"a": np.int64(3), "b": [np.float32(0.5)], "p": tmp_path}, tmp_path / "x.json")
    assert json.loads((tmp_path / "x.json").read_text())["a"] == 3
    with pytest.raises(TypeError):
        atomic_write_json({"bad": object()}, tmp_path / "bad.json")
    assert not (tmp_path / "bad.json").exists()

    from safetensors import safe_open

    weight = torch.randn(4, 3)
    atomic_save_safetensors({"w": weight, "tied": weight, "t": weight.t()}, tmp_path / "m.safetensors", metadata={"step": 7, "name": "x"})
    with safe_open(tmp_path / "m.safetensors", "pt") as handle:
        assert handle.metadata() == {"step": "7", "name": "x"}
        assert torch.equal(handle.get_tensor("tied"), weight)
        assert torch.equal(handle.get_tensor("t"), weight.t())
    assert not leftover_temp_files(tmp_path)
