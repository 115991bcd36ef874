"""A weight-free prompt-following checker for generated procedural clips.

Why weight-free: a checker that shares weights (or training data features) with the generator would reward
the generator for agreeing with itself. This one only measures pixels, with fixed rules, against the two
facts a procedural caption states about its object:

* **colour**: the caption's colour word (one of the corpus palette, :data:`pyratok_hf.data.corpus.COLORS`) vs
  the dominant palette colour of the *moving* pixels. Moving pixels are those far (``motion_threshold``, in
  0-255 RGB units) from the per-pixel temporal median, which is the background wherever the object covers a
  pixel in fewer than half the frames. If nothing moves (a "stays still" caption), all pixels close to a
  palette colour (``color_tolerance``) vote instead.
* **direction**: the caption's motion ("moves right", "rises", "stays still", ...) vs the direction of the
  centroid of the pixels of the *stated* colour over time: a least-squares line through the per-frame centroids;
  speeds under ``static_speed`` pixels per frame are "static", otherwise the dominant axis and its sign give
  left / right / up / down (image rows grow downwards, so "up" is a decreasing row).

:func:`prompt_following_report` scores matched (video, caption) pairs and the same videos against shuffled
captions (a derangement): a generator that follows prompts scores well above the shuffled baseline; the
shuffled numbers are the chance level of this checker on this caption distribution.
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..errors import InvalidInputError

__all__ = [
    "DIRECTION_PATTERNS",
    "CaptionFacts",
    "PromptCheck",
    "analyse_video",
    "colour_direction_prompts",
    "check_prompt",
    "sample_colour_direction_prompts",
    "parse_caption",
    "prompt_following_report",
]


def _palette() -> dict[str, tuple[int, int, int]]:
    from ..data.corpus import COLORS

    return dict(COLORS)


#: Caption phrases -> direction, tried in order (static phrases first so "does not move" is not "move").
DIRECTION_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"\b(stays? still|remains? stationary|does not move|doesn't move|sits? motionless|stays? in place|static|motionless|stationary|not moving)\b", "static"),
    (r"\b(right|rightwards?)\b", "right"),
    (r"\b(left|leftwards?)\b", "left"),
    (r"\b(up|upwards?|rises|rising|ascends?|ascending)\b", "up"),
    (r"\b(down|downwards?|sinks|sinking|falls|falling|descends?|descending)\b", "down"),
)


_BACKGROUND_PHRASE = re.compile(
    r"\b(?:on|against|over|in front of)\s+(?:a|an|the)\s+(?:plain\s+)?[a-z -]*?\b(?:background|backdrop|gradient|texture)\b"
)


@dataclass
class CaptionFacts:
    """What a caption states about its (first) object: a palette colour and a motion, each possibly unknown."""

    color: str | None
    direction: str | None


@dataclass
class PromptCheck:
    """Stated vs detected facts for one video; ``*_match`` is ``None`` when the caption does not state it."""

    stated_color: str | None
    stated_direction: str | None
    detected_color: str | None
    detected_direction: str | None
    color_match: bool | None
    direction_match: bool | None
    velocity: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_caption(caption: str, palette: Mapping[str, Any] | None = None) -> CaptionFacts:
    """The first palette colour word, and the motion stated for that object.

    The motion is searched in the text after the colour word up to the next palette colour word (the next
    object), so "a red circle moves left while a blue square rises" gives ``(red, left)``. A moving direction
    beats a static phrase in the same clause ("stays still, then starts moving up" -> ``up``: over the whole
    clip the object does travel up).
    """
    if not isinstance(caption, str):
        raise InvalidInputError(f"caption must be a string, got {type(caption).__name__}.")
    names = list(palette or _palette())
    # Background phrases ("over a plain dark blue background") name colours that are not the object's.
    text = _BACKGROUND_PHRASE.sub(" ", caption.lower())
    colour_re = re.compile(r"\b(" + "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)) + r")\b")
    match = colour_re.search(text)
    if match is None:
        clause = text
        colour = None
    else:
        colour = match.group(1)
        following = colour_re.search(text, match.end())
        clause = text[match.end() : following.start() if following else len(text)]
    found = [name for pattern, name in DIRECTION_PATTERNS if re.search(pattern, clause)]
    moving = [d for d in found if d != "static"]
    direction = moving[0] if moving else ("static" if found else None)
    return CaptionFacts(color=colour, direction=direction)


def _as_uint8_like(video: Any) -> np.ndarray:
    """``[3, T, H, W]`` in [-1, 1] (tensor/array) or uint8 ``[T, H, W, 3]`` -> float ``[T, H, W, 3]`` in 0..255."""
    if isinstance(video, np.ndarray) and video.dtype == np.uint8:
        array = video.astype(np.float32)
        if array.ndim == 3:
            array = array[None]
        if array.ndim != 4 or array.shape[-1] != 3:
            raise InvalidInputError(f"uint8 videos must be [T, H, W, 3], got {video.shape}.")
        return array
    tensor = torch.as_tensor(video).detach().float().cpu()
    if tensor.dim() == 5 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.dim() != 4 or tensor.shape[0] != 3:
        raise InvalidInputError(f"videos must be [3, T, H, W] in [-1, 1] or uint8 [T, H, W, 3], got {tuple(tensor.shape)}.")
    return ((tensor.clamp(-1, 1) + 1) * 127.5).permute(1, 2, 3, 0).numpy()


def _centroid_velocity(mask: np.ndarray) -> tuple[float, float] | None:
    """Least-squares velocity (px/frame) of the per-frame centroid of ``mask [T, H, W]``; None if < 2 frames."""
    times, xs, ys = [], [], []
    for t in range(mask.shape[0]):
        rows, cols = np.nonzero(mask[t])
        if rows.size:
            times.append(t)
            xs.append(cols.mean())
            ys.append(rows.mean())
    if len(times) < 2:
        return None
    times_arr = np.asarray(times, dtype=np.float64)
    centred = times_arr - times_arr.mean()
    denominator = float((centred**2).sum())
    return float((centred * np.asarray(xs)).sum() / denominator), float((centred * np.asarray(ys)).sum() / denominator)


def _direction(velocity: tuple[float, float] | None, static_speed: float) -> str | None:
    if velocity is None:
        return None
    vx, vy = velocity
    if max(abs(vx), abs(vy)) < static_speed:
        return "static"
    if abs(vx) >= abs(vy):
        return "right" if vx > 0 else "left"
    return "down" if vy > 0 else "up"


def analyse_video(
    video: Any,
    palette: Mapping[str, Sequence[int]] | None = None,
    *,
    color: str | None = None,
    motion_threshold: float = 40.0,
    color_tolerance: float = 80.0,
    static_speed: float = 0.15,
    min_pixels: int = 2,
) -> tuple[str | None, str | None, tuple[float, float] | None]:
    """``(dominant colour of the moving object, direction of colour ``color`` or of that colour, velocity)``."""
    palette = dict(palette or _palette())
    names = list(palette)
    colours = np.asarray([palette[n] for n in names], dtype=np.float32)  # [P, 3]
    pixels = _as_uint8_like(video)  # [T, H, W, 3]
    distances = np.linalg.norm(pixels[..., None, :] - colours, axis=-1)  # [T, H, W, P]
    nearest = distances.argmin(-1)
    close = distances.min(-1) <= color_tolerance

    background = np.median(pixels, axis=0, keepdims=True)
    moving = np.linalg.norm(pixels - background, axis=-1) > motion_threshold
    voters = moving & close
    if voters.sum() < min_pixels * max(1, pixels.shape[0] // 4):
        voters = close  # nothing moves: the static object's pixels vote
    if voters.sum() < min_pixels:
        detected = None
    else:
        counts = np.bincount(nearest[voters], minlength=len(names))
        detected = names[int(counts.argmax())]

    target = color if color in palette else detected
    if target is None:
        return detected, None, None
    target_mask = close & (nearest == names.index(target))
    velocity = _centroid_velocity(target_mask)
    return detected, _direction(velocity, static_speed), velocity


def check_prompt(video: Any, caption: str, palette: Mapping[str, Sequence[int]] | None = None, **options: Any) -> PromptCheck:
    """Compare what ``caption`` states with what the checker measures in ``video``."""
    facts = parse_caption(caption, palette)
    detected_color, detected_direction, velocity = analyse_video(video, palette, color=facts.color, **options)
    return PromptCheck(
        stated_color=facts.color,
        stated_direction=facts.direction,
        detected_color=detected_color,
        detected_direction=detected_direction,
        color_match=None if facts.color is None else detected_color == facts.color,
        direction_match=None if facts.direction is None else detected_direction == facts.direction,
        velocity=velocity,
    )


def colour_direction_prompts() -> list[str]:
    """8 prompts in the corpus's vocabulary: every palette colour once, every direction twice.

    "a large red circle moves right on a black background", ...; shapes and backgrounds rotate. The prompt set
    of ``benchmarks/bench_t2v_prompt_following.py`` and of the prior recipe's training curve.
    """
    colours = ("red", "green", "blue", "yellow", "white", "orange", "purple", "cyan")
    directions, shapes = ("right", "left", "up", "down"), ("circle", "square", "triangle")
    backgrounds = ("black", "dark blue", "gray", "dark green")
    return [
        f"a large {colour} {shapes[i % 3]} moves {directions[i % 4]} on a {backgrounds[(i // 2) % 4]} background"
        for i, colour in enumerate(colours)
    ]


def sample_colour_direction_prompts(count: int, seed: int = 0, size: str = "large") -> list[str]:
    """``count`` random prompts in the corpus's own words: a colour, shape and direction, a background it
    stands out from, and the corpus's phrasings ("a big cyan square slides to the left against a gray
    backdrop"). Colours and directions cycle so every colour and direction appear about equally often.

    A wider, seeded prompt set than :func:`colour_direction_prompts`, for measuring a generator on prompts
    nobody chose by hand (``benchmarks/bench_t2v_prompt_following.py --num-prompts N --prompt-seed S``).
    """
    from ..data.corpus import _BACKGROUND_PHRASES, _MOVE_PHRASES, _SIZE_WORDS, BACKGROUNDS, COLORS, SHAPES, _contrast_ok

    if not isinstance(count, int) or count < 1:
        raise InvalidInputError(f"count must be a positive integer, got {count!r}.")
    if size not in _SIZE_WORDS:
        raise InvalidInputError(f"size must be one of {sorted(_SIZE_WORDS)}, got {size!r}.")
    rng = random.Random(seed)
    colours, directions = list(COLORS), ["right", "left", "up", "down"]
    rng.shuffle(colours)
    prompts = []
    for i in range(count):
        colour, direction = colours[i % len(colours)], directions[(i + i // len(colours)) % len(directions)]
        backgrounds = [b for b in BACKGROUNDS if b["kind"] == "solid" and _contrast_ok(COLORS[colour], b)]
        background = rng.choice(backgrounds)["name"]
        noun = f"a {rng.choice(_SIZE_WORDS[size])} {colour} {rng.choice(SHAPES)}"
        where = rng.choice(_BACKGROUND_PHRASES).format(name=background)
        prompts.append(f"{noun} {rng.choice(_MOVE_PHRASES[direction])} {where}")
    return prompts


def _derangement(count: int, seed: int) -> list[int]:
    """A permutation with no fixed point (count >= 2), so no video keeps its own caption."""
    rng = random.Random(seed)
    order = list(range(count))
    while True:
        rng.shuffle(order)
        if all(i != j for i, j in enumerate(order)):
            return order


def _accuracy(checks: Sequence[PromptCheck], field: str) -> tuple[float | None, int]:
    values = [getattr(c, field) for c in checks if getattr(c, field) is not None]
    return (float(np.mean(values)) if values else None), len(values)


def prompt_following_report(videos: Sequence[Any], captions: Sequence[str], seed: int = 0, **options: Any) -> dict[str, Any]:
    """Colour / direction accuracy on matched pairs and on shuffled captions (chance level of the checker).

    Returns ``{"matched": {"color_accuracy", "direction_accuracy", "both_accuracy", "num_color", ...},
    "shuffled": {...}, "per_video": [...]}``. Needs at least two videos (to shuffle).
    """
    if len(videos) != len(captions):
        raise InvalidInputError(f"got {len(videos)} videos for {len(captions)} captions; pass one caption per video.")
    if len(videos) < 2:
        raise InvalidInputError("prompt following needs at least two videos (the shuffled baseline pairs each with another's caption).")
    matched = [check_prompt(v, c, **options) for v, c in zip(videos, captions)]
    permutation = _derangement(len(videos), seed)
    shuffled = [check_prompt(videos[i], captions[j], **options) for i, j in enumerate(permutation)]

    def summary(checks: Sequence[PromptCheck]) -> dict[str, Any]:
        colour, n_colour = _accuracy(checks, "color_match")
        direction, n_direction = _accuracy(checks, "direction_match")
        both = [c.color_match and c.direction_match for c in checks if c.color_match is not None and c.direction_match is not None]
        return {
            "color_accuracy": colour,
            "direction_accuracy": direction,
            "both_accuracy": float(np.mean(both)) if both else None,
            "num_color": n_colour,
            "num_direction": n_direction,
            "num_both": len(both),
        }

    return {
        "matched": summary(matched),
        "shuffled": summary(shuffled),
        "per_video": [{"caption": c, **m.to_dict()} for c, m in zip(captions, matched)],
        "shuffle_seed": seed,
    }
