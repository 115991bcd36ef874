"""SSIM of reconstructed videos, as an ``evaluate`` metric (wraps ``pyratok_hf.metrics.functional.ssim``)."""

import datasets
import evaluate
import numpy as np

from pyratok_hf.metrics.functional import EvaluateInputChecksMixin
from pyratok_hf.metrics.functional import nested_to_array
from pyratok_hf.metrics.functional import ssim

_DESCRIPTION = """Structural similarity per video: 11x11 Gaussian window (sigma 1.5), K1=0.01, K2=0.03, computed per
channel and frame, averaged over channels then frames. Videos are [C, T, H, W] in [-1, 1] (data_range=2); the
dataset score is the mean over videos."""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of videos [C, T, H, W]; H and W must be >= window_size.
    references: list of videos of the same shapes.
    data_range (float, default 2.0), window_size (int, default 11), sigma (float, default 1.5),
    window ("gaussian" or "uniform").
Returns:
    ssim: mean SSIM over videos; ssim_per_video: list of per-video values.
"""

_CITATION = """Wang, Bovik, Sheikh, Simoncelli. Image quality assessment: from error visibility to structural
similarity. IEEE TIP 2004."""


def _video_feature():
    return datasets.Sequence(datasets.Sequence(datasets.Sequence(datasets.Sequence(datasets.Value("float32")))))


class Ssim(EvaluateInputChecksMixin, evaluate.Metric):
    """Thin wrapper around the tested functional SSIM."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": _video_feature(), "references": _video_feature()}),
        )

    def _compute(self, predictions, references, data_range=2.0, window_size=11, sigma=1.5, window="gaussian"):
        values = [
            float(
                ssim(
                    nested_to_array(p, "prediction"),
                    nested_to_array(r, "reference"),
                    data_range=data_range,
                    window_size=window_size,
                    sigma=sigma,
                    window=window,
                )
            )
            for p, r in zip(predictions, references)
        ]
        return {"ssim": float(np.mean(values)), "ssim_per_video": values}
