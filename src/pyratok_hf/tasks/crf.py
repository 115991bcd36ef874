"""A small dense-CRF refinement for binary video masks, in plain torch (mean-field inference).

Why our own: the maintained Python binding of Krähenbühl's dense CRF (``pydensecrf2``) ships only as a source
distribution that needs Cython and a C++ toolchain to build, and it is 2-D only. Video masks also want a
temporal term, so a compact torch version is simpler to install and closer to what we need.

Model (two labels, background/foreground, Potts compatibility). For every pixel ``i`` of frame ``t``:

* unary: ``log p_i`` and ``log (1 - p_i)`` from the foreground probability map;
* spatial smoothness: a Gaussian kernel over pixel positions (``spatial_sigma`` px), ``spatial_weight``;
* appearance (bilateral) kernel: ``exp(-|dp|^2 / 2 theta_a^2 - |dI|^2 / 2 theta_c^2)`` over positions and RGB
  colours, ``bilateral_weight``. A fully connected bilateral filter is costly, so it is approximated on a
  downsampled grid (longest side ``grid_size``) within a ``(2r+1)^2`` neighbourhood, and its messages are
  upsampled bilinearly;
* temporal term: the same pixel in the previous and next frame, weighted by colour similarity (so a moving
  object does not drag its old position along), ``temporal_weight``.

Each mean-field iteration adds, to each label's unary logit, the weighted kernel-filtered label marginals of
the neighbours (the Potts model rewards agreeing with similar neighbours), then renormalises with a softmax.
Kernels exclude the pixel itself; the spatial and temporal kernels are normalised to sum to one, the bilateral
one to one *for a neighbourhood of identical colour*, so dissimilar neighbours carry little weight.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import InvalidInputError

__all__ = ["CRFParams", "refine_mask", "refine_probabilities"]


@dataclass
class CRFParams:
    """Weights and widths of the CRF kernels (defaults suit 32-256 px frames with colours in [-1, 1])."""

    iterations: int = 5
    spatial_weight: float = 1.5
    spatial_sigma: float = 1.5
    bilateral_weight: float = 3.0
    bilateral_position_sigma: float = 3.0  # in grid cells
    bilateral_color_sigma: float = 0.15  # in [-1, 1] colour units (about 20 of 255)
    bilateral_radius: int = 3  # neighbourhood radius on the grid
    grid_size: int = 64  # longest side of the downsampled grid used for the bilateral kernel
    temporal_weight: float = 1.0
    temporal_color_sigma: float = 0.2
    eps: float = 1e-4

    def check(self) -> "CRFParams":
        if self.iterations < 0 or self.bilateral_radius < 1 or self.grid_size < 4:
            raise InvalidInputError(f"invalid CRF parameters: {self}.")
        for name in ("spatial_sigma", "bilateral_position_sigma", "bilateral_color_sigma", "temporal_color_sigma"):
            if not getattr(self, name) > 0:
                raise InvalidInputError(f"CRF parameter {name} must be positive, got {getattr(self, name)}.")
        return self


def _gaussian_blur_excluding_centre(q: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian filter of ``[N, C, H, W]`` maps, minus the centre tap, normalised to sum to one."""
    radius = max(1, int(math.ceil(2.5 * sigma)))
    coords = torch.arange(-radius, radius + 1, dtype=q.dtype, device=q.device)
    k1 = torch.exp(-(coords**2) / (2 * sigma**2))
    k1 = k1 / k1.sum()
    channels = q.shape[1]
    horizontal = k1.view(1, 1, 1, -1).expand(channels, 1, 1, -1)
    vertical = k1.view(1, 1, -1, 1).expand(channels, 1, -1, 1)
    blurred = F.conv2d(F.pad(q, (radius, radius, 0, 0), mode="replicate"), horizontal, groups=channels)
    blurred = F.conv2d(F.pad(blurred, (0, 0, radius, radius), mode="replicate"), vertical, groups=channels)
    centre = float(k1[radius] ** 2)
    return (blurred - centre * q) / (1.0 - centre)


