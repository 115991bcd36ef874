"""The training recipe learns: a few dozen steps on real pictures lower the loss, and the speed knobs are exact."""

from __future__ import annotations

import torch
from diffusers import AutoencoderKLWan

from conftest import TINY_BACKBONE, make_tiny_model
from pyratok_hf.modeling_pyratok import set_single_frame_fast_path
from pyratok_hf.training.real_data import RealPictureStream, heldout_real_clips, psnr


def test_single_frame_fast_path_is_exact():
    torch.manual_seed(0)
    vae = AutoencoderKLWan(**TINY_BACKBONE).eval()
    x = torch.rand(2, 3, 1, 32, 32) * 2 - 1
    with torch.no_grad():
        reference = vae._decode(vae._encode(x)[:, :16]).sample
        assert set_single_frame_fast_path(vae, True) > 0
        fast = vae._decode(vae._encode(x)[:, :16]).sample
        set_single_frame_fast_path(vae, False)
        again = vae._decode(vae._encode(x)[:, :16]).sample
    torch.testing.assert_close(fast, reference, atol=1e-5, rtol=1e-4)
    assert torch.equal(again, reference)  # turning it off restores diffusers' own forward


def test_real_stream_is_deterministic_and_in_range():
    stream = RealPictureStream(seed=3)
    a, b = stream.images(7, 4, 32), stream.images(7, 4, 32)
    assert a.shape == (4, 3, 1, 32, 32) and torch.equal(a, b)
    assert not torch.equal(a, stream.images(8, 4, 32))
    assert a.min() >= -1 and a.max() <= 1 and a.std() > 0.05  # real pictures, not a constant
    clips = stream.videos(0, 2, 5, 32)
    assert clips.shape == (2, 3, 5, 32, 32)
    assert (clips[:, :, 1:] - clips[:, :, :-1]).abs().mean() > 1e-3  # the camera moves


def test_heldout_clips_do_not_reuse_training_photos():
    stream = RealPictureStream()
    clips = heldout_real_clips(None, num_frames=5, size=(32, 48))
    training = set(stream.stills)
    assert clips and all(name.split(" ")[0] not in training for name, _ in clips)


def test_backbone_loss_drops_in_a_few_dozen_steps():
    torch.manual_seed(0)
    vae = AutoencoderKLWan(**TINY_BACKBONE)
    set_single_frame_fast_path(vae, True)
    stream = RealPictureStream(seed=0)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=2e-3)
    fixed = stream.images(10**6, 8, 32)
    with torch.no_grad():
        before = psnr(vae._decode(vae._encode(fixed)[:, :16]).sample, fixed)
    for step in range(30):
        x = stream.images(step, 8, 32)
        recon = vae._decode(vae._encode(x)[:, :16]).sample
        loss = (recon - x).abs().mean() + (recon - x).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        after = psnr(vae._decode(vae._encode(fixed)[:, :16]).sample, fixed)
    assert after > before + 1.5, (before, after)


def test_tokenizer_loss_drops_in_a_few_dozen_steps():
    model = make_tiny_model(seed=0).train()
    stream = RealPictureStream(seed=0)
    params = [p for p in model.parameters() if p.requires_grad] + list(model.backbone.vae.decoder.parameters())
    model.backbone.vae.decoder.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=2e-3)
    fixed = stream.images(10**6, 8, 32)[:, :, 0]
    losses = []
    for step in range(30):
        out = model(pixel_values=stream.images(step, 8, 32)[:, :, 0])
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        with torch.no_grad():
            losses.append(float(model(pixel_values=fixed).loss)) if step in (0, 29) else None
    assert losses[1] < losses[0] * 0.9, losses
