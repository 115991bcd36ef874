"""Zero-shot video understanding with PyraTok's language-aligned tokens.

* :func:`classify` / :func:`retrieve`: zero-shot classification and text <-> video retrieval (clip features);
* :func:`localize`: temporal action localization from the coarsest level's per-frame features (App. B.3);
* :func:`segment`: text-referred segmentation from the finest level's token features, with an optional
  dense-CRF refinement (:mod:`pyratok_hf.tasks.crf`);
* :mod:`pyratok_hf.tasks.visualize`: heat maps and timelines; every result also has ``.plot(path)``;
* :mod:`pyratok_hf.tasks.pipelines`: ``ZeroShotVideoClassificationPipeline`` (a ``transformers.Pipeline``) and
  plain pipeline classes for the other tasks (imported lazily: ``from pyratok_hf.tasks.pipelines import ...``).

Every task takes the model first and works with any object exposing ``get_video_features`` /
``get_text_features`` and a ``config`` with the compression factors (see :mod:`pyratok_hf.tasks.retrieval`).
See ``docs/zero-shot.md``.
"""

from .crf import CRFParams, refine_mask, refine_probabilities
from .localization import (
    LocalizationResult,
    Segment,
    ShortClipWarning,
    default_threshold,
    find_segments,
    localize,
    localize_scores,
    merge_segments,
    smooth_scores,
    split_actions,
)
from .retrieval import ClassificationResult, RetrievalResult, classify, embed_texts, embed_videos, retrieve
from .segmentation import STOP_WORDS, SegmentationResult, content_words, segment, semantic_units

__all__ = [
    "CRFParams",
    "ClassificationResult",
    "LocalizationResult",
    "RetrievalResult",
    "STOP_WORDS",
    "Segment",
    "SegmentationResult",
    "ShortClipWarning",
    "classify",
    "content_words",
    "default_threshold",
    "embed_texts",
    "embed_videos",
    "find_segments",
    "localize",
    "localize_scores",
    "merge_segments",
    "refine_mask",
    "refine_probabilities",
    "retrieve",
    "segment",
    "semantic_units",
    "smooth_scores",
    "split_actions",
]