class _BilateralGrid:
    """Precomputed bilateral weights on a downsampled grid; ``filter(q)`` returns full-resolution messages."""

    def __init__(self, image: torch.Tensor, params: CRFParams):
        # image: [T, 3, H, W]
        self.full_size = tuple(image.shape[-2:])
        height, width = self.full_size
        scale = min(1.0, params.grid_size / max(height, width))
        self.grid_size = (max(1, round(height * scale)), max(1, round(width * scale)))
        small = F.adaptive_avg_pool2d(image, self.grid_size) if scale < 1 else image
        r = params.bilateral_radius
        self.radius = r
        k = 2 * r + 1
        patches = F.unfold(F.pad(small, (r, r, r, r), mode="replicate"), k)  # [T, 3*k*k, h*w]
        patches = patches.view(small.shape[0], 3, k * k, -1)
        colour_distance = (patches - small.flatten(2).unsqueeze(2)).pow(2).sum(1)  # [T, k*k, h*w]
        offsets = torch.arange(-r, r + 1, dtype=image.dtype, device=image.device)
        position = (offsets.view(-1, 1) ** 2 + offsets.view(1, -1) ** 2).reshape(-1)  # [k*k]
        spatial = torch.exp(-position / (2 * params.bilateral_position_sigma**2))
        spatial[k * k // 2] = 0.0  # exclude the pixel itself
        weights = spatial.view(1, -1, 1) * torch.exp(-colour_distance / (2 * params.bilateral_color_sigma**2))
        self.weights = weights / spatial.sum()  # identical colours -> weights sum to one
        self.kernel = k

    def filter(self, q: torch.Tensor) -> torch.Tensor:
        # q: [T, 2, H, W] -> messages [T, 2, H, W]
        small = F.adaptive_avg_pool2d(q, self.grid_size) if self.grid_size != self.full_size else q
        r, k = self.radius, self.kernel
        patches = F.unfold(F.pad(small, (r, r, r, r), mode="replicate"), k).view(q.shape[0], 2, k * k, -1)
        message = (patches * self.weights.unsqueeze(1)).sum(2).view(q.shape[0], 2, *self.grid_size)
        if self.grid_size != self.full_size:
            message = F.interpolate(message, size=self.full_size, mode="bilinear", align_corners=False)
        return message


def _temporal_message(q: torch.Tensor, image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Colour-weighted marginals of the same pixel in the previous and next frames (mean over those present)."""
    frames = q.shape[0]
    if frames < 2:
        return torch.zeros_like(q)
    similarity = torch.exp(-(image[1:] - image[:-1]).pow(2).sum(1, keepdim=True) / (2 * sigma**2))  # [T-1, 1, H, W]
    message = torch.zeros_like(q)
    count = torch.zeros_like(q[:, :1])
    message[1:] += similarity * q[:-1]
    count[1:] += 1
    message[:-1] += similarity * q[1:]
    count[:-1] += 1
    return message / count


def refine_probabilities(frames: torch.Tensor, probabilities: torch.Tensor, params: CRFParams | None = None) -> torch.Tensor:
    """Mean-field refinement of foreground probabilities ``[T, H, W]`` given the video ``[3, T, H, W]`` in [-1, 1].

    Returns refined foreground marginals ``[T, H, W]`` in [0, 1].
    """
    params = (params or CRFParams()).check()
    if frames.dim() == 3:
        frames = frames.unsqueeze(1)
    if probabilities.dim() == 2:
        probabilities = probabilities.unsqueeze(0)
    if frames.dim() != 4 or frames.shape[0] != 3:
        raise InvalidInputError(f"frames must be [3, T, H, W], got {tuple(frames.shape)}.")
    if tuple(probabilities.shape) != tuple(frames.shape[1:]):
        raise InvalidInputError(f"probabilities {tuple(probabilities.shape)} must match the frames' [T, H, W] {tuple(frames.shape[1:])}.")
    image = frames.detach().float().cpu().permute(1, 0, 2, 3).contiguous()  # [T, 3, H, W]
    p = probabilities.detach().float().cpu().clamp(params.eps, 1 - params.eps)
    unary = torch.stack([torch.log1p(-p), torch.log(p)], dim=1)  # [T, 2, H, W]: background, foreground
    q = unary.softmax(dim=1)
    bilateral = _BilateralGrid(image, params)
    for _ in range(params.iterations):
        message = params.spatial_weight * _gaussian_blur_excluding_centre(q, params.spatial_sigma)
        message = message + params.bilateral_weight * bilateral.filter(q)
        message = message + params.temporal_weight * _temporal_message(q, image, params.temporal_color_sigma)
        q = (unary + message).softmax(dim=1)
    return q[:, 1]


def refine_mask(frames: torch.Tensor, mask_or_probabilities: torch.Tensor, params: CRFParams | None = None, threshold: float = 0.5) -> torch.Tensor:
    """Refine a binary mask (or probabilities) ``[T, H, W]``; returns a boolean mask of the same shape.

    A binary mask is first turned into confident probabilities (0.9 / 0.1) so the CRF can overrule pixels
    that disagree with their neighbourhood, e.g. isolated noise.
    """
    m = mask_or_probabilities
    probabilities = m.float() * 0.8 + 0.1 if m.dtype == torch.bool or bool(((m == 0) | (m == 1)).all()) else m.float()
    return refine_probabilities(frames, probabilities, params) > threshold
