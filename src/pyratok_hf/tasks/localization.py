"""Zero-shot temporal action localization, as in the paper's App. B.3.

Procedure for a video and a text query:

1. Encode the video once (no text conditioning) and take the **coarsest level's** tokens (level 0), mean-pooled
   per latent frame: ``get_video_features(pooling="frame", level=0)`` gives ``[t, D]``.
2. Cosine similarity of each latent frame with the query's text feature, then map back to input frames (latent
   frame 0 = frame 0, latent frame ``i`` covers frames ``4i-3 .. 4i``): one score per input frame.
3. Sliding-window average over ``window`` frames (paper default 25, stride 1, centred; at the clip ends the mean
   is over the frames that exist, so the curve keeps one value per frame and is not biased towards zero).
4. Threshold ``tau``: given, or ``mean + 0.5 * std`` of the smoothed curve (``std_factor``). Frames with a
   smoothed score ``>= tau`` form connected segments; the segment with the highest mean smoothed score wins.
5. Multi-action queries (a list of queries, or one query joined by "and" whose parts each carry at least two
   content words): each sub-query is localized in turn; the frames of the segments already chosen are removed
   before the next search (so two actions are not explained by the same frames), and the chosen segments are
   finally merged where they overlap or touch (``merged_segments``).

Intervals are half-open ``[start_frame, end_frame)`` like the corpus metadata; seconds are ``frame / fps``.
Clips shorter than the window shrink the window to the clip length and emit a :class:`ShortClipWarning`.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import InvalidInputError
from .retrieval import as_video_tensor, causal_window_frames, check_texts, embed_texts, feature_frame_index, grid_factors, video_features

__all__ = [
    "LocalizationResult",
    "Segment",
    "ShortClipWarning",
    "default_threshold",
    "find_segments",
    "localize",
    "localize_scores",
    "merge_segments",
    "smooth_scores",
    "split_actions",
]

PAPER_WINDOW = 25
DEFAULT_STD_FACTOR = 0.5


class ShortClipWarning(UserWarning):
    """The clip has fewer frames than the smoothing window; the window was shrunk to the clip length."""


@dataclass
class Segment:
    """A localized interval ``[start_frame, end_frame)``; times in seconds when the frame rate is known."""

    start_frame: int
    end_frame: int
    score: float
    query: str = ""
    start_time: float | None = None
    end_time: float | None = None

    @property
    def num_frames(self) -> int:
        return self.end_frame - self.start_frame

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "start_frame": self.start_frame,
            "end_frame": self.end_frame,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "score": self.score,
        }


@dataclass
class LocalizationResult:
    """Per-query score curves and the chosen segments.

    Attributes:
        queries: the (sub-)queries localized, in order.
        frame_scores: raw cosine score per input frame ``[Q, T]``.
        smoothed_scores: after the sliding-window average ``[Q, T]``.
        thresholds: the threshold used for each query.
        segments: the chosen segment of each query (queries with no frame above threshold have none).
        merged_segments: the chosen segments merged where they overlap or touch.
        window: the smoothing window actually used (frames); fps: frame rate or ``None``.
    """

    queries: list[str]
    frame_scores: torch.Tensor
    smoothed_scores: torch.Tensor
    thresholds: list[float]
    segments: list[Segment]
    merged_segments: list[Segment]
    window: int
    fps: float | None = None
    candidates: list[list[Segment]] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return int(self.frame_scores.shape[-1])

    def to_dict(self) -> dict[str, Any]:
        return {
            "queries": self.queries,
            "window": self.window,
            "fps": self.fps,
            "thresholds": self.thresholds,
            "segments": [s.to_dict() for s in self.segments],
            "merged_segments": [s.to_dict() for s in self.merged_segments],
            "frame_scores": self.frame_scores.tolist(),
            "smoothed_scores": self.smoothed_scores.tolist(),
        }

    def plot(self, path: str | os.PathLike, ground_truth: Sequence[tuple[int, int]] | None = None) -> Path:
        """Timeline PNG: score curves, thresholds, predicted and (optional) ground-truth segments."""
        from .visualize import plot_timeline

        return plot_timeline(self, path, ground_truth=ground_truth)


# ----------------------------------------------------------------------------------------------------------------
# Segment logic on plain score curves (testable without a model)
# ----------------------------------------------------------------------------------------------------------------


def _as_curve(scores: Any, name: str = "scores") -> np.ndarray:
    curve = np.asarray(scores.detach().cpu() if torch.is_tensor(scores) else scores, dtype=np.float64)
    if curve.ndim != 1 or curve.size == 0:
        raise InvalidInputError(f"{name} must be a non-empty 1-D curve (one score per frame), got shape {curve.shape}.")
    if not np.isfinite(curve).all():
        raise InvalidInputError(f"{name} contains NaN or infinite values.")
    return curve


def check_window(window: Any, num_frames: int) -> int:
    """A positive integer window, shrunk (with a :class:`ShortClipWarning`) to the clip length if longer."""
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise InvalidInputError(f"window must be a positive number of frames, got {window!r}.")
    if window > num_frames:
        warnings.warn(
            f"the clip has {num_frames} frame(s), fewer than the {window}-frame smoothing window; the window was "
            f"shrunk to {num_frames} frames (pass a smaller window to silence this).",
            ShortClipWarning,
            stacklevel=3,
        )
        return int(num_frames)
    return int(window)


def smooth_scores(scores: Any, window: int) -> np.ndarray:
    """Centred moving average with stride 1; near the ends the mean is over the frames inside the clip.

    For an even window the extra frame is taken on the left (frames ``f - w/2 .. f + w/2 - 1``).
    """
    curve = _as_curve(scores)
    window = check_window(window, curve.size)
    left = window // 2
    right = window - 1 - left
    cumulative = np.concatenate([[0.0], np.cumsum(curve)])
    starts = np.clip(np.arange(curve.size) - left, 0, curve.size)
    ends = np.clip(np.arange(curve.size) + right + 1, 0, curve.size)
    return (cumulative[ends] - cumulative[starts]) / (ends - starts)


def default_threshold(smoothed: Any, std_factor: float = DEFAULT_STD_FACTOR) -> float:
    """``mean + std_factor * std`` of a (smoothed) score curve: frames clearly above the clip's typical score."""
    curve = _as_curve(smoothed, "smoothed")
    return float(curve.mean() + std_factor * curve.std())


