"""Spatial tiling for large frames, in bounded memory.

Encoding: the backbone runs on overlapping pixel tiles; each tile's *continuous* latent and its lateral
features (already pooled onto every level's token grid) are blended into full-size canvases with linear
ramps over the overlaps; LaPQ then quantizes the stitched result once. Indices or codes are never averaged
(averaging signs is meaningless), and since quantization happens after stitching there is no seam in the
token grids. Tile origins are kept on multiples of the coarsest level's cell so every tile's pooled grid
lines up with the global one.

Decoding goes through diffusers' own ``AutoencoderKLWan.tiled_decode`` with our tile sizes.
"""

from __future__ import annotations

import math

import torch


def _ramp(length: int, overlap_before: int, overlap_after: int, device, dtype) -> torch.Tensor:
    """1-D blending weights: rising over the leading overlap, falling over the trailing one, 1 elsewhere."""
    w = torch.ones(length, device=device, dtype=dtype)
    if overlap_before > 0:
        n = min(overlap_before, length)
        w[:n] = torch.arange(1, n + 1, device=device, dtype=dtype) / (n + 1)
    if overlap_after > 0:
        n = min(overlap_after, length)
        w[length - n :] = torch.minimum(w[length - n :], torch.arange(n, 0, -1, device=device, dtype=dtype) / (n + 1))
    return w


class _Canvas:
    """Weighted accumulation of tiles at one resolution (``factor`` latent cells per cell)."""

    def __init__(self, factor: int):
        self.factor = factor
        self.sum = None
        self.weight = None

    def add(self, tile: torch.Tensor, origin_hw: tuple[int, int], full_hw: tuple[int, int], overlap_hw: tuple[int, int], has_next: tuple[bool, bool]):
        f = self.factor
        oh, ow = origin_hw[0] // f, origin_hw[1] // f
        th, tw = tile.shape[-2:]
        full = (math.ceil(full_hw[0] / f), math.ceil(full_hw[1] / f))
        if self.sum is None:
            self.sum = tile.new_zeros(*tile.shape[:-2], *full)
            self.weight = tile.new_zeros(full)
        ov_h, ov_w = (max(1, math.ceil(o / f)) if o > 0 else 0 for o in overlap_hw)
        wh = _ramp(th, ov_h if oh > 0 else 0, ov_h if has_next[0] else 0, tile.device, tile.dtype)
        ww = _ramp(tw, ov_w if ow > 0 else 0, ov_w if has_next[1] else 0, tile.device, tile.dtype)
        w = wh[:, None] * ww[None, :]
        self.sum[..., oh : oh + th, ow : ow + tw] += tile * w
        self.weight[oh : oh + th, ow : ow + tw] += w

    def result(self) -> torch.Tensor:
        return self.sum / self.weight.clamp_min(1e-8)


def _tile_origins(size: int, tile: int, stride: int) -> list[int]:
    origins = list(range(0, max(size - tile, 0) + 1, stride))
    if origins[-1] + tile < size:
        origins.append(origins[-1] + stride)
    return origins


def tiled_encode_continuous(model, x: torch.Tensor, encode_tile=None):
    """Padded pixels ``[B, 3, T, H, W]`` -> (normalised latent, laterals per level), built tile by tile.

    ``encode_tile(tile, origin) -> (z, stage features)`` replaces ``model.backbone.encode`` for one tile
    (``origin`` = its top-left latent cell, a stable key): streaming encode passes a function that keeps one
    causal feature cache per tile across time chunks.
    """
    c = model.pyratok_config
    fs = c.spatial_compression
    align = max(c.level_spatial_downsample)
    tile_h = max(align, model.tile_sample_min_height // fs)
    tile_w = max(align, model.tile_sample_min_width // fs)
    # Strides in latent cells, rounded down to a multiple of the coarsest level's cell (at least one cell).
    stride_h = max(align, (model.tile_sample_stride_height // fs) // align * align)
    stride_w = max(align, (model.tile_sample_stride_width // fs) // align * align)
    # Rounding the stride up to the coarse cell must not eat the overlap the caller asked for (it is what hides
    # the seams): grow the tile instead, so each seam keeps at least the requested overlap.
    tile_h = max(tile_h, stride_h + max(0, (model.tile_sample_min_height - model.tile_sample_stride_height) // fs))
    tile_w = max(tile_w, stride_w + max(0, (model.tile_sample_min_width - model.tile_sample_stride_width) // fs))
    stride_h, stride_w = min(stride_h, tile_h), min(stride_w, tile_w)
    full_hw = (x.shape[-2] // fs, x.shape[-1] // fs)
    rows = _tile_origins(full_hw[0], tile_h, stride_h)
    cols = _tile_origins(full_hw[1], tile_w, stride_w)
    latent_canvas = _Canvas(1)
    lateral_canvases = [_Canvas(f) for f in c.level_spatial_downsample]
    stages = list(c.lateral_stages)
    for r_i, r in enumerate(rows):
        for c_i, col in enumerate(cols):
            tile = x[..., r * fs : (r + tile_h) * fs, col * fs : (col + tile_w) * fs]
            z, feats = encode_tile(tile, (r, col)) if encode_tile is not None else model.backbone.encode(tile, stages)
            z = model._normalize(z)
            has_next = (r_i + 1 < len(rows), c_i + 1 < len(cols))
            overlap = (tile_h - stride_h, tile_w - stride_w)
            latent_canvas.add(z, (r, col), full_hw, overlap, has_next)
            if stages:
                laterals = model.lapq.pool_laterals(feats, tuple(z.shape[2:]))
                for canvas, lat in zip(lateral_canvases, laterals):
                    canvas.add(lat, (r, col), full_hw, overlap, has_next)
            del feats
    z = latent_canvas.result()
    laterals = [cv.result() for cv in lateral_canvases] if stages else [None] * c.num_levels
    return z, laterals


def tiled_decode(model, z: torch.Tensor) -> torch.Tensor:
    """Decode a (denormalised) latent with diffusers' Wan tiled decoder and our tile sizes."""
    vae = model.backbone.vae
    saved = (vae.use_tiling, vae.tile_sample_min_height, vae.tile_sample_min_width, vae.tile_sample_stride_height, vae.tile_sample_stride_width)
    vae.enable_tiling(model.tile_sample_min_height, model.tile_sample_min_width, model.tile_sample_stride_height, model.tile_sample_stride_width)
    try:
        return vae._decode(z).sample
    finally:
        (vae.use_tiling, vae.tile_sample_min_height, vae.tile_sample_min_width, vae.tile_sample_stride_height, vae.tile_sample_stride_width) = saved
