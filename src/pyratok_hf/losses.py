"""PyraTok's loss terms, each a small function of tensors (tested one by one in ``tests/test_losses.py``).

Total (paper §3.2.4): ``2.5 * L_recon + 2.5 * L_codebook + 1.5 * L_AR + 0.6 * L_drift``.

* ``L_recon = L1 + (1 - SSIM) + perceptual`` (the perceptual network is pluggable: none is available offline).
* ``L_codebook`` (Eq. 2), per level (every per-bit term is a mean over bits, so weights do not depend on K): commitment, entropy (per-sample minus codebook usage), KL between
  adjacent levels, token-text and codebook-text alignment — all per bit, never over the 2^K codes — plus an
  optional contrastive video-text term that builds the shared space used for zero-shot tasks.
* ``L_AR`` comes from a token prior (:mod:`pyratok_hf.prior`) through :class:`ARLossHook`.
* ``L_drift``: KL between adapted and frozen encoder features.
"""

from __future__ import annotations

from typing import Callable, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from .quantizer import bernoulli_kl, bit_logits, commitment_loss, entropy_terms, lfq_entropy_loss  # noqa: F401


# ----------------------------------------------------------------------------- reconstruction
def _frames(video: torch.Tensor) -> torch.Tensor:
    """``[B, C, T, H, W]`` -> ``[B*T, C, H, W]`` (images pass through)."""
    if video.dim() == 4:
        return video
    b, c, t, h, w = video.shape
    return video.transpose(1, 2).reshape(b * t, c, h, w)


