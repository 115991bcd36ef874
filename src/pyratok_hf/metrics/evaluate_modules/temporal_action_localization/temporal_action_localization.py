"""Temporal action localization mAP, as an ``evaluate`` metric (wraps ``temporal_action_localization_map``)."""

import datasets
import evaluate

from pyratok_hf.metrics.functional import ACTIVITYNET_TIOU_THRESHOLDS
from pyratok_hf.metrics.functional import THUMOS14_TIOU_THRESHOLDS
from pyratok_hf.metrics.functional import EvaluateInputChecksMixin
from pyratok_hf.metrics.functional import temporal_action_localization_map

_DESCRIPTION = """Detection mAP over tIoU thresholds: per class, detections are greedily matched by decreasing score to
unmatched ground-truth segments with tIoU >= threshold; all-points AP (precision envelope, as in the ActivityNet
and THUMOS toolkits) is averaged over classes with ground truth, then over thresholds."""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list (one per video) of lists of {"label": str, "start": float, "end": float, "score": float}.
    references: list (one per video) of lists of {"label": str, "start": float, "end": float}.
    video_ids: list of video ids (str), one per example.
    tiou_thresholds: "thumos14" (default, 0.1:0.1:0.7), "activitynet" (0.5:0.05:0.95) or a list of floats.
Returns:
    mAP (average over thresholds) and "mAP@{t}" for every threshold t.
"""

_CITATION = ""

_PRESETS = {"thumos14": THUMOS14_TIOU_THRESHOLDS, "activitynet": ACTIVITYNET_TIOU_THRESHOLDS}


class TemporalActionLocalization(EvaluateInputChecksMixin, evaluate.Metric):
    """Thin wrapper: per-video examples are flattened into the (video_id, label, start, end[, score]) rows."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": [
                        {
                            "label": datasets.Value("string"),
                            "start": datasets.Value("float64"),
                            "end": datasets.Value("float64"),
                            "score": datasets.Value("float64"),
                        }
                    ],
                    "references": [
                        {
                            "label": datasets.Value("string"),
                            "start": datasets.Value("float64"),
                            "end": datasets.Value("float64"),
                        }
                    ],
                    "video_ids": datasets.Value("string"),
                }
            ),
        )

    def _compute(self, predictions, references, video_ids, tiou_thresholds="thumos14"):
        if isinstance(tiou_thresholds, str):
            tiou_thresholds = _PRESETS[tiou_thresholds.lower()]
        rows = [
            (vid, d["label"], d["start"], d["end"], d["score"])
            for vid, dets in zip(video_ids, predictions)
            for d in dets
        ]
        truth = [(vid, g["label"], g["start"], g["end"]) for vid, segs in zip(video_ids, references) for g in segs]
        result = temporal_action_localization_map(rows, truth, tiou_thresholds)
        flat = {"mAP": result["mAP"]}
        for threshold, value in result["mAP_per_threshold"].items():
            flat[f"mAP@{threshold:g}"] = value
        return flat
