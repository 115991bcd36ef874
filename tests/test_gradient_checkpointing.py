"""Gradient checkpointing reaches the Wan encoder/decoder chunks and LaPQ, and changes no number."""

from __future__ import annotations

import pytest
import torch

from conftest import make_tiny_model, random_video
from pyratok_hf import AutoencoderPyraTok


def _grads(model, video):
    model.zero_grad(set_to_none=True)
    model.backbone.requires_grad_(True)
    out = model(video, return_loss=True) if not isinstance(model, AutoencoderPyraTok) else model(video, return_loss=True)
    out.loss.backward()
    return out.loss.detach(), {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def _count_recomputes(module):
    calls = []
    handle = module.register_forward_pre_hook(lambda *_: calls.append(1))
    return calls, handle


@pytest.mark.parametrize("kwargs", [None, {"use_reentrant": False}, {"use_reentrant": True}])
def test_checkpointed_gradients_equal_plain_ones(kwargs):
    model = make_tiny_model().train()
    video = random_video(1, 3, 9, 32, 32, seed=7)
    loss, plain = _grads(model, video)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    assert model.backbone.vae.encoder.gradient_checkpointing and all(level.gradient_checkpointing for level in model.lapq.levels)
    calls, handle = _count_recomputes(model.backbone.vae.encoder)
    loss_ckpt, ckpt = _grads(model, video)
    handle.remove()
    assert len(calls) == 2 * 3  # 3 chunks (1 + 4 + 4 frames), each run again in backward
    torch.testing.assert_close(loss_ckpt, loss)
    assert plain.keys() == ckpt.keys() and any(k.startswith("backbone.vae.encoder.") for k in ckpt)
    for name in plain:
        torch.testing.assert_close(ckpt[name], plain[name], atol=1e-6, rtol=1e-4, msg=name)
    model.gradient_checkpointing_disable()
    assert not model.backbone.vae.decoder.gradient_checkpointing


def test_diffusers_class_checkpoints_too():
    source = make_tiny_model()
    vae = AutoencoderPyraTok(source.config).train()
    vae.load_state_dict(source.state_dict())
    video = random_video(1, 3, 5, 32, 32, seed=8)
    loss, plain = _grads(vae, video)
    vae.enable_gradient_checkpointing()
    assert vae.is_gradient_checkpointing
    calls, handle = _count_recomputes(vae.backbone.vae.decoder)
    loss_ckpt, ckpt = _grads(vae, video)
    handle.remove()
    assert len(calls) == 2 * 2  # 2 latent frames decoded, each again in backward
    torch.testing.assert_close(loss_ckpt, loss)
    for name in plain:
        torch.testing.assert_close(ckpt[name], plain[name], atol=1e-6, rtol=1e-4, msg=name)
