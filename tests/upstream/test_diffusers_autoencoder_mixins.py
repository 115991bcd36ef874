"""diffusers' ModelTesterMixin / TrainingTesterMixin / MemoryTesterMixin / AutoencoderTesterMixin on AutoencoderPyraTok."""

from __future__ import annotations

import os
import sys

import pytest

UPSTREAM = os.environ.get("PYRATOK_UPSTREAM_DIFFUSERS")
if not UPSTREAM:
    pytest.skip("set PYRATOK_UPSTREAM_DIFFUSERS to a diffusers checkout", allow_module_level=True)
sys.path.insert(0, UPSTREAM)

import torch  # noqa: E402
from tests.models.autoencoders.testing_utils import AutoencoderTesterMixin  # noqa: E402
from tests.models.testing_utils import (  # noqa: E402
    BaseModelTesterConfig,
    MemoryTesterMixin,
    ModelTesterMixin,
    TrainingTesterMixin,
)

from conftest_helpers import tiny_fields  # noqa: E402
from pyratok_hf import AutoencoderPyraTok  # noqa: E402


class AutoencoderPyraTokTesterConfig(BaseModelTesterConfig):
    @property
    def model_class(self):
        return AutoencoderPyraTok

    @property
    def main_input_name(self) -> str:
        return "sample"

    @property
    def output_shape(self) -> tuple:
        return (3, 5, 32, 32)

    def get_init_dict(self) -> dict:
        return tiny_fields()

    def get_dummy_inputs(self) -> dict:
        generator = torch.Generator().manual_seed(0)
        return {"sample": torch.rand(2, 3, 5, 32, 32, generator=generator) * 2 - 1}  # pixels in [-1, 1]


class TestAutoencoderPyraTok(AutoencoderPyraTokTesterConfig, ModelTesterMixin):
    pass


class TestAutoencoderPyraTokTraining(AutoencoderPyraTokTesterConfig, TrainingTesterMixin):
    def test_gradient_checkpointing_is_applied(self):
        # The encoder/decoder chunks and the LaPQ levels checkpoint (pyratok_hf.modeling_pyratok.CausalEncoder / CausalDecoder);
        # Wan's mid/up blocks only carry the flag diffusers declares on them.
        super().test_gradient_checkpointing_is_applied(expected_set={"WanEncoder3d", "WanDecoder3d", "LaPQLevel", "WanMidBlock", "WanUpBlock"})


class TestAutoencoderPyraTokMemory(AutoencoderPyraTokTesterConfig, MemoryTesterMixin):
    pass


class TestAutoencoderPyraTokAutoencoder(AutoencoderPyraTokTesterConfig, AutoencoderTesterMixin):
    pass
