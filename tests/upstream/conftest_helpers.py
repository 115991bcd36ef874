"""The tiny configuration the upstream harnesses build (same as tests/conftest.py's make_tiny_config)."""

from __future__ import annotations

from pyratok_hf import PyraTokConfig
from pyratok_hf.configuration_pyratok import TINY_VAE_CONFIG


def tiny_config(**overrides) -> PyraTokConfig:
    fields = {"backbone_config": {**TINY_VAE_CONFIG, "base_dim": 8}, "level_hidden_dim": 32, "codebook_bits": 8}
    return PyraTokConfig.from_preset("pyratok-tiny", **{**fields, **overrides})


def tiny_fields(**overrides) -> dict:
    """The config as the flat keyword fields diffusers' testers pass to ``AutoencoderPyraTok(**fields)``."""
    data = tiny_config(**overrides).to_dict()
    for key in ("model_type", "transformers_version", "architectures", "_name_or_path", "auto_map", "dtype", "torch_dtype"):
        data.pop(key, None)
    return data
