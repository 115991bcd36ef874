"""Zero-shot text-referred video segmentation with the finest level's tokens.

Procedure for a video and a text query:

1. Split the query into **semantic units**: lower-case words, where stop words (articles, prepositions,
   pronouns, auxiliaries, filler such as "video of") and punctuation end a phrase; each maximal run of content
   words is one unit ("the red circle and a blue square" -> "red circle", "blue square"). A query without any
   content word raises :class:`~pyratok_hf.errors.InvalidInputError`. Units can also be given explicitly.
2. Embed each unit with ``get_text_features`` and take the **finest level's** token features (level -1,
   ``pooling="token"``, ``[t, h, w, D]``); cosine similarity per token -> ``[U, t, h, w]``. Two steps make
   the map follow the object rather than the frame (both on by default, both measured in docs/zero-shot.md):

   * ``centre_tokens``: every token embedding minus the mean embedding of its latent frame, before the cosine.
     What all tokens of a frame share (the scene, the frame's position inside the causal window) is removed,
     so what remains is what sets a token apart from the rest of its frame.
   * ``background_prompts``: from each unit's similarity, subtract the token's mean similarity to generic
     background prompts ("background", ...): a token is kept for "red circle" when it is closer to "red
     circle" than to "background", the background class of zero-shot CLIP segmenters. ``None`` turns it off.
3. Upsample to pixels following the encoder's pattern: in time, nearest per latent frame (input frame ``f``
   takes latent frame ``ceil(f / 4)``); in space, bilinear by the token stride (8 px at the finest level), on
   the padded canvas the encoder saw, then cropped to the frame.
4. Per unit, rescale the similarity to [0, 1] over the clip (min-max) and threshold it (``threshold``, default
   0.5: pixels in the upper half of that unit's similarity range) -> one binary mask per unit. The returned
   ``mask`` is the union over units.
5. Optionally refine each unit's map with the dense CRF of :mod:`pyratok_hf.tasks.crf` (``crf=True``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ..errors import InvalidInputError
from .crf import CRFParams, refine_probabilities
from .retrieval import as_video_tensor, causal_window_frames, check_texts, embed_texts, feature_frame_index, grid_factors, video_features

__all__ = [
    "DEFAULT_BACKGROUND_PROMPTS",
    "STOP_WORDS",
    "SegmentationResult",
    "content_words",
    "segment",
    "semantic_units",
    "upsample_token_maps",
]

#: Generic prompts for "not the thing asked for": their mean similarity is subtracted from each unit's map.
DEFAULT_BACKGROUND_PROMPTS = ("background", "a plain background", "the background of the video")

#: Words that carry no visual referent here. Besides the usual English function words, this lists filler of
#: video captions ("video", "clip", "shows") so "a video of a red circle" reduces to "red circle".
STOP_WORDS = frozenset(
    """
    a an the this that these those there here it its it's they them their he she his her him we us our you your i me my
    and or but nor so yet then than also as while when where which who whom whose what how why
    of in on at to from by with without for into onto over under above below about after before between through
    during until within along across around behind near off out up down
    is are was were be been being am do does did doing has have had having will would can could shall should may
    might must not no all any some each every both either neither one other another such very just only
    video clip clips scene footage frame frames shows showing show shown seen see image picture
    """.split()
)
# Direction words double as prepositions ("up", "down"), but in captions like "moves up" they describe motion;
# keep them when they follow a content word so "circle moving up" stays one unit.
_MOTION_PARTICLES = frozenset({"up", "down", "left", "right", "off", "out"})
_WORD = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*|[^\sa-z0-9]")


def content_words(query: str) -> list[str]:
    """The query's content words, lower-cased, in order."""
    return [w for unit in _units(query) for w in unit.split()]


def _units(query: str) -> list[str]:
    units: list[list[str]] = [[]]
    for token in _WORD.findall(query.lower()):
        is_word = token[0].isalnum()
        keep = is_word and (token not in STOP_WORDS or (token in _MOTION_PARTICLES and units[-1]))
        if keep:
            units[-1].append(token)
        elif units[-1]:
            units.append([])
    return [" ".join(u) for u in units if u]


def semantic_units(query: str) -> list[str]:
    """Split a query into phrases of content words (see the module docstring); duplicates removed, order kept."""
    if not isinstance(query, str):
        raise InvalidInputError(f"query must be a string, got {type(query).__name__}.")
    units = list(dict.fromkeys(_units(query)))
    if not units:
        raise InvalidInputError(
            f"the query {query!r} has no content words (only stop words or punctuation); describe what to segment, "
            "e.g. 'the red circle'."
        )
    return units


@dataclass
class SegmentationResult:
    """Masks for each semantic unit of a query.

    Attributes:
        query: the original query; units: the semantic units segmented, in order.
        similarity: cosine similarity upsampled to pixels ``[U, T, H, W]``.
        probabilities: per-unit min-max rescaled similarity (CRF marginals when refined) ``[U, T, H, W]``.
        masks: boolean masks per unit ``[U, T, H, W]``; mask: their union ``[T, H, W]``.
        threshold: the threshold applied to ``probabilities``; refined: whether the CRF was used.
    """

    query: str
    units: list[str]
    similarity: torch.Tensor
    probabilities: torch.Tensor
    masks: torch.Tensor
    threshold: float
    refined: bool = False

    @property
    def mask(self) -> torch.Tensor:
        return self.masks.any(dim=0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "units": self.units,
            "threshold": self.threshold,
            "refined": self.refined,
            "mask_shape": list(self.masks.shape),
            "foreground_fraction": [float(m.float().mean()) for m in self.masks],
        }

    def plot(self, path: str | os.PathLike, frames: torch.Tensor | None = None, max_frames: int = 8) -> Path:
        """Heat maps of each unit over sampled frames (overlaid on ``frames`` when given), as a PNG."""
        from .visualize import plot_heatmaps

        return plot_heatmaps(self.probabilities, path, frames=frames, row_labels=self.units, masks=self.masks, max_frames=max_frames)


