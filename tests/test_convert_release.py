"""The release converter, on a synthetic checkpoint with the release's exact key names and config.

The real release (onkarsus13/PyraTok, ~500 MB, Hub-only) cannot be downloaded here, so the test writes a
small one in the same layout (docs/_research_release_layout.md §2a): the backbone keys come from a real
diffusers ``AutoencoderKLWan(...).state_dict()`` with small dims, the ``lapq_*`` keys are hand-made tensors of
the release's shapes, and the config has every key of the Hub ``vae/config.json``.

The expected numbers come from a separate transcription of the release quantizer written below with plain
torch (``reference_release_quantizer``), not from the converter's own reference, so a shared mistake in the
converter would not hide itself.
"""

from __future__ import annotations

import json
import os

import pytest
import torch
from conftest import random_video
from diffusers import AutoencoderKLWan
from safetensors.torch import save_file

from pyratok_hf import AutoencoderPyraTok, PyraTokConfig, PyraTokModel
from pyratok_hf.convert_release import (
    REPORT_NAME,
    check_quantizer_matches_release,
    convert_release,
    map_release_key,
    our_ids_to_release,
    release_ids_to_ours,
    release_indices_to_token_ids,
)
from pyratok_hf.errors import CheckpointError, InvalidInputError
from pyratok_hf.quantizer import ids_to_codes

BITS = 16  # the release quantizes the 16 latent channels directly
NUM_QUANTIZERS = 4
TEXT_IN, TEXT_HIDDEN, TEXT_EMBED = 32, 24, 16
WAN_CONFIG = {
    "base_dim": 8,
    "decoder_base_dim": None,
    "z_dim": 16,
    "dim_mult": [1, 2, 2, 2],
    "num_res_blocks": 1,
    "attn_scales": [],
    "temperal_downsample": [False, True, True],
    "dropout": 0.0,
    "is_residual": False,
    "in_channels": 3,
    "out_channels": 3,
    "patch_size": None,
    "scale_factor_temporal": 4,
    "scale_factor_spatial": 8,
}


# ----------------------------------------------------------------------------- an independent reference
def reference_release_quantizer(z: torch.Tensor, num_quantizers: int):
    """ResidualLaPQunatizer3D.forward of the release, transcribed: returns (quantized, indices [B,T,H,W,Q])."""
    channels = z.shape[1]
    bitmask = torch.tensor([2 ** (channels - 1 - c) for c in range(channels)], dtype=torch.long)
    residual, total, all_indices = z, torch.zeros_like(z), []
    for idx in range(num_quantizers):
        z_q = torch.where(residual >= 0, torch.ones_like(residual), -torch.ones_like(residual))
        z_q_st = z_q + (residual - residual.detach())
        z_q_st = z_q_st * z.new_tensor(2.0 ** (-idx))
        residual = residual - z_q_st.detach()
        total = total + z_q_st
        bits = (z_q > 0).to(torch.long)
        all_indices.append((bits * bitmask.view(1, -1, 1, 1, 1)).sum(dim=1))
    return total, torch.stack(all_indices, dim=-1)


# ----------------------------------------------------------------------------- the synthetic release
def release_config() -> dict:
    return {
        "_class_name": "AutoencoderKLPyraTok",
        "_diffusers_version": "0.37.0.dev0",
        "_name_or_path": "/data/onkar/PyraTok/vae",
        **WAN_CONFIG,
        "latents_mean": [0.1 * i for i in range(16)],
        "latents_std": [1.0 + 0.05 * i for i in range(16)],
        "lapq_codebook_dim": BITS,
        "lapq_commitment_weight": 0.5,
        "lapq_entropy_weight": 0.5,
        "lapq_inv_temperature": 100.0,
        "lapq_num_codes": 2**BITS,
        "lapq_num_quantizers": NUM_QUANTIZERS,
        "lapq_quantize_dropout": False,
        "lapq_quantize_dropout_cutoff_index": 0,
        "lapq_quantize_dropout_multiple_of": 1,
        "lapq_text_condition_heads": 2,
        "lapq_text_condition_scale": 0.7,
        "lapq_text_embed_dim": TEXT_EMBED,
        "lapq_text_input_dim": TEXT_IN,
        "lapq_text_mlp_hidden_dim": TEXT_HIDDEN,
        "use_lapq_quantizer": False,
    }


