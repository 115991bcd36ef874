"""Video-text datasets: local folders, Hugging Face ``datasets``, and webdataset-style tar shards.

Every dataset yields sample dicts ``{"pixel_values": FloatTensor[3, T, H, W] in [-1, 1], "text": str, "key": str,
"fps": float, "bucket": str | None, "flipped": bool}`` (plus ``"metadata"`` with ``return_metadata=True``), and
:func:`collate_video_text` stacks them into ``{"pixel_values": [B, 3, T, H, W], "text": [...], ...}``.

Bad data never stops training: unreadable or corrupt videos, missing files or captions, and videos shorter than
the clip are skipped with a warning on the ``pyratok_hf.data`` logger and counted in ``dataset.skipped`` (a
``Counter`` keyed by reason). Map-style datasets then return the next valid sample (of the same aspect bucket
when buckets are in use, so batches still stack); iterable ones simply move on. With DataLoader workers the
counters live in the worker processes, so read them with ``num_workers=0`` or from the logs.

Skip reasons: ``missing``, ``not_video``, ``corrupt``, ``no_video_stream``, ``unsupported_codec``, ``no_frames``,
``too_large`` (from :class:`~pyratok_hf.errors.VideoReadError`), ``too_short`` (fewer frames than the clip span),
``missing_caption``, ``bad_metadata_row``, ``decode_error``/``transform_error`` (unclassified failures), and for
tar shards ``corrupt_shard`` and ``missing_shard``.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import logging
import os
import random
import re
import tarfile
import tempfile
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Hashable, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch.utils.data import Dataset, IterableDataset, Sampler, get_worker_info

from ..errors import DatasetError, VideoReadError
from ..video_io import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    atomic_output_path,
    atomic_write_json,
    from_uint8_frames,
    probe_video,
    read_video_uint8,
    write_video,
)
from .transforms import AspectBucket, ClipSampler, VideoTransform, make_aspect_buckets

logger = logging.getLogger("pyratok_hf.data")

__all__ = [
    "RawSample",
    "VideoFolderDataset",
    "HFVideoDataset",
    "TarShardDataset",
    "BucketBatchSampler",
    "collate_video_text",
    "load_video_text_dataset",
    "write_tar_shards",
    "expand_shard_spec",
]

#: Column / key names accepted for the video file and for the caption, in order of preference.
VIDEO_KEYS = ("file_name", "video", "path", "file", "filename", "video_path")
TEXT_KEYS = ("text", "caption", "prompt", "description")
CAPTION_FILES = ("metadata.jsonl", "metadata.csv", "captions.jsonl", "captions.csv")
_MEDIA_EXTENSIONS = VIDEO_EXTENSIONS | IMAGE_EXTENSIONS


class _SkipSample(Exception):
    """Internal signal: this sample is unusable for ``reason``; the caller counts it and moves on."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass
class RawSample:
    """An undecoded sample: what tar shards store and what :func:`write_tar_shards` consumes."""

    key: str
    video: bytes
    extension: str
    text: Optional[str]
    metadata: Dict[str, Any] = field(default_factory=dict)


def _pick(row: Dict[str, Any], names: Sequence[str]) -> Tuple[Optional[str], Any]:
    for name in names:
        if name in row and row[name] is not None and row[name] != "":
            return name, row[name]
    return None, None


def _clean_caption(value: Any, rng: random.Random) -> Optional[str]:
    """Captions may be a string or a list of alternatives (MSR-VTT style); blank means missing."""
    if isinstance(value, (list, tuple)):
        options = [str(item).strip() for item in value if item is not None and str(item).strip()]
        return rng.choice(options) if options else None
    if value is None:
        return None
    text = str(value).strip()
    return text or None


