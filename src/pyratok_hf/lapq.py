"""LaPQ: language-aligned pyramidal quantization.

Level l (coarse to fine) sees three inputs, as in the paper's q(l) = Q_l(q(l-1), F(l), e_text):

* the part of the latent the earlier levels have not explained yet (the residual, as in residual VQ),
* a lateral feature F(l) from one encoder stage (deep stage -> coarse level),
* the previous level's codes q(l-1),

all resampled to the level's token grid (``level_fuse_grid="level"``), or to the latent grid with the fused
features pooled onto the level's grid afterwards (``"latent"``: a coarse token then summarises what the convs saw
at full resolution, such as a small object's motion, instead of fusing an average that erased it). A Conv3d
block fuses them, visual tokens cross-attend to the text states, a projection gives K logits per token, and
sign quantization maps each token into the one shared K-bit codebook. The level's codes are projected back to latent channels, upsampled to the latent grid and
subtracted from the residual; the sum over levels is the quantized latent the backbone decoder consumes.

Decoding needs only the codes: ``codes -> proj_out -> upsample -> sum``. The level convs are per frame in
time by default (``level_temporal_kernel=1``) so that tokens of a latent frame depend only on the causal
backbone features of that frame, which keeps chunked (streamed) encoding exact.
"""

from __future__ import annotations

import abc

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers.modeling_layers import GradientCheckpointingLayer

from .quantizer import binary_quantize, codes_to_ids


# ----------------------------------------------------------------------------- resampling on causal grids
def level_grid(latent_thw: tuple[int, int, int], spatial_factor: int, temporal_factor: int) -> tuple[int, int, int]:
    """Token grid of a level: the first latent frame keeps its own slot, like the causal backbone."""
    t, h, w = latent_thw
    return (1 + math.ceil((t - 1) / temporal_factor), math.ceil(h / spatial_factor), math.ceil(w / spatial_factor))