def release_state_dict(with_text_mlp: bool = True, seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    wan = AutoencoderKLWan(**WAN_CONFIG)
    state = {k: v.clone() for k, v in wan.state_dict().items()}
    gen = torch.Generator().manual_seed(seed + 1)

    def rnd(*shape):
        return torch.randn(*shape, generator=gen)

    if with_text_mlp:
        state.update({
            "lapq_text_mlp.0.weight": rnd(TEXT_HIDDEN, TEXT_IN), "lapq_text_mlp.0.bias": rnd(TEXT_HIDDEN),
            "lapq_text_mlp.2.weight": rnd(TEXT_EMBED, TEXT_HIDDEN), "lapq_text_mlp.2.bias": rnd(TEXT_EMBED),
        })  # fmt: skip
    bitmask = 2 ** torch.arange(BITS - 1, -1, -1, dtype=torch.long)
    codebook = ((torch.arange(2**BITS)[:, None] & bitmask[None, :]) > 0).float() * 2.0 - 1.0
    for i in range(NUM_QUANTIZERS):
        p = f"lapq_quantizer.layers.{i}."
        state.update({
            p + "bitmask": bitmask.clone(), p + "codebook": codebook.clone(),
            p + "cross_attn.in_proj_weight": rnd(3 * BITS, BITS), p + "cross_attn.in_proj_bias": rnd(3 * BITS),
            p + "cross_attn.out_proj.weight": rnd(BITS, BITS), p + "cross_attn.out_proj.bias": rnd(BITS),
            p + "query_norm.weight": rnd(BITS), p + "query_norm.bias": rnd(BITS),
            p + "text_context_norm.weight": rnd(BITS), p + "text_context_norm.bias": rnd(BITS),
            p + "text_proj.weight": rnd(BITS, TEXT_EMBED), p + "text_proj.bias": rnd(BITS),
        })  # fmt: skip
    return state


def write_release(root, state=None, config=None, pickled: bool = False) -> str:
    folder = os.path.join(root, "vae")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config or release_config(), f, indent=2, sort_keys=True)
    state = state if state is not None else release_state_dict()
    if pickled:
        torch.save(state, os.path.join(folder, "diffusion_pytorch_model.bin"))
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, os.path.join(folder, "diffusion_pytorch_model.safetensors"))
    return str(root)


@pytest.fixture(scope="module")
def release_dir(tmp_path_factory):
    return write_release(tmp_path_factory.mktemp("release"))


