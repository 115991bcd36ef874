"""pyratok-hf: PyraTok, the language-aligned pyramidal video tokenizer, for transformers and diffusers.

``import pyratok_hf`` is cheap: it imports neither torch-heavy libraries (transformers, diffusers, datasets,
gradio, matplotlib, ...) nor the model code. Every public name is imported on first access
(``from pyratok_hf import PyraTokModel`` works as usual). ``PyraTokConfig``/``PyraTokModel`` are registered
with ``AutoConfig``/``AutoModel`` as soon as the modeling module is imported, which any access to a model or
config name does (``pyratok_hf.register_auto_classes()`` does it explicitly: the modeling module registers itself on import); the prior registers
``model_type="pyratok_prior"`` when :mod:`pyratok_hf.prior` is imported.
"""

from __future__ import annotations

import importlib
import os
import sys

from .errors import CheckpointError, ConfigError, InvalidInputError, PyraTokError, ResourceLimitError

__version__ = "0.1.0"

# public name -> submodule that defines it (imported on first access)
_LAZY = {
    "PRESETS": ".configuration_pyratok",
    "PyraTokConfig": ".configuration_pyratok",
    "PyraTokModel": ".modeling_pyratok",
    "PyraTokEncoderOutput": ".modeling_pyratok",
    "PyraTokDecoderOutput": ".modeling_pyratok",
    "PyraTokModelOutput": ".modeling_pyratok",
    "AutoencoderPyraTok": ".autoencoder_pyratok",
    "PyraTokPriorConfig": ".prior",
    "PyraTokPriorModel": ".prior",
    "PyraTokT2VPipeline": ".pipeline_pyratok_t2v",
    "PyraTokT2VPipelineOutput": ".pipeline_pyratok_t2v",
    "FrozenTextEncoder": ".text_encoder",
}
_MODELING = __name__ + ".modeling_pyratok"


def register_auto_classes() -> None:
    """Register ``PyraTokConfig``/``PyraTokModel`` with ``AutoConfig``/``AutoModel`` and the prior (idempotent)."""
    importlib.import_module(_MODELING).register_auto_classes()
    importlib.import_module(".prior", __name__)  # registers model_type "pyratok_prior" on import


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        if _LAZY[name] in (".configuration_pyratok", ".modeling_pyratok", ".autoencoder_pyratok"):
            # AutoConfig/AutoModel resolve "pyratok" (and "pyratok_prior") once the model classes are registered,
            # as they were when the package imported them eagerly.
            register_auto_classes()
        globals()[name] = value  # later accesses skip this function
        return value
    raise AttributeError(f"module 'pyratok_hf' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


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
    "register_auto_classes",
]