def find_segments(scores: Any, threshold: float, available: Any = None) -> list[tuple[int, int]]:
    """Maximal runs ``[start, end)`` of frames with ``score >= threshold`` (and ``available`` when given)."""
    curve = _as_curve(scores)
    above = curve >= threshold - 1e-12 * max(1.0, abs(threshold))  # robust to float noise on flat curves
    if available is not None:
        mask = np.asarray(available, dtype=bool)
        if mask.shape != curve.shape:
            raise InvalidInputError(f"available has shape {mask.shape} but the curve has {curve.shape}.")
        above &= mask
    padded = np.concatenate([[False], above, [False]]).astype(np.int8)
    changes = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b)) for a, b in zip(changes[0::2], changes[1::2])]


def merge_segments(segments: Sequence[Segment]) -> list[Segment]:
    """Merge segments that overlap or touch; the merged score is the length-weighted mean, queries joined."""
    ordered = sorted(segments, key=lambda s: (s.start_frame, s.end_frame))
    merged: list[Segment] = []
    for seg in ordered:
        if merged and seg.start_frame <= merged[-1].end_frame:
            last = merged[-1]
            end = max(last.end_frame, seg.end_frame)
            weight_a, weight_b = max(last.num_frames, 1), max(seg.num_frames, 1)
            score = (last.score * weight_a + seg.score * weight_b) / (weight_a + weight_b)
            query = last.query if seg.query in last.query.split(" + ") else f"{last.query} + {seg.query}"
            merged[-1] = Segment(last.start_frame, end, float(score), query, last.start_time, seg.end_time if seg.end_frame >= last.end_frame else last.end_time)
        else:
            merged.append(Segment(seg.start_frame, seg.end_frame, seg.score, seg.query, seg.start_time, seg.end_time))
    return merged


def _make_segment(start: int, end: int, smoothed: np.ndarray, query: str, fps: float | None) -> Segment:
    return Segment(
        start_frame=start,
        end_frame=end,
        score=float(smoothed[start:end].mean()),
        query=query,
        start_time=None if fps is None else start / fps,
        end_time=None if fps is None else end / fps,
    )


