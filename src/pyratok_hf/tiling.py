"""Spatial tiling for large frames, in bounded memory.

Encoding: the backbone runs on overlapping pixel tiles; each tile's *continuous* latent and its lateral
features (already pooled onto every level's token grid) are blended into full-size canvases with linear
ramps over the overlaps; LaPQ then quantizes the stitched result once. Indices or codes are never averaged
(averaging signs is meaningless), and since quantization happens after stitching there is no seam in the
token grids. Tile origins are kept on multiples of the coarsest level's cell so every tile's pooled grid
lines up with the global one.

Decoding uses diffusers' ``AutoencoderKLWan.tiled_decode`` arithmetic with our tile sizes, blending row by row into
a preallocated output to keep memory near the output's size.
"""

from __future__ import annotations

import math

import torch

from .backbone import CausalDecoder


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
    """Decode a (denormalised) latent tile by tile with our tile sizes.

    Same tiles, per-tile causal decoding and blend arithmetic as diffusers' ``AutoencoderKLWan.tiled_decode`` (so the
    same output, bit for bit), but each row of tiles is blended into a preallocated output as soon as it is decoded:
    peak memory is the output plus two rows of tiles, where diffusers keeps every decoded tile, then their cropped
    copies, then the concatenation (about 3.5x the output; 2 GB extra for a 5-frame 4K clip).
    """
    vae = model.backbone.vae
    fs = vae.spatial_compression_ratio
    tile_h, tile_w = model.tile_sample_min_height // fs, model.tile_sample_min_width // fs
    if vae.config.patch_size is not None or not (z.shape[-2] > tile_h or z.shape[-1] > tile_w):
        return _diffusers_tiled_decode(model, z)  # patchified (Wan 2.2) backbones, or a single tile: diffusers' own path
    stride_h, stride_w = model.tile_sample_stride_height // fs, model.tile_sample_stride_width // fs
    out_stride_h, out_stride_w = model.tile_sample_stride_height, model.tile_sample_stride_width
    blend_h = model.tile_sample_min_height - model.tile_sample_stride_height
    blend_w = model.tile_sample_min_width - model.tile_sample_stride_width
    height, width = z.shape[-2], z.shape[-1]
    out = None
    previous_row = None
    for row_index, i in enumerate(range(0, height, stride_h)):
        row = [CausalDecoder(model.backbone)(z[:, :, :, i : i + tile_h, j : j + tile_w]) for j in range(0, width, stride_w)]  # fresh cache per tile
        if out is None:
            out = row[0].new_empty(*row[0].shape[:3], height * fs, width * fs)
        for col_index, tile in enumerate(row):
            # In place, in diffusers' order: the tile above and the one to the left are already blended.
            if previous_row is not None:
                tile = vae.blend_v(previous_row[col_index], tile, blend_h)
            if col_index > 0:
                tile = vae.blend_h(row[col_index - 1], tile, blend_w)
            top, left = row_index * out_stride_h, col_index * out_stride_w
            crop = tile[:, :, :, : min(out_stride_h, out.shape[-2] - top), : min(out_stride_w, out.shape[-1] - left)]
            out[:, :, :, top : top + crop.shape[-2], left : left + crop.shape[-1]] = crop
        previous_row = row
    return out.clamp_(-1.0, 1.0)


def _diffusers_tiled_decode(model, z: torch.Tensor) -> torch.Tensor:
    vae = model.backbone.vae
    saved = (vae.use_tiling, vae.tile_sample_min_height, vae.tile_sample_min_width, vae.tile_sample_stride_height, vae.tile_sample_stride_width)
    vae.enable_tiling(model.tile_sample_min_height, model.tile_sample_min_width, model.tile_sample_stride_height, model.tile_sample_stride_width)
    try:
        return vae._decode(z).sample
    finally:
        (vae.use_tiling, vae.tile_sample_min_height, vae.tile_sample_min_width, vae.tile_sample_stride_height, vae.tile_sample_stride_width) = saved
