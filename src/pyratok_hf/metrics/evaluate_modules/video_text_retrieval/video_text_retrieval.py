"""Text-video retrieval recall, as an ``evaluate`` metric (wraps ``retrieval_metrics``)."""

import datasets
import evaluate

from pyratok_hf.metrics.functional import EvaluateInputChecksMixin
from pyratok_hf.metrics.functional import nested_to_array
from pyratok_hf.metrics.functional import retrieval_metrics

_DESCRIPTION = """Text-to-video and video-to-text R@1/5/10 (fractions in [0, 1]), median and mean rank. Each example is
one text query: its row of similarity scores against every video, and the indices of its matching videos.
Ties with non-matching videos count against the query."""

_KWARGS_DESCRIPTION = """
Args:
    predictions: list (one per text) of similarity rows, all of length num_videos.
    references: list (one per text) of lists of positive video indices (e.g. [i] for diagonal pairing).
Returns:
    t2v_R@1, t2v_R@5, t2v_R@10, t2v_median_rank, t2v_mean_rank and the same with the v2t_ prefix.
"""

_CITATION = ""


class VideoTextRetrieval(EvaluateInputChecksMixin, evaluate.Metric):
    """Thin wrapper: rows are stacked back into the [num_texts, num_videos] similarity matrix."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float64")),
                    "references": datasets.Sequence(datasets.Value("int64")),
                }
            ),
        )

    def _compute(self, predictions, references):
        similarity = nested_to_array(predictions, "similarity rows (all rows must have num_videos entries)")
        positives = [set(int(v) for v in row) for row in references]
        return retrieval_metrics(similarity, positives)
