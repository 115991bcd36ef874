"""Frechet Video Distance, as an ``evaluate`` metric (wraps ``pyratok_hf.metrics.fvd.FVDMetric``)."""

import datasets
import evaluate
import torch

from pyratok_hf.metrics.functional import EvaluateInputChecksMixin
from pyratok_hf.metrics.functional import nested_to_array
from pyratok_hf.metrics.fvd import FVDMetric
from pyratok_hf.metrics.fvd import RandomI3DLike
from pyratok_hf.metrics.fvd import TorchScriptI3D

_DESCRIPTION = """Frechet distance between Gaussian fits of video features of generated (predictions) and real
(references) videos. Without `i3d_path` the features come from a seeded random 3-D CNN: usable for smoke tests and
same-seed comparisons only, NOT comparable with published FVD. Pass `i3d_path` (a local i3d_torchscript.pt,
never downloaded) for paper-comparable numbers."""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of generated videos [3, T, H, W] in [-1, 1] (at least 2).
    references: list of real videos [3, T, H, W] in [-1, 1] (at least 2). evaluate stores both columns in one
        table, so give the same number of each.
    i3d_path (str, optional): file or folder holding i3d_torchscript.pt.
    seed (int, default 0), feature_dim (int, default 64): settings of the random fallback network.
    batch_size (int, default 8): videos per forward pass.
Returns:
    fvd (float), feature_network (str).
"""

_CITATION = """Unterthiner et al. Towards accurate generative models of video: a new metric & challenges. 2018."""


def _video_feature():
    return datasets.Sequence(datasets.Sequence(datasets.Sequence(datasets.Sequence(datasets.Value("float32")))))


class Fvd(EvaluateInputChecksMixin, evaluate.Metric):
    """Thin wrapper: videos are streamed through FVDMetric in mini-batches of equal-shape clips."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": _video_feature(), "references": _video_feature()}),
        )

    def _compute(self, predictions, references, i3d_path=None, seed=0, feature_dim=64, batch_size=8):
        if i3d_path is not None:
            extractor, name = TorchScriptI3D(i3d_path), f"i3d_torchscript({i3d_path})"
        else:
            extractor, name = (
                RandomI3DLike(feature_dim=feature_dim, seed=seed),
                f"random_i3d_like(seed={seed}, dim={feature_dim})",
            )
        metric = FVDMetric(extractor)
        for videos, real in ((predictions, False), (references, True)):
            for start in range(0, len(videos), batch_size):
                clips = [torch.as_tensor(nested_to_array(v, "video")) for v in videos[start : start + batch_size]]
                # Videos of different sizes cannot share a batch; feed them one by one in that case.
                if len({tuple(c.shape) for c in clips}) == 1:
                    metric.update(torch.stack(clips), real=real)
                else:
                    for clip in clips:
                        metric.update(clip.unsqueeze(0), real=real)
        return {"fvd": metric.compute(), "feature_network": name}