def _resize_spatial(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    b, c, t = x.shape[:3]
    flat = x.transpose(1, 2).reshape(b * t, c, *x.shape[-2:])
    if size[0] <= flat.shape[-2] and size[1] <= flat.shape[-1]:
        flat = F.adaptive_avg_pool2d(flat, size)
    else:
        flat = F.interpolate(flat, size=size, mode="bilinear" if mode == "trilinear" else "nearest")
    return flat.reshape(b, t, c, *size).transpose(1, 2)


def _resize_time(x: torch.Tensor, frames: int, mode: str) -> torch.Tensor:
    t = x.shape[2]
    if t == frames:
        return x
    if frames == 1:
        return x.mean(dim=2, keepdim=True)
    first, rest = x[:, :, :1], x[:, :, 1:]
    if t == 1:
        return x.expand(-1, -1, frames, -1, -1)
    b, c, tr, h, w = rest.shape
    seq = rest.permute(0, 3, 4, 1, 2).reshape(b * h * w, c, tr)
    if frames - 1 <= tr:
        seq = F.adaptive_avg_pool1d(seq, frames - 1)
    else:
        seq = F.interpolate(seq, size=frames - 1, mode="linear" if mode == "trilinear" else "nearest")
    rest = seq.reshape(b, h, w, c, frames - 1).permute(0, 3, 4, 1, 2)
    return torch.cat([first, rest], dim=2)


def resize_causal(x: torch.Tensor, size: tuple[int, int, int], mode: str = "nearest") -> torch.Tensor:
    """Resize ``[B, C, T, H, W]`` to ``size``: average-pool when shrinking, interpolate when growing.

    Time keeps the causal alignment of the backbone (frame 0 alone, the rest grouped), so a level token of
    latent frame t never mixes in later frames.
    """
    return _resize_spatial(_resize_time(x, size[0], mode), size[1:], mode)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over channels of a ``[B, C, T, H, W]`` tensor, independently at every position."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.movedim(1, -1)).movedim(-1, 1)


def _conv(in_ch: int, out_ch: int, temporal_kernel: int) -> nn.Conv3d:
    return nn.Conv3d(in_ch, out_ch, (temporal_kernel, 3, 3), padding=(0, 1, 1))


class _CausalPad(nn.Module):
    def __init__(self, frames: int):
        super().__init__()
        self.frames = frames

    def forward(self, x):
        return F.pad(x, (0, 0, 0, 0, self.frames, 0), mode="replicate") if self.frames else x


# ----------------------------------------------------------------------------- one level
@dataclass
class LevelOutput:
    """One pyramid level. Token tensors are channel-last: ``[B, t, h, w, K]``."""

    logits: torch.Tensor
    codes: torch.Tensor
    ids: torch.Tensor
    latent: torch.Tensor  # this level's contribution on the latent grid, [B, z_dim, T', H', W']


class TextCrossAttention(nn.Module):
    """Visual tokens (queries) attend to text states (keys/values); the paper's "multi-head attention"."""

    def __init__(self, dim: int, text_dim: int, num_heads: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, num_heads, kdim=text_dim, vdim=text_dim, batch_first=True)

    def forward(self, tokens: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor | None) -> torch.Tensor:
        key_padding_mask = None if text_mask is None else ~text_mask.bool()
        out, _ = self.attn(self.norm(tokens), text, text, key_padding_mask=key_padding_mask, need_weights=False)
        return out


class QuantizerLevel(GradientCheckpointingLayer, abc.ABC):
    """What every quantization level does: build tokens, attend to text, project to K bits, sign-quantize.

    Subclasses say how tokens are built (``_tokens``), what the text attention reads (``_text_keys``), how tokens
    become bit logits (``_to_bits``) and how codes map back to latent channels (``codes_to_latent``). A
    transformers ``GradientCheckpointingLayer``: with checkpointing on (either model class's enable call) and in
    training, its forward is recomputed in backward with the function and ``use_reentrant`` it was given."""

    uses_previous_codes = True
    text_attention: nn.Module | None

    def __init__(self, text_condition_scale: float):
        super().__init__()
        self.text_condition_scale = text_condition_scale

    @abc.abstractmethod
    def _tokens(self, residual, lateral, prev_codes) -> torch.Tensor:
        """Build this level's tokens ``[B, C, t, h, w]``."""

    def _text_keys(self, text: torch.Tensor) -> torch.Tensor:
        return text

    @abc.abstractmethod
    def _to_bits(self, seq: torch.Tensor) -> torch.Tensor:
        """Tokens ``[B, N, C]`` -> bit logits ``[B, N, K]``."""

    @abc.abstractmethod
    def codes_to_latent(self, codes: torch.Tensor) -> torch.Tensor:
        """Channel-last codes ``[B, t, h, w, K]`` -> latent-channel features on the same grid."""

    def forward(
        self,
        residual: torch.Tensor,
        lateral: torch.Tensor | None,
        prev_codes: torch.Tensor | None,
        text: torch.Tensor | None,
        text_mask: torch.Tensor | None,
        grid: tuple[int, int, int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs ``[B, C, t, h, w]`` on one common grid; returns ``(logits, codes)`` channel-last on ``grid``
        (the fused tokens are average-pooled onto it when they are finer; ``None``: the inputs' grid)."""
        tokens = self._tokens(residual, lateral, prev_codes)
        if grid is not None and tuple(tokens.shape[2:]) != tuple(grid):
            tokens = resize_causal(tokens, grid)
        b, c, t, h, w = tokens.shape
        seq = tokens.flatten(2).transpose(1, 2)  # [B, t*h*w, C]
        if text is not None and self.text_attention is not None and self.text_condition_scale != 0:
            seq = seq + self.text_condition_scale * self.text_attention(seq, self._text_keys(text), text_mask)
        # Quantize in float32 whatever the autocast dtype: signs of tiny bf16 values flip.
        with torch.autocast(device_type=seq.device.type, enabled=False):
            logits = self._to_bits(seq.float())
            codes = binary_quantize(logits)
        return logits.reshape(b, t, h, w, -1), codes.reshape(b, t, h, w, -1)


class LaPQLevel(QuantizerLevel):
    """Q_l: fuse (residual, lateral, previous codes), attend to text, project to K bits, sign-quantize."""

    def __init__(
        self,
        *,
        latent_channels: int,
        lateral_channels: int,
        prev_code_bits: int,
        hidden_dim: int,
        codebook_bits: int,
        text_dim: int | None,
        num_heads: int,
        text_condition_scale: float,
        temporal_kernel: int = 1,
    ):
        super().__init__(text_condition_scale)
        in_channels = latent_channels + lateral_channels + prev_code_bits
        self.fuse = nn.Sequential(
            _CausalPad(temporal_kernel - 1),
            _conv(in_channels, hidden_dim, temporal_kernel),
            ChannelLayerNorm(hidden_dim),
            nn.SiLU(),
            _CausalPad(temporal_kernel - 1),
            _conv(hidden_dim, hidden_dim, temporal_kernel),
        )
        self.text_attention = TextCrossAttention(hidden_dim, text_dim, num_heads) if text_dim else None
        self.to_bits = nn.Sequential(nn.LayerNorm(hidden_dim), nn.Linear(hidden_dim, codebook_bits))
        self.proj_out = nn.Conv3d(codebook_bits, latent_channels, 1)

    def _tokens(self, residual, lateral, prev_codes) -> torch.Tensor:
        parts = [residual] + [p for p in (lateral, prev_codes) if p is not None]
        return self.fuse(torch.cat(parts, dim=1))

    def _to_bits(self, seq: torch.Tensor) -> torch.Tensor:
        return self.to_bits(seq)

    def codes_to_latent(self, codes: torch.Tensor) -> torch.Tensor:
        # contiguous() fixes the memory layout, so the encode path (a view of the straight-through codes) and
        # the decode-from-ids path run the same conv kernel and agree bit for bit.
        grid = codes.movedim(-1, 1).contiguous()
        return self.proj_out(grid.to(self.proj_out.weight.dtype))


class ReleaseLevel(QuantizerLevel):
    """The authors' released quantizer stage (``layout="release"``): sign-quantize the latent channels directly
    (no fusion, no projections), with an optional text attention in code space."""

    uses_previous_codes = False

    def __init__(self, *, latent_channels: int, text_dim: int | None, num_heads: int, text_condition_scale: float):
        super().__init__(text_condition_scale)
        width = latent_channels
        self.text_to_code = nn.Sequential(nn.Linear(text_dim, width), nn.LayerNorm(width)) if text_dim else None
        self.text_attention = TextCrossAttention(width, width, num_heads) if text_dim else None

    def _tokens(self, residual, lateral, prev_codes) -> torch.Tensor:
        return residual

    def _text_keys(self, text: torch.Tensor) -> torch.Tensor:
        return self.text_to_code(text)

    def _to_bits(self, seq: torch.Tensor) -> torch.Tensor:
        return seq

    def codes_to_latent(self, codes: torch.Tensor) -> torch.Tensor:
        return codes.movedim(-1, 1).contiguous()


# ----------------------------------------------------------------------------- the pyramid
class LaPQ(nn.Module):
    """All levels, coarse to fine, sharing one K-bit codebook."""

    def __init__(self, config, stage_channels: list[int]):
        super().__init__()
        self.config = config
        self.num_levels = config.num_levels
        self.codebook_bits = config.codebook_bits
        release = config.layout == "release"
        text_dim = config.text_embed_dim if config.use_text_conditioning else None
        temporal_kernel = getattr(config, "level_temporal_kernel", 1)
        self.levels = nn.ModuleList()
        for level in range(config.num_levels):
            lateral_channels = stage_channels[config.lateral_stages[level]] if config.lateral_stages else 0
            self.levels.append(
                ReleaseLevel(
                    latent_channels=config.latent_channels,
                    text_dim=text_dim,
                    num_heads=config.num_attention_heads,
                    text_condition_scale=config.text_condition_scale,
                )
                if release
                else LaPQLevel(
                    latent_channels=config.latent_channels,
                    lateral_channels=lateral_channels,
                    prev_code_bits=config.codebook_bits if level > 0 else 0,
                    hidden_dim=config.level_hidden_dim,
                    codebook_bits=config.codebook_bits,
                    text_dim=text_dim,
                    num_heads=config.num_attention_heads,
                    text_condition_scale=config.text_condition_scale,
                    temporal_kernel=temporal_kernel,
                )
            )

    def grids(self, latent_thw: tuple[int, int, int]) -> list[tuple[int, int, int]]:
        c = self.config
        return [
            level_grid(latent_thw, c.level_spatial_downsample[l], c.level_temporal_downsample[l])
            for l in range(self.num_levels)
        ]

    @property
    def fuses_on_latent_grid(self) -> bool:
        return getattr(self.config, "level_fuse_grid", "level") == "latent"

    def fuse_grids(self, latent_thw: tuple[int, int, int]) -> list[tuple[int, int, int]]:
        """The grid each level's fuse convs run on: its token grid, or the latent grid (``level_fuse_grid``)."""
        return [tuple(latent_thw)] * self.num_levels if self.fuses_on_latent_grid else self.grids(latent_thw)

    def lateral_spatial_factors(self) -> list[int]:
        """How much coarser than the latent grid each level's lateral input is, in space."""
        return [1] * self.num_levels if self.fuses_on_latent_grid else list(self.config.level_spatial_downsample)

    def pool_laterals(self, features: dict[int, torch.Tensor], latent_thw) -> list[torch.Tensor | None]:
        """Each level's lateral feature on its fuse grid (``None`` when the layout has no taps)."""
        if not self.config.lateral_stages:
            return [None] * self.num_levels
        return [
            resize_causal(features[stage], grid, "nearest")
            for stage, grid in zip(self.config.lateral_stages, self.fuse_grids(latent_thw))
        ]

    def _upsample(self, x: torch.Tensor, latent_thw) -> torch.Tensor:
        return resize_causal(x, latent_thw, self.config.upsample_mode)

    def forward(
        self,
        latent: torch.Tensor,
        laterals: list[torch.Tensor | None],
        text: torch.Tensor | None = None,
        text_mask: torch.Tensor | None = None,
        num_levels: int | None = None,
    ) -> tuple[torch.Tensor, list[LevelOutput]]:
        """Quantize ``latent`` ``[B, z, T', H', W']``; returns (quantized latent, per-level outputs)."""
        latent_thw = tuple(latent.shape[2:])
        grids, fuse_grids = self.grids(latent_thw), self.fuse_grids(latent_thw)
        residual = latent
        quantized = torch.zeros_like(latent)
        prev_codes = None
        outputs: list[LevelOutput] = []
        for l in range(num_levels or self.num_levels):
            level = self.levels[l]
            grid, fuse_grid = grids[l], fuse_grids[l]
            prev = resize_causal(prev_codes.movedim(-1, 1), fuse_grid, "nearest") if prev_codes is not None and level.uses_previous_codes else None
            inputs = (resize_causal(residual, fuse_grid), laterals[l], prev, text, text_mask, grid)
            logits, codes = level(*inputs)
            contribution = self._upsample(level.codes_to_latent(codes), latent_thw) * self.config.level_scales[l]
            contribution = contribution.to(latent.dtype)
            quantized = quantized + contribution
            residual = residual - (contribution.detach() if self.config.detach_residual else contribution)
            prev_codes = codes
            outputs.append(LevelOutput(logits=logits, codes=codes, ids=codes_to_ids(codes.detach(), self.config.ids_msb_first), latent=contribution))
        return quantized, outputs

    def codes_to_latent(self, codes: list[torch.Tensor], latent_thw) -> torch.Tensor:
        """Sum of the levels' contributions from their codes alone (the decode-from-ids path)."""
        total = None
        for l, level_codes in enumerate(codes):
            part = self._upsample(self.levels[l].codes_to_latent(level_codes), latent_thw) * self.config.level_scales[l]
            total = part if total is None else total + part
        return total
