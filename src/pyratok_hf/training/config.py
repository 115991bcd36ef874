"""One YAML (or JSON) file describes a run: ``pyratok train RUN.yaml``.

```yaml
task: tokenizer            # or "backbone": train the continuous Wan VAE the tokenizer builds on
stage: 1                   # the paper's stages: 1 masked self-supervised, 2 text alignment (+AR), 3 full fine-tune
output_dir: runs/tiny
model:
  preset: pyratok-tiny     # PyraTokConfig preset, plus field overrides:
  overrides: {codebook_bits: 16}
  init_from: null          # a PyraTok folder to continue from
  backbone_from: runs/tiny-vae/vae   # a diffusers Wan VAE folder (or Hub id) for the frozen backbone
  backbone_subfolder: null
lora: {enabled: true, rank: 16, alpha: 32, dropout: 0.0, target_modules: null}   # null = encoder 3x3x3 convs
train_decoder: false       # the paper keeps the decoder frozen
freeze_tokens: false       # true: only the decoder trains; every token id stays as it was (a trained prior stays valid)
prior: null                # stage 2: a PyraTokPriorModel folder supplying L_AR
data:
  train: data/corpus/train
  eval: data/corpus/val
  num_frames: 17
  size: [64, 64]
masking: {frame_ratio: 0.3, spatial_ratio: 0.5, patch_size: 8}
training:                  # any transformers.TrainingArguments field
  max_steps: 1000
  per_device_train_batch_size: 4
  learning_rate: 1.0e-3
```

Stage defaults (applied first, then the file's values): stage 1 turns input masking on and the language
terms off; stage 2 turns the alignment terms (and L_AR when ``prior`` is set) on, masking off; stage 3 also
trains the backbone (full fine-tune) with the drift term anchoring it.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..errors import ConfigError

STAGE_DEFAULTS: dict[int, dict[str, Any]] = {
    1: {"masking": {"frame_ratio": 0.3, "spatial_ratio": 0.5, "patch_size": 8},
        "loss_overrides": {"token_text_weight": 0.0, "codebook_text_weight": 0.0, "contrastive_weight": 0.0, "ar_weight": 0.0}},
    2: {"masking": None, "loss_overrides": {}},
    3: {"masking": None, "train_backbone": True, "loss_overrides": {}},
}  # fmt: skip


@dataclass
class RunConfig:
    task: str = "tokenizer"
    stage: int = 1
    output_dir: str = "runs/pyratok"
    model: dict = field(default_factory=lambda: {"preset": "pyratok-tiny", "overrides": {}})
    lora: dict = field(default_factory=lambda: {"enabled": True, "rank": 16, "alpha": 32, "dropout": 0.0, "target_modules": None})
    train_decoder: bool = False
    train_backbone: bool = False
    freeze_tokens: bool = False
    prior: str | None = None
    data: dict = field(default_factory=dict)
    masking: dict | None = None
    loss_overrides: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    sample_every: int = 200  # steps between reconstruction images in TensorBoard
    source_path: str | None = None

    @classmethod
    def from_file(cls, path: str) -> "RunConfig":
        if not os.path.isfile(path):
            raise ConfigError(f"run file {path} not found.")
        with open(path) as f:
            raw = json.load(f) if path.endswith(".json") else yaml.safe_load(f)
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: a run file must be a mapping of settings, got {type(raw).__name__}.")
        raw["source_path"] = os.path.abspath(path)
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: dict) -> "RunConfig":
        raw = copy.deepcopy(raw)
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(f"unknown run settings {unknown}; known: {sorted(known)}.")
        stage = int(raw.get("stage", 1))
        if stage not in STAGE_DEFAULTS:
            raise ConfigError(f"stage must be 1, 2 or 3, got {stage}.")
        merged: dict[str, Any] = copy.deepcopy(STAGE_DEFAULTS[stage])
        for key, value in raw.items():
            if key == "loss_overrides":
                merged["loss_overrides"] = {**merged.get("loss_overrides", {}), **(value or {})}
            else:
                merged[key] = value
        config = cls(**merged)
        config.validate()
        return config

    def validate(self) -> None:
        if self.task not in ("tokenizer", "backbone"):
            raise ConfigError(f"task must be 'tokenizer' or 'backbone', got {self.task!r}.")
        if not self.data.get("train"):
            raise ConfigError("data.train is required: a videofolder, a datasets folder or tar shards.")
        if self.freeze_tokens and (self.train_backbone or not self.train_decoder or (self.lora or {}).get("enabled", True)):
            raise ConfigError(
                "freeze_tokens trains the decoder alone: set train_decoder: true, train_backbone: false and "
                "lora: {enabled: false} (the encoder, its LoRA and LaPQ decide the token ids)."
            )
        if self.masking:
            for key in ("frame_ratio", "spatial_ratio"):
                value = self.masking.get(key, 0.0)
                if not 0.0 <= value < 1.0:
                    raise ConfigError(f"masking.{key} must be in [0, 1), got {value}.")

    def resolve(self, path: str | None) -> str | None:
        """A relative path means the working directory when it exists there, else the run file's folder
        (anything else, e.g. a Hub id, passes through)."""
        if path is None or os.path.isabs(path) or os.path.exists(path) or self.source_path is None:
            return path
        candidate = os.path.join(os.path.dirname(self.source_path), path)
        return candidate if os.path.exists(candidate) else path
