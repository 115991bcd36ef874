"""Real pictures for training the backbone: CC0 / public-domain photos and the CC0 city clip, streamed as
random crops (images) or synthetic camera moves and city windows (videos).

Why a stream and not a corpus folder: on a CPU, learning is compute-bound, and drawing a fresh crop per
sample from a handful of full-resolution sources costs ~1 ms while a decoded 17-frame clip from disk costs
~20 ms and repeats the same pixels. The held-out set (:func:`heldout_real_clips`) is fixed, comes from
sources that never feed training (other photos, the city clip's second shot), and is what
``docs/training.md`` reports.

Every source's licence is recorded in :data:`REAL_SOURCES`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..data.corpus import TRAIN_STILLS, VAL_STILLS, _camera_windows, _load_still, _render_camera, _split_shots, _still_sources

# Extra scikit-image photos that ship inside the wheel (no download), with the licence from their docstrings.
EXTRA_TRAIN_STILLS = {
    "skimage:cat": "CC0-1.0",
    "skimage:colorwheel": "CC0-1.0",
}


@dataclass
class RealSource:
    name: str
    licence: str
    split: str


def _available_extra_stills() -> dict[str, np.ndarray]:
    import skimage.data

    out = {}
    for name in EXTRA_TRAIN_STILLS:
        fn = getattr(skimage.data, name.partition(":")[2], None)
        if fn is None:
            continue
        try:
            array = fn()
        except Exception:  # a build of scikit-image without that file: skip it, it is optional
            continue
        if array.ndim == 2:
            array = np.repeat(array[..., None], 3, axis=2)
        out[name] = np.ascontiguousarray(array[..., :3]).astype(np.uint8)
    return out


def load_city_shots(path) -> list[np.ndarray]:
    """The city clip's shots as ``uint8 [T, H, W, 3]`` arrays (two shots in ``cityCC0.mpg``)."""
    from ..video_io import read_video_uint8

    frames, _, _ = read_video_uint8(path)
    return [frames[a:b] for a, b in _split_shots(frames, min_length=17)]