def upsample_token_maps(
    maps: torch.Tensor, num_frames: int, height: int, width: int, temporal_factor: int, spatial_factor: int,
    causal_window_frames: int | None = None,
) -> torch.Tensor:
    """``[U, t, h, w]`` token maps -> ``[U, T, H, W]`` pixel maps (nearest latent frame, bilinear in space).

    Space is upsampled by ``spatial_factor`` onto the padded canvas the encoder saw (``h * factor`` rows) and
    cropped to ``H x W``, so each token's value sits over the pixels it was computed from. In time, frames
    follow the encoder's causal windows (``causal_window_frames``, see :func:`feature_frame_index`).
    """
    units, t, h, w = maps.shape
    index = feature_frame_index(num_frames, t, temporal_factor, causal_window_frames)
    per_frame = maps[:, index]  # [U, T, h, w]
    canvas = (max(h * spatial_factor, height), max(w * spatial_factor, width))
    flat = per_frame.reshape(units * num_frames, 1, h, w).float()
    up = F.interpolate(flat, size=canvas, mode="bilinear", align_corners=False)
    return up[:, 0, :height, :width].reshape(units, num_frames, height, width)


def _rescale(maps: torch.Tensor) -> torch.Tensor:
    """Per-unit min-max rescaling to [0, 1]; a flat map becomes 0 (nothing stands out)."""
    flat = maps.flatten(1)
    low, high = flat.min(dim=1).values, flat.max(dim=1).values
    span = (high - low).clamp_min(1e-8)
    scaled = (flat - low[:, None]) / span[:, None]
    scaled = torch.where((high - low)[:, None] > 1e-8, scaled, torch.zeros_like(scaled))
    return scaled.view_as(maps)


def segment(
    model: Any,
    video: Any,
    query: str,
    *,
    units: Sequence[str] | None = None,
    threshold: float = 0.5,
    level: int = -1,
    crf: bool | CRFParams = False,
    centre_tokens: bool = True,
    background_prompts: Sequence[str] | None = DEFAULT_BACKGROUND_PROMPTS,
) -> SegmentationResult:
    """Segment what ``query`` describes in ``video`` (see the module docstring).

    Args:
        video: ``[3, T, H, W]`` tensor in [-1, 1], uint8 ``[T, H, W, 3]``, :class:`VideoClip` or file path.
        query: free text; split into semantic units unless ``units`` is given.
        threshold: in (0, 1), applied to the per-unit rescaled similarity (or CRF marginals).
        level: pyramid level of the tokens (paper: the finest, -1).
        crf: ``True`` (default parameters) or a :class:`CRFParams` to refine each unit's map.
        centre_tokens: subtract each latent frame's mean token embedding before the cosine.
        background_prompts: a text or texts whose mean similarity is subtracted from every unit's map; ``None``
            or ``()`` compares each unit with the tokens alone.
    """
    if not 0.0 < float(threshold) < 1.0:
        raise InvalidInputError(f"threshold must lie in (0, 1) (it applies to rescaled similarities), got {threshold!r}.")
    unit_list = check_texts(list(units), "units") if units is not None else semantic_units(query)
    frames, _ = as_video_tensor(video)
    _, num_frames, height, width = frames.shape
    tokens = video_features(model, frames, pooling="token", level=level, normalize=False)  # [t, h, w, D]
    if centre_tokens and tokens.shape[1] * tokens.shape[2] > 1:  # a one-token frame has nothing to stand out from
        tokens = tokens - tokens.mean(dim=(1, 2), keepdim=True)
    tokens = F.normalize(tokens, dim=-1)
    text = embed_texts(model, unit_list)  # [U, D]
    token_maps = torch.einsum("thwd,ud->uthw", tokens, text)
    if background_prompts:
        prompts = [background_prompts] if isinstance(background_prompts, str) else list(background_prompts)
        background = embed_texts(model, check_texts(prompts, "background_prompts"))  # [B, D]
        token_maps = token_maps - torch.einsum("thwd,bd->thw", tokens, background).div(len(background))[None]
    temporal, spatial = grid_factors(model, level)
    similarity = upsample_token_maps(token_maps, num_frames, height, width, temporal, spatial, causal_window_frames(model))
    probabilities = _rescale(similarity)
    refined = crf is not False and crf is not None
    if refined:
        params = crf if isinstance(crf, CRFParams) else CRFParams()
        probabilities = torch.stack([refine_probabilities(frames, p, params) for p in probabilities])
    return SegmentationResult(
        query=query if isinstance(query, str) else " ".join(unit_list),
        units=unit_list,
        similarity=similarity,
        probabilities=probabilities,
        masks=probabilities > threshold,
        threshold=float(threshold),
        refined=refined,
    )
