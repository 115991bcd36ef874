"""Zero-shot video classification and text <-> video retrieval in PyraTok's shared video-text space.

Both tasks only need two things from the model: ``get_video_features`` (clip-pooled token embeddings) and
``get_text_features`` (projected pooled text). Any object with those two methods and a ``config`` carrying
``temporal_compression`` / ``spatial_compression`` (and ``level_*_downsample`` lists) works, which is how the
pixel-statistics baseline of :mod:`pyratok_hf.evaluation.benchmarks` plugs into every task unchanged.

This module also holds the input handling shared by all zero-shot tasks (videos given as tensors, files,
:class:`~pyratok_hf.video_io.VideoClip` or uint8 arrays; text validation; batching; the latent-frame to
input-frame mapping), so localization and segmentation read their inputs exactly like retrieval does.

Videos are tokenized **without** the query text: the tokens (and hence the features) of a clip do not depend
on what is asked about it, so one encoding can answer many queries and scores stay comparable across queries.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InvalidInputError
from ..text_encoder import validate_prompts
from ..video_io import VideoClip, from_uint8_frames, read_video

__all__ = [
    "ClassificationResult",
    "RetrievalResult",
    "VideoInput",
    "as_video_tensor",
    "classify",
    "embed_texts",
    "embed_videos",
    "causal_window_frames",
    "feature_frame_index",
    "grid_factors",
    "model_device",
    "retrieve",
]

VideoInput = Union[torch.Tensor, np.ndarray, str, os.PathLike, VideoClip]


# ----------------------------------------------------------------------------------------------------------------
# Inputs shared by every zero-shot task
# ----------------------------------------------------------------------------------------------------------------


def model_device(model: Any) -> torch.device:
    """Device of the model's parameters (CPU for parameter-free embedders such as the baseline)."""
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration, TypeError):
        return torch.device("cpu")


#: Video files are decoded with their longer side at most this many pixels (multiples of 8), by every zero-shot
#: entry point (these functions, the transformers pipeline, the Space, ``pyratok evaluate``), so one clip gives
#: one answer everywhere. Tensors are used as given.
MAX_FILE_SIDE = 256


def file_read_size(path) -> tuple[int, int] | None:
    """``(height, width)`` a video file is decoded at for zero-shot tasks, or None to keep its own size."""
    from ..video_io import probe_video

    info = probe_video(path)
    height, width = int(getattr(info, "height", 0) or 0), int(getattr(info, "width", 0) or 0)
    if max(height, width) <= MAX_FILE_SIDE or min(height, width) == 0:
        return None
    scale = MAX_FILE_SIDE / max(height, width)
    return max(8, int(round(height * scale / 8)) * 8), max(8, int(round(width * scale / 8)) * 8)


def as_video_tensor(video: VideoInput, *, max_frames: int | None = None) -> tuple[torch.Tensor, float | None]:
    """Normalise one video to ``([3, T, H, W] float in [-1, 1], fps or None)``.

    Accepts a ``[3, T, H, W]`` / ``[1, 3, T, H, W]`` / ``[3, H, W]`` tensor in [-1, 1], a ``uint8`` array
    ``[T, H, W, 3]``, a :class:`VideoClip`, or a file path (decoded with :func:`read_video`).
    """
    fps = None
    if isinstance(video, (str, os.PathLike)):
        clip = read_video(video, max_frames=max_frames, size=file_read_size(video))
        return clip.frames, clip.fps
    if isinstance(video, VideoClip):
        frames, fps = video.frames, video.fps
    elif isinstance(video, np.ndarray):
        if video.dtype != np.uint8:
            raise InvalidInputError(
                f"numpy videos must be uint8 [T, H, W, 3], got dtype {video.dtype}; pass a float tensor [3, T, H, W] "
                "in [-1, 1] for other ranges."
            )
        frames = from_uint8_frames(video)
    elif torch.is_tensor(video):
        frames = video
    else:
        raise InvalidInputError(
            f"a video must be a tensor [3, T, H, W] in [-1, 1], a uint8 array [T, H, W, 3], a VideoClip or a file "
            f"path; got {type(video).__name__}."
        )
    if frames.dim() == 5:
        if frames.shape[0] != 1:
            raise InvalidInputError(
                f"got a batch of {frames.shape[0]} videos where one was expected; pass a list of [3, T, H, W] tensors."
            )
        frames = frames[0]
    if frames.dim() == 3:
        frames = frames.unsqueeze(1)  # one image = a one-frame video
    if frames.dim() != 4 or frames.shape[0] != 3:
        raise InvalidInputError(f"a video tensor must be [3, T, H, W] (RGB first), got shape {tuple(frames.shape)}.")
    if min(frames.shape) == 0:
        raise InvalidInputError(f"the video is empty (shape {tuple(frames.shape)}).")
    if not frames.is_floating_point():
        raise InvalidInputError(f"video tensors must be floating point in [-1, 1], got {frames.dtype}; use x / 127.5 - 1.")
    if max_frames is not None:
        frames = frames[:, :max_frames]
    return frames, fps


