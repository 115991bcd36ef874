"""device_map with disk offload (accelerate) gives the same tokens and video as the model on one device.

Wan's causal encoder/decoder fill a feature-cache list in place; accelerate's hooks would copy that list (losing
every cached frame: 5 latent frames instead of 2, measured before the fix), so the model classes declare it as a
key to skip and keep the hooks on the whole encoder/decoder.
"""

from __future__ import annotations

import pytest
import torch

from conftest import make_tiny_model, random_video
from pyratok_hf import AutoencoderPyraTok, PyraTokModel


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    model = make_tiny_model(seed=3)
    root = tmp_path_factory.mktemp("offload")
    model.save_pretrained(root / "transformers-layout")
    vae = AutoencoderPyraTok(model.config)
    vae.load_state_dict(model.state_dict())
    vae.save_pretrained(root / "diffusers-layout")
    return model, root


@pytest.mark.parametrize("cls", [PyraTokModel, AutoencoderPyraTok])
@pytest.mark.parametrize("layout", ["transformers-layout", "diffusers-layout"])
def test_disk_offloaded_output_equals_the_plain_model(folders, cls, layout, tmp_path):
    reference, root = folders
    video = random_video(1, 3, 5, 32, 32, seed=1)
    with torch.inference_mode():
        enc = reference.encode(video)
        expected = reference.decode(token_ids=enc.token_ids, output_shape=enc.input_shape).sample
    model = cls.from_pretrained(root / layout, device_map="auto", max_memory={"cpu": "50KB"}, offload_folder=str(tmp_path))
    assert "disk" in set(model.hf_device_map.values())
    with torch.inference_mode():
        got = model.encode(video)
        recon = model.decode(token_ids=got.token_ids, output_shape=got.input_shape).sample
    assert [t.shape for t in got.token_ids] == [t.shape for t in enc.token_ids]
    assert all(torch.equal(a, b) for a, b in zip(got.token_ids, enc.token_ids))
    torch.testing.assert_close(recon, expected, atol=1e-5, rtol=0)