@pytest.fixture(scope="module")
def converted_dir(release_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("converted") / "pyratok-release"
    report = convert_release(release_dir, str(out))
    assert report.quantizer_check["ids_equal"] and report.quantizer_check["quantized_latent_equal"]
    return str(out)


# ----------------------------------------------------------------------------- tests
def test_converted_folder_loads_in_both_classes_with_release_weights(converted_dir):
    state = release_state_dict()
    for cls in (PyraTokModel, AutoencoderPyraTok):
        model = cls.from_pretrained(converted_dir)
        ours = model.state_dict()
        for key, tensor in state.items():
            target = map_release_key(key)
            if target is not None:
                assert torch.equal(ours[target], tensor), key
    config = PyraTokModel.from_pretrained(converted_dir).config
    assert config.layout == "release" and config.num_levels == NUM_QUANTIZERS and config.codebook_bits == BITS
    assert config.text_hidden_size == TEXT_IN and config.text_proj_hidden_dim == TEXT_HIDDEN and config.text_embed_dim == TEXT_EMBED
    assert config.num_attention_heads == 2 and config.text_condition_scale == 0.0
    assert config.entropy_inv_temperature == 100.0 and config.commitment_weight == 0.5 and config.entropy_weight == 0.5
    assert config.release_metadata["release_text_condition_scale"] == 0.7
    assert config.backbone_config["base_dim"] == 8 and config.backbone_config["dim_mult"] == [1, 2, 2, 2]
    report = json.load(open(os.path.join(converted_dir, REPORT_NAME)))
    assert len(report["dropped_buffers"]) == 2 * NUM_QUANTIZERS
    # Alignment heads have no release counterpart: kept fresh and listed.
    assert {"text_to_code.weight", "video_projection.weight", "text_projection.weight", "level_embedding"} <= set(report["fresh_init_keys"])
    assert not any(k.startswith(("backbone.", "lapq.", "text_proj.")) for k in report["fresh_init_keys"])
    leftovers = [n for n in os.listdir(os.path.dirname(converted_dir)) if n.startswith(".")]
    assert leftovers == []  # the staging folder was renamed into place


def test_tokens_and_reconstruction_match_the_release_forward(converted_dir):
    """Release forward = Wan encode (posterior mode, no normalisation) -> residual LFQ -> Wan decode."""
    wan = AutoencoderKLWan(**WAN_CONFIG).eval()
    wan.load_state_dict({k: v for k, v in release_state_dict().items() if not k.startswith("lapq")})
    model = PyraTokModel.from_pretrained(converted_dir)
    video = random_video(1, 3, 5, 32, 40, seed=3)
    with torch.no_grad():
        z = wan.encode(video).latent_dist.mode()
        ref_latent, ref_indices = reference_release_quantizer(z, NUM_QUANTIZERS)
        ref_video = wan.decode(ref_latent).sample
        enc = model.encode(video)
        ours_video = model.decode(latents=enc.latents, output_shape=enc.input_shape).sample
        ours_from_ids = model.decode(token_ids=enc.token_ids, output_shape=enc.input_shape).sample
    assert torch.equal(enc.continuous_latents, z)
    assert torch.equal(enc.latents, ref_latent)
    assert len(enc.token_ids) == NUM_QUANTIZERS
    for q, ids in enumerate(enc.token_ids):
        assert ids.dtype == torch.int64 and ids.shape == ref_indices.shape[:-1]
        assert torch.equal(ids, ref_indices[..., q])  # the release's own ids (id_bit_order="msb")
        assert torch.equal(our_ids_to_release(release_ids_to_ours(ids, BITS), BITS), ref_indices[..., q])
    assert model.config.id_bit_order == "msb"
    assert all(torch.equal(a, b) for a, b in zip(release_indices_to_token_ids(ref_indices, BITS), enc.token_ids))
    lsb = release_indices_to_token_ids(ref_indices, BITS, id_bit_order="lsb")
    assert all(torch.equal(a, release_ids_to_ours(b, BITS)) for a, b in zip(lsb, enc.token_ids))
    assert torch.equal(ours_video, ref_video)
    assert torch.equal(ours_from_ids, ref_video)


def test_converter_self_check_detects_a_wrong_quantizer(converted_dir):
    model = PyraTokModel.from_pretrained(converted_dir)
    check_quantizer_matches_release(model)  # passes on the faithful model
    model.pyratok_config.level_scales = [1.0] * NUM_QUANTIZERS  # not what the release computes
    with pytest.raises(CheckpointError, match="does not reproduce"):
        check_quantizer_matches_release(model)


def test_id_conversion_helpers_round_trip_and_match_the_release_codebook():
    gen = torch.Generator().manual_seed(0)
    ids16 = torch.randint(0, 2**16, (3, 2, 4, 5), generator=gen)
    assert torch.equal(our_ids_to_release(release_ids_to_ours(ids16, 16), 16), ids16)
    # Release id 1 is the pattern [-1]*15 + [+1] (channel 15 set); ours puts channel 15 at bit 15.
    assert release_ids_to_ours(1, 16) == 2**15 and our_ids_to_release(2**15, 16) == 1
    # Row k of the release codebook is the code our ids_to_codes gives for release_ids_to_ours(k).
    bitmask = 2 ** torch.arange(15, -1, -1)
    rows = torch.tensor([0, 1, 2, 12345, 65535])
    release_rows = ((rows[:, None] & bitmask[None, :]) > 0).float() * 2 - 1
    assert torch.equal(ids_to_codes(release_ids_to_ours(rows, 16), 16), release_rows)
    # 64 bits: every int64 is valid, including negative ids (bit 63 set).
    ids64 = torch.tensor([-1, -(2**63), 2**63 - 1, 0, 1, -12345])
    assert torch.equal(release_ids_to_ours(our_ids_to_release(ids64, 64), 64), ids64)
    assert int(release_ids_to_ours(torch.tensor(1), 64)) == -(2**63)
    with pytest.raises(InvalidInputError, match="-1"):
        release_ids_to_ours(torch.tensor([-1, 3]), 16)  # the release's "dropped stage" marker
    with pytest.raises(InvalidInputError):
        release_ids_to_ours(torch.tensor([1.0]), 16)


def test_converter_accepts_a_checkpoint_without_the_text_mlp(tmp_path):
    src = write_release(tmp_path / "src", state=release_state_dict(with_text_mlp=False))
    report = convert_release(src, str(tmp_path / "out"))
    assert {"text_proj.0.weight", "text_proj.2.bias"} <= set(report.fresh_init_keys)
    assert any("lapq_text_mlp" in note for note in report.notes)
    PyraTokModel.from_pretrained(str(tmp_path / "out"))


def test_converter_accepts_a_checkpoint_built_without_text_dims(tmp_path):
    """The release code's default (lapq_text_embed_dim=None) still builds each stage's cross-attention and
    norms (but no text_proj); they are never used, so they are dropped, listed, and tokens still match."""
    config = {k: v for k, v in release_config().items() if not k.startswith(("lapq_text_embed", "lapq_text_input", "lapq_text_mlp"))}
    state = {k: v for k, v in release_state_dict(with_text_mlp=False).items() if ".text_proj." not in k}
    src = write_release(tmp_path / "src", state=state, config=config)
    report = convert_release(src, str(tmp_path / "out"))
    assert report.quantizer_check["ids_equal"] and report.quantizer_check["quantized_latent_equal"]
    assert len(report.dropped_unused_keys) == NUM_QUANTIZERS * 8  # cross_attn (4) + query_norm (2) + text_context_norm (2)
    model = PyraTokModel.from_pretrained(str(tmp_path / "out"))
    assert not model.config.use_text_conditioning
    wan = AutoencoderKLWan(**WAN_CONFIG).eval()
    wan.load_state_dict({k: v for k, v in state.items() if not k.startswith("lapq")})
    video = random_video(1, 3, 5, 32, 40, seed=5)
    with torch.no_grad():
        _, ref_indices = reference_release_quantizer(wan.encode(video).latent_dist.mode(), NUM_QUANTIZERS)
        enc = model.encode(video)
    assert all(torch.equal(ids, ref_indices[..., q]) for q, ids in enumerate(enc.token_ids))


def test_converter_refuses_pickle_only_sources_unless_allowed(tmp_path):
    src = write_release(tmp_path / "src", pickled=True)
    with pytest.raises(CheckpointError, match="pickle"):
        convert_release(src, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    report = convert_release(src, str(tmp_path / "out"), allow_pickle=True)
    assert report.quantizer_check["ids_equal"]


def test_converter_refuses_unknown_and_misshaped_keys(tmp_path):
    state = release_state_dict()
    state["lapq_quantizer.layers.0.project_in.weight"] = torch.zeros(16, 16)
    src = write_release(tmp_path / "unknown", state=state)
    with pytest.raises(CheckpointError, match="project_in"):
        convert_release(src, str(tmp_path / "out"))
    state = release_state_dict()
    state["lapq_quantizer.layers.1.text_proj.weight"] = torch.zeros(16, 7)
    src = write_release(tmp_path / "shape", state=state)
    with pytest.raises(CheckpointError, match=r"layers\.1\.text_proj\.weight"):
        convert_release(src, str(tmp_path / "out"))
    state = release_state_dict()
    state["lapq_quantizer.layers.2.bitmask"] = torch.arange(16)  # wrong bit order
    src = write_release(tmp_path / "buffer", state=state)
    with pytest.raises(CheckpointError, match="bitmask"):
        convert_release(src, str(tmp_path / "out"))
    state = release_state_dict()
    del state["encoder.conv_in.weight"]
    src = write_release(tmp_path / "missing", state=state)
    with pytest.raises(CheckpointError, match="conv_in"):
        convert_release(src, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []  # no staging folder left behind


def test_converter_refuses_a_config_it_cannot_express(tmp_path):
    config = release_config()
    config["lapq_codebook_dim"], config["lapq_num_codes"] = 8, 256  # z_dim 16 != 8: the release crashes here
    src = write_release(tmp_path / "src", config=config)
    with pytest.raises(CheckpointError, match="z_dim"):
        convert_release(src, str(tmp_path / "out"))
    plain_wan = {"_class_name": "AutoencoderKLWan", **WAN_CONFIG}
    src = write_release(tmp_path / "wan", config=plain_wan)
    with pytest.raises(CheckpointError, match="from_backbone"):
        convert_release(src, str(tmp_path / "out2"))


def test_hub_id_offline_fails_fast_with_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="Offline|download"):
        convert_release("onkarsus13/PyraTok", str(tmp_path / "out"))
    with pytest.raises(CheckpointError, match="does not exist"):
        convert_release(str(tmp_path / "no" / "such" / "folder"), str(tmp_path / "out"))


def test_command_line_entry_points(release_dir, tmp_path, capsys, monkeypatch):
    import sys

    from pyratok_hf import cli

    monkeypatch.setattr(sys, "argv", list(sys.argv))  # cli.main rewrites sys.argv
    from pyratok_hf.convert_release import main

    out = tmp_path / "cli-out"
    assert main([release_dir, str(out), "--subfolder", "vae"]) == 0
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    assert "fresh init" in capsys.readouterr().out
    assert main([release_dir, str(out)]) == 2  # exists: refused without --overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert cli.main(["convert-release", release_dir, str(out), "--overwrite"]) == 0
    assert sorted(os.listdir(tmp_path)) == ["cli-out"]


def test_release_numerics_normalise_in_the_backbone_dtype():
    """norm_upcast=False (the release preset): Wan's RMS norms skip diffusers' float32 upcast, as the release does."""
    from pyratok_hf.modeling_pyratok import set_norm_upcast

    config = PyraTokConfig.from_preset("release", backbone_config={**WAN_CONFIG})
    assert config.norm_upcast is False
    model = PyraTokModel(config)
    norm = next(m for m in model.backbone.vae.modules() if type(m).__name__ == "WanRMS_norm").to(torch.bfloat16)
    x = torch.randn(1, norm.gamma.shape[0], 2, 4, 4, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    release = torch.nn.functional.normalize(x, dim=1) * norm.scale * norm.gamma + norm.bias
    assert torch.equal(norm(x), release)
    set_norm_upcast(model.backbone.vae, True)  # diffusers' numerics: normalise in float32, then round
    upcast = torch.nn.functional.normalize(x.float(), dim=1).to(torch.bfloat16) * norm.scale * norm.gamma + norm.bias
    assert torch.equal(norm(x), upcast)
    x32 = x.float()
    norm32 = norm.float()
    set_norm_upcast(model.backbone.vae, False)
    assert torch.equal(norm32(x32), torch.nn.functional.normalize(x32, dim=1) * norm32.scale * norm32.gamma + norm32.bias)