def as_video_list(videos: Any) -> list[VideoInput]:
    """A single video or a sequence of videos -> a list (a ``[B, 3, T, H, W]`` tensor is split along B)."""
    if torch.is_tensor(videos) and videos.dim() == 5:
        return list(videos.unbind(0))
    if isinstance(videos, (list, tuple)):
        if len(videos) == 0:
            raise InvalidInputError("got an empty list of videos; pass at least one.")
        return list(videos)
    return [videos]


def check_texts(texts: Any, what: str = "texts") -> list[str]:
    """Zero-shot labels and queries: :func:`pyratok_hf.text_encoder.validate_prompts` without blanks, stripped."""
    return validate_prompts(texts, what, allow_blank=False)


def pooled(output: Any) -> torch.Tensor:
    """The features of a ``get_*_features`` call: ``pooler_output`` of transformers' output object (our
    models, ``CLIPModel``), or the tensor itself (objects that return plain tensors)."""
    return output.pooler_output if hasattr(output, "pooler_output") else output


@torch.no_grad()
def embed_texts(model: Any, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
    """L2-normalised text features ``[N, D]`` (float32, CPU) from ``model.get_text_features``."""
    texts = check_texts(list(texts) if not isinstance(texts, str) else texts)
    chunks = [pooled(model.get_text_features(text=texts[i : i + batch_size])) for i in range(0, len(texts), batch_size)]
    return F.normalize(torch.cat(chunks).float().cpu(), dim=-1)


@torch.no_grad()
def video_features(model: Any, frames: torch.Tensor, pooling: str, level: int | None, normalize: bool = True) -> torch.Tensor:
    """Features of one ``[3, T, H, W]`` video: ``[D]`` (clip), ``[t, D]`` (frame) or ``[t, h, w, D]`` (token).

    L2-normalised unless ``normalize=False`` (the raw embeddings, for callers that centre them first)."""
    pixels = frames.unsqueeze(0).to(model_device(model))
    if level is not None and level < 0:
        level = int(model.config.num_levels) + level
    options = {} if normalize else {"normalize": False}  # only asked of models that need to give raw embeddings
    feats = pooled(model.get_video_features(pixel_values=pixels, pooling=pooling, level=level, **options))[0].float().cpu()
    return F.normalize(feats, dim=-1) if normalize else feats


@torch.no_grad()
def embed_videos(model: Any, videos: Any, level: int | None = None, progress: bool = False) -> torch.Tensor:
    """Clip-pooled, L2-normalised video features ``[N, D]``; videos of equal shape are encoded as one batch."""
    items = [as_video_tensor(v)[0] for v in as_video_list(videos)]
    features: list[torch.Tensor | None] = [None] * len(items)
    by_shape: dict[tuple, list[int]] = {}
    for index, frames in enumerate(items):
        by_shape.setdefault(tuple(frames.shape), []).append(index)
    groups = list(by_shape.values())
    if progress:
        from tqdm.auto import tqdm

        groups = tqdm(groups, desc="encoding videos", unit="shape group")
    device = model_device(model)
    for indices in groups:
        for start in range(0, len(indices), 8):  # bounded batches: memory stays flat on long lists
            chunk = indices[start : start + 8]
            pixels = torch.stack([items[i] for i in chunk]).to(device)
            feats = F.normalize(pooled(model.get_video_features(pixel_values=pixels, pooling="clip", level=level)).float().cpu(), dim=-1)
            for i, feat in zip(chunk, feats):
                features[i] = feat
    return torch.stack(features)  # type: ignore[arg-type]


def grid_factors(model: Any, level: int) -> tuple[int, int]:
    """``(frames per token step in time, pixels per token in space)`` of a level, from the model config.

    For PyraTok the encoder compresses 4x in time and 8x in space, and level ``l`` further divides the latent
    grid by ``level_temporal_downsample[l]`` / ``level_spatial_downsample[l]``.
    """
    config = model.config
    levels = int(getattr(config, "num_levels", 1))
    level = level if level >= 0 else levels + level
    spatial_down = list(getattr(config, "level_spatial_downsample", [1] * levels))
    temporal_down = list(getattr(config, "level_temporal_downsample", [1] * levels))
    return int(config.temporal_compression) * int(temporal_down[level]), int(config.spatial_compression) * int(spatial_down[level])


def causal_window_frames(model: Any) -> int | None:
    """Frames per independent causal encoder window of ``model`` (``None``: the clip is one window)."""
    return getattr(getattr(model, "config", None), "causal_window_frames", None)


def feature_frame_index(
    num_frames: int, num_feature_frames: int, temporal_compression: int, causal_window_frames: int | None = None
) -> torch.Tensor:
    """For every input frame, the index of the feature (latent) frame that covers it: ``LongTensor [T]``.

    The causal video encoder maps input frame 0 alone to latent frame 0 and frames ``4i-3 .. 4i`` to latent
    frame ``i`` (for a temporal compression of 4), i.e. latent index ``ceil(f / 4)``. A model that encodes long
    clips as independent causal windows (``config.causal_window_frames``, e.g. 17 frames -> 5 latent frames)
    restarts that pattern in every window: the window's first frame has a latent frame of its own. When a level
    further downsamples time, latent indices are spread proportionally over that level's frames.
    """
    if num_frames < 1 or num_feature_frames < 1:
        raise InvalidInputError(f"need at least one frame, got {num_frames} input and {num_feature_frames} feature frames.")
    factor = max(int(temporal_compression), 1)
    window = int(causal_window_frames) if causal_window_frames else num_frames
    latent, offset = [], 0
    for start in range(0, num_frames, window):
        local = torch.arange(min(window, num_frames - start))
        latent.append(offset + torch.div(local + factor - 1, factor, rounding_mode="floor"))  # ceil(f / factor)
        offset += 1 + math.ceil((window - 1) / factor)  # a full window; only the last one can be shorter
    latent = torch.cat(latent)
    num_latent = int(latent[-1]) + 1
    if num_feature_frames != num_latent:
        latent = torch.div(latent * num_feature_frames, num_latent, rounding_mode="floor")
    return latent.clamp(max=num_feature_frames - 1)


def resolve_temperature(model: Any, temperature: float | None) -> float:
    if temperature is None:
        temperature = float(getattr(getattr(model, "config", None), "contrastive_temperature", 0.07) or 0.07)
    if not temperature > 0:
        raise InvalidInputError(f"temperature must be positive, got {temperature!r}.")
    return float(temperature)


# ----------------------------------------------------------------------------------------------------------------
# Zero-shot classification
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class ClassificationResult:
    """Zero-shot classification of ``N`` videos among ``C`` candidate labels.

    Attributes:
        labels: the candidate labels, in the order of the score columns.
        prompts: the label sentences actually embedded (``prompt_template.format(label)``).
        similarities: cosine similarities ``[N, C]`` between video and prompt features.
        probabilities: ``softmax(similarities / temperature)`` over the labels, ``[N, C]``.
        temperature: the softmax temperature (the model's contrastive temperature by default).
    """

    labels: list[str]
    prompts: list[str]
    similarities: torch.Tensor
    probabilities: torch.Tensor
    temperature: float

    @property
    def predicted_labels(self) -> list[str]:
        """Most probable label of each video."""
        return [self.labels[i] for i in self.probabilities.argmax(dim=1).tolist()]

    def top(self, k: int = 1) -> list[list[tuple[str, float]]]:
        """For each video, the ``k`` best ``(label, probability)`` pairs, best first."""
        k = max(1, min(int(k), len(self.labels)))
        values, indices = self.probabilities.topk(k, dim=1)
        return [[(self.labels[i], float(v)) for v, i in zip(vs, ids)] for vs, ids in zip(values.tolist(), indices.tolist())]

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": self.labels,
            "prompts": self.prompts,
            "temperature": self.temperature,
            "similarities": self.similarities.tolist(),
            "probabilities": self.probabilities.tolist(),
            "predicted_labels": self.predicted_labels,
        }

    def plot(self, path: str | os.PathLike) -> Path:
        """Bar chart of the label probabilities (one panel per video, at most 8) as a PNG."""
        from .visualize import plot_classification

        return plot_classification(self, path)


