"""Shared test setup: offline environment, few threads, tiny models.

The environment variables must be set before transformers / diffusers / huggingface_hub are imported (they
read them at import time), so they are set at the top of this file, which pytest imports first. No test may
reach the network: the Hub is unreachable here and tests must not depend on it anyway.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import pytest  # noqa: E402
import torch  # noqa: E402

# Two busy cores are shared by several jobs: more threads only add contention.
torch.set_num_threads(2)

from pyratok_hf import PyraTokConfig, PyraTokModel  # noqa: E402
from pyratok_hf.configuration_pyratok import TINY_VAE_CONFIG  # noqa: E402

# A Wan VAE with the real 8x spatial / 4x causal temporal compression but only 8 base channels.
TINY_BACKBONE = {**TINY_VAE_CONFIG, "base_dim": 8}


def make_tiny_config(**overrides) -> PyraTokConfig:
    """The ``pyratok-tiny`` preset shrunk further (base_dim 8, level width 32, 8 bits); overrides win."""
    fields = {"backbone_config": dict(TINY_BACKBONE), "level_hidden_dim": 32, "codebook_bits": 8}
    fields.update(overrides)
    return PyraTokConfig.from_preset("pyratok-tiny", **fields)


def make_tiny_model(seed: int = 0, **overrides) -> PyraTokModel:
    """A randomly initialised tiny model in eval mode (deterministic for a given seed)."""
    torch.manual_seed(seed)
    return PyraTokModel(make_tiny_config(**overrides)).eval()


def random_video(*shape: int, seed: int = 0, low: float = -1.0, high: float = 1.0) -> torch.Tensor:
    """Uniform pixels in [low, high] with a fixed seed (independent of the global RNG)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(*shape, generator=generator) * (high - low) + low


def random_text_embeds(batch: int, tokens: int = 6, width: int = 384, seed: int = 0) -> torch.Tensor:
    """Stand-in text-model states (the tiny preset's MiniLM is 384-d), so most tests need no text model."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, tokens, width, generator=generator)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a test module (``pytestmark = pytest.mark.usefixtures("one_thread")``): tiny matmuls
    on two shared, busy cores are far faster single-threaded (no OpenMP spin-waiting)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_config() -> PyraTokConfig:
    return make_tiny_config()


@pytest.fixture
def tiny_model(tiny_config) -> PyraTokModel:
    torch.manual_seed(0)
    return PyraTokModel(tiny_config).eval()


@pytest.fixture
def video():
    """A 1x3x5x32x32 clip: 5 frames -> 2 latent frames, 32 px -> a 4x4 latent grid."""
    return random_video(1, 3, 5, 32, 32)
