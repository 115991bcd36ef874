"""Reading and writing videos, and writing every output file atomically.

Conventions used across pyratok-hf:

* a video tensor is ``[3, T, H, W]`` float in ``[-1, 1]`` (RGB), the layout the tokenizer consumes;
* a video array is ``[T, H, W, 3]`` ``uint8``, the layout codecs and image libraries use;
* every file the package writes goes through :func:`atomic_write` / :func:`atomic_output_path`, so a crash or
  Ctrl-C in the middle of a write never leaves a half-written checkpoint, video or json next to good ones.

Decoding uses PyAV directly (not torchvision/torchcodec), because it is the one FFmpeg binding that works the same
on every platform we support and it lets us classify failures into typed :class:`VideoReadError`\\ s that data
loaders can count and skip.
"""

from __future__ import annotations

import io
import json
import logging
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import IO, Any, BinaryIO, Iterator, Mapping, Optional, Tuple, Union

import numpy as np
import torch

from .errors import InvalidInputError, VideoNotFoundError, VideoReadError, VideoWriteError

logger = logging.getLogger(__name__)

__all__ = [
    "VideoClip",
    "VideoInfo",
    "read_video",
    "read_video_uint8",
    "probe_video",
    "write_video",
    "to_uint8_frames",
    "from_uint8_frames",
    "atomic_write",
    "atomic_output_path",
    "atomic_write_json",
    "atomic_write_text",
    "atomic_save_safetensors",
    "VIDEO_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "MAX_FRAME_SIDE",
    "MAX_FRAME_PIXELS",
]

VideoSource = Union[str, os.PathLike, bytes, bytearray, memoryview, BinaryIO]

#: Container extensions treated as videos by folder datasets and tar shards.
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".gif", ".mpg", ".mpeg", ".ts", ".flv"})
#: Still-image extensions accepted as one-frame videos.
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp"})

#: Frames wider or taller than this are refused before decoding: no real training video is this large, while a
#: malicious or broken header claiming it would make us allocate gigabytes per frame.
MAX_FRAME_SIDE = 8192
#: Frames with more pixels than this (about 8K UHD, 7680x4320, still fits) are refused for the same reason.
MAX_FRAME_PIXELS = 2**25
#: Upper bound on decoded uint8 bytes kept in memory by one ``read_video`` call (float output is 4x this).
MAX_DECODED_BYTES = 2**32

_REENCODE_HINT = "re-encode it, e.g. `ffmpeg -i IN -c:v libx264 -pix_fmt yuv420p OUT.mp4`"


# --------------------------------------------------------------------------------------------------------------
# Tensor <-> uint8 conversion
# --------------------------------------------------------------------------------------------------------------


