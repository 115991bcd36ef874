"""Tiling and slicing: bounded-memory paths give the same token grids and output shapes as the direct path.

Seams. Tiled encoding runs the backbone on overlapping pixel tiles, blends the *continuous* latents, then
quantizes once. The Wan encoder's receptive field (stacked 3x3 convs at four scales, zero padding at each
tile's border) is larger than a 64-px tile, so tiled latents cannot equal untiled ones; the difference is
concentrated at the seams and shrinks as the overlap grows. Measured on this tiny random model (relative L2
error of the continuous latent, 1x3x5x128x160 noise clip):

* tiles 64 px / stride 48 px (tile origins snap to the coarsest level's 64-px cell, so the tile grows to
  80 px to keep the requested 16 px overlap): 0.24 - 0.26;
* tiles 128 px / stride 64 px (64 px overlap): 0.045 - 0.052.

The tolerances below (0.35 and 0.08) sit above those measurements with margin for other CPUs, and the second
test also checks that the larger overlap is clearly better, which is what blending is for.
"""

from __future__ import annotations

import pytest
import torch
from conftest import make_tiny_model, random_video

from pyratok_hf.errors import ResourceLimitError
from pyratok_hf.modeling_pyratok import PyraTokCore


def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.fixture(scope="module")
def model():
    return make_tiny_model()


@pytest.fixture(scope="module")
def clip():
    return random_video(1, 3, 5, 128, 160, seed=31)


@pytest.fixture(scope="module")
def untiled(model, clip):
    with torch.no_grad():
        return model.encode(clip)


def test_tiled_encode_decode_keeps_grids_and_shapes(model, clip, untiled):
    model.enable_tiling(tile_sample_min_height=64, tile_sample_min_width=64, tile_sample_stride_height=48, tile_sample_stride_width=48)
    try:
        with torch.no_grad():
            tiled = model.encode(clip)
            video = model.decode(token_ids=tiled.token_ids, output_shape=tiled.input_shape).sample
    finally:
        model.disable_tiling()
    assert [ids.shape for ids in tiled.token_ids] == [ids.shape for ids in untiled.token_ids]
    assert [tuple(ids.shape[1:]) for ids in tiled.token_ids] == model.token_grids(5, 128, 160)
    assert tiled.latents.shape == untiled.latents.shape
    assert video.shape == clip.shape
    assert torch.isfinite(video).all() and video.abs().max() <= 1.0
    error = _relative_error(tiled.continuous_latents, untiled.continuous_latents)
    print(f"seam check, 64/48 px tiles: relative latent error {error:.4f}")
    assert error < 0.35


def test_more_overlap_gives_smaller_seam_error(model, clip, untiled):
    model.enable_tiling(tile_sample_min_height=128, tile_sample_min_width=128, tile_sample_stride_height=64, tile_sample_stride_width=64)
    try:
        with torch.no_grad():
            tiled = model.encode(clip)
    finally:
        model.disable_tiling()
    error = _relative_error(tiled.continuous_latents, untiled.continuous_latents)
    print(f"seam check, 128/64 px tiles: relative latent error {error:.4f}")
    assert error < 0.08
    assert [ids.shape for ids in tiled.token_ids] == [ids.shape for ids in untiled.token_ids]


def _count_calls(monkeypatch, name):
    """Record calls of the model method ``name`` (the tiled workers of PyraTokCore)."""
    calls = []
    original = getattr(PyraTokCore, name)

    def wrapper(*args, **kwargs):
        calls.append(name)
        return original(*args, **kwargs)

    monkeypatch.setattr(PyraTokCore, name, wrapper)
    return calls


def test_auto_tiling_triggers_above_max_pixels_untiled(monkeypatch):
    model = make_tiny_model(max_pixels_untiled=32 * 32, auto_tiling=True)
    encode_calls = _count_calls(monkeypatch, "_tiled_encode_continuous")
    decode_calls = _count_calls(monkeypatch, "_tiled_decode")
    with torch.no_grad():
        small = model.encode(random_video(1, 3, 1, 32, 32))  # exactly at the limit: direct path
        assert encode_calls == []
        model.decode(latents=small.latents)
        assert decode_calls == []
        enc = model.encode(random_video(1, 3, 1, 48, 40))  # 1920 px > 1024: tiled automatically
        video = model.decode(token_ids=enc.token_ids, output_shape=enc.input_shape).sample
    assert encode_calls == ["_tiled_encode_continuous"] and decode_calls == ["_tiled_decode"]
    assert video.shape == (1, 3, 1, 48, 40)


def test_resource_limit_error_without_auto_tiling():
    model = make_tiny_model(max_pixels_untiled=32 * 32, auto_tiling=False)
    big = random_video(1, 3, 1, 48, 40)
    with pytest.raises(ResourceLimitError, match="enable_tiling"):
        model.encode(big)
    with pytest.raises(ResourceLimitError, match="max_pixels_untiled=1024"):
        model.decode(latents=torch.zeros(1, 16, 1, 6, 5))
    assert issubclass(ResourceLimitError, MemoryError)
    model.enable_tiling(tile_sample_min_height=32, tile_sample_min_width=32, tile_sample_stride_height=24, tile_sample_stride_width=24)
    with torch.no_grad():
        enc = model.encode(big)  # explicit tiling lifts the limit
    assert [tuple(ids.shape[1:]) for ids in enc.token_ids] == model.token_grids(1, 48, 40)


def test_slicing_matches_the_batched_path():
    """One video at a time gives the same tokens; float results agree to ~1e-6 (not bit for bit: the CPU
    convolution picks a different kernel blocking for batch 1 than for batch 2)."""
    model = make_tiny_model()
    videos = random_video(2, 3, 1, 32, 32, seed=32)
    with torch.no_grad():
        batched = model.encode(videos)
        batched_video = model.decode(latents=batched.latents, output_shape=batched.input_shape).sample
        model.enable_slicing()
        sliced = model.encode(videos)
        sliced_video = model.decode(latents=batched.latents, output_shape=batched.input_shape).sample
        model.disable_slicing()
    for ids_b, ids_s, logits in zip(batched.token_ids, sliced.token_ids, batched.level_logits):
        decided = logits.abs().amin(dim=-1) > 1e-4  # a logit this close to 0 could flip on float noise
        assert decided.float().mean() > 0.95
        assert torch.equal(ids_b[decided], ids_s[decided])
    assert torch.allclose(sliced.continuous_latents, batched.continuous_latents, atol=1e-5)
    assert torch.allclose(sliced_video, batched_video, atol=1e-5)
    assert sliced_video.shape == videos.shape
