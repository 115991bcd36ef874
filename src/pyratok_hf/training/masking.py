"""Input masking for stage-1 training (paper App. D): 30% of frames masked, plus cosine-scheduled patch masking.

The encoder sees the masked clip X~ and the loss compares the reconstruction with the clean clip X, so the
tokenizer learns to carry motion across missing frames and fill missing patches. Masked pixels are set to 0
(mid-grey in [-1, 1]). The first frame is never masked temporally: the causal backbone encodes it alone.
The per-frame spatial ratio is ``max_ratio * cos(pi/2 * u)`` with ``u ~ U(0, 1)`` (MaskGIT's cosine
schedule), so most frames lose a few patches and some lose many.
"""

from __future__ import annotations

import math

import torch


def mask_video(
    video: torch.Tensor,
    frame_ratio: float = 0.3,
    spatial_ratio: float = 0.5,
    patch_size: int = 8,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(masked_video, keep_mask)`` for ``video`` ``[B, 3, T, H, W]``; ``keep_mask`` is ``[B, 1, T, H, W]``."""
    b, _, t, h, w = video.shape
    device = video.device
    keep = torch.ones(b, 1, t, h, w, device=device, dtype=video.dtype)
    if t > 1 and frame_ratio > 0:
        n_mask = int(round(frame_ratio * (t - 1)))
        for i in range(b):
            order = torch.randperm(t - 1, generator=generator)[:n_mask] + 1
            keep[i, :, order.to(device)] = 0
    if spatial_ratio > 0:
        gh, gw = math.ceil(h / patch_size), math.ceil(w / patch_size)
        u = torch.rand(b, t, generator=generator)
        ratios = spatial_ratio * torch.cos(0.5 * math.pi * u)
        scores = torch.rand(b, t, gh * gw, generator=generator)
        patch_keep = (scores >= ratios.unsqueeze(-1)).to(video.dtype).view(b, 1, t, gh, gw)
        patch_keep = patch_keep.repeat_interleave(patch_size, -2).repeat_interleave(patch_size, -1)[..., :h, :w]
        keep = keep * patch_keep.to(device)
    return video * keep, keep