class _ClipLoader:
    """Decoding, clip sampling, transforms and skip accounting shared by every dataset class."""

    def __init__(
        self,
        *,
        num_frames: int = 17,
        frame_stride: int = 1,
        start: str = "random",
        size: Optional[Tuple[int, int]] = None,
        buckets: Union[None, bool, int, Sequence[AspectBucket]] = None,
        random_crop: bool = False,
        crop_scale: Tuple[float, float] = (0.8, 1.0),
        hflip_prob: float = 0.0,
        pad_short_clips: bool = False,
        clip_sampler: Optional[ClipSampler] = None,
        transform: Optional[VideoTransform] = None,
        seed: Optional[int] = None,
        return_metadata: bool = False,
    ) -> None:
        self.clip_sampler = clip_sampler or ClipSampler(
            num_frames=num_frames, frame_stride=frame_stride, start=start, pad_short_clips=pad_short_clips
        )
        if transform is None:
            if buckets is True:
                buckets = make_aspect_buckets(256)
            elif isinstance(buckets, int) and not isinstance(buckets, bool):
                buckets = make_aspect_buckets(buckets)
            transform = VideoTransform(
                size=size, buckets=buckets or None, random_crop=random_crop, crop_scale=crop_scale, hflip_prob=hflip_prob
            )
        self.transform = transform
        self.seed = seed
        self.epoch = 0
        self.return_metadata = return_metadata
        self.skipped: Counter = Counter()

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation draw (with a fixed ``seed``) and the shard order from one epoch to the next."""
        self.epoch = int(epoch)

    def _rng(self, key: Any) -> random.Random:
        """Per-sample RNG: reproducible from ``(seed, epoch, key)`` when ``seed`` is set, otherwise drawn from
        torch's RNG, which DataLoader seeds differently in every worker (Python's ``random`` state would be
        copied identically into each worker and repeat the same crops)."""
        if self.seed is None:
            return random.Random(int(torch.randint(0, 2**62, (1,)).item()))
        return random.Random(f"{self.seed}/{self.epoch}/{key}")

    def _record_skip(self, key: Any, skip: _SkipSample) -> None:
        self.skipped[skip.reason] += 1
        logger.warning("Skipping sample %s (%s): %s", key, skip.reason, skip.detail)

    def _load_clip(
        self,
        video: Any,
        text: Any,
        key: str,
        *,
        rng: random.Random,
        known_num_frames: Optional[int] = None,
        metadata: Optional[Dict[str, Any]] = None,
    ) -> Dict[str, Any]:
        caption = _clean_caption(text, rng)
        if caption is None:
            raise _SkipSample("missing_caption", "no caption text for this video")
        sampler = self.clip_sampler
        try:
            array, fps = None, 0.0
            total = known_num_frames
            if total is None:
                total = probe_video(video).num_frames
            if total is not None and total >= sampler.span:
                # The container declares enough frames: decode only up to the end of the chosen window.
                start = sampler.choose_start(total, rng)
                array, fps, _ = read_video_uint8(video, start_frame=start, max_frames=sampler.num_frames, frame_stride=sampler.frame_stride)
                if array.shape[0] < sampler.num_frames:  # the declared count was wrong: sample from what is there
                    array = None
            if array is None:
                full, source_fps, _ = read_video_uint8(video)
                indices = sampler.indices(full.shape[0], rng)
                if indices is None:
                    raise _SkipSample(
                        "too_short",
                        f"{full.shape[0]} frame(s) but the clip needs {sampler.span} "
                        "(pass pad_short_clips=True to repeat the last frame instead)",
                    )
                array, fps = full[indices], source_fps / sampler.frame_stride
        except VideoReadError as error:
            raise _SkipSample(error.reason, str(error)) from None
        except (OSError, RuntimeError, ValueError, MemoryError) as error:
            # Decoder or I/O failures not classified by read_video (e.g. a flaky network filesystem).
            raise _SkipSample("decode_error", f"{type(error).__name__}: {error}") from None
        try:
            frames, caption, info = self.transform(from_uint8_frames(array), caption, rng)
        except (RuntimeError, ValueError, MemoryError) as error:
            raise _SkipSample("transform_error", f"{type(error).__name__}: {error}") from None
        sample = {
            "pixel_values": frames,
            "text": caption,
            "key": key,
            "fps": float(fps),
            "bucket": info["bucket"],
            "flipped": info["flipped"],
        }
        if self.return_metadata:
            sample["metadata"] = dict(metadata or {})
        return sample


class _MapStyleVideoTextDataset(_ClipLoader, Dataset):
    """Map-style base: subclasses implement ``__len__``, ``_entry(index)`` and ``_video_size(index)``."""

    def __init__(self, **loader_kwargs: Any) -> None:
        _ClipLoader.__init__(self, **loader_kwargs)
        self._bad_indices: Dict[int, str] = {}
        self._bucket_cache: Optional[List[Optional[str]]] = None

    # Subclass hooks -----------------------------------------------------------------------------------------
    def _entry(self, index: int) -> Tuple[Any, Any, str, Optional[int], Dict[str, Any]]:
        """Return ``(video path/bytes, caption, key, known frame count or None, extra metadata)``."""
        raise NotImplementedError

    def _video_size(self, index: int) -> Optional[Tuple[int, int]]:
        """``(height, width)`` without decoding, or ``None`` when unknown/unreadable."""
        video, _, _, _, _ = self._entry(index)
        try:
            info = probe_video(video)
        except VideoReadError:
            return None
        return (info.height, info.width) if info.height and info.width else None

    def iter_raw_samples(self) -> Iterator[RawSample]:
        """Yield undecoded samples (for :func:`write_tar_shards`), skipping missing files and captions."""
        for index in range(len(self)):
            video, text, key, _, metadata = self._entry(index)
            caption = _clean_caption(text, random.Random(0))
            try:
                data, extension = _video_bytes(video)
            except _SkipSample as skip:
                self._record_skip(key, skip)
                continue
            if caption is None:
                self._record_skip(key, _SkipSample("missing_caption", "no caption text for this video"))
                continue
            yield RawSample(key=key, video=data, extension=extension, text=caption, metadata=dict(metadata))

    # Buckets ------------------------------------------------------------------------------------------------
    def bucket_ids(self) -> List[Optional[str]]:
        """Bucket name of every sample (``None`` without buckets), from headers only; cached.

        Feed this to :class:`BucketBatchSampler`. Unreadable samples are put in the first bucket; they will be
        skipped and replaced by a valid sample of that bucket at load time.
        """
        if self._bucket_cache is None:
            buckets = self.transform.buckets
            ids: List[Optional[str]] = []
            for index in range(len(self)):
                if not buckets:
                    ids.append(None)
                    continue
                size = self._video_size(index)
                ids.append(self.transform.target_for(*size)[1] if size else buckets[0].name)
            self._bucket_cache = ids
        return self._bucket_cache

    def _fallback_order(self, index: int) -> Iterator[int]:
        length = len(self)
        yield index
        same_bucket = self._bucket_cache is not None and self.transform.buckets
        for offset in range(1, length):
            candidate = (index + offset) % length
            if same_bucket and self._bucket_cache[candidate] != self._bucket_cache[index]:
                continue
            yield candidate

    def __getitem__(self, index: int) -> Dict[str, Any]:
        index = int(index)
        length = len(self)
        if length == 0:
            raise DatasetError("The dataset is empty; check the folder, captions file or split.")
        if index < 0:
            index += length
        if not 0 <= index < length:
            raise IndexError(f"index {index} out of range for a dataset of {length} samples")
        for candidate in self._fallback_order(index):
            if candidate in self._bad_indices:
                continue
            video, text, key, known_frames, metadata = self._entry(candidate)
            try:
                return self._load_clip(
                    video, text, key, rng=self._rng(candidate), known_num_frames=known_frames, metadata=metadata
                )
            except _SkipSample as skip:
                self._bad_indices[candidate] = skip.reason
                self._record_skip(key, skip)
        raise DatasetError(
            f"No readable sample left (skipped so far: {dict(self.skipped)}); fix the data or the clip settings "
            "(e.g. lower num_frames/frame_stride or set pad_short_clips=True)."
        )


def _video_bytes(video: Any) -> Tuple[bytes, str]:
    """Raw bytes and extension (without dot) of a path/bytes/``{"path", "bytes"}`` video reference."""
    if isinstance(video, dict):
        data = video.get("bytes")
        path = video.get("path")
        if data:
            extension = Path(path).suffix.lower().lstrip(".") if path else "mp4"
            return bytes(data), extension or "mp4"
        video = path
    if isinstance(video, (bytes, bytearray)):
        return bytes(video), "mp4"
    if video is None:
        raise _SkipSample("missing", "the sample has no video")
    path = Path(video)
    if not path.is_file():
        raise _SkipSample("missing", f"{path}: no such video file")
    return path.read_bytes(), path.suffix.lower().lstrip(".") or "mp4"


# --------------------------------------------------------------------------------------------------------------
# Local folder
# --------------------------------------------------------------------------------------------------------------


def _read_caption_rows(captions_file: Path) -> Tuple[List[Dict[str, Any]], int]:
    """Rows of a jsonl or csv captions file, and how many lines were unparseable (skipped)."""
    rows: List[Dict[str, Any]] = []
    bad = 0
    if captions_file.suffix.lower() == ".csv":
        with open(captions_file, newline="", encoding="utf-8") as handle:
            rows = [dict(row) for row in csv.DictReader(handle)]
        return rows, bad
    with open(captions_file, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                bad += 1
                logger.warning("%s:%d: unparseable JSON line skipped (%s)", captions_file, line_number, error)
                continue
            if not isinstance(row, dict):
                bad += 1
                logger.warning("%s:%d: expected a JSON object, skipped", captions_file, line_number)
                continue
            rows.append(row)
    return rows, bad


class VideoFolderDataset(_MapStyleVideoTextDataset):
    """Videos in a local folder with captions, following the Hugging Face ``videofolder`` layout.

    Captions come from ``captions_file`` or, when omitted, the first of ``metadata.jsonl``, ``metadata.csv``,
    ``captions.jsonl``, ``captions.csv`` found in ``root``; without any, every video under ``root`` is used with
    a same-named ``.txt`` sidecar as caption. jsonl rows name the video with ``file_name`` (or ``video``/``path``)
    and the caption with ``text`` (or ``caption``/``prompt``; a list picks one at random); csv files use the same
    column names. Paths are relative to the captions file's folder, as in ``videofolder``; other row fields are
    returned as ``sample["metadata"]`` with ``return_metadata=True``.

    Clip options (``num_frames`` = 1 + 4k, ``frame_stride``, ``start``, ``size``, ``buckets``, ``random_crop``,
    ``hflip_prob``, ``seed``) are described in :mod:`pyratok_hf.data.transforms`. Videos shorter than the clip
    are skipped (reason ``too_short``) unless ``pad_short_clips=True``, which repeats their last frame.
    ``default_caption`` fills in missing captions instead of skipping those videos.
    """

    def __init__(
        self,
        root: Union[str, os.PathLike],
        captions_file: Union[None, str, os.PathLike] = None,
        *,
        default_caption: Optional[str] = None,
        **loader_kwargs: Any,
    ) -> None:
        super().__init__(**loader_kwargs)
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: not a directory; pass the folder that holds the videos (and metadata.jsonl).")
        self.default_caption = default_caption
        if captions_file is None:
            captions_file = next((self.root / name for name in CAPTION_FILES if (self.root / name).is_file()), None)
        self.captions_file = Path(captions_file) if captions_file is not None else None
        self.entries: List[Dict[str, Any]] = []
        if self.captions_file is not None:
            self._entries_from_captions(self.captions_file)
        else:
            self._entries_from_scan()
        if not self.entries:
            raise DatasetError(
                f"{self.root}: found no videos; expected {', '.join(CAPTION_FILES)} or files with extensions "
                f"{', '.join(sorted(VIDEO_EXTENSIONS))}."
            )

    def _entries_from_captions(self, captions_file: Path) -> None:
        if not captions_file.is_file():
            raise DatasetError(f"{captions_file}: captions file not found; pass an existing .jsonl or .csv file.")
        rows, bad_rows = _read_caption_rows(captions_file)
        if bad_rows:
            self.skipped["bad_metadata_row"] += bad_rows
        base = captions_file.parent
        for row_number, row in enumerate(rows):
            video_key, video_name = _pick(row, VIDEO_KEYS)
            if video_key is None:
                self.skipped["bad_metadata_row"] += 1
                logger.warning("%s: row %d names no video (keys: %s), skipped", captions_file, row_number, sorted(row))
                continue
            path = Path(str(video_name))
            if not path.is_absolute():
                candidate = base / path
                path = candidate if candidate.exists() or not (self.root / path).exists() else self.root / path
            text_key, text = _pick(row, TEXT_KEYS)
            extras = {k: v for k, v in row.items() if k not in (video_key, text_key)}
            self.entries.append({"path": path, "text": text, "key": str(video_name), "metadata": extras})

    def _entries_from_scan(self) -> None:
        for path in sorted(self.root.rglob("*")):
            if path.suffix.lower() not in _MEDIA_EXTENSIONS or not path.is_file() or path.name.startswith("."):
                continue
            sidecar = path.with_suffix(".txt")
            text = sidecar.read_text(encoding="utf-8").strip() if sidecar.is_file() else None
            self.entries.append({"path": path, "text": text, "key": str(path.relative_to(self.root)), "metadata": {}})

    def __len__(self) -> int:
        return len(self.entries)

    def _entry(self, index: int):
        entry = self.entries[index]
        text = entry["text"] if entry["text"] not in (None, "") else self.default_caption
        known = entry["metadata"].get("num_frames")
        known = int(known) if isinstance(known, (int, float)) or (isinstance(known, str) and known.isdigit()) else None
        return entry["path"], text, entry["key"], known, entry["metadata"]

    def _video_size(self, index: int) -> Optional[Tuple[int, int]]:
        metadata = self.entries[index]["metadata"]
        try:
            height, width = int(metadata["height"]), int(metadata["width"])
            if height > 0 and width > 0 and self.entries[index]["path"].exists():
                return height, width
        except (KeyError, TypeError, ValueError):
            pass
        return super()._video_size(index)


# --------------------------------------------------------------------------------------------------------------
# Hugging Face datasets
# --------------------------------------------------------------------------------------------------------------


class HFVideoDataset(_MapStyleVideoTextDataset):
    """Wrap a ``datasets.Dataset`` whose video column holds paths, bytes, or ``Video(decode=False)`` dicts.

    A ``Video()`` column that would decode (which needs torchcodec) is cast to ``Video(decode=False)`` and decoded
    with :func:`~pyratok_hf.video_io.read_video` from ``bytes`` when present, else from ``path`` (relative paths
    resolve against ``base_dir``, default the working directory). If ``text_column`` is absent, ``caption`` is
    tried. Clip options and skipping are as for :class:`VideoFolderDataset`.
    """

    def __init__(
        self,
        hf_dataset: Any,
        video_column: str = "video",
        text_column: str = "text",
        *,
        base_dir: Union[None, str, os.PathLike] = None,
        **loader_kwargs: Any,
    ) -> None:
        super().__init__(**loader_kwargs)
        columns = list(hf_dataset.column_names)
        if video_column not in columns:
            raise DatasetError(f"Video column {video_column!r} not found; columns are {columns}. Pass video_column=.")
        if text_column not in columns:
            fallback = next((name for name in TEXT_KEYS if name in columns), None)
            if fallback is None:
                raise DatasetError(f"Text column {text_column!r} not found; columns are {columns}. Pass text_column=.")
            text_column = fallback
        feature = getattr(hf_dataset, "features", {}).get(video_column)
        if type(feature).__name__ == "Video" and getattr(feature, "decode", False):
            from datasets import Video

            hf_dataset = hf_dataset.cast_column(video_column, Video(decode=False))
        self.hf_dataset = hf_dataset
        self.video_column = video_column
        self.text_column = text_column
        self.base_dir = Path(base_dir) if base_dir is not None else None

    def __len__(self) -> int:
        return len(self.hf_dataset)

    def _resolve(self, video: Any) -> Any:
        if isinstance(video, dict):
            if video.get("bytes"):
                return bytes(video["bytes"])
            video = video.get("path")
        if isinstance(video, (str, os.PathLike)) and self.base_dir is not None and not Path(video).is_absolute():
            return self.base_dir / video
        return video

    def _entry(self, index: int):
        row = self.hf_dataset[index]
        raw = row[self.video_column]
        video = self._resolve(raw)
        name = raw.get("path") if isinstance(raw, dict) else (raw if isinstance(raw, str) else None)
        key = str(name) if name else str(index)
        extras = {k: v for k, v in row.items() if k not in (self.video_column, self.text_column)}
        known = extras.get("num_frames")
        return video, row[self.text_column], key, int(known) if isinstance(known, int) else None, extras

    def _video_size(self, index: int) -> Optional[Tuple[int, int]]:
        video, _, _, _, metadata = self._entry(index)
        height, width = metadata.get("height"), metadata.get("width")
        if isinstance(height, int) and isinstance(width, int) and height > 0 and width > 0:
            return height, width
        try:
            info = probe_video(video) if video is not None else None
        except VideoReadError:
            return None
        return (info.height, info.width) if info else None


# --------------------------------------------------------------------------------------------------------------
# Tar shards
# --------------------------------------------------------------------------------------------------------------

_BRACE_RANGE = re.compile(r"\{(\d+)\.\.(\d+)\}")


def expand_shard_spec(urls_or_glob: Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]) -> List[str]:
    """Expand a shard list, a glob (``data/*.tar``), a directory, or a brace range (``shard-{000..009}.tar``)."""
    if isinstance(urls_or_glob, (str, os.PathLike)):
        specs = [os.fspath(urls_or_glob)]
    else:
        specs = [os.fspath(item) for item in urls_or_glob]
    shards: List[str] = []
    for spec in specs:
        match = _BRACE_RANGE.search(spec)
        if match:
            low, high = match.group(1), match.group(2)
            width = len(low)
            for number in range(int(low), int(high) + 1):
                shards.extend(expand_shard_spec(spec[: match.start()] + str(number).zfill(width) + spec[match.end() :]))
        elif os.path.isdir(spec):
            shards.extend(sorted(glob.glob(os.path.join(spec, "*.tar"))))
        elif any(char in spec for char in "*?["):
            shards.extend(sorted(glob.glob(spec)))
        else:
            shards.append(spec)
    return shards


def _split_key(member_name: str) -> Tuple[str, str]:
    """webdataset convention: the key is the path up to the first dot of the basename, the rest is the field."""
    directory, base = os.path.split(member_name)
    stem, _, extension = base.partition(".")
    return (os.path.join(directory, stem) if directory else stem), extension.lower()


def _raw_sample_from_members(key: str, members: Dict[str, bytes]) -> RawSample:
    video_field = next((name for name in members if "." + name.rsplit(".", 1)[-1] in _MEDIA_EXTENSIONS), None)
    metadata: Dict[str, Any] = {}
    if "json" in members:
        try:
            loaded = json.loads(members["json"].decode("utf-8"))
            metadata = loaded if isinstance(loaded, dict) else {"json": loaded}
        except (UnicodeDecodeError, json.JSONDecodeError):
            metadata = {}
    text: Any = None
    for name in ("txt", "text", "caption"):
        if name in members:
            text = members[name].decode("utf-8", errors="replace")
            break
    if text is None:
        _, text = _pick(metadata, TEXT_KEYS)
    return RawSample(
        key=key,
        video=members[video_field] if video_field else b"",
        extension=video_field.rsplit(".", 1)[-1] if video_field else "",
        text=text,
        metadata=metadata,
    )


def _distributed_rank_world() -> Tuple[int, int]:
    """Rank and world size from torch.distributed, else from the ``RANK``/``WORLD_SIZE`` variables that torchrun and
    accelerate set (DataLoader workers started with ``spawn`` see those but not the parent's process group)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    try:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    except (KeyError, ValueError):
        return 0, 1


class TarShardDataset(_ClipLoader, IterableDataset):
    """Stream samples from webdataset-style tar shards (``KEY.mp4`` + ``KEY.txt`` and/or ``KEY.json``).

    Shards are split first across distributed ranks (``torch.distributed`` rank/world size when initialised, or
    the ``rank``/``world_size`` arguments) and then across DataLoader workers, so every shard is read by exactly
    one process per epoch. With fewer shards than readers, the remaining split is done sample by sample (every
    reader still reads those shards, keeping one sample in N) so no reader ends up empty.

    ``shuffle_shards`` reshuffles the shard order every epoch (call :meth:`set_epoch`); ``shuffle_buffer > 0``
    shuffles samples within a buffer of that size. Corrupt or missing shards are skipped and counted
    (``corrupt_shard``, ``missing_shard``); bad samples are skipped as in the map-style datasets.
    """

    def __init__(
        self,
        urls_or_glob: Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]],
        *,
        shuffle_shards: bool = False,
        shuffle_buffer: int = 0,
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
        **loader_kwargs: Any,
    ) -> None:
        _ClipLoader.__init__(self, **loader_kwargs)
        self.shards = expand_shard_spec(urls_or_glob)
        if not self.shards:
            raise DatasetError(f"No tar shards match {urls_or_glob!r}; check the glob or pass a list of .tar files.")
        self.shuffle_shards = shuffle_shards
        self.shuffle_buffer = int(shuffle_buffer)
        self.rank = rank
        self.world_size = world_size

    def _reader_assignment(self) -> Tuple[List[str], List[Tuple[int, int]]]:
        """Shards this reader opens and the ``(modulus, residue)`` sample filters applied in turn."""
        rank, world = _distributed_rank_world()
        if self.rank is not None or self.world_size is not None:
            rank, world = int(self.rank or 0), int(self.world_size or 1)
        worker = get_worker_info()
        worker_id, num_workers = (worker.id, worker.num_workers) if worker is not None else (0, 1)

        shards = list(self.shards)
        if self.shuffle_shards:
            random.Random(f"{self.seed or 0}/{self.epoch}/shards").shuffle(shards)
        sample_filters: List[Tuple[int, int]] = []
        for part, parts in ((rank, world), (worker_id, num_workers)):
            if parts <= 1:
                continue
            if len(shards) >= parts:
                shards = shards[part::parts]
            else:
                sample_filters.append((parts, part))
        return shards, sample_filters

    def _iter_shard(self, shard: str) -> Iterator[RawSample]:
        if not os.path.isfile(shard):
            self._record_skip(shard, _SkipSample("missing_shard", f"{shard}: no such shard file"))
            return
        current_key: Optional[str] = None
        members: Dict[str, bytes] = {}
        try:
            with tarfile.open(shard, mode="r|*") as archive:
                for member in archive:
                    if not member.isfile():
                        continue
                    key, field_name = _split_key(member.name)
                    if os.path.basename(key).startswith(("._", "__")) or not field_name:
                        continue
                    if key != current_key:
                        if current_key is not None:
                            yield _raw_sample_from_members(current_key, members)
                        current_key, members = key, {}
                    handle = archive.extractfile(member)
                    members[field_name] = handle.read() if handle is not None else b""
        except (tarfile.TarError, EOFError, OSError, ValueError) as error:
            self._record_skip(shard, _SkipSample("corrupt_shard", f"{shard}: unreadable tar ({error}); rest of shard skipped"))
            return
        if current_key is not None:
            yield _raw_sample_from_members(current_key, members)

    def iter_raw_samples(self) -> Iterator[RawSample]:
        """Undecoded samples of this reader's share of the shards (respects rank/worker splitting)."""
        shards, sample_filters = self._reader_assignment()
        counters = [0] * len(sample_filters)
        for shard in shards:
            for raw in self._iter_shard(shard):
                keep = True
                for position, (modulus, residue) in enumerate(sample_filters):
                    if not keep:
                        break
                    keep = counters[position] % modulus == residue
                    counters[position] += 1
                if keep:
                    yield raw

    def _shuffled(self, samples: Iterator[RawSample]) -> Iterator[RawSample]:
        if self.shuffle_buffer <= 1:
            yield from samples
            return
        rng = self._rng("buffer")
        buffer: List[RawSample] = []
        for raw in samples:
            buffer.append(raw)
            if len(buffer) >= self.shuffle_buffer:
                yield buffer.pop(rng.randrange(len(buffer)))
        rng.shuffle(buffer)
        yield from buffer

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        for raw in self._shuffled(self.iter_raw_samples()):
            if not raw.video:
                self._record_skip(raw.key, _SkipSample("missing", "the shard has no video member for this key"))
                continue
            known = raw.metadata.get("num_frames")
            try:
                yield self._load_clip(
                    raw.video,
                    raw.text,
                    raw.key,
                    rng=self._rng(raw.key),
                    known_num_frames=int(known) if isinstance(known, int) else None,
                    metadata=raw.metadata,
                )
            except _SkipSample as skip:
                self._record_skip(raw.key, skip)


def _encode_mp4_bytes(frames: Any, fps: float) -> bytes:
    """Encode decoded frames to mp4 bytes (FFmpeg's mp4 muxer needs a seekable file, hence the temp dir)."""
    with tempfile.TemporaryDirectory(prefix="pyratok-shard-") as scratch:
        path = write_video(frames, Path(scratch) / "clip.mp4", fps=fps)
        return path.read_bytes()


def _iter_any_raw_samples(dataset: Any) -> Iterator[RawSample]:
    if hasattr(dataset, "iter_raw_samples"):
        yield from dataset.iter_raw_samples()
        return
    for index, item in enumerate(dataset):
        if isinstance(item, RawSample):
            yield item
            continue
        if not isinstance(item, dict):
            raise DatasetError(f"write_tar_shards: item {index} is a {type(item).__name__}; expected a dict or RawSample.")
        key = str(item.get("key", index))
        text = item.get("text", item.get("caption"))
        metadata = dict(item.get("metadata") or {})
        if "pixel_values" in item:
            data = _encode_mp4_bytes(item["pixel_values"], float(item.get("fps") or 8.0))
            yield RawSample(key=key, video=data, extension="mp4", text=text, metadata=metadata)
            continue
        video = item.get("video", item.get("path", item.get("file_name")))
        try:
            data, extension = _video_bytes(video)
        except _SkipSample as skip:
            logger.warning("write_tar_shards: skipping %s (%s): %s", key, skip.reason, skip.detail)
            continue
        yield RawSample(key=key, video=data, extension=extension, text=text, metadata=metadata)


def _add_member(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    """Add a member with fixed owner/mtime so the same samples always give byte-identical shards."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    archive.addfile(info, io.BytesIO(data))


def write_tar_shards(
    dataset: Any,
    out_dir: Union[str, os.PathLike],
    samples_per_shard: int = 1000,
    *,
    prefix: str = "shard",
) -> List[Path]:
    """Write ``dataset`` as webdataset tar shards ``{prefix}-000000.tar, ...`` and return their paths.

    ``dataset`` is one of ours (original encoded files are copied, not re-encoded), or any iterable of dicts
    with ``video`` (path/bytes) or ``pixel_values`` (encoded to mp4), plus ``text`` and optional ``metadata``.
    Each sample becomes ``KEY.EXT`` + ``KEY.txt`` + ``KEY.json`` (metadata with ``text`` and the original
    ``source_key``). Every shard is written atomically, and ``shards.json`` lists the sample count per shard.
    """
    if samples_per_shard < 1:
        raise ValueError(f"samples_per_shard must be >= 1, got {samples_per_shard}.")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shard_paths: List[Path] = []
    counts: List[int] = []
    total = 0
    with ExitStack() as stack:
        archive: Optional[tarfile.TarFile] = None
        shard_stack: Optional[ExitStack] = None
        in_shard = 0
        for raw in _iter_any_raw_samples(dataset):
            if archive is None:
                shard_path = out_dir / f"{prefix}-{len(shard_paths):06d}.tar"
                shard_stack = stack.enter_context(ExitStack())
                temporary = shard_stack.enter_context(atomic_output_path(shard_path))
                archive = shard_stack.enter_context(tarfile.open(temporary, mode="w", format=tarfile.PAX_FORMAT))
                shard_paths.append(shard_path)
                in_shard = 0
            key = f"{total:09d}"
            metadata = dict(raw.metadata)
            metadata.setdefault("source_key", raw.key)
            if raw.text is not None:
                metadata["text"] = raw.text
            _add_member(archive, f"{key}.{raw.extension or 'mp4'}", raw.video)
            if raw.text is not None:
                _add_member(archive, f"{key}.txt", raw.text.encode("utf-8"))
            _add_member(archive, f"{key}.json", json.dumps(metadata, ensure_ascii=False, sort_keys=True).encode("utf-8"))
            in_shard += 1
            total += 1
            if in_shard >= samples_per_shard:
                shard_stack.close()  # closes the tar, then renames the temporary file into place
                counts.append(in_shard)
                archive, shard_stack = None, None
        if archive is not None:
            shard_stack.close()
            counts.append(in_shard)
    atomic_write_json(
        {"shards": [{"file": path.name, "num_samples": count} for path, count in zip(shard_paths, counts)], "num_samples": total},
        out_dir / "shards.json",
    )
    return shard_paths


# --------------------------------------------------------------------------------------------------------------
# Batching
# --------------------------------------------------------------------------------------------------------------


class BucketBatchSampler(Sampler):
    """Yield batches of indices that all belong to one aspect-ratio bucket, so their clips stack.

    ``bucket_ids`` comes from ``dataset.bucket_ids()``. Indices are shuffled within buckets and batches are
    shuffled across buckets from ``(seed, epoch)``; call :meth:`set_epoch` every epoch. With ``num_replicas``
    > 1 every rank gets the same number of batches (a distinct slice of the same shuffled list).
    """

    def __init__(
        self,
        bucket_ids: Sequence[Hashable],
        batch_size: int,
        *,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, num_replicas), got rank={rank}, num_replicas={num_replicas}.")
        self.bucket_ids = list(bucket_ids)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.epoch = 0
        self.num_replicas = num_replicas
        self.rank = rank

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _all_batches(self) -> List[List[int]]:
        rng = random.Random(f"{self.seed}/{self.epoch}")
        groups: Dict[Hashable, List[int]] = {}
        for index, bucket in enumerate(self.bucket_ids):
            groups.setdefault(bucket, []).append(index)
        batches: List[List[int]] = []
        for bucket in sorted(groups, key=str):
            indices = groups[bucket]
            if self.shuffle:
                rng.shuffle(indices)
            for begin in range(0, len(indices), self.batch_size):
                batch = indices[begin : begin + self.batch_size]
                if len(batch) == self.batch_size or not self.drop_last:
                    batches.append(batch)
        if self.shuffle:
            rng.shuffle(batches)
        if self.num_replicas > 1:
            per_rank = len(batches) // self.num_replicas
            batches = batches[self.rank :: self.num_replicas][:per_rank]
        return batches

    def __iter__(self) -> Iterator[List[int]]:
        return iter(self._all_batches())

    def __len__(self) -> int:
        return len(self._all_batches())


def collate_video_text(batch: Sequence[Optional[Dict[str, Any]]]) -> Dict[str, Any]:
    """Stack ``pixel_values`` into ``[B, 3, T, H, W]`` and gather every other field into a list.

    ``None`` entries (e.g. from user filters) are dropped. Clips of different shapes cannot be stacked: use a
    fixed ``size`` or ``buckets`` with :class:`BucketBatchSampler`.
    """
    samples = [sample for sample in batch if sample is not None]
    if not samples:
        raise DatasetError("collate_video_text got an empty batch (every sample was None).")
    shapes = sorted({tuple(sample["pixel_values"].shape) for sample in samples})
    if len(shapes) > 1:
        raise DatasetError(
            f"Clips in one batch have different shapes {shapes}; set a fixed size=(H, W) or use buckets with "
            "BucketBatchSampler(dataset.bucket_ids(), batch_size)."
        )
    collated: Dict[str, Any] = {"pixel_values": torch.stack([sample["pixel_values"] for sample in samples])}
    for name in samples[0]:
        if name != "pixel_values":
            collated[name] = [sample.get(name) for sample in samples]
    return collated


# --------------------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------------------


def load_video_text_dataset(
    spec: Any,
    *,
    split: str = "train",
    video_column: str = "video",
    text_column: str = "text",
    **loader_kwargs: Any,
):
    """Build the right dataset for ``spec`` and return it.

    ``spec`` may be a ``datasets.Dataset`` / ``DatasetDict`` (``split`` picks one), a folder saved with
    ``save_to_disk``, a videofolder-style directory (with ``metadata.jsonl``/csv, or a ``split`` subfolder that
    has one), a directory of ``.tar`` shards, or a shard glob / brace pattern / list of shard paths.
    Remaining keyword arguments are clip options (``num_frames``, ``size``, ``buckets``, ...).
    """
    try:
        import datasets as hf_datasets
    except ImportError:  # pragma: no cover - datasets is a hard dependency, but keep folders usable without it
        hf_datasets = None
    if hf_datasets is not None:
        if isinstance(spec, hf_datasets.DatasetDict):
            if split not in spec:
                raise DatasetError(f"Split {split!r} not in the DatasetDict (splits: {list(spec)}); pass split=.")
            spec = spec[split]
        if isinstance(spec, hf_datasets.Dataset):
            return HFVideoDataset(spec, video_column, text_column, **loader_kwargs)
    if isinstance(spec, (list, tuple)):
        return TarShardDataset(spec, **loader_kwargs)
    if not isinstance(spec, (str, os.PathLike)):
        raise DatasetError(f"Cannot build a dataset from a {type(spec).__name__}; pass a path, a glob or a datasets.Dataset.")
    text = os.fspath(spec)
    path = Path(text)
    if path.is_dir():
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            loaded = hf_datasets.load_from_disk(text)
            return load_video_text_dataset(
                loaded, split=split, video_column=video_column, text_column=text_column, **loader_kwargs
            )
        if any((path / name).is_file() for name in CAPTION_FILES):
            return VideoFolderDataset(path, **loader_kwargs)
        if (path / split).is_dir() and any((path / split / name).is_file() for name in CAPTION_FILES):
            return VideoFolderDataset(path / split, **loader_kwargs)
        if any(path.glob("*.tar")):
            return TarShardDataset(text, **loader_kwargs)
        return VideoFolderDataset(path, **loader_kwargs)
    if text.endswith(".tar") or any(char in text for char in "*?[{"):
        return TarShardDataset(text, **loader_kwargs)
    raise DatasetError(
        f"{text}: not found; pass a videofolder directory, a save_to_disk folder, a shard glob like 'shards/*.tar', "
        "or a datasets.Dataset."
    )
