"""Saving and loading: one folder format read by PyraTokModel, transformers AutoModel and the diffusers
AutoencoderPyraTok, with bit-identical outputs; safe defaults (safetensors only, strict shapes)."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch
from conftest import make_tiny_model, random_video
from transformers import AutoModel

from pyratok_hf import AutoencoderPyraTok, PyraTokModel
from pyratok_hf.errors import CheckpointError


@pytest.fixture(scope="module")
def original():
    return make_tiny_model(seed=3)


@pytest.fixture(scope="module")
def saved_dir(original, tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved") / "tiny"
    original.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def reference(original):
    video = random_video(1, 3, 5, 32, 32, seed=21)
    return video, _outputs(original, video)


def _outputs(model, video):
    with torch.no_grad():
        enc = model.encode(video)
        recon = model.decode(token_ids=enc.token_ids, output_shape=enc.input_shape).sample
    return enc.token_ids, recon


def _assert_identical(model, reference):
    video, (ids, recon) = reference
    got_ids, got_recon = _outputs(model, video)
    assert all(torch.equal(a, b) for a, b in zip(got_ids, ids))
    assert torch.equal(got_recon, recon)


def test_saved_folder_is_safetensors_with_a_plain_config(saved_dir):
    files = set(os.listdir(saved_dir))
    assert {"config.json", "model.safetensors"} <= files
    assert not any(f.endswith((".bin", ".pt", ".pth")) for f in files)
    config = json.loads((saved_dir / "config.json").read_text())
    assert config["model_type"] == "pyratok" and config["codebook_bits"] == 8


@pytest.mark.parametrize("loader", ["PyraTokModel", "AutoModel", "AutoencoderPyraTok"])
def test_save_load_gives_bit_identical_outputs(saved_dir, original, reference, loader):
    if loader == "PyraTokModel":
        model = PyraTokModel.from_pretrained(saved_dir)
    elif loader == "AutoModel":
        model = AutoModel.from_pretrained(saved_dir)  # no trust_remote_code: our classes register on import
        assert type(model) is PyraTokModel
    else:
        model = AutoencoderPyraTok.from_pretrained(saved_dir)
    reference_state = original.state_dict()
    assert all(torch.equal(v, reference_state[k]) for k, v in model.state_dict().items())
    _assert_identical(model, reference)


def test_diffusers_saved_folders_load_in_pyratok_model(original, reference, tmp_path):
    # 1. AutoencoderPyraTok.save_pretrained -> diffusers' own layout, read by both classes.
    vae = AutoencoderPyraTok(original.config)
    vae.load_state_dict(original.state_dict())
    vae.save_pretrained(tmp_path / "from-diffusers")
    assert json.loads((tmp_path / "from-diffusers" / "config.json").read_text())["_class_name"] == "AutoencoderPyraTok"
    assert (tmp_path / "from-diffusers" / "diffusion_pytorch_model.safetensors").is_file()
    _assert_identical(PyraTokModel.from_pretrained(tmp_path / "from-diffusers"), reference)
    _assert_identical(AutoencoderPyraTok.from_pretrained(tmp_path / "from-diffusers"), reference)
    # 2. What AutoencoderPyraTok wrote before it used diffusers' layout: model.safetensors + _class_name.
    folder = tmp_path / "older-autoencoder-layout"
    original.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "_class_name": "AutoencoderPyraTok"}))
    _assert_identical(PyraTokModel.from_pretrained(folder), reference)
    _assert_identical(AutoencoderPyraTok.from_pretrained(folder), reference)


def test_variant_round_trips_in_both_classes(original, reference, tmp_path):
    vae = AutoencoderPyraTok(original.config)
    vae.load_state_dict(original.state_dict())
    vae.save_pretrained(tmp_path / "vae", variant="fp16")
    original.save_pretrained(tmp_path / "model", variant="fp16")
    assert (tmp_path / "vae" / "diffusion_pytorch_model.fp16.safetensors").is_file()
    assert (tmp_path / "model" / "model.fp16.safetensors").is_file()
    for folder in (tmp_path / "vae", tmp_path / "model"):
        for cls in (PyraTokModel, AutoencoderPyraTok):
            _assert_identical(cls.from_pretrained(folder, variant="fp16"), reference)
            with pytest.raises(CheckpointError, match="variant"):
                cls.from_pretrained(folder, variant="bf16")


def test_sharded_autoencoder_folder_loads_in_both_classes(original, reference, tmp_path):
    vae = AutoencoderPyraTok(original.config)
    vae.load_state_dict(original.state_dict())
    vae.save_pretrained(tmp_path / "sharded", max_shard_size="200KB")
    assert (tmp_path / "sharded" / "diffusion_pytorch_model.safetensors.index.json").is_file()
    for cls in (PyraTokModel, AutoencoderPyraTok):
        _assert_identical(cls.from_pretrained(tmp_path / "sharded"), reference)


def test_from_pretrained_with_subfolder(original, reference, tmp_path):
    original.save_pretrained(tmp_path / "repo" / "tokenizer")
    _assert_identical(PyraTokModel.from_pretrained(tmp_path / "repo", subfolder="tokenizer"), reference)
    _assert_identical(AutoencoderPyraTok.from_pretrained(str(tmp_path / "repo"), subfolder="tokenizer"), reference)
    _assert_identical(AutoModel.from_pretrained(tmp_path / "repo", subfolder="tokenizer"), reference)


def test_config_that_does_not_match_the_weights_is_refused(saved_dir, tmp_path):
    folder = tmp_path / "edited"
    shutil.copytree(saved_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["level_hidden_dim"] = 48  # weights were saved with 32
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"lapq\.levels\.\d\..*(mismatch|32|48)"):
        PyraTokModel.from_pretrained(folder)
    with pytest.raises(CheckpointError, match="level"):
        AutoencoderPyraTok.from_pretrained(folder)


def test_pickle_only_checkpoints_are_refused_unless_allowed(original, reference, tmp_path):
    folder = tmp_path / "pickled"
    folder.mkdir()
    original.config.save_pretrained(folder)
    torch.save(original.state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="allow_pickle"):
        PyraTokModel.from_pretrained(folder)
    with pytest.raises(CheckpointError, match="allow_pickle"):
        AutoencoderPyraTok.from_pretrained(folder)
    with pytest.raises(CheckpointError, match="allow_pickle"):
        PyraTokModel.from_pretrained(folder, use_safetensors=False)
    _assert_identical(PyraTokModel.from_pretrained(folder, allow_pickle=True), reference)


def test_text_encoder_is_referenced_not_saved(original, tmp_path):
    model = make_tiny_model(seed=3)
    model.set_text_encoder(torch.nn.Linear(4, 4))  # stands in for a loaded text model
    assert set(model.state_dict()) == set(original.state_dict())
    assert not any("text_encoder" in k for k in model.state_dict())