class RealPictureStream:
    """Random training samples in [-1, 1]: ``images(batch, size)`` -> ``[B, 3, 1, S, S]``, ``videos(...)``.

    Args:
        city_shots: the city clip's shots; the first trains, the others are held out.
        seed: the stream is a pure function of ``(seed, step)`` so a resumed run sees the same samples.
    """

    def __init__(self, city_shots: list[np.ndarray] | None = None, seed: int = 0):
        sources = _still_sources()
        self.stills = {name: _load_still(name) for name in TRAIN_STILLS}
        self.stills.update(_available_extra_stills())
        self.sources = [RealSource(name, sources[name].license if name in sources else EXTRA_TRAIN_STILLS[name], "train") for name in self.stills]
        self.city = city_shots[0] if city_shots else None
        if self.city is not None:
            self.sources.append(RealSource("cityCC0.mpg shot 1", "CC0-1.0", "train"))
        self.seed = seed

    def _rng(self, step: int, salt: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, step, salt])

    @staticmethod
    def _to_tensor(frames_uint8: np.ndarray) -> torch.Tensor:
        """``uint8 [T, H, W, 3]`` -> float ``[3, T, H, W]`` in [-1, 1]."""
        return torch.from_numpy(np.ascontiguousarray(frames_uint8)).permute(3, 0, 1, 2).float() / 127.5 - 1.0

    def _random_crop(self, rng, image: np.ndarray, size: int, min_scale: float) -> np.ndarray:
        h, w = image.shape[:2]
        # Downscale the source by a random factor so textures span the scales of 256-px video.
        short = min(h, w)
        target_short = rng.uniform(max(size, short * min_scale), short)
        crop = int(round(size * short / target_short))
        crop = max(size, min(crop, short))
        top, left = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
        patch = torch.from_numpy(np.ascontiguousarray(image[top : top + crop, left : left + crop])).permute(2, 0, 1).float()[None]
        if crop != size:
            patch = F.interpolate(patch, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        if rng.random() < 0.5:
            patch = patch.flip(-1)
        return patch[0].round().clamp(0, 255).byte().permute(1, 2, 0).numpy()[None]

    def images(self, step: int, batch: int, size: int, min_scale: float = 0.25) -> torch.Tensor:
        rng = self._rng(step, 1)
        names = list(self.stills)
        out = []
        for _ in range(batch):
            if self.city is not None and rng.random() < 0.15:
                frame = self.city[int(rng.integers(0, len(self.city)))]
                out.append(self._to_tensor(self._random_crop(rng, frame, size, 0.35)))
            else:
                image = self.stills[names[int(rng.integers(0, len(names)))]]
                out.append(self._to_tensor(self._random_crop(rng, image, size, min_scale)))
        return torch.stack(out)

    def videos(self, step: int, batch: int, num_frames: int, size: int) -> torch.Tensor:
        """Camera moves over the training photos, and windows of the city clip's first shot."""
        rng = self._rng(step, 2)
        names = list(self.stills)
        out = []
        for _ in range(batch):
            if self.city is not None and rng.random() < 0.3:
                out.append(self._to_tensor(_city_window(rng, self.city, num_frames, (size, size))))
                continue
            image = self.stills[names[int(rng.integers(0, len(names)))]]
            # Work on a downscaled copy so a window spans a 256-px-like field of view, then move the camera.
            scale = rng.uniform(1.0, 3.0)
            small = _downscale(image, scale)
            motion = ("pan_left", "pan_right", "pan_up", "pan_down", "zoom_in", "zoom_out", "rotate_clockwise", "rotate_counterclockwise")[int(rng.integers(0, 8))]
            speed = "slow" if rng.random() < 0.5 else "normal"
            windows = _camera_windows(motion, speed, num_frames, small.shape[0], small.shape[1], 1.0, rng)
            # Shrink the windows so a clip moves a few pixels per frame, like hand-held footage.
            windows = _tighten(windows, size, rng)
            out.append(self._to_tensor(_render_camera(small, windows, (size, size))))
        return torch.stack(out)


def _downscale(image: np.ndarray, factor: float) -> np.ndarray:
    if factor <= 1.0:
        return image
    t = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()[None]
    size = (max(16, int(image.shape[0] / factor)), max(16, int(image.shape[1] / factor)))
    t = F.interpolate(t, size=size, mode="bilinear", antialias=True, align_corners=False)
    return t[0].round().clamp(0, 255).byte().permute(1, 2, 0).numpy()


def _tighten(windows, size: int, rng) -> list:
    """Shrink a camera path's windows to 1-2x the output size (so crops keep full detail) about the first one.

    The path's travel shrinks 3x less than the windows, so the shrunken clip still moves by a few output
    pixels per frame instead of almost nothing; the sampler pads at the image border if a window leaves it.
    """
    cx0, cy0, h0, _ = windows[0]
    target = size * rng.uniform(1.0, 2.0)
    if h0 <= target:
        return windows
    k = target / h0
    return [(cx0 + (cx - cx0) * k * 3, cy0 + (cy - cy0) * k * 3, h * k, a) for cx, cy, h, a in windows]


def _city_window(rng, shot: np.ndarray, num_frames: int, size: tuple[int, int]) -> np.ndarray:
    stride = 1 if rng.random() < 0.6 else 2
    span = 1 + (num_frames - 1) * stride
    start = int(rng.integers(0, max(1, shot.shape[0] - span + 1)))
    clip = shot[start : start + span : stride]
    h, w = clip.shape[1:3]
    crop = int(round(min(h, w) * rng.uniform(0.3, 1.0)))
    top, left = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
    t = torch.from_numpy(np.ascontiguousarray(clip[:, top : top + crop, left : left + crop])).permute(0, 3, 1, 2).float()
    t = F.interpolate(t, size=size, mode="bilinear", antialias=True, align_corners=False)
    return t.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def heldout_real_clips(city_shots: list[np.ndarray] | None, num_frames: int = 17, size: tuple[int, int] = (192, 256), per_still: int = 1, seed: int = 1234) -> list[tuple[str, torch.Tensor]]:
    """Fixed held-out clips ``[3, T, H, W]``: camera moves over the validation photos and the city clip's
    second shot. None of these pixels is used for training."""
    rng = np.random.default_rng(seed)
    clips = []
    aspect = size[1] / size[0]
    for name in VAL_STILLS:
        image = _load_still(name)
        for k in range(per_still):
            motion = ("pan_right", "zoom_in", "pan_down", "rotate_clockwise")[(len(clips) + k) % 4]
            windows = _camera_windows(motion, "slow", num_frames, image.shape[0], image.shape[1], aspect, rng)
            frames = _render_camera(image, windows, size)
            clips.append((f"{name} {motion}", RealPictureStream._to_tensor(frames)))
    for i, shot in enumerate((city_shots or [])[1:]):
        for start in range(0, max(1, shot.shape[0] - num_frames), max(1, (shot.shape[0] - num_frames) // 2 or 1))[:2]:
            frames = shot[start : start + num_frames]
            t = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
            t = F.interpolate(t, size=size, mode="bilinear", antialias=True, align_corners=False)
            clips.append((f"cityCC0 shot {i + 2} @{start}", RealPictureStream._to_tensor(t.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy())))
    return clips


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two videos in [-1, 1] (peak-to-peak 2)."""
    mse = float(((a.float().clamp(-1, 1) - b.float().clamp(-1, 1)) ** 2).mean())
    return 10 * math.log10(4.0 / max(mse, 1e-12))