def classify(
    model: Any,
    video: Any,
    labels: Sequence[str],
    prompt_template: str = "a video of {}",
    temperature: float | None = None,
) -> ClassificationResult:
    """Score one video (or a list / batch of videos) against candidate labels, CLIP style.

    Each label is put into ``prompt_template`` (must contain ``{}``), embedded with ``get_text_features`` and
    compared by cosine similarity with the clip-pooled video features (mean over all levels' tokens);
    probabilities are a softmax over labels at ``temperature`` (default: the model's contrastive temperature,
    the one its video-text loss was trained with).
    """
    labels = check_texts(labels, "labels")
    if len(set(labels)) != len(labels):
        raise InvalidInputError(f"candidate labels must be unique, got {labels}.")
    if not isinstance(prompt_template, str) or "{}" not in prompt_template:
        raise InvalidInputError(f"prompt_template must contain '{{}}' where the label goes, got {prompt_template!r}.")
    prompts = [prompt_template.format(label) for label in labels]
    text = embed_texts(model, prompts)
    vids = embed_videos(model, video)
    similarities = vids @ text.T
    temp = resolve_temperature(model, temperature)
    return ClassificationResult(
        labels=labels, prompts=prompts, similarities=similarities, probabilities=(similarities / temp).softmax(dim=1), temperature=temp
    )


