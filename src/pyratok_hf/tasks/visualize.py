"""PNG plots of zero-shot results (matplotlib, Agg backend, written atomically).

* :func:`plot_heatmaps`: a grid of frames (columns) per map (rows) with the similarity / probability map
  overlaid, and mask outlines when given;
* :func:`plot_timeline`: localization score curves, thresholds, predicted and ground-truth segments;
* :func:`plot_similarity_matrix`: a retrieval similarity matrix;
* :func:`plot_classification`: label probabilities per video;
* :func:`plot_bars`: a small grouped bar chart for evaluation reports;
* :func:`plot_frame_grid`: rows of sampled frames (e.g. input vs reconstruction).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..video_io import atomic_output_path

__all__ = ["plot_bars", "plot_classification", "plot_frame_grid", "plot_heatmaps", "plot_similarity_matrix", "plot_timeline", "save_figure"]


def _pyplot():
    import matplotlib

    if matplotlib.get_backend().lower() != "agg":
        matplotlib.use("Agg", force=True)  # headless: never open a window, never need a display
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: str | os.PathLike, dpi: int = 100) -> Path:
    """Save a matplotlib figure to ``path`` (PNG) atomically and close it."""
    plt = _pyplot()
    target = Path(path)
    try:
        with atomic_output_path(target) as temporary:
            figure.savefig(temporary, format="png", dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(figure)
    return target


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _to_numpy(value: Any) -> np.ndarray:
    return value.detach().float().cpu().numpy() if torch.is_tensor(value) else np.asarray(value, dtype=np.float32)


def plot_heatmaps(
    maps: Any,
    path: str | os.PathLike,
    *,
    frames: Any = None,
    row_labels: Sequence[str] | None = None,
    masks: Any = None,
    max_frames: int = 8,
    alpha: float = 0.55,
    title: str | None = None,
) -> Path:
    """Grid of ``[U, T, H, W]`` (or ``[T, H, W]``) maps over evenly sampled frames.

    ``frames`` (``[3, T, H, W]`` in [-1, 1]) are drawn underneath when given; ``masks`` (same shape as ``maps``,
    boolean) are outlined in white.
    """
    plt = _pyplot()
    maps_np = _to_numpy(maps)
    if maps_np.ndim == 3:
        maps_np = maps_np[None]
    masks_np = None if masks is None else _to_numpy(masks).reshape(maps_np.shape) > 0.5
    units, num_frames = maps_np.shape[:2]
    shown = np.unique(np.linspace(0, num_frames - 1, min(max_frames, num_frames)).round().astype(int))
    images = None
    if frames is not None:
        images = ((_to_numpy(frames).clip(-1, 1) + 1) / 2).transpose(1, 2, 3, 0)  # [T, H, W, 3]
    figure, axes = plt.subplots(units, len(shown), figsize=(1.6 * len(shown) + 0.6, 1.7 * units + 0.4), squeeze=False)
    low, high = float(maps_np.min()), float(maps_np.max())
    for u in range(units):
        for column, t in enumerate(shown):
            axis = axes[u, column]
            if images is not None:
                axis.imshow(images[t], interpolation="nearest")
            axis.imshow(maps_np[u, t], cmap="jet", alpha=alpha if images is not None else 1.0, vmin=low, vmax=high, interpolation="nearest")
            if masks_np is not None and masks_np[u, t].any() and not masks_np[u, t].all():
                axis.contour(masks_np[u, t].astype(float), levels=[0.5], colors="white", linewidths=0.8)
            axis.set_xticks([])
            axis.set_yticks([])
            if u == 0:
                axis.set_title(f"frame {t}", fontsize=8)
        if row_labels is not None and u < len(row_labels):
            axes[u, 0].set_ylabel(_short(row_labels[u], 22), fontsize=8)
    if title:
        figure.suptitle(_short(title, 90), fontsize=9)
    return save_figure(figure, path)


def plot_timeline(result: Any, path: str | os.PathLike, ground_truth: Sequence[tuple[int, int]] | None = None, title: str | None = None) -> Path:
    """Localization timeline: raw and smoothed score per frame for each query, thresholds, segments.

    Predicted segments are shaded in the query's colour; ground-truth segments (``[start, end)`` frames) are
    drawn as black bars under the curves.
    """
    plt = _pyplot()
    raw = _to_numpy(result.frame_scores)
    smooth = _to_numpy(result.smoothed_scores)
    frames = np.arange(raw.shape[1])
    figure, axis = plt.subplots(figsize=(8, 3.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for q, query in enumerate(result.queries):
        colour = colours[q % len(colours)]
        axis.plot(frames, raw[q], color=colour, alpha=0.35, linewidth=1)
        axis.plot(frames, smooth[q], color=colour, linewidth=2, label=f"{_short(query)} (window {result.window})")
        axis.axhline(result.thresholds[q], color=colour, linestyle="--", linewidth=1)
        for seg in result.segments:
            if seg.query == query:
                axis.axvspan(seg.start_frame - 0.5, seg.end_frame - 0.5, color=colour, alpha=0.18)
    low = float(min(raw.min(), smooth.min()))
    high = float(max(raw.max(), smooth.max()))
    span = max(high - low, 1e-6)
    for index, (start, end) in enumerate(ground_truth or []):
        axis.plot([start - 0.5, end - 0.5], [low - 0.08 * span] * 2, color="black", linewidth=4, solid_capstyle="butt", label="ground truth" if index == 0 else None)
    axis.set_ylim(low - 0.15 * span, high + 0.1 * span)
    axis.set_xlim(-0.5, raw.shape[1] - 0.5)
    axis.set_xlabel("frame" + (f" ({result.fps:g} fps)" if getattr(result, "fps", None) else ""))
    axis.set_ylabel("cosine score")
    axis.legend(fontsize=7, loc="upper right")
    if title:
        axis.set_title(_short(title, 90), fontsize=9)
    return save_figure(figure, path)


def plot_similarity_matrix(
    similarity: Any,
    path: str | os.PathLike,
    *,
    row_labels: Sequence[str] | None = None,
    column_labels: Sequence[str] | None = None,
    mark_row_max: bool = True,
    max_items: int = 40,
    title: str | None = None,
) -> Path:
    """Heat map of a ``[rows, columns]`` similarity matrix (the first ``max_items`` of each), best per row marked."""
    plt = _pyplot()
    matrix = _to_numpy(similarity)[:max_items, :max_items]
    size = max(3.0, 0.22 * max(matrix.shape) + 2)
    figure, axis = plt.subplots(figsize=(size + 2, size))
    image = axis.imshow(matrix, cmap="viridis", aspect="auto")
    figure.colorbar(image, ax=axis, fraction=0.046)
    if mark_row_max and matrix.size:
        best = matrix.argmax(axis=1)
        axis.scatter(best, np.arange(matrix.shape[0]), marker="x", color="red", s=12)
    if row_labels is not None:
        axis.set_yticks(range(matrix.shape[0]), [_short(t, 30) for t in list(row_labels)[: matrix.shape[0]]], fontsize=6)
    if column_labels is not None:
        axis.set_xticks(range(matrix.shape[1]), [_short(t, 20) for t in list(column_labels)[: matrix.shape[1]]], fontsize=6, rotation=90)
    axis.set_xlabel("video")
    axis.set_ylabel("text")
    if title:
        axis.set_title(title, fontsize=9)
    return save_figure(figure, path)


def plot_classification(result: Any, path: str | os.PathLike, max_videos: int = 8) -> Path:
    """Horizontal bars of label probabilities, one panel per video."""
    plt = _pyplot()
    probabilities = _to_numpy(result.probabilities)[:max_videos]
    count = probabilities.shape[0]
    figure, axes = plt.subplots(1, count, figsize=(3.2 * count, 0.35 * len(result.labels) + 1.2), squeeze=False)
    for index in range(count):
        axis = axes[0, index]
        axis.barh(range(len(result.labels)), probabilities[index], color="tab:blue")
        axis.set_yticks(range(len(result.labels)), [_short(l, 24) for l in result.labels] if index == 0 else [""] * len(result.labels), fontsize=7)
        axis.invert_yaxis()
        axis.set_xlim(0, 1)
        axis.set_title(f"video {index}", fontsize=8)
    return save_figure(figure, path)


def plot_bars(values: dict[str, dict[str, float]], path: str | os.PathLike, title: str | None = None, ylabel: str = "") -> Path:
    """Grouped bars: ``{group: {series: value}}`` (e.g. ``{level: {"PSNR": ...}}``)."""
    plt = _pyplot()
    groups = list(values)
    series = sorted({name for group in values.values() for name in group})
    figure, axis = plt.subplots(figsize=(max(4, 1.1 * len(groups) * max(1, len(series)) * 0.6 + 2), 3))
    width = 0.8 / max(1, len(series))
    for index, name in enumerate(series):
        heights = [values[g].get(name, np.nan) for g in groups]
        axis.bar(np.arange(len(groups)) + index * width - 0.4 + width / 2, heights, width, label=name)
    axis.set_xticks(range(len(groups)), groups, fontsize=8)
    axis.set_ylabel(ylabel)
    if len(series) > 1:
        axis.legend(fontsize=7)
    if title:
        axis.set_title(title, fontsize=9)
    return save_figure(figure, path)


def plot_frame_grid(videos: dict[str, Any], path: str | os.PathLike, max_frames: int = 6, title: str | None = None) -> Path:
    """Rows of evenly sampled frames, one row per named ``[3, T, H, W]`` video in [-1, 1] (e.g. input vs output)."""
    plt = _pyplot()
    names = list(videos)
    arrays = [((_to_numpy(videos[n]).clip(-1, 1) + 1) / 2).transpose(1, 2, 3, 0) for n in names]
    num_frames = min(a.shape[0] for a in arrays)
    shown = np.unique(np.linspace(0, num_frames - 1, min(max_frames, num_frames)).round().astype(int))
    figure, axes = plt.subplots(len(names), len(shown), figsize=(1.6 * len(shown) + 0.6, 1.7 * len(names) + 0.3), squeeze=False)
    for row, (name, array) in enumerate(zip(names, arrays)):
        for column, t in enumerate(shown):
            axis = axes[row, column]
            axis.imshow(array[t], interpolation="nearest")
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(f"frame {t}", fontsize=8)
        axes[row, 0].set_ylabel(_short(name, 22), fontsize=8)
    if title:
        figure.suptitle(_short(title, 90), fontsize=9)
    return save_figure(figure, path)
