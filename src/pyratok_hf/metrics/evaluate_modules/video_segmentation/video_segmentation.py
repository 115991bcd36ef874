"""Video object segmentation quality (J, mIoU), as an ``evaluate`` metric (wraps the functional mask metrics)."""

import datasets
import evaluate
import numpy as np

from pyratok_hf.metrics.functional import EvaluateInputChecksMixin
from pyratok_hf.metrics.functional import mean_iou
from pyratok_hf.metrics.functional import nested_to_array
from pyratok_hf.metrics.functional import per_frame_iou

_DESCRIPTION = """Binary-mask video segmentation. Each example is one object (or text query) track [T, H, W].
J (DAVIS region similarity) averages per-frame IoU over frames, then over objects; a frame where prediction and
ground truth are both empty scores 1. mIoU averages the per-object IoU pooled over the whole track; overall_iou
pools intersections and unions over every object."""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list of binary masks [T, H, W] (bool or 0/1).
    references: list of binary masks of the same shapes.
Returns:
    J, mIoU, overall_iou (floats).
"""

_CITATION = ""


def _mask_feature():
    return datasets.Sequence(datasets.Sequence(datasets.Sequence(datasets.Value("bool"))))


class VideoSegmentation(EvaluateInputChecksMixin, evaluate.Metric):
    """Thin wrapper: each track is scored with the functional code, then the scores are pooled."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": _mask_feature(), "references": _mask_feature()}),
        )

    def _compute(self, predictions, references):
        j_values, iou_values, intersection, union = [], [], 0, 0
        for pred, ref in zip(predictions, references):
            pred = nested_to_array(pred, "prediction", dtype=bool)
            ref = nested_to_array(ref, "reference", dtype=bool)
            j_values.append(float(per_frame_iou(pred, ref).mean()))
            stats = mean_iou(pred, ref)
            iou_values.append(stats["mIoU"])
            intersection += stats["intersection"][0]
            union += stats["union"][0]
        return {
            "J": float(np.mean(j_values)),
            "mIoU": float(np.mean(iou_values)),
            "overall_iou": intersection / union if union > 0 else 1.0,
        }
