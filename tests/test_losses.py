"""Each loss term on small hand-computed cases (value) and for usable gradients.

Expected values are derived in comments next to the assertions. ``gradcheck`` (float64 finite differences)
is used where the function keeps float64; the others cast to float32 by design (mixed-precision safety), so
for them the test checks that gradients are finite, non-zero and point the right way.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pyratok_hf import losses as L
from pyratok_hf.quantizer import bernoulli_kl, bit_logits


def _video(seed=0, shape=(2, 3, 2, 16, 16)):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1


# ----------------------------------------------------------------------------- reconstruction
def test_l1_term_is_mean_absolute_error():
    target = torch.zeros(1, 3, 1, 4, 4)
    recon = torch.full_like(target, 0.5)
    recon[..., 0, 0] = -1.0  # 3 of 48 values differ by 1.0, the other 45 by 0.5
    terms = L.reconstruction_loss(recon, target, l1_weight=1.0, ssim_weight=0.0)
    assert terms["l1"].item() == pytest.approx((3 * 1.0 + 45 * 0.5) / 48)
    assert terms["total"].item() == pytest.approx(terms["l1"].item())


def test_ssim_of_identical_videos_is_one_and_drops_for_different_ones():
    x = _video()
    assert L.ssim(x, x).item() == pytest.approx(1.0, abs=1e-5)
    assert L.ssim_loss(x, x).item() == pytest.approx(0.0, abs=1e-5)
    # Independent noise shares no structure: SSIM ~ 0. (x vs -x is not a good "low" case: with ~zero local
    # means the luminance and structure factors are both ~ -1 and their product is positive.)
    assert abs(L.ssim(x, _video(seed=5)).item()) < 0.1
    assert 0.0 < L.ssim(x, x + 0.3 * _video(seed=1)).item() < 1.0
    # Frames smaller than the 11-px window: the window shrinks to an odd size and stays valid.
    small = _video(shape=(1, 3, 1, 5, 6))
    assert L.ssim(small, small).item() == pytest.approx(1.0, abs=1e-5)
    # Images [B, 3, H, W] work too.
    assert L.ssim(x[:, :, 0], x[:, :, 0]).item() == pytest.approx(1.0, abs=1e-5)


def test_reconstruction_loss_gradients_are_finite_and_reduce_the_loss():
    target = _video()
    recon = (target + 0.2 * _video(seed=2)).clamp(-1, 1).requires_grad_(True)
    total = L.reconstruction_loss(recon, target)["total"]
    total.backward()
    assert torch.isfinite(recon.grad).all() and recon.grad.abs().sum() > 0
    with torch.no_grad():
        stepped = recon - 0.05 * recon.grad / recon.grad.abs().max()
    assert L.reconstruction_loss(stepped, target)["total"] < total


def test_perceptual_loss_with_a_pluggable_network():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1))
    perceptual = L.PerceptualLoss(lambda frames: [net[0](frames), net(frames)])
    x = _video()
    assert perceptual(x, x).item() == pytest.approx(0.0, abs=1e-6)
    y = _video(seed=3).requires_grad_(True)
    value = perceptual(y, x)
    value.backward()
    assert value.item() > 0 and torch.isfinite(y.grad).all() and y.grad.abs().sum() > 0
    terms = L.reconstruction_loss(y.detach(), x, perceptual=perceptual, perceptual_weight=0.5)
    assert terms["total"].item() == pytest.approx(terms["l1"].item() + terms["ssim"].item() + 0.5 * terms["perceptual"].item(), rel=1e-5)


# ----------------------------------------------------------------------------- codebook terms
def test_bernoulli_kl_known_values_and_gradcheck():
    # KL(Bern(0.25) || Bern(0.5)) = 0.25 ln(0.25/0.5) + 0.75 ln(0.75/0.5)
    expected = 0.25 * math.log(0.5) + 0.75 * math.log(1.5)
    assert bernoulli_kl(torch.tensor(0.25), torch.tensor(0.5)).item() == pytest.approx(expected, rel=1e-5)
    assert bernoulli_kl(torch.tensor(0.3), torch.tensor(0.3)).item() == pytest.approx(0.0, abs=1e-7)
    assert bernoulli_kl(torch.tensor(0.9), torch.tensor(0.1)).item() == pytest.approx(0.8 * math.log(9), rel=1e-5)
    p = torch.tensor([0.2, 0.5, 0.7], dtype=torch.float64, requires_grad=True)
    q = torch.tensor([0.4, 0.5, 0.1], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(bernoulli_kl, (p, q))


def test_commitment_loss_value_and_gradient():
    logits = torch.tensor([[0.5, -2.0]], requires_grad=True)
    codes = torch.tensor([[1.0, -1.0]])
    value = L.commitment_loss(logits, codes)
    assert value.item() == pytest.approx(((0.5 - 1) ** 2 + (-2 + 1) ** 2) / 2)  # 0.625
    value.backward()
    assert torch.allclose(logits.grad, torch.tensor([[0.5 - 1.0, -2.0 + 1.0]]))  # 2 (u - c) / N


def test_lfq_entropy_loss_of_undecided_tokens_is_zero_and_sharpening_lowers_it():
    undecided = torch.zeros(8, 4)
    # sample entropy = 4 ln 2 and usage entropy = 4 ln 2: they cancel.
    assert L.lfq_entropy_loss(undecided, 1.0).item() == pytest.approx(0.0, abs=1e-6)
    balanced = torch.tensor([[1.0, -1.0, 1.0, -1.0], [-1.0, 1.0, -1.0, 1.0]]).repeat(4, 1)
    # Confident tokens (sample entropy ~ 0) with balanced usage (4 ln 2): the loss reaches its minimum -4 ln 2.
    assert L.lfq_entropy_loss(balanced, 5.0).item() == pytest.approx(-4 * math.log(2), abs=0.01)
    logits = torch.randn(16, 4, requires_grad=True)
    L.lfq_entropy_loss(logits, 2.0).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_level_kl_is_zero_between_identical_levels_and_positive_otherwise():
    logits = torch.randn(1, 2, 2, 2, 6, generator=torch.Generator().manual_seed(0))
    assert L.level_kl_loss(logits, logits, 1.0).item() == pytest.approx(0.0, abs=1e-6)
    # A fine level [1, 2, 4, 4] pooled onto a coarse [1, 2, 2, 2] grid: constant blocks pool exactly.
    fine = logits.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    assert L.level_kl_loss(fine, logits, 1.0).item() == pytest.approx(0.0, abs=1e-6)
    fine = fine.clone().requires_grad_(True)
    value = L.level_kl_loss(fine, -logits, 1.0)
    value.backward()
    assert value.item() > 0.01 and torch.isfinite(fine.grad).all() and fine.grad.abs().sum() > 0


def test_text_alignment_terms_vanish_when_tokens_match_the_text_code():
    u = torch.randn(2, 1, 1, 1, 5, generator=torch.Generator().manual_seed(1))
    tokens = u.expand(2, 2, 3, 3, 5)
    text_code = bit_logits(u.reshape(2, 5), 3.0)  # the same per-bit probabilities as every token
    assert L.token_text_alignment_loss(tokens, text_code, 3.0).item() == pytest.approx(0.0, abs=1e-6)
    assert L.codebook_text_alignment_loss(tokens, text_code, 3.0).item() == pytest.approx(0.0, abs=1e-6)
    tokens = tokens.clone().requires_grad_(True)
    text_code = -text_code
    text_code.requires_grad_(True)
    value = L.token_text_alignment_loss(tokens, text_code, 3.0) + L.codebook_text_alignment_loss(tokens, text_code, 3.0)
    value.backward()
    assert value.item() > 0 and tokens.grad.abs().sum() > 0
    assert text_code.grad is None or text_code.grad.abs().sum() == 0  # the text side is a stop-gradient target


def test_contrastive_loss_low_for_aligned_batches_high_for_shuffled_ones():
    embeds = torch.eye(4, 8)
    aligned = L.contrastive_loss(embeds, embeds, temperature=0.07)
    # Each row: log(1 + 3 exp(-1/0.07)) ~ 2e-6
    assert aligned.item() < 1e-4
    shuffled = L.contrastive_loss(embeds, embeds[[1, 2, 3, 0]], temperature=0.07)
    assert shuffled.item() > 10.0  # ~ 1/0.07 = 14.3
    assert L.contrastive_loss(embeds[:1], embeds[:1]).item() == 0.0  # nothing to contrast in a batch of one
    video = torch.randn(4, 8, requires_grad=True)
    text = torch.randn(4, 8, requires_grad=True)
    L.contrastive_loss(video, text).backward()
    assert video.grad.abs().sum() > 0 and text.grad.abs().sum() > 0


def test_drift_loss_is_zero_for_identical_features_and_only_moves_the_adapted_side():
    frozen = torch.randn(2, 16, 2, 3, 3, generator=torch.Generator().manual_seed(0))
    assert L.drift_loss(frozen, frozen).item() == pytest.approx(0.0, abs=1e-6)
    adapted = (frozen + 0.5 * torch.randn_like(frozen)).requires_grad_(True)
    anchor = frozen.clone().requires_grad_(True)
    value = L.drift_loss(adapted, anchor, temperature=2.0)
    value.backward()
    assert value.item() > 0 and torch.isfinite(adapted.grad).all() and adapted.grad.abs().sum() > 0
    assert anchor.grad is None  # the frozen anchor is detached