def _gaussian_window(size: int, sigma: float, device, dtype) -> torch.Tensor:
    coords = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0, window_size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM over frames and channels (Gaussian window, valid region), pure torch and differentiable.

    The window shrinks (to an odd size) for frames smaller than ``window_size``.
    """
    xf, yf = _frames(x).float(), _frames(y).float()
    size = min(window_size, xf.shape[-2], xf.shape[-1])
    size = size if size % 2 == 1 else size - 1
    channels = xf.shape[1]
    window = _gaussian_window(size, sigma, xf.device, xf.dtype).expand(channels, 1, size, size)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def filt(z):
        return F.conv2d(z, window, groups=channels)

    mu_x, mu_y = filt(xf), filt(yf)
    var_x = filt(xf * xf) - mu_x**2
    var_y = filt(yf * yf) - mu_y**2
    cov = filt(xf * yf) - mu_x * mu_y
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.mean()


def ssim_loss(x: torch.Tensor, y: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    return 1.0 - ssim(x, y, data_range=data_range)


class PerceptualLoss(nn.Module):
    """LPIPS-style distance on the feature maps of any frozen image network.

    ``feature_extractor(images [N, 3, H, W] in [-1, 1]) -> list of feature maps``. Features are unit-normalised
    over channels and compared with a squared distance averaged over positions, as LPIPS does without its
    learned channel weights. No pretrained network is reachable offline: pass one (e.g. a wrapper over a
    transformers vision model's hidden states); tests use a random-init conv net.
    """

    def __init__(self, feature_extractor: Callable[[torch.Tensor], list[torch.Tensor]]):
        super().__init__()
        self.feature_extractor = feature_extractor
        if isinstance(feature_extractor, nn.Module):
            feature_extractor.requires_grad_(False).eval()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fx, fy = self.feature_extractor(_frames(x)), self.feature_extractor(_frames(y))
        total = x.new_zeros(())
        for a, b in zip(fx, fy):
            total = total + ((F.normalize(a, dim=1) - F.normalize(b, dim=1)) ** 2).sum(1).mean()
        return total


def reconstruction_loss(
    reconstruction: torch.Tensor,
    target: torch.Tensor,
    l1_weight: float = 1.0,
    ssim_weight: float = 1.0,
    perceptual_weight: float = 1.0,
    perceptual: nn.Module | None = None,
    motion_weight: float = 0.0,
) -> dict[str, torch.Tensor]:
    """L1 + SSIM (+ perceptual). ``motion_weight`` > 0 adds ``motion_weight * motion_weighted_l1``: small moving
    objects on large static backgrounds (the procedural corpus: ~3 % of the pixels) otherwise barely move the
    loss, and a tokenizer learns to drop them."""
    terms = {
        "l1": F.l1_loss(reconstruction.float(), target.float()),
        "ssim": ssim_loss(reconstruction, target),
    }
    if motion_weight and target.dim() == 5 and target.shape[2] > 2:
        terms["motion_l1"] = motion_weighted_l1(reconstruction, target)
    if perceptual is not None and perceptual_weight:
        terms["perceptual"] = perceptual(reconstruction, target)
    total = l1_weight * terms["l1"] + ssim_weight * terms["ssim"]
    if "perceptual" in terms:
        total = total + perceptual_weight * terms["perceptual"]
    if "motion_l1" in terms:
        total = total + motion_weight * terms["motion_l1"]
    terms["total"] = total
    return terms


def motion_weighted_l1(reconstruction: torch.Tensor, target: torch.Tensor, threshold: float = 0.15) -> torch.Tensor:
    """L1 averaged over the pixels that move: farther than ``threshold`` (in [-1, 1] units, any channel) from
    their temporal median in the target video ``[B, C, T, H, W]``. Zero when nothing moves."""
    target = target.float()
    background = target.median(dim=2, keepdim=True).values
    moving = ((target - background).abs().amax(dim=1, keepdim=True) > threshold).float()
    error = (reconstruction.float() - target).abs().mean(dim=1, keepdim=True)
    return (error * moving).sum() / moving.sum().clamp_min(1.0)


# ----------------------------------------------------------------------------- codebook (Eq. 2), per bit
def pool_bit_probs(probs: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
    """Average channel-last per-bit probabilities ``[B, t, h, w, K]`` onto a coarser token grid."""
    from .lapq import resize_causal

    return resize_causal(probs.movedim(-1, 1), grid).movedim(1, -1)


def level_kl_loss(fine_logits: torch.Tensor, coarse_logits: torch.Tensor, inv_temperature: float) -> torch.Tensor:
    """KL(q(l) || sg(q(l-1))) per bit, after pooling level l's probabilities onto level l-1's grid."""
    p_fine = torch.sigmoid(bit_logits(fine_logits.float(), inv_temperature))
    p_coarse = torch.sigmoid(bit_logits(coarse_logits.float(), inv_temperature)).detach()
    p_fine = pool_bit_probs(p_fine, tuple(coarse_logits.shape[1:4]))
    return bernoulli_kl(p_fine, p_coarse).mean()


def token_text_alignment_loss(logits: torch.Tensor, text_code_logits: torch.Tensor, inv_temperature: float) -> torch.Tensor:
    """E_tokens KL(q_i || sg(e_t)): each token's per-bit distribution against the text's per-bit code.

    ``logits`` ``[B, ..., K]``, ``text_code_logits`` ``[B, K]`` (a linear head on the pooled text).
    """
    p_tok = torch.sigmoid(bit_logits(logits.float(), inv_temperature)).reshape(logits.shape[0], -1, logits.shape[-1])
    p_txt = torch.sigmoid(text_code_logits.float()).detach().unsqueeze(1)
    return bernoulli_kl(p_tok, p_txt).mean()


def codebook_text_alignment_loss(logits: torch.Tensor, text_code_logits: torch.Tensor, inv_temperature: float) -> torch.Tensor:
    """E_{c in C} KL(c || sg(e_t)) with c drawn by usage: the per-bit usage marginal of each clip vs the text code."""
    p_tok = torch.sigmoid(bit_logits(logits.float(), inv_temperature)).reshape(logits.shape[0], -1, logits.shape[-1])
    usage = p_tok.mean(1)
    return bernoulli_kl(usage, torch.sigmoid(text_code_logits.float()).detach()).mean()


def text_code_fit_loss(logits: torch.Tensor, text_code_logits: torch.Tensor, inv_temperature: float) -> torch.Tensor:
    """KL(sg(usage) || p_text): trains the text-code head to predict each clip's per-bit usage.

    The two alignment terms above stop the gradient on the text side (Eq. 2's sg(e_t)), so without this term
    the head that turns text into a per-bit code would keep its random initialisation.
    """
    p_tok = torch.sigmoid(bit_logits(logits.float(), inv_temperature)).reshape(logits.shape[0], -1, logits.shape[-1])
    return bernoulli_kl(p_tok.mean(1).detach(), torch.sigmoid(text_code_logits.float())).mean()


def contrastive_loss(video_embeds: torch.Tensor, text_embeds: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """Symmetric InfoNCE over the batch (zero for a batch of one, where there is nothing to contrast)."""
    if video_embeds.shape[0] < 2:
        return video_embeds.new_zeros(()).float()
    v = F.normalize(video_embeds.float(), dim=-1)
    t = F.normalize(text_embeds.float(), dim=-1)
    logits = v @ t.t() / temperature
    target = torch.arange(v.shape[0], device=v.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


# ----------------------------------------------------------------------------- drift
def drift_loss(adapted: torch.Tensor, frozen: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """KL(softmax(frozen / tau) || softmax(adapted / tau)) over channels, averaged over positions.

    Anchors LoRA-adapted features to a frozen encoder (paper: DINOv3; offline default: the backbone's own
    encoder with adapters disabled). Both ``[B, C, ...]``; the frozen side carries no gradient.
    """
    a = F.log_softmax(adapted.float() / temperature, dim=1)
    f = F.log_softmax(frozen.detach().float() / temperature, dim=1)
    return (f.exp() * (f - a)).sum(1).mean()


# ----------------------------------------------------------------------------- the AR plug
class ARLossHook(Protocol):
    """What the tokenizer needs from a token prior to add L_AR during training (stage 2).

    Called with the per-level straight-through codes (``[B, t, h, w, K]``, differentiable) and the text
    encoding; returns the scalar ``-sum_l log p(q(l) | q(<l), e_text)`` averaged over the batch. Gradients
    reach the quantizer through the prior's bit projection.
    """

    def __call__(self, level_codes: list[torch.Tensor], text_states, text_mask) -> torch.Tensor: ...
