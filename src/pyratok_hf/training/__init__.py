"""Training: HF ``Trainer`` + PEFT LoRA + Accelerate, driven by one run file (``pyratok train RUN.yaml``)."""

from .config import RunConfig
from .masking import mask_video
from .trainer import PyraTokTrainer, WanVAEForTraining, train

__all__ = ["RunConfig", "PyraTokTrainer", "WanVAEForTraining", "mask_video", "train"]
