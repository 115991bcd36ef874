"""transformers-style pipelines for the zero-shot tasks.

Design choice:

* :class:`ZeroShotVideoClassificationPipeline` **is** a ``transformers.Pipeline`` subclass (the per-input
  ``preprocess -> _forward -> postprocess`` flow fits: one video in, one ranked label list out), modelled on
  ``zero-shot-image-classification``: ``pipe(videos, candidate_labels=[...], hypothesis_template="a video of {}")``
  returns ``[{"label", "score"}, ...]`` best first (a list of those for a list of videos). PyraTok has no
  processor: text goes through the model's own frozen text encoder and videos are plain tensors or files, so
  the pipeline is built directly from a model (``ZeroShotVideoClassificationPipeline(model=model)``) or with
  ``transformers.pipeline("zero-shot-video-classification", model=model)`` after :func:`register_pipelines`.
* Retrieval (all videos x all texts at once), localization and segmentation return rich results (curves,
  masks) rather than per-input dictionaries, and retrieval is not per-input at all, so they are **plain
  classes with the same call conventions** (``pipe(inputs, **options)``), thin wrappers of the task functions
  in :mod:`pyratok_hf.tasks`; they also accept the pixel-statistics baseline, which is not a PreTrainedModel.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from transformers import Pipeline

from ..errors import InvalidInputError
from .localization import PAPER_WINDOW, LocalizationResult, localize
from .retrieval import RetrievalResult, as_video_tensor, check_texts, embed_texts, embed_videos, resolve_temperature, retrieve
from .segmentation import SegmentationResult, segment

__all__ = [
    "TemporalActionLocalizationPipeline",
    "VideoTextRetrievalPipeline",
    "VideoTextSegmentationPipeline",
    "ZeroShotVideoClassificationPipeline",
    "register_pipelines",
]

TASK_NAME = "zero-shot-video-classification"


class ZeroShotVideoClassificationPipeline(Pipeline):
    """Zero-shot video classification with PyraTok's language-aligned tokens.

    Example::

        pipe = ZeroShotVideoClassificationPipeline(model=PyraTokModel.from_pretrained(path))
        pipe("clip.mp4", candidate_labels=["a red circle", "a blue square"])
        # [{"label": "a red circle", "score": 0.93}, {"label": "a blue square", "score": 0.07}]
    """

    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def __call__(self, videos: Any, candidate_labels: Sequence[str] | None = None, **kwargs: Any):
        """Classify one video (tensor ``[3, T, H, W]`` in [-1, 1], uint8 array, VideoClip or path) or a list.

        Keyword arguments: ``hypothesis_template`` (default ``"a video of {}"``; ``"{}"`` uses the labels as
        they are) and ``temperature`` (softmax temperature; default: the model's contrastive temperature).
        """
        if candidate_labels is None:
            raise InvalidInputError("pass candidate_labels=[...] (at least one label) to classify videos.")
        if torch.is_tensor(videos) and videos.dim() == 5:
            videos = list(videos.unbind(0))
        elif isinstance(videos, tuple):
            videos = list(videos)
        return super().__call__(videos, candidate_labels=candidate_labels, **kwargs)

    def _sanitize_parameters(self, candidate_labels=None, hypothesis_template=None, temperature=None, **kwargs):
        preprocess: dict[str, Any] = {}
        if candidate_labels is not None:
            preprocess["candidate_labels"] = candidate_labels
        if hypothesis_template is not None:
            preprocess["hypothesis_template"] = hypothesis_template
        postprocess = {"temperature": temperature} if temperature is not None else {}
        return preprocess, {}, postprocess

    def preprocess(self, video, candidate_labels=None, hypothesis_template="a video of {}"):
        labels = check_texts(candidate_labels, "candidate_labels")
        if "{}" not in hypothesis_template:
            raise InvalidInputError(f"hypothesis_template must contain '{{}}', got {hypothesis_template!r}.")
        frames, _ = as_video_tensor(video)
        return {"pixel_values": frames.unsqueeze(0), "candidate_labels": labels, "prompts": [hypothesis_template.format(l) for l in labels]}

    def _forward(self, model_inputs):
        # The same features as classify(): one answer for one clip whichever entry point is used.
        video = embed_videos(self.model, model_inputs["pixel_values"])
        text = embed_texts(self.model, model_inputs["prompts"]).to(video.device)
        return {"candidate_labels": model_inputs["candidate_labels"], "similarities": (video @ text.T)[0]}

    def postprocess(self, model_outputs, temperature=None):
        temp = resolve_temperature(self.model, temperature)
        scores = (model_outputs["similarities"].float().cpu() / temp).softmax(dim=-1).tolist()
        ranked = sorted(zip(scores, model_outputs["candidate_labels"]), key=lambda pair: -pair[0])
        return [{"label": label, "score": score} for score, label in ranked]


def register_pipelines() -> None:
    """Register ``zero-shot-video-classification`` so ``transformers.pipeline(task, model=model)`` builds ours."""
    from transformers.pipelines import PIPELINE_REGISTRY

    from ..modeling_pyratok import PyraTokModel

    if TASK_NAME not in PIPELINE_REGISTRY.get_supported_tasks():
        PIPELINE_REGISTRY.register_pipeline(TASK_NAME, pipeline_class=ZeroShotVideoClassificationPipeline, pt_model=PyraTokModel, type="multimodal")


class _TaskPipeline:
    """Common plumbing of the plain-class pipelines: hold a model (or any embedder) and default options."""

    def __init__(self, model: Any, **defaults: Any):
        if not hasattr(model, "get_video_features") or not hasattr(model, "get_text_features"):
            raise InvalidInputError(f"{type(model).__name__} has no get_video_features/get_text_features; pass a PyraTokModel.")
        self.model = model.eval() if hasattr(model, "eval") else model
        self.defaults = defaults


class VideoTextRetrievalPipeline(_TaskPipeline):
    """``pipe(videos, texts) -> RetrievalResult`` (similarities, rankings both ways, recall@k when paired)."""

    def __call__(self, videos: Any, texts: Sequence[str], **kwargs: Any) -> RetrievalResult:
        return retrieve(self.model, videos, texts, **{**self.defaults, **kwargs})


class TemporalActionLocalizationPipeline(_TaskPipeline):
    """``pipe(video, query) -> LocalizationResult``; options as :func:`pyratok_hf.tasks.localize` (``window``...)."""

    def __init__(self, model: Any, window: int = PAPER_WINDOW, **defaults: Any):
        super().__init__(model, window=window, **defaults)

    def __call__(self, videos: Any, query: str | Sequence[str], **kwargs: Any) -> LocalizationResult | list[LocalizationResult]:
        options = {**self.defaults, **kwargs}
        if isinstance(videos, list):
            return [localize(self.model, v, query, **options) for v in videos]
        return localize(self.model, videos, query, **options)


class VideoTextSegmentationPipeline(_TaskPipeline):
    """``pipe(video, query) -> SegmentationResult``; options as :func:`pyratok_hf.tasks.segment` (``crf``...)."""

    def __call__(self, videos: Any, query: str, **kwargs: Any) -> SegmentationResult | list[SegmentationResult]:
        options = {**self.defaults, **kwargs}
        if isinstance(videos, list):
            return [segment(self.model, v, query, **options) for v in videos]
        return segment(self.model, videos, query, **options)