def localize_scores(
    frame_scores: Any,
    queries: Sequence[str] | None = None,
    *,
    window: int = PAPER_WINDOW,
    threshold: float | Sequence[float] | None = None,
    std_factor: float = DEFAULT_STD_FACTOR,
    fps: float | None = None,
) -> LocalizationResult:
    """Steps 3-5 of the procedure on precomputed per-frame scores ``[T]`` or ``[Q, T]`` (one row per query)."""
    scores = torch.as_tensor(np.asarray(frame_scores.detach().cpu() if torch.is_tensor(frame_scores) else frame_scores, dtype=np.float64))
    if scores.dim() == 1:
        scores = scores.unsqueeze(0)
    if scores.dim() != 2 or scores.shape[1] == 0:
        raise InvalidInputError(f"frame_scores must be [T] or [Q, T] with T >= 1, got shape {tuple(scores.shape)}.")
    if not torch.isfinite(scores).all():
        raise InvalidInputError("frame_scores contains NaN or infinite values.")
    num_queries, num_frames = scores.shape
    queries = list(queries) if queries is not None else [f"query {i}" for i in range(num_queries)]
    if len(queries) != num_queries:
        raise InvalidInputError(f"got {len(queries)} query names for {num_queries} score curves.")
    if threshold is None or isinstance(threshold, (int, float)):
        thresholds_in = [threshold] * num_queries
    else:
        thresholds_in = list(threshold)
        if len(thresholds_in) != num_queries:
            raise InvalidInputError(f"got {len(thresholds_in)} thresholds for {num_queries} queries.")
    if fps is not None and not fps > 0:
        raise InvalidInputError(f"fps must be positive, got {fps!r}.")
    window = check_window(window, num_frames)

    available = np.ones(num_frames, dtype=bool)
    smoothed_rows, thresholds, chosen, candidates = [], [], [], []
    for q, query in enumerate(queries):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ShortClipWarning)  # already warned once above
            smoothed = smooth_scores(scores[q].numpy(), window)
        tau = default_threshold(smoothed, std_factor) if thresholds_in[q] is None else float(thresholds_in[q])
        runs = find_segments(smoothed, tau, available)
        options = sorted((_make_segment(a, b, smoothed, query, fps) for a, b in runs), key=lambda s: -s.score)
        if options:
            best = options[0]
            chosen.append(best)
            available[best.start_frame : best.end_frame] = False
        smoothed_rows.append(smoothed)
        thresholds.append(tau)
        candidates.append(options)
    return LocalizationResult(
        queries=list(queries),
        frame_scores=scores.float(),
        smoothed_scores=torch.as_tensor(np.stack(smoothed_rows)).float(),
        thresholds=thresholds,
        segments=chosen,
        merged_segments=merge_segments(chosen),
        window=window,
        fps=fps,
        candidates=candidates,
    )


# ----------------------------------------------------------------------------------------------------------------
# Queries
# ----------------------------------------------------------------------------------------------------------------


def split_actions(query: str | Sequence[str], split_and: bool = True) -> list[str]:
    """A list of queries is kept as is; one query is split at "and" when every part has >= 2 content words.

    The two-content-word rule keeps noun phrases such as "a black and white cat" whole while splitting
    "the red circle moves left and the blue square moves up" into two actions.
    """
    from .segmentation import content_words

    if not isinstance(query, str):
        return check_texts(list(query), "queries")
    query = check_texts(query, "query")[0]
    if not split_and:
        return [query]
    parts = [p.strip(" ,.;") for p in re.split(r"\s*(?:,\s*)?\band\b\s*", query, flags=re.IGNORECASE)]
    parts = [p for p in parts if p]
    if len(parts) > 1 and all(len(content_words(p)) >= 2 for p in parts):
        return parts
    return [query]


# ----------------------------------------------------------------------------------------------------------------
# The task
# ----------------------------------------------------------------------------------------------------------------


def frame_scores_for_queries(model: Any, video: Any, queries: Sequence[str], level: int = 0) -> tuple[torch.Tensor, float | None]:
    """Cosine score per input frame ``[Q, T]`` of each query with the level's frame-pooled tokens."""
    frames, fps = as_video_tensor(video)
    per_latent = video_features(model, frames, pooling="frame", level=level)  # [t, D]
    text = embed_texts(model, queries)  # [Q, D]
    latent_scores = text @ per_latent.T  # [Q, t]
    temporal, _ = grid_factors(model, level)
    index = feature_frame_index(frames.shape[1], per_latent.shape[0], temporal, causal_window_frames(model))
    return latent_scores[:, index], fps


def localize(
    model: Any,
    video: Any,
    query: str | Sequence[str],
    *,
    fps: float | None = None,
    window: int = PAPER_WINDOW,
    threshold: float | Sequence[float] | None = None,
    std_factor: float = DEFAULT_STD_FACTOR,
    level: int = 0,
    split_and: bool = True,
) -> LocalizationResult:
    """Find when the action(s) described by ``query`` happen in ``video`` (see the module docstring).

    Args:
        video: ``[3, T, H, W]`` tensor in [-1, 1], uint8 ``[T, H, W, 3]``, :class:`VideoClip` or file path.
        query: one action, several actions joined by "and", or a list of actions.
        fps: frame rate for times in seconds (read from the file / VideoClip when not given).
        window: smoothing window in input frames (paper: 25); shrunk with a warning on shorter clips.
        threshold: fixed threshold (one for all or one per query); default ``mean + std_factor * std``.
        level: which pyramid level's tokens to use (paper: the coarsest, 0).
    """
    queries = split_actions(query, split_and=split_and)
    scores, clip_fps = frame_scores_for_queries(model, video, queries, level=level)
    return localize_scores(
        scores, queries, window=window, threshold=threshold, std_factor=std_factor, fps=fps if fps is not None else clip_fps
    )
