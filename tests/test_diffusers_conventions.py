"""What a diffusers user reaches for first: ``vae.decode(z).sample``, ``vae(x).sample``, compression ratios."""

from __future__ import annotations

import torch

from conftest import make_tiny_config
from pyratok_hf import AutoencoderPyraTok


def test_decode_latent_positional_forward_sample_and_ratios():
    torch.manual_seed(0)
    vae = AutoencoderPyraTok(make_tiny_config()).eval()
    assert (vae.spatial_compression_ratio, vae.temporal_compression_ratio) == (8, 4)
    video = torch.rand(1, 3, 5, 32, 32) * 2 - 1
    with torch.no_grad():
        enc = vae.encode(video)
        by_keyword = vae.decode(latents=enc.latents).sample
        positional = vae.decode(enc.latents).sample           # diffusers style: a latent tensor first
        from_ids = vae.decode(token_ids=enc.token_ids).sample
        out = vae(video)
    assert torch.equal(positional, by_keyword)
    torch.testing.assert_close(from_ids, by_keyword)
    assert out.sample is out.reconstruction and out.sample.shape == video.shape