def to_uint8_frames(frames: Union[torch.Tensor, np.ndarray]) -> np.ndarray:
    """Convert a ``[3, T, H, W]`` (or ``[3, H, W]``) tensor in ``[-1, 1]`` to ``uint8`` ``[T, H, W, 3]``.

    Values outside ``[-1, 1]`` (normal for decoder outputs) are clipped rather than wrapped, and rounding is to
    nearest so that ``from_uint8_frames(to_uint8_frames(x))`` is the identity on already-quantized inputs.
    A ``uint8`` array already in ``[T, H, W, 3]`` layout is returned unchanged, so writers can accept either.
    """
    if isinstance(frames, np.ndarray) and frames.dtype == np.uint8:
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise VideoWriteError(f"uint8 frames must have shape [T, H, W, 3], got {list(frames.shape)}.")
        return np.ascontiguousarray(frames)
    tensor = torch.as_tensor(frames)
    if tensor.ndim == 3:
        tensor = tensor[:, None]
    if tensor.ndim != 4 or tensor.shape[0] != 3:
        raise VideoWriteError(
            f"Video tensors must have shape [3, T, H, W] (RGB first), got {list(tensor.shape)}; "
            "drop the batch dimension or permute channels first."
        )
    if not tensor.is_floating_point():
        raise VideoWriteError(f"Video tensors must be floating point in [-1, 1], got dtype {tensor.dtype}.")
    scaled = ((tensor.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return np.ascontiguousarray(scaled.permute(1, 2, 3, 0).numpy())


def from_uint8_frames(array: np.ndarray) -> torch.Tensor:
    """Convert ``uint8`` ``[T, H, W, 3]`` (or one ``[H, W, 3]`` image) to a ``[3, T, H, W]`` tensor in ``[-1, 1]``."""
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise VideoWriteError(f"Expected uint8 frames, got dtype {array.dtype}; scale to 0..255 and cast first.")
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[-1] != 3:
        raise VideoWriteError(f"uint8 frames must have shape [T, H, W, 3], got {list(array.shape)}.")
    if not array.flags.writeable:  # e.g. np.asarray(PIL image); torch warns on read-only buffers
        array = array.copy()
    tensor = torch.from_numpy(np.ascontiguousarray(array)).permute(3, 0, 1, 2).float()
    return (tensor / 127.5 - 1.0).contiguous()


# --------------------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------------------


@dataclass
class VideoClip:
    """Decoded frames plus the timing needed to write them back or to caption them.

    ``fps`` is the rate of the returned frames, i.e. the source rate divided by ``frame_stride``, so a clip
    written back with ``write_video(clip.frames, path, fps=clip.fps)`` plays at real speed.
    """

    frames: torch.Tensor
    fps: float
    path: Optional[str] = None
    start_frame: int = 0
    frame_stride: int = 1

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[1])

    @property
    def height(self) -> int:
        return int(self.frames.shape[2])

    @property
    def width(self) -> int:
        return int(self.frames.shape[3])


@dataclass
class VideoInfo:
    """Header-level facts about a video, read without decoding frames.

    ``num_frames`` is ``None`` when the container does not declare a count (e.g. MPEG-PS, some MKV); it is the
    declared count otherwise, which a truncated file may not actually deliver.
    """

    width: int
    height: int
    fps: float
    num_frames: Optional[int]
    codec: Optional[str]


def _describe(source: Any) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    name = getattr(source, "name", None)
    return str(name) if isinstance(name, str) else "<in-memory video>"


def _looks_like_text(head: bytes) -> bool:
    """True when the first bytes are printable text: the usual cause is an HTML error page or a Git LFS pointer."""
    if not head:
        return False
    try:
        decoded = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in decoded)
    return printable / max(len(decoded), 1) > 0.95


def _sniff_image(head: bytes) -> bool:
    return (
        head.startswith(b"\x89PNG\r\n\x1a\n")
        or head.startswith(b"\xff\xd8\xff")
        or head.startswith(b"BM")
        or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
    )


def _check_resolution(width: int, height: int, label: str) -> None:
    if width > MAX_FRAME_SIDE or height > MAX_FRAME_SIDE:
        raise VideoReadError(
            f"{label}: frame size {width}x{height} exceeds the limit of {MAX_FRAME_SIDE} px per side; "
            f"downscale it first (e.g. `ffmpeg -i IN -vf scale=1920:-2 OUT.mp4`).",
            reason="too_large",
            path=label,
        )
    if width * height > MAX_FRAME_PIXELS:
        raise VideoReadError(
            f"{label}: frame size {width}x{height} exceeds the limit of {MAX_FRAME_PIXELS} pixels per frame; "
            f"downscale it first (e.g. `ffmpeg -i IN -vf scale=1920:-2 OUT.mp4`).",
            reason="too_large",
            path=label,
        )


