"""Training with the Hugging Face ``Trainer`` (Accelerate underneath: DDP, FSDP, DeepSpeed via ``accelerate launch``).

Two tasks share this file:

* ``backbone``: train the continuous Wan VAE (diffusers ``AutoencoderKLWan``) that the tokenizer builds on —
  needed here because no pretrained tiny video VAE exists offline (the paper starts from Wan 2.2's).
* ``tokenizer``: train PyraTok on top of a frozen backbone with PEFT LoRA adapters in its encoder, the paper's
  recipe. Stage settings (masking, which loss terms) come from :mod:`pyratok_hf.training.config`.

Resuming (``pyratok train RUN.yaml`` again after an interruption) continues the same run: the Trainer
restores step, optimizer, scheduler and RNG states from the last ``checkpoint-*`` and skips the batches
already seen, and our datasets draw each sample's crop from ``(seed, epoch, index)``, so the data order
and content match an uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import defaultdict
from typing import Any

import torch
from torch import nn
from transformers import Trainer, TrainerCallback, TrainingArguments

from ..errors import CheckpointError, ConfigError
from .config import RunConfig
from .masking import mask_video

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- the backbone task
class WanVAEForTraining(nn.Module):
    """``AutoencoderKLWan`` with a Trainer-friendly forward: L1 + (1 - SSIM) + a small KL term.

    By default the decoder sees the posterior *mode*, as PyraTok uses it: at initialisation the posterior's
    standard deviation is ~1 while the mean's is ~0.2, so sampled latents are mostly noise and a small model
    barely learns (measured: loss 1.32 -> 1.22 in 450 steps with sampling; L1 0.45 -> 0.25 in 40 with the mode).
    """

    def __init__(self, vae, kl_weight: float = 1e-6, sample_posterior: bool = False):
        super().__init__()
        self.vae = vae
        self.kl_weight = kl_weight
        self.sample_posterior = sample_posterior

    def forward(self, pixel_values, target_pixel_values=None, **unused):
        from ..losses import ssim_loss

        target = pixel_values if target_pixel_values is None else target_pixel_values
        posterior = self.vae.encode(pixel_values).latent_dist
        z = posterior.sample() if self.training and self.sample_posterior else posterior.mode()
        recon = self.vae.decode(z).sample
        l1 = (recon - target).abs().mean()
        structural = ssim_loss(recon, target)
        kl = posterior.kl().mean() / z[0].numel()
        loss = l1 + structural + self.kl_weight * kl
        return {"loss": loss, "reconstruction": recon, "loss_terms": {"recon/l1": l1.detach(), "recon/ssim": structural.detach(), "kl": kl.detach()}}


# ----------------------------------------------------------------------------- trainer
class PyraTokTrainer(Trainer):
    """A thin ``Trainer``: input masking, and every loss term logged next to the total."""

    def __init__(self, *args, masking: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.masking = masking
        self._term_sums: dict[str, float] = defaultdict(float)
        self._term_count = 0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        pixel_values = inputs["pixel_values"]
        text = inputs.get("text")
        if text is not None and any(t is None for t in text):
            text = [t or "" for t in text]
        kwargs = {"text": text} if text is not None and self._uses_text(model) else {}
        if self.masking and model.training:
            masked, _ = mask_video(pixel_values, **self.masking)
            outputs = model(pixel_values=masked, target_pixel_values=pixel_values, **kwargs)
        else:
            outputs = model(pixel_values=pixel_values, **kwargs)
        loss = outputs["loss"]
        if model.training:
            terms = dict(outputs.get("loss_terms") or {})
            # The paper's four top-level parts too (L_AR shows whether a prior is plugged in and working).
            terms.update({k: outputs[k].detach() for k in ("recon_loss", "codebook_loss", "ar_loss", "drift_loss") if outputs.get(k) is not None})
            for name, value in terms.items():
                self._term_sums[name] += float(value)
            self._term_count += 1
        return (loss, outputs) if return_outputs else loss

    @staticmethod
    def _uses_text(model) -> bool:
        """Captions go to models that have a text path (not the backbone task, not a text-free ablation)."""
        inner = getattr(model, "module", model)
        return not isinstance(inner, WanVAEForTraining) and getattr(inner, "text_proj", None) is not None

    def log(self, logs, *args, **kwargs):
        if self._term_count and "loss" in logs:
            for name, total in self._term_sums.items():
                logs[name] = round(total / self._term_count, 5)
            self._term_sums.clear()
            self._term_count = 0
        super().log(logs, *args, **kwargs)


class ReconstructionImagesCallback(TrainerCallback):
    """Every ``every`` steps, write input | reconstruction frames of a fixed batch to TensorBoard."""

    def __init__(self, batch: dict, every: int, logging_dir: str):
        self.batch = batch
        self.every = every
        self.logging_dir = logging_dir
        self.writer = None

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if not state.is_world_process_zero or self.every <= 0 or state.global_step % self.every:
            return
        from torch.utils.tensorboard import SummaryWriter

        if self.writer is None:
            self.writer = SummaryWriter(log_dir=self.logging_dir)
        was_training = model.training
        model.eval()
        with torch.no_grad():
            device = next(model.parameters()).device
            pixels = self.batch["pixel_values"][:2].to(device)
            out = model(pixel_values=pixels, return_loss=False) if not isinstance(model, WanVAEForTraining) else model(pixel_values=pixels)
            recon = out["reconstruction"]
        model.train(was_training)
        mid = pixels.shape[2] // 2
        grid = torch.cat([pixels[:, :, mid], recon[:, :, mid].to(pixels.dtype)], dim=-1)  # [B, 3, H, 2W]
        self.writer.add_images("reconstruction/input|output", ((grid + 1) / 2).clamp(0, 1).cpu(), state.global_step)
        self.writer.flush()


# ----------------------------------------------------------------------------- building blocks
def build_datasets(run: RunConfig):
    from ..data.datasets import load_video_text_dataset

    data = run.data
    common = {"num_frames": data.get("num_frames", 17), "size": tuple(data["size"]) if data.get("size") else None}
    if data.get("buckets"):
        common["buckets"] = data["buckets"]
    seed = run.training.get("seed", 42)
    train = load_video_text_dataset(
        run.resolve(data["train"]), start="random", random_crop=data.get("random_crop", True), seed=seed,
        pad_short_clips=data.get("pad_short_clips", False), **common,
    )
    eval_ds = None
    if data.get("eval"):
        eval_ds = load_video_text_dataset(run.resolve(data["eval"]), start="center", random_crop=False, seed=seed, **common)
    return train, eval_ds


def collate(batch):
    from ..data.datasets import collate_video_text

    out = collate_video_text(batch)
    return {"pixel_values": out["pixel_values"], "text": out.get("text")}


def build_tokenizer_model(run: RunConfig):
    from ..configuration_pyratok import PyraTokConfig
    from ..modeling_pyratok import PyraTokModel

    spec = run.model
    overrides = dict(spec.get("overrides") or {})
    if spec.get("init_from"):
        model = PyraTokModel.from_pretrained(run.resolve(spec["init_from"]))
    else:
        config = PyraTokConfig.from_preset(spec.get("preset", "pyratok-tiny"), **overrides)
        backbone = run.resolve(spec.get("backbone_from"))
        if backbone:
            model = PyraTokModel.from_backbone(config, backbone, subfolder=spec.get("backbone_subfolder"))
        else:
            model = PyraTokModel(config)
    for key, value in run.loss_overrides.items():
        if not hasattr(model.config, key):
            raise ConfigError(f"loss_overrides: {key!r} is not a PyraTokConfig field.")
        setattr(model.config, key, value)
    if run.train_backbone:
        model.backbone.requires_grad_(True)
    else:
        model.backbone.requires_grad_(False)
        if run.train_decoder:
            model.backbone.vae.decoder.requires_grad_(True)
            model.backbone.vae.post_quant_conv.requires_grad_(True)
        lora = run.lora or {}
        if lora.get("enabled", True):
            model.backbone.add_lora(
                rank=lora.get("rank", 16), alpha=lora.get("alpha", 32), dropout=lora.get("dropout", 0.0),
                target_modules=lora.get("target_modules"),
            )
    if run.freeze_tokens:
        # The ids depend on the encoder, LaPQ (each level's proj_out feeds the next level's residual) and the
        # text projection its levels attend to; only the decoder side of the backbone may move.
        model.requires_grad_(False)
        model.backbone.vae.decoder.requires_grad_(True)
        model.backbone.vae.post_quant_conv.requires_grad_(True)
    if run.prior:
        from ..prior import PriorARLoss, PyraTokPriorModel

        # Frozen: L_AR's gradient reaches the tokenizer's codes through the prior, the prior itself does not move.
        prior = PyraTokPriorModel.from_pretrained(run.resolve(run.prior)).eval().requires_grad_(False)
        model.set_ar_loss_hook(PriorARLoss(prior))
    return model


def build_backbone_model(run: RunConfig):
    from diffusers import AutoencoderKLWan

    from ..configuration_pyratok import PRESETS, WAN21_VAE_CONFIG

    spec = run.model
    if spec.get("backbone_from"):
        vae = AutoencoderKLWan.from_pretrained(run.resolve(spec["backbone_from"]), subfolder=spec.get("backbone_subfolder"))
    else:
        preset = PRESETS.get(spec.get("preset", "pyratok-tiny"), {})
        vae_config = dict(preset.get("backbone_config", WAN21_VAE_CONFIG))
        vae_config.update((spec.get("overrides") or {}).get("backbone_config", {}))
        vae = AutoencoderKLWan(**vae_config)
    return WanVAEForTraining(vae, kl_weight=spec.get("kl_weight", 1e-6), sample_posterior=spec.get("sample_posterior", False))


def training_arguments(run: RunConfig) -> TrainingArguments:
    defaults = {
        "output_dir": run.output_dir,
        "per_device_train_batch_size": 4,
        "learning_rate": 1e-3,
        "lr_scheduler_type": "cosine",
        "warmup_steps": 20,
        "weight_decay": 0.01,
        "max_grad_norm": 1.0,
        "logging_steps": 10,
        "save_steps": 100,
        "save_total_limit": 2,
        "report_to": ["tensorboard"],
        "remove_unused_columns": False,
        "prediction_loss_only": True,
        "dataloader_num_workers": 0,
        "ddp_find_unused_parameters": True,
        "seed": 42,
        "data_seed": 42,
        "use_cpu": not torch.cuda.is_available(),
        "save_safetensors": True,
    }
    values = {**defaults, **run.training, "output_dir": run.output_dir}
    fields = TrainingArguments.__dataclass_fields__
    unknown = sorted(k for k in values if k not in fields and k not in ("save_safetensors", "logging_dir"))
    if unknown:
        raise ConfigError(f"training: {unknown} are not transformers.TrainingArguments fields.")
    values = {k: _numeric_setting(k, v, fields[k].default) for k, v in values.items() if k in fields}
    try:
        return TrainingArguments(**values)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"training: {' '.join(str(error).split())}") from None


def _numeric_setting(key: str, value: Any, default: Any) -> Any:
    """Numbers for TrainingArguments' numeric fields.

    YAML 1.1 reads ``3e-4`` (no dot) as the string "3e-4", which would otherwise reach AdamW as a string and
    fail deep inside the Trainer; such strings are converted, anything else non-numeric is a ConfigError.
    """
    if isinstance(default, bool) or not isinstance(default, (int, float)) or isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"training.{key} must be a number, got {value!r}.") from None
        return int(number) if isinstance(default, int) and number.is_integer() else number
    if not isinstance(value, (int, float)):
        raise ConfigError(f"training.{key} must be a number, got {value!r}.")
    return value


def logging_dir(run: RunConfig) -> str:
    """TensorBoard folder. transformers 5 reads it from TENSORBOARD_LOGGING_DIR (4.x had args.logging_dir)."""
    path = run.training.get("logging_dir") or os.path.join(run.output_dir, "logs")
    os.environ["TENSORBOARD_LOGGING_DIR"] = path
    return path


def last_checkpoint(output_dir: str) -> str | None:
    """The newest *complete* ``checkpoint-N`` folder, or None.

    The Trainer writes a checkpoint in place (weights, optimizer, RNG, then ``trainer_state.json`` last), so
    a run killed while saving leaves a ``checkpoint-N`` that ``transformers.trainer_utils.get_last_checkpoint``
    would still pick; resuming from it restarts at step 0 with half-restored state. Folders whose
    ``trainer_state.json`` is missing or unreadable, or that hold no weights, are skipped (with a warning).
    """
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    if not os.path.isdir(output_dir):
        return None
    prefix = PREFIX_CHECKPOINT_DIR + "-"
    steps = sorted(
        (int(name[len(prefix):]), name) for name in os.listdir(output_dir)
        if name.startswith(prefix) and name[len(prefix):].isdigit() and os.path.isdir(os.path.join(output_dir, name))
    )  # fmt: skip
    for _, name in reversed(steps):
        folder = os.path.join(output_dir, name)
        if _is_complete_checkpoint(folder):
            return folder
        logger.warning("ignoring incomplete checkpoint %s (interrupted while saving); resuming from an earlier one", folder)
    return None


def _is_complete_checkpoint(folder: str) -> bool:
    try:
        with open(os.path.join(folder, "trainer_state.json"), encoding="utf-8") as handle:
            state = json.load(handle)
    except (OSError, ValueError):
        return False
    weights = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors", "pytorch_model.bin")
    return isinstance(state, dict) and "global_step" in state and any(os.path.isfile(os.path.join(folder, w)) for w in weights)


# ----------------------------------------------------------------------------- entry point
def train(run: RunConfig, resume: bool | str = True) -> dict:
    """Run training; returns a summary dict (also written to ``output_dir/train_summary.json``)."""
    os.makedirs(run.output_dir, exist_ok=True)
    from transformers import set_seed

    logs = logging_dir(run)
    args = training_arguments(run)
    train_ds, eval_ds = build_datasets(run)
    set_seed(args.seed)  # the model (and its LoRA adapters) is initialised before the Trainer seeds anything
    model = build_backbone_model(run) if run.task == "backbone" else build_tokenizer_model(run)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    logger.info("training %s: %.2fM of %.2fM parameters trainable", run.task, trainable / 1e6, total / 1e6)
    if args.gradient_checkpointing and isinstance(model, WanVAEForTraining):
        args.gradient_checkpointing = False  # AutoencoderKLWan does not support it
    sample_batch = collate([eval_ds[i] if eval_ds is not None else train_ds[i] for i in range(2)])
    trainer = PyraTokTrainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=eval_ds,
        data_collator=collate,
        masking=run.masking,
        callbacks=[ReconstructionImagesCallback(sample_batch, run.sample_every, logs)],
    )
    checkpoint = resume if isinstance(resume, str) else (last_checkpoint(run.output_dir) if resume else None)
    if checkpoint:
        logger.info("resuming from %s", checkpoint)
    started = time.time()
    try:
        result = trainer.train(resume_from_checkpoint=checkpoint)
    except ValueError as err:
        if checkpoint and "parameter group" in str(err):  # torch's optimizer-state mismatch on resume
            raise CheckpointError(
                f"{checkpoint} was saved by a run with other trainable parameters than this one (its optimizer state does "
                "not fit); resume with the model it was trained from (e.g. --set model.init_from=THAT_CHECKPOINT), "
                "or start over with --no-resume."
            ) from None
        raise
    seconds = time.time() - started
    summary = {
        "task": run.task,
        "stage": run.stage,
        "global_step": trainer.state.global_step,
        "train_loss": result.training_loss,
        "train_seconds": seconds,
        "trainable_parameters": trainable,
        "total_parameters": total,
        "resumed_from": checkpoint,
        "skipped_samples": dict(getattr(train_ds, "skipped", {}) or {}),
        "log_history": trainer.state.log_history,
    }
    if trainer.is_world_process_zero():
        _save_final(run, model, summary)
    return summary


def _save_final(run: RunConfig, model, summary: dict) -> None:
    from ..utils_io import atomic_directory
    from ..video_io import atomic_save_safetensors, atomic_write_json

    final_dir = os.path.join(run.output_dir, "final")
    # Model folders are written next to their target and renamed into place: a killed run never leaves a
    # final/ or vae/ folder that looks complete but is not.
    if isinstance(model, WanVAEForTraining):
        _store_latent_statistics(model.vae, run)
        with atomic_directory(os.path.join(run.output_dir, "vae")) as temporary:
            model.vae.save_pretrained(temporary)
    else:
        with atomic_directory(final_dir) as temporary:
            if model.backbone.has_adapters():
                from peft import get_peft_model_state_dict

                adapter = {k: v.contiguous() for k, v in get_peft_model_state_dict(model.backbone.vae).items()}
                atomic_save_safetensors(adapter, os.path.join(temporary, "backbone_lora.safetensors"))
                model.backbone.merge_lora()
            model.save_pretrained(temporary)
    atomic_write_json({k: v for k, v in summary.items() if k != "log_history"}, os.path.join(run.output_dir, "train_summary.json"))
    atomic_write_json(summary["log_history"], os.path.join(run.output_dir, "log_history.json"))


@torch.no_grad()
def _store_latent_statistics(vae, run: RunConfig, max_batches: int = 16) -> None:
    """Per-channel mean/std of the posterior mode over training clips, stored in the VAE config (as Wan does)."""
    train_ds, _ = build_datasets(run)
    vae.eval()
    sums, sq, count = None, None, 0
    for i in range(min(len(train_ds), max_batches * 4)):
        sample = train_ds[i]
        z = vae.encode(sample["pixel_values"].unsqueeze(0)).latent_dist.mode()
        flat = z.transpose(0, 1).reshape(z.shape[1], -1)
        sums = flat.sum(1) if sums is None else sums + flat.sum(1)
        sq = (flat**2).sum(1) if sq is None else sq + (flat**2).sum(1)
        count += flat.shape[1]
    mean = sums / count
    std = (sq / count - mean**2).clamp_min(1e-6).sqrt()
    vae.register_to_config(latents_mean=[round(float(v), 5) for v in mean], latents_std=[round(float(v), 5) for v in std])
    logger.info("latent statistics stored: mean %s std %s", json.dumps([round(float(v), 3) for v in mean]), json.dumps([round(float(v), 3) for v in std]))
