"""pyratok-hf: PyraTok, the language-aligned pyramidal video tokenizer, for transformers and diffusers.

Importing the package registers ``PyraTokConfig``/``PyraTokModel`` with ``AutoConfig``/``AutoModel``.
Heavier parts (training, prior, pipeline, tasks) are imported lazily on first attribute access.
"""

import importlib
import os

__version__ = "0.1.0"

from .configuration_pyratok import PRESETS, PyraTokConfig
from .errors import CheckpointError, ConfigError, InvalidInputError, PyraTokError, ResourceLimitError
from .modeling_pyratok import (
    PyraTokDecoderOutput,
    PyraTokEncoderOutput,
    PyraTokModel,
    PyraTokModelOutput,
    register_auto_classes,
)

register_auto_classes()
from .prior import PyraTokPriorConfig, PyraTokPriorModel  # noqa: E402  (registers model_type "pyratok_prior")

_LAZY = {
    "AutoencoderPyraTok": ".autoencoder_pyratok",
    "PyraTokT2VPipeline": ".pipeline_pyratok_t2v",
    "PyraTokT2VPipelineOutput": ".pipeline_pyratok_t2v",
    "FrozenTextEncoder": ".text_encoder",
}


def __getattr__(name):
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name], __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'pyratok_hf' has no attribute {name!r}")


def bundled_model_path() -> str:
    """Folder of the bundled ``pyratok-tiny`` tokenizer (trained here on CPU; see its model card)."""
    return os.path.join(os.path.dirname(__file__), "bundled", "pyratok-tiny")


def bundled_pipeline_path() -> str:
    """Folder of the bundled tiny text-to-video pipeline (tokenizer + token prior)."""
    return os.path.join(os.path.dirname(__file__), "bundled", "pyratok-tiny-t2v")


__all__ = [
    "PRESETS",
    "PyraTokConfig",
    "PyraTokModel",
    "PyraTokEncoderOutput",
    "PyraTokDecoderOutput",
    "PyraTokModelOutput",
    "AutoencoderPyraTok",
    "PyraTokPriorConfig",
    "PyraTokPriorModel",
    "PyraTokT2VPipeline",
    "PyraTokT2VPipelineOutput",
    "PyraTokError",
    "InvalidInputError",
    "ConfigError",
    "CheckpointError",
    "ResourceLimitError",
    "bundled_model_path",
    "bundled_pipeline_path",
]
