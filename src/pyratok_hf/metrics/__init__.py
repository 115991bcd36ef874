"""Evaluation metrics for PyraTok: reconstruction, token statistics, retrieval, localization, segmentation, FVD.

Two ways to use them:

* plain functions/classes (:mod:`pyratok_hf.metrics.functional`, :mod:`pyratok_hf.metrics.fvd`) for training
  loops and scripts;
* ``evaluate`` modules shipped inside the package, loaded from their local path because Hub metric scripts may
  be unreachable: ``load_metric("psnr")`` is ``evaluate.load("<package>/metrics/evaluate_modules/psnr/psnr.py")``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyratok_hf.errors import MetricInputError
from pyratok_hf.metrics.functional import (
    ACTIVITYNET_TIOU_THRESHOLDS,
    THUMOS14_TIOU_THRESHOLDS,
    CodebookUsageAccumulator,
    average_precision,
    bits_per_pixel,
    bits_per_pixel_entropy,
    class_mean_iou,
    codebook_usage,
    cosine_similarity_matrix,
    frechet_distance,
    gaussian_statistics,
    jaccard_j,
    mean_iou,
    per_frame_iou,
    psnr,
    retrieval_metrics,
    ssim,
    temporal_action_localization_map,
    temporal_iou,
)
from pyratok_hf.metrics.fvd import FVDMetric, RandomI3DLike, TorchScriptI3D, load_i3d_torchscript

EVALUATE_MODULES_DIR = Path(__file__).resolve().parent / "evaluate_modules"

#: Names accepted by :func:`load_metric`, one ``evaluate`` script each.
EVALUATE_MODULE_NAMES: tuple[str, ...] = (
    "psnr",
    "ssim",
    "bits_per_pixel",
    "codebook_usage",
    "video_text_retrieval",
    "temporal_action_localization",
    "video_segmentation",
    "fvd",
)


def evaluate_module_path(name: str) -> Path:
    """Absolute path of the bundled ``evaluate`` script for ``name``."""
    if name not in EVALUATE_MODULE_NAMES:
        raise MetricInputError(f"unknown metric {name!r}; available: {', '.join(EVALUATE_MODULE_NAMES)}.")
    path = EVALUATE_MODULES_DIR / name / f"{name}.py"
    if not path.is_file():
        raise MetricInputError(f"the evaluate script for {name!r} is missing from the installation ({path}).")
    return path


def load_metric(name: str, **kwargs: Any):
    """Load a bundled metric with ``evaluate.load`` from its local path (works offline).

    Extra keyword arguments (``experiment_id``, ``num_process``, ``cache_dir``...) go to ``evaluate.load``.
    """
    import evaluate  # imported lazily: plain functional metrics should not pay for evaluate/datasets

    return evaluate.load(str(evaluate_module_path(name)), **kwargs)


__all__ = [
    "ACTIVITYNET_TIOU_THRESHOLDS",
    "EVALUATE_MODULE_NAMES",
    "THUMOS14_TIOU_THRESHOLDS",
    "CodebookUsageAccumulator",
    "FVDMetric",
    "MetricInputError",
    "RandomI3DLike",
    "TorchScriptI3D",
    "average_precision",
    "bits_per_pixel",
    "bits_per_pixel_entropy",
    "class_mean_iou",
    "codebook_usage",
    "cosine_similarity_matrix",
    "evaluate_module_path",
    "frechet_distance",
    "gaussian_statistics",
    "jaccard_j",
    "load_i3d_torchscript",
    "load_metric",
    "mean_iou",
    "per_frame_iou",
    "psnr",
    "retrieval_metrics",
    "ssim",
    "temporal_action_localization_map",
    "temporal_iou",
]