# ----------------------------------------------------------------------------------------------------------------
# Retrieval
# ----------------------------------------------------------------------------------------------------------------


@dataclass
class RetrievalResult:
    """Text <-> video retrieval among ``N_t`` texts and ``N_v`` videos.

    Attributes:
        texts: the text queries.
        similarity: cosine similarities ``[N_t, N_v]``.
        text_to_video: for each text, video indices sorted best first ``[N_t, N_v]``.
        video_to_text: for each video, text indices sorted best first ``[N_v, N_t]``.
        metrics: recall@k and ranks from :func:`pyratok_hf.metrics.retrieval_metrics` when a ground truth is
            known (square problems default to "text i describes video i"); else an empty dict.
    """

    texts: list[str]
    similarity: torch.Tensor
    text_to_video: torch.Tensor
    video_to_text: torch.Tensor
    metrics: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "texts": self.texts,
            "similarity": self.similarity.tolist(),
            "text_to_video": self.text_to_video.tolist(),
            "video_to_text": self.video_to_text.tolist(),
            "metrics": self.metrics,
        }

    def plot(self, path: str | os.PathLike, video_names: Sequence[str] | None = None) -> Path:
        """Heat map of the similarity matrix with each text's best video marked, as a PNG."""
        from .visualize import plot_similarity_matrix

        return plot_similarity_matrix(self.similarity, path, row_labels=self.texts, column_labels=video_names, mark_row_max=True)


def retrieve(
    model: Any,
    videos: Any,
    texts: Sequence[str],
    positives: Any = None,
    ks: Sequence[int] = (1, 5, 10),
    video_features: torch.Tensor | None = None,
) -> RetrievalResult:
    """Rank videos for every text and texts for every video by cosine similarity.

    Args:
        videos: a list of videos (any accepted form; shapes may differ) or a ``[B, 3, T, H, W]`` batch. May be
            ``None`` when ``video_features`` (``[N_v, D]``, e.g. cached) is given.
        texts: the captions / queries.
        positives: optional ground truth for metrics, as accepted by
            :func:`pyratok_hf.metrics.retrieval_metrics` (per-text video index or set of indices, or a boolean
            ``[N_t, N_v]`` mask). Without it, metrics are computed only for a square problem (text i <-> video i).
        ks: recall cut-offs (those larger than the candidate count are dropped).
    """
    from ..metrics import retrieval_metrics

    texts = check_texts(texts)
    text = embed_texts(model, texts)
    if video_features is None:
        vids = embed_videos(model, videos)
    else:
        vids = F.normalize(torch.as_tensor(video_features).float().cpu(), dim=-1)
    if vids.shape[1] != text.shape[1]:
        raise InvalidInputError(f"video features have width {vids.shape[1]} but text features {text.shape[1]}; use one model for both.")
    similarity = text @ vids.T
    metrics: dict[str, float] = {}
    if positives is not None or similarity.shape[0] == similarity.shape[1]:
        usable = tuple(k for k in ks if k <= max(similarity.shape)) or (1,)
        metrics = retrieval_metrics(similarity, positives, ks=usable)
    return RetrievalResult(
        texts=texts,
        similarity=similarity,
        text_to_video=similarity.argsort(dim=1, descending=True, stable=True),
        video_to_text=similarity.T.argsort(dim=1, descending=True, stable=True),
        metrics=metrics,
    )
