"""PyraTokConfig: presets, derived values, validation errors, and round trips through JSON / AutoConfig."""

from __future__ import annotations

import pytest
from conftest import TINY_BACKBONE, make_tiny_config
from transformers import AutoConfig

from pyratok_hf import PRESETS, PyraTokConfig
from pyratok_hf.configuration_pyratok import WAN21_LATENTS_MEAN
from pyratok_hf.errors import ConfigError, PyraTokError


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_build_and_validate(name):
    config = PyraTokConfig.from_preset(name)
    assert config.model_type == "pyratok"
    assert len(config.level_spatial_downsample) == config.num_levels == len(config.level_scales)


def test_paper_defaults():
    config = PyraTokConfig()  # pyratok-l: the paper's model
    assert config.num_levels == 4 and config.codebook_bits == 16 and config.codebook_size == 65536
    assert config.lateral_stages == [3, 2, 1, 0]  # deepest stage feeds the coarsest level
    assert config.level_spatial_downsample == [8, 4, 2, 1]
    assert (config.recon_weight, config.codebook_weight, config.ar_weight, config.drift_weight) == (2.5, 2.5, 1.5, 0.6)
    assert config.latents_mean == WAN21_LATENTS_MEAN
    assert config.spatial_compression == 8 and config.temporal_compression == 4 and config.latent_channels == 16


def test_release_preset_layout():
    config = PyraTokConfig.from_preset("release")
    assert config.layout == "release" and config.lateral_stages == []
    assert config.level_spatial_downsample == [1, 1, 1, 1]
    assert config.level_scales == [1.0, 0.5, 0.25, 0.125]
    assert config.detach_residual and not config.normalize_latents and config.text_condition_scale == 0.0


def test_overrides_and_text_proj_hidden_dim_round_trip(tmp_path):
    config = make_tiny_config(text_proj_hidden_dim=48, codebook_bits=12)
    assert config.text_proj_hidden_dim == 48 and config.codebook_bits == 12
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)  # no trust_remote_code: registered on import
    assert isinstance(loaded, PyraTokConfig)
    strip = lambda d: {k: v for k, v in d.items() if k != "_name_or_path"}  # noqa: E731
    assert strip(loaded.to_dict()) == strip(config.to_dict())
    assert PyraTokConfig().text_proj_hidden_dim is None


def test_codebook_size_is_exact_for_64_bits():
    assert make_tiny_config(codebook_bits=64).codebook_size == 2**64


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"codebook_bits": 65}, "codebook_bits"),
        ({"codebook_bits": 0}, "codebook_bits"),
        ({"codebook_bits": 8.0}, "codebook_bits"),
        ({"num_levels": 0}, "num_levels"),
        ({"level_spatial_downsample": [4, 2, 1]}, "level_spatial_downsample has 3 entries"),
        ({"level_temporal_downsample": [1, 1]}, "level_temporal_downsample"),
        ({"level_scales": [1.0] * 5}, "level_scales"),
        ({"level_spatial_downsample": [8, 4, 0, 1]}, "positive integers"),
        ({"lateral_stages": [3, 2, 1]}, "lateral_stages has 3 entries"),
        ({"lateral_stages": [4, 2, 1, 0]}, "do not exist"),
        ({"layout": "pyramidal"}, "layout"),
        ({"upsample_mode": "bicubic"}, "upsample_mode"),
        ({"level_fuse_grid": "tokens"}, "level_fuse_grid"),
        ({"text_pooling": "max"}, "text_pooling"),
        ({"num_attention_heads": 5}, "divisible"),
        ({"latents_mean": [0.0] * 15}, "latents_mean"),
        ({"latents_std": [0.0] * 16}, "positive"),
        ({"text_proj_hidden_dim": 0}, "text_proj_hidden_dim"),
    ],
)
def test_invalid_configs_raise_config_error(overrides, message):
    with pytest.raises(ConfigError, match=message):
        make_tiny_config(**overrides)


def test_release_layout_needs_codebook_bits_equal_to_z_dim():
    with pytest.raises(ConfigError, match="z_dim"):
        PyraTokConfig.from_preset("release", backbone_config=dict(TINY_BACKBONE), codebook_bits=8)


def test_unknown_preset_and_error_hierarchy():
    with pytest.raises(ConfigError, match="pyratok-tiny"):
        PyraTokConfig.from_preset("pyratok-xl")
    assert issubclass(ConfigError, PyraTokError) and issubclass(ConfigError, ValueError)
