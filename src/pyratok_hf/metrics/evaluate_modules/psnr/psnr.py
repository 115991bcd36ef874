"""PSNR of reconstructed videos, as an ``evaluate`` metric (wraps ``pyratok_hf.metrics.functional.psnr``)."""

import datasets
import evaluate
import numpy as np

from pyratok_hf.metrics.functional import EvaluateInputChecksMixin
from pyratok_hf.metrics.functional import nested_to_array
from pyratok_hf.metrics.functional import psnr

_DESCRIPTION = """Peak signal-to-noise ratio (dB) per video, with the squared error pooled over all channels, frames
and pixels. Videos are [C, T, H, W] in [-1, 1] (data_range=2). Identical videos score +inf unless `max_psnr` caps
them; the dataset score is the mean over videos."""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of videos [C, T, H, W] (arrays, tensors or nested lists).
    references: list of videos of the same shapes.
    data_range (float, default 2.0): peak-to-peak range of the pixel values.
    max_psnr (float, optional): cap applied per video before averaging.
Returns:
    psnr: mean PSNR over videos; psnr_per_video: list of per-video values.
"""

_CITATION = ""


def _video_feature():
    return datasets.Sequence(datasets.Sequence(datasets.Sequence(datasets.Sequence(datasets.Value("float32")))))


class Psnr(EvaluateInputChecksMixin, evaluate.Metric):
    """Thin wrapper: the arithmetic lives in pyratok_hf so it is tested once and shared with training code."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": _video_feature(), "references": _video_feature()}),
        )

    def _compute(self, predictions, references, data_range=2.0, max_psnr=None):
        values = [
            float(psnr(nested_to_array(p, "prediction"), nested_to_array(r, "reference"), data_range, max_psnr))
            for p, r in zip(predictions, references)
        ]
        return {"psnr": float(np.mean(values)), "psnr_per_video": values}
