"""Training: HF ``Trainer`` + PEFT LoRA + Accelerate, driven by one run file (``pyratok train RUN.yaml``).

Names are imported on first use, so ``pyratok train --help`` does not import transformers.
"""

import importlib

_LAZY = {"RunConfig": ".config", "mask_video": ".masking", "PyraTokTrainer": ".trainer", "WanVAEForTraining": ".trainer", "train": ".trainer"}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["RunConfig", "PyraTokTrainer", "WanVAEForTraining", "mask_video", "train"]
