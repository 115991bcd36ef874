"""Clip sampling and spatial transforms for video-text training.

The tokenizer compresses time 4x after the first frame, so training clips have ``T = 1 + 4k`` frames
(1, 5, 9, 13, 17, 33, ...), and it downsamples space 8x, so target sizes are multiples of 8. Mixed aspect
ratios are handled with a small set of aspect-ratio buckets of about equal area: every clip is resized and cropped
to the bucket closest to its own aspect ratio, and :class:`~pyratok_hf.data.datasets.BucketBatchSampler` only
batches clips of the same bucket, so little of any frame is cropped away and batches still stack.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

__all__ = [
    "DEFAULT_ASPECT_RATIOS",
    "AspectBucket",
    "ClipSampler",
    "VideoTransform",
    "check_num_frames",
    "make_aspect_buckets",
    "pick_bucket",
    "resized_crop",
    "swap_left_right",
]

#: Aspect ratios (width / height) covering common phone, camera and web video.
DEFAULT_ASPECT_RATIOS: Dict[str, float] = {
    "1:1": 1.0,
    "4:3": 4 / 3,
    "3:4": 3 / 4,
    "16:9": 16 / 9,
    "9:16": 9 / 16,
    "2:1": 2.0,
}

SPATIAL_MULTIPLE = 8
TEMPORAL_STEP = 4


def check_num_frames(num_frames: int) -> int:
    """Validate that ``num_frames`` is ``1 + 4k``; the message proposes the nearest valid counts."""
    num_frames = int(num_frames)
    if num_frames < 1 or (num_frames - 1) % TEMPORAL_STEP:
        lower = max(1, num_frames - ((num_frames - 1) % TEMPORAL_STEP))
        raise ValueError(
            f"num_frames must be 1 + 4k (1, 5, 9, 13, 17, ...) because the tokenizer compresses time 4x after the "
            f"first frame; got {num_frames}, use {lower} or {lower + TEMPORAL_STEP}."
        )
    return num_frames


def _check_size(size: Tuple[int, int]) -> Tuple[int, int]:
    height, width = int(size[0]), int(size[1])
    if height < SPATIAL_MULTIPLE or width < SPATIAL_MULTIPLE or height % SPATIAL_MULTIPLE or width % SPATIAL_MULTIPLE:
        raise ValueError(
            f"Target size (height, width) must be positive multiples of {SPATIAL_MULTIPLE} (the tokenizer "
            f"downsamples space 8x); got {(height, width)}."
        )
    return height, width


@dataclass(frozen=True)
class AspectBucket:
    """A target ``(height, width)`` shared by all clips whose aspect ratio is closest to ``name``."""

    name: str
    height: int
    width: int

    @property
    def ratio(self) -> float:
        return self.width / self.height

    @property
    def size(self) -> Tuple[int, int]:
        return (self.height, self.width)


def make_aspect_buckets(
    base_size: int = 256, ratios: Mapping[str, float] = DEFAULT_ASPECT_RATIOS, multiple: int = SPATIAL_MULTIPLE
) -> List[AspectBucket]:
    """Build buckets with about ``base_size**2`` pixels each, so every bucket costs about the same memory."""
    buckets = []
    area = float(base_size) ** 2
    for name, ratio in ratios.items():
        height = max(multiple, int(round(math.sqrt(area / ratio) / multiple)) * multiple)
        width = max(multiple, int(round(math.sqrt(area * ratio) / multiple)) * multiple)
        buckets.append(AspectBucket(name, height, width))
    return buckets


def pick_bucket(height: int, width: int, buckets: Sequence[AspectBucket]) -> AspectBucket:
    """Return the bucket whose aspect ratio is closest to ``width / height`` in log space.

    Log distance makes 2:1 vs 1:1 as far apart as 1:2 vs 1:1, so portrait and landscape are treated alike.
    """
    if not buckets:
        raise ValueError("pick_bucket needs at least one bucket.")
    if height <= 0 or width <= 0:
        raise ValueError(f"pick_bucket needs a positive frame size, got {height}x{width}.")
    clip_log_ratio = math.log(width / height)
    return min(buckets, key=lambda bucket: abs(math.log(bucket.ratio) - clip_log_ratio))


@dataclass
class ClipSampler:
    """Chooses which source frames form a training clip of ``num_frames = 1 + 4k`` frames.

    Args:
        num_frames: clip length, ``1 + 4k``.
        frame_stride: take every ``frame_stride``-th source frame (2 halves the frame rate).
        start: ``"random"`` (training), ``"center"`` (evaluation: reproducible and away from fade-ins) or ``"first"``.
        pad_short_clips: a source shorter than the clip span is skipped by default, because repeating frames
            teaches the model frozen motion; with ``True`` the clip is completed by repeating the last frame.
    """

    num_frames: int = 17
    frame_stride: int = 1
    start: str = "random"
    pad_short_clips: bool = False

    def __post_init__(self) -> None:
        check_num_frames(self.num_frames)
        if self.frame_stride < 1:
            raise ValueError(f"frame_stride must be >= 1, got {self.frame_stride}.")
        if self.start not in ("random", "center", "first"):
            raise ValueError(f"start must be 'random', 'center' or 'first', got {self.start!r}.")

    @property
    def span(self) -> int:
        """Number of source frames covered by one clip."""
        return 1 + (self.num_frames - 1) * self.frame_stride

    def choose_start(self, total_frames: int, rng: Optional[random.Random] = None) -> Optional[int]:
        """First source frame of the clip, or ``None`` when the source is too short and padding is off."""
        if total_frames < 1:
            return None
        slack = total_frames - self.span
        if slack < 0:
            return 0 if self.pad_short_clips else None
        if self.start == "first":
            return 0
        if self.start == "center":
            return slack // 2
        return (rng or random).randint(0, slack)

    def indices(self, total_frames: int, rng: Optional[random.Random] = None) -> Optional[List[int]]:
        """Source frame indices of the clip (the last frame repeated when padding), or ``None`` to skip."""
        start = self.choose_start(total_frames, rng)
        if start is None:
            return None
        return [min(start + i * self.frame_stride, total_frames - 1) for i in range(self.num_frames)]


def resized_crop(
    frames: torch.Tensor,
    size: Tuple[int, int],
    *,
    scale: Tuple[float, float] = (1.0, 1.0),
    random_position: bool = False,
    rng: Optional[random.Random] = None,
) -> torch.Tensor:
    """Crop a window with the target aspect ratio and resize it to ``size`` (antialiased bilinear).

    The window covers a random fraction in ``scale`` of the largest such window (``(1, 1)`` = the largest one,
    i.e. resize-to-cover then crop), placed at random when ``random_position`` else centred.
    """
    rng = rng or random
    target_h, target_w = size
    _, _, height, width = frames.shape
    target_ratio = target_w / target_h
    if width / height > target_ratio:
        crop_h, crop_w = float(height), height * target_ratio
    else:
        crop_h, crop_w = width / target_ratio, float(width)
    area_fraction = scale[0] if scale[0] == scale[1] else rng.uniform(scale[0], scale[1])
    side_factor = math.sqrt(max(min(area_fraction, 1.0), 1e-4))
    crop_h = max(1, min(height, int(round(crop_h * side_factor))))
    crop_w = max(1, min(width, int(round(crop_w * side_factor))))
    if random_position:
        top = rng.randint(0, height - crop_h)
        left = rng.randint(0, width - crop_w)
    else:
        top = (height - crop_h) // 2
        left = (width - crop_w) // 2
    window = frames[:, :, top : top + crop_h, left : left + crop_w]
    if (crop_h, crop_w) == (target_h, target_w):
        return window.contiguous()
    resized = F.interpolate(
        window.permute(1, 0, 2, 3).float(), size=(target_h, target_w), mode="bilinear", align_corners=False, antialias=True
    )
    return resized.permute(1, 0, 2, 3).clamp(-1, 1).contiguous()


_DIRECTION_WORDS = {
    "left": "right",
    "right": "left",
    "leftward": "rightward",
    "rightward": "leftward",
    "leftwards": "rightwards",
    "rightwards": "leftwards",
    "clockwise": "counter-clockwise",
    "counter-clockwise": "clockwise",
    "counterclockwise": "clockwise",
    "anti-clockwise": "clockwise",
    "anticlockwise": "clockwise",
}
_DIRECTION_PATTERN = re.compile(
    r"\b(" + "|".join(sorted((re.escape(word) for word in _DIRECTION_WORDS), key=len, reverse=True)) + r")\b",
    re.IGNORECASE,
)


def swap_left_right(text: str) -> str:
    """Mirror the horizontal directions in a caption (left/right, clockwise/counter-clockwise).

    Used when a clip is flipped horizontally so that "moves left" stays true. It is a word-level heuristic: it
    will also flip "right" in the sense of "correct", which is why horizontal flips are off by default.
    """

    def replace(match: "re.Match[str]") -> str:
        word = match.group(0)
        swapped = _DIRECTION_WORDS[word.lower()]
        if word.isupper():
            return swapped.upper()
        if word[0].isupper():
            return swapped[0].upper() + swapped[1:]
        return swapped

    return _DIRECTION_PATTERN.sub(replace, text)


@dataclass
class VideoTransform:
    """Resize/crop/flip a ``[3, T, H, W]`` clip to a fixed size or to its aspect-ratio bucket.

    Args:
        size: fixed target ``(height, width)`` (multiples of 8); ignored when ``buckets`` is given.
        buckets: aspect-ratio buckets (see :func:`make_aspect_buckets`); each clip goes to the closest one.
        random_crop: random-resized crop (training) instead of a centred cover-crop (evaluation).
        crop_scale: area fraction range of the random crop relative to the largest window of the target aspect.
        hflip_prob: probability of a horizontal flip. Off by default because it turns "moves left" into a lie;
            with ``swap_caption_directions`` the caption's directions are mirrored too.
    """

    size: Optional[Tuple[int, int]] = None
    buckets: Optional[Sequence[AspectBucket]] = None
    random_crop: bool = False
    crop_scale: Tuple[float, float] = (0.8, 1.0)
    hflip_prob: float = 0.0
    swap_caption_directions: bool = True

    def __post_init__(self) -> None:
        if self.size is not None:
            self.size = _check_size(self.size)
        if self.buckets is not None:
            self.buckets = list(self.buckets)
            for bucket in self.buckets:
                _check_size(bucket.size)
        low, high = self.crop_scale
        if not 0 < low <= high <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {self.crop_scale}.")
        if not 0 <= self.hflip_prob <= 1:
            raise ValueError(f"hflip_prob must be in [0, 1], got {self.hflip_prob}.")

    def target_for(self, height: int, width: int) -> Tuple[Optional[Tuple[int, int]], Optional[str]]:
        """Target size and bucket name for a source of ``height x width`` (``(None, None)``: keep as is)."""
        if self.buckets:
            bucket = pick_bucket(height, width, self.buckets)
            return bucket.size, bucket.name
        return self.size, None

    def __call__(
        self, frames: torch.Tensor, text: Optional[str] = None, rng: Optional[random.Random] = None
    ) -> Tuple[torch.Tensor, Optional[str], dict]:
        """Return ``(frames, text, info)``; ``info`` has ``bucket`` and ``flipped`` for the sample dict."""
        rng = rng or random
        _, _, height, width = frames.shape
        target, bucket_name = self.target_for(height, width)
        if target is not None:
            frames = resized_crop(
                frames,
                target,
                scale=self.crop_scale if self.random_crop else (1.0, 1.0),
                random_position=self.random_crop,
                rng=rng,
            )
        flipped = self.hflip_prob > 0 and rng.random() < self.hflip_prob
        if flipped:
            frames = frames.flip(-1)
            if text is not None and self.swap_caption_directions:
                text = swap_left_right(text)
        return frames, text, {"bucket": bucket_name, "flipped": flipped}