def _normalize_source(source: VideoSource) -> Tuple[Any, str, Optional[str], bytes]:
    """Return (object for PyAV/PIL, label for messages, lowercase suffix or None, first bytes for sniffing)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if not data:
            raise VideoReadError("<in-memory video>: the byte string is empty; the sample was not stored.", reason="no_frames")
        return io.BytesIO(data), "<in-memory video>", None, data[:64]
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        label = str(path)
        if not path.exists():
            raise VideoNotFoundError(f"{label}: no such video file; check the path (relative paths resolve from {os.getcwd()}).", path=label)
        if path.is_dir():
            raise VideoReadError(f"{label}: is a directory, not a video file; pass a file inside it.", reason="not_video", path=label)
        with open(path, "rb") as handle:
            head = handle.read(64)
        if not head:
            raise VideoReadError(f"{label}: the file is empty (0 bytes); re-download or re-export it.", reason="no_frames", path=label)
        return str(path), label, path.suffix.lower(), head
    if hasattr(source, "read"):
        label = _describe(source)
        position = source.tell() if hasattr(source, "tell") else None
        head = source.read(64)
        if position is not None:
            source.seek(position)
        else:  # cannot rewind: buffer it so we can still sniff the header
            source = io.BytesIO(head + source.read())
        return source, label, Path(label).suffix.lower() or None, head
    raise TypeError(f"read_video() expects a path, bytes or a binary file object, got {type(source).__name__}.")


def _read_image_uint8(source: Any, label: str, size: Optional[Tuple[int, int]]) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(source) as image:
            _check_resolution(image.width, image.height, label)
            image = image.convert("RGB")
            if size is not None:
                image = image.resize((size[1], size[0]), Image.Resampling.BICUBIC, reducing_gap=2.0)
            array = np.asarray(image, dtype=np.uint8)
    except Image.DecompressionBombError as error:  # PIL's own, higher limit, hit while reading the header
        raise VideoReadError(
            f"{label}: the image is far larger than the limit of {MAX_FRAME_PIXELS} pixels ({error}); downscale it first.",
            reason="too_large",
            path=label,
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        if isinstance(error, VideoReadError):
            raise
        raise VideoReadError(
            f"{label}: cannot decode the image ({error}); the file is corrupt or not an image, re-export it.",
            reason="corrupt",
            path=label,
        ) from None
    return array[None]


def _frame_rate(stream: Any) -> float:
    for attribute in ("average_rate", "guessed_rate", "base_rate"):
        rate = getattr(stream, attribute, None)
        if rate:
            return float(rate)
    return 0.0


def _open_container(source: Any, label: str, head: bytes):
    import av

    try:
        return av.open(source, mode="r", metadata_errors="ignore")
    except av.FFmpegError as error:
        if _looks_like_text(head):
            raise VideoReadError(
                f"{label}: contains text, not video data (an HTML error page or a Git LFS pointer?); "
                "download the real file (e.g. `git lfs pull`).",
                reason="not_video",
                path=label,
            ) from None
        raise VideoReadError(
            f"{label}: FFmpeg cannot open it ({error.strerror or error}); the file is truncated, corrupt or not a "
            f"video: re-download it or {_REENCODE_HINT}.",
            reason="corrupt",
            path=label,
        ) from None


def _video_stream(container: Any, label: str):
    if not container.streams.video:
        raise VideoReadError(
            f"{label}: has no video stream (audio-only or data file); pass a file that contains video.",
            reason="no_video_stream",
            path=label,
        )
    stream = container.streams.video[0]
    if stream.codec_context is None:
        tag = getattr(stream, "codec_tag", "") or "unknown"
        raise VideoReadError(
            f"{label}: its video codec (tag {tag!r}) is not supported by this FFmpeg build, or the header is "
            f"truncated; {_REENCODE_HINT}.",
            reason="unsupported_codec",
            path=label,
        )
    return stream


def probe_video(path: VideoSource) -> VideoInfo:
    """Read size, frame rate and declared frame count from the header only (cheap; used for bucketing)."""
    source, label, suffix, head = _normalize_source(path)
    if suffix in IMAGE_EXTENSIONS or (suffix is None and _sniff_image(head)):
        from PIL import Image

        try:
            with Image.open(source) as image:
                return VideoInfo(width=image.width, height=image.height, fps=1.0, num_frames=1, codec=image.format)
        except Exception as error:  # noqa: BLE001 - PIL raises many types for bad files
            raise VideoReadError(f"{label}: cannot read the image header ({error}); re-export it.", reason="corrupt", path=label) from None
    container = _open_container(source, label, head)
    try:
        stream = _video_stream(container, label)
        declared = int(stream.frames or 0)
        return VideoInfo(
            width=int(stream.codec_context.width or stream.width or 0),
            height=int(stream.codec_context.height or stream.height or 0),
            fps=_frame_rate(stream),
            num_frames=declared if declared > 0 else None,
            codec=stream.codec_context.name,
        )
    finally:
        container.close()


def read_video(
    path: VideoSource,
    *,
    max_frames: Optional[int] = None,
    start_frame: int = 0,
    size: Optional[Tuple[int, int]] = None,
    frame_stride: int = 1,
) -> VideoClip:
    """Decode a video (or a png/jpg image, as a one-frame video) into a ``[3, T, H, W]`` tensor in ``[-1, 1]``.

    Args:
        path: file path, raw bytes, or a binary file object (e.g. a tar member or a ``datasets`` ``bytes`` field).
        max_frames: keep at most this many output frames; decoding stops as soon as they are collected, so
            reading a short clip from a long or partially corrupt file is cheap and succeeds.
        start_frame: index of the first source frame to keep (frames are decoded from the start; no seeking,
            which is exact for every codec at the price of decoding the skipped frames).
        size: ``(height, width)`` to resize every frame to (aspect ratio is not preserved: use
            :mod:`pyratok_hf.data.transforms` for crops that keep it).
        frame_stride: keep every ``frame_stride``-th source frame; ``clip.fps`` is divided accordingly.

    Raises:
        VideoNotFoundError: the path does not exist.
        VideoReadError: not a video, truncated/corrupt data, no video stream, unsupported codec, no decodable
            frame, ``start_frame`` past the end, or frames larger than :data:`MAX_FRAME_SIDE` /
            :data:`MAX_FRAME_PIXELS`. ``error.reason`` tells which, for counting skipped samples.
    """
    array, fps, label = read_video_uint8(
        path, max_frames=max_frames, start_frame=start_frame, size=size, frame_stride=frame_stride
    )
    return VideoClip(frames=from_uint8_frames(array), fps=fps, path=label, start_frame=start_frame, frame_stride=frame_stride)


def read_video_uint8(
    path: VideoSource,
    *,
    max_frames: Optional[int] = None,
    start_frame: int = 0,
    size: Optional[Tuple[int, int]] = None,
    frame_stride: int = 1,
) -> Tuple[np.ndarray, float, str]:
    """Like :func:`read_video` but return ``(uint8 [T, H, W, 3], fps, label)``.

    Data loaders decode a whole short video, pick clip frames, and only convert those to float: 4x less memory.
    """
    if max_frames is not None and max_frames < 1:
        raise InvalidInputError(f"max_frames must be >= 1 or None, got {max_frames}.")
    if start_frame < 0:
        raise InvalidInputError(f"start_frame must be >= 0, got {start_frame}.")
    if frame_stride < 1:
        raise InvalidInputError(f"frame_stride must be >= 1, got {frame_stride}.")
    if size is not None:
        size = (int(size[0]), int(size[1]))
        if size[0] < 1 or size[1] < 1:
            raise InvalidInputError(f"size must be a positive (height, width), got {size}.")
        if max(size) > MAX_FRAME_SIDE or size[0] * size[1] > MAX_FRAME_PIXELS:
            raise InvalidInputError(
                f"size {size[0]}x{size[1]} is too large: frames may have at most {MAX_FRAME_SIDE} px per side and "
                f"{MAX_FRAME_PIXELS} pixels; pick a smaller size (e.g. 256x256)."
            )

    source, label, suffix, head = _normalize_source(path)
    if suffix in IMAGE_EXTENSIONS or (suffix is None and _sniff_image(head)):
        if start_frame > 0:
            raise VideoReadError(f"{label}: an image has one frame, start_frame={start_frame} is past it.", reason="too_short", path=label)
        return _read_image_uint8(source, label, size), 1.0, label

    import av

    container = _open_container(source, label, head)
    try:
        stream = _video_stream(container, label)
        _check_resolution(int(stream.codec_context.width or 0), int(stream.codec_context.height or 0), label)
        fps = _frame_rate(stream)
        declared = int(stream.frames or 0)
        kept: list = []
        decoded = 0
        stopped_early = False
        kept_bytes = 0
        try:
            for frame in container.decode(stream):
                index = decoded
                decoded += 1
                if index == 0:
                    _check_resolution(frame.width, frame.height, label)
                if index < start_frame or (index - start_frame) % frame_stride:
                    continue
                if size is not None and (frame.height, frame.width) != size:
                    downscale = size[0] * size[1] < frame.height * frame.width
                    array = frame.to_ndarray(
                        format="rgb24", width=size[1], height=size[0], interpolation="AREA" if downscale else "BICUBIC"
                    )
                else:
                    array = frame.to_ndarray(format="rgb24")
                kept.append(array)
                kept_bytes += array.nbytes
                if kept_bytes > MAX_DECODED_BYTES:
                    raise VideoReadError(
                        f"{label}: decoding would keep more than {MAX_DECODED_BYTES >> 30} GiB of frames; "
                        "pass max_frames=, frame_stride= or size= to read less.",
                        reason="too_large",
                        path=label,
                    )
                if max_frames is not None and len(kept) >= max_frames:
                    stopped_early = True
                    break
        except av.FFmpegError as error:
            raise VideoReadError(
                f"{label}: decoding failed after {decoded} frame(s) ({error.strerror or error}); the file is "
                f"truncated or corrupt: re-download it or {_REENCODE_HINT}.",
                reason="corrupt",
                path=label,
            ) from None
    finally:
        container.close()

    if not kept:
        if decoded == 0:
            raise VideoReadError(
                f"{label}: contains no decodable video frame; the file is empty or broken, re-export it.",
                reason="no_frames",
                path=label,
            )
        raise VideoReadError(
            f"{label}: has {decoded} frame(s), so start_frame={start_frame} is past the end; choose an earlier start.",
            reason="too_short",
            path=label,
        )
    # A container that declares N frames but yields far fewer lost its tail (a cut-off download). Small
    # mismatches are normal (edit lists, B-frame priming), hence the tolerance.
    if not stopped_early and declared > 0 and decoded < 0.9 * declared - 1:
        raise VideoReadError(
            f"{label}: the header declares {declared} frames but only {decoded} could be decoded; the file is "
            "truncated: re-download it.",
            reason="corrupt",
            path=label,
        )
    return np.stack(kept), fps / frame_stride, label




# --------------------------------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------------------------------


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def _fsync_path(path: Union[str, os.PathLike]) -> None:
    try:
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    except OSError:  # fsync is best effort (some filesystems refuse it); the rename is what gives atomicity
        pass


@contextmanager
def atomic_output_path(path: Union[str, os.PathLike]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``, on error it is deleted.

    Use this for libraries that insist on opening the file themselves (FFmpeg muxers, safetensors, PIL). The
    temporary file lives in the same directory, so the final ``os.replace`` is an atomic rename on POSIX and
    Windows, and it keeps the real suffix so format detection by extension still works.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=f".tmp{target.suffix}")
    os.close(handle)
    temporary_path = Path(temporary)
    try:
        yield temporary_path
        if not temporary_path.exists():
            raise FileNotFoundError(f"{temporary_path}: nothing was written to the temporary file for {target}.")
        # mkstemp creates files readable by the owner only; give the final file the usual permissions.
        os.chmod(temporary_path, 0o666 & ~_UMASK)
        _fsync_path(temporary_path)
        os.replace(temporary_path, target)
    except BaseException:
        try:
            temporary_path.unlink()
        except FileNotFoundError:
            pass
        raise


@contextmanager
def atomic_write(path: Union[str, os.PathLike], mode: str = "wb", *, encoding: Optional[str] = None) -> Iterator[IO]:
    """Open ``path`` for writing such that readers only ever see the old file or the complete new one.

    Text modes default to UTF-8 so outputs do not depend on the platform locale. If the ``with`` body raises
    (or the process is interrupted), the temporary file is removed and ``path`` is left untouched.
    """
    if mode not in ("w", "wt", "wb"):
        raise ValueError(f"atomic_write supports modes 'w', 'wt' and 'wb', got {mode!r} (appending cannot be atomic).")
    if "b" not in mode and encoding is None:
        encoding = "utf-8"
    with atomic_output_path(path) as temporary:
        with open(temporary, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return value.tolist()
    if isinstance(value, (Path, os.PathLike)):
        return os.fspath(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def atomic_write_text(text: str, path: Union[str, os.PathLike]) -> Path:
    """Write a UTF-8 text file atomically and return its path."""
    with atomic_write(path, "w") as handle:
        handle.write(text)
    return Path(path)


def atomic_write_json(obj: Any, path: Union[str, os.PathLike], *, indent: Optional[int] = 2, sort_keys: bool = False) -> Path:
    """Write ``obj`` as UTF-8 JSON atomically (numpy scalars, tensors and paths are converted); return the path.

    The text is produced before the file is opened, so an unserializable object never creates a file.
    """
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys, ensure_ascii=False, default=_json_default) + "\n"
    return atomic_write_text(text, path)


def atomic_save_safetensors(
    tensors: Mapping[str, torch.Tensor], path: Union[str, os.PathLike], metadata: Optional[Mapping[str, Any]] = None
) -> Path:
    """Save tensors to a ``.safetensors`` file atomically; return the path.

    safetensors only stores string metadata, so non-string values are JSON-encoded (and strings kept as is).
    Tensors sharing storage (tied weights) are cloned, since the format cannot express aliasing.
    """
    from safetensors.torch import save_file

    prepared = {}
    seen_storage = set()
    for name, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"atomic_save_safetensors: value for {name!r} is a {type(tensor).__name__}, not a tensor.")
        tensor = tensor.detach().cpu()
        storage = (tensor.untyped_storage().data_ptr(), tensor.untyped_storage().nbytes()) if tensor.numel() else None
        if storage is not None and storage in seen_storage:
            tensor = tensor.clone()
        elif storage is not None:
            seen_storage.add(storage)
        prepared[name] = tensor.contiguous()
    string_metadata = None
    if metadata is not None:
        string_metadata = {
            str(key): value if isinstance(value, str) else json.dumps(value, default=_json_default)
            for key, value in metadata.items()
        }
    with atomic_output_path(path) as temporary:
        save_file(prepared, str(temporary), metadata=string_metadata)
    return Path(path)


# --------------------------------------------------------------------------------------------------------------
# Writing videos
# --------------------------------------------------------------------------------------------------------------

_X264_EXTENSIONS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}


def _pad_to_even(frames: np.ndarray) -> np.ndarray:
    """yuv420p stores chroma at half resolution, so H.264 needs even sides; replicate the last row/column."""
    pad_h = frames.shape[1] % 2
    pad_w = frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return frames


# FFmpeg stores the rate as a ratio of C ints (huge rates overflow it) and we round it to denominators <= 1001.
MIN_WRITE_FPS, MAX_WRITE_FPS = 0.001, 1000.0


def _fps_fraction(fps: float) -> Fraction:
    if not fps or not np.isfinite(fps) or not MIN_WRITE_FPS <= fps <= MAX_WRITE_FPS:
        raise VideoWriteError(f"fps must be a number between {MIN_WRITE_FPS:g} and {MAX_WRITE_FPS:g}, got {fps!r}.")
    return Fraction(fps).limit_denominator(1001)


def write_video(
    frames: Union[torch.Tensor, np.ndarray],
    path: Union[str, os.PathLike],
    fps: float = 8.0,
    *,
    crf: int = 18,
    preset: str = "medium",
    threads: int = 1,
) -> Path:
    """Encode frames to ``path`` atomically and return the path.

    ``frames`` is a ``[3, T, H, W]`` tensor in ``[-1, 1]`` or a ``uint8`` ``[T, H, W, 3]`` array. The container
    follows the extension: ``.mp4``/``.m4v``/``.mov``/``.mkv`` use H.264 (libx264, yuv420p, ``crf``; odd sizes
    are padded by one replicated row/column since yuv420p needs even sides), ``.gif`` uses an adaptive palette
    per frame and loops forever, ``.png``/``.jpg`` accept a single frame.

    H.264 output is byte-reproducible (same frames and settings give the same file), which the offline corpus
    relies on; ``threads=1`` (default) keeps it so and keeps CPU use modest, ``threads=0`` lets FFmpeg choose.
    """
    array = to_uint8_frames(frames)
    if array.shape[0] < 1 or array.shape[1] < 1 or array.shape[2] < 1:
        raise VideoWriteError(f"Cannot write an empty video (frames shape {list(array.shape)}).")
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix in _X264_EXTENSIONS:
        _write_x264(array, target, _fps_fraction(fps), _X264_EXTENSIONS[suffix], crf=crf, preset=preset, threads=threads)
    elif suffix == ".gif":
        _write_gif(array, target, fps)
    elif suffix in IMAGE_EXTENSIONS:
        if array.shape[0] != 1:
            raise VideoWriteError(f"{target}: an image file holds one frame, got {array.shape[0]}; use .mp4 or .gif.")
        from PIL import Image

        with atomic_output_path(target) as temporary:
            Image.fromarray(array[0]).save(temporary, format=Image.registered_extensions()[suffix])
    else:
        raise VideoWriteError(
            f"{target}: unsupported extension {suffix!r}; use one of .mp4, .mov, .mkv, .m4v, .gif (or .png/.jpg for one frame)."
        )
    return target


def _yuv420p_frame(rgb: np.ndarray):
    """Convert RGB to a yuv420p frame whose row padding is zeroed.

    FFmpeg leaves the padding at the end of each chroma row uninitialised; zeroing it ensures the encoder can
    never see stale memory, one of the conditions for byte-reproducible files.
    """
    import av

    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    for plane in frame.planes:
        if plane.line_size > plane.width:
            rows = np.frombuffer(plane, dtype=np.uint8)
            rows = rows[: plane.line_size * plane.height].reshape(plane.height, plane.line_size)
            rows[:, plane.width :] = 0
    return frame


def _write_x264(
    array: np.ndarray, target: Path, rate: Fraction, container_format: str, *, crf: int, preset: str, threads: int
) -> None:
    import av

    array = _pad_to_even(array)
    _, height, width, _ = array.shape
    options = {"movflags": "+faststart"} if container_format in ("mp4", "mov") else {}
    with atomic_output_path(target) as temporary:
        try:
            container = av.open(str(temporary), mode="w", format=container_format, options=options)
            try:
                # mbtree (x264's lookahead-based quantizer tuning) made identical inputs encode differently from
                # run to run in this FFmpeg build; without it, outputs are byte-reproducible at ~no quality cost.
                options = {"crf": str(int(crf)), "preset": preset, "x264-params": "mbtree=0"}
                stream = container.add_stream("libx264", rate=rate, options=options)
                stream.codec_context.thread_count = int(threads)
                stream.width = width
                stream.height = height
                stream.pix_fmt = "yuv420p"
                for index, frame_array in enumerate(array):
                    frame = _yuv420p_frame(frame_array)
                    frame.pts = index  # explicit timestamps: x264's rate control reads them
                    frame.time_base = Fraction(1) / rate
                    for packet in stream.encode(frame):
                        container.mux(packet)
                for packet in stream.encode():
                    container.mux(packet)
            finally:
                container.close()
        except av.FFmpegError as error:
            raise VideoWriteError(f"{target}: FFmpeg failed to encode the video ({error}).") from error


def _write_gif(array: np.ndarray, target: Path, fps: float) -> None:
    from PIL import Image

    _fps_fraction(fps)  # validates
    duration_ms = max(int(round(1000.0 / fps)), 10)  # GIF delays are in 1/100 s; browsers clamp tiny ones
    images = [Image.fromarray(frame) for frame in array]
    with atomic_output_path(target) as temporary:
        images[0].save(
            temporary, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0, optimize=False
        )
