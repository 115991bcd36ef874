"""The frozen causal video VAE that PyraTok adapts: diffusers' ``AutoencoderKLWan``, used as is.

Wan's encoder runs causally over chunks of frames (the first frame alone, then 4 at a time) and keeps a
feature cache between chunks. Lateral features for LaPQ are the outputs of the encoder's *stages* (the
blocks between two downsamplings). They are collected with forward hooks on the stage-closing modules of
``encoder.down_blocks`` and concatenated along time across chunks, so they are exactly the features the
backbone computed, whatever the chunking.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from diffusers import AutoencoderKLWan
from diffusers.models.autoencoders.autoencoder_kl_wan import WanResample, WanResidualDownBlock
from torch import nn


def stage_output_indices(encoder: nn.Module) -> list[int]:
    """Index in ``encoder.down_blocks`` of the last module of each stage (one stage per ``dim_mult`` entry)."""
    blocks = list(encoder.down_blocks)
    if any(isinstance(b, WanResidualDownBlock) for b in blocks):  # Wan 2.2 layout: one block per stage
        return list(range(len(blocks)))
    ends = [i for i, b in enumerate(blocks) if isinstance(b, WanResample)]
    return ends + [len(blocks) - 1]


class WanBackbone(nn.Module):
    """A diffusers ``AutoencoderKLWan`` plus access to its encoder-stage features.

    ``self.vae`` is the untouched diffusers model, so its weights keep diffusers' names (``vae.encoder.*``,
    ``vae.decoder.*``, ``vae.quant_conv.*``) and any saved Wan VAE loads into it; PEFT adapters attach to it
    with ``backbone.vae.add_adapter(LoraConfig(...))``.
    """

    def __init__(self, vae_config: dict):
        super().__init__()
        self.vae = AutoencoderKLWan(**vae_config)
        self.stage_indices = stage_output_indices(self.vae.encoder)

    @classmethod
    def from_pretrained(cls, name_or_path: str, subfolder: str | None = "vae", **kwargs) -> "WanBackbone":
        vae = AutoencoderKLWan.from_pretrained(name_or_path, subfolder=subfolder, **kwargs)
        backbone = cls.__new__(cls)
        nn.Module.__init__(backbone)
        backbone.vae = vae
        backbone.stage_indices = stage_output_indices(vae.encoder)
        return backbone

    @property
    def z_dim(self) -> int:
        return self.vae.config.z_dim

    def stage_channels(self) -> list[int]:
        base = self.vae.config.base_dim
        return [base * m for m in self.vae.config.dim_mult]

    @contextmanager
    def _collect_stages(self, stages: list[int]):
        """Hook the requested stages; yields a dict stage -> list of per-chunk outputs."""
        collected: dict[int, list[torch.Tensor]] = {s: [] for s in stages}
        handles = []
        for stage in stages:
            module = self.vae.encoder.down_blocks[self.stage_indices[stage]]

            def hook(_module, _inputs, output, stage=stage):
                collected[stage].append(output)

            handles.append(module.register_forward_hook(hook))
        try:
            yield collected
        finally:
            for handle in handles:
                handle.remove()

    def encode(self, pixel_values: torch.Tensor, stages: list[int] | tuple[int, ...] = ()):
        """Posterior mode ``z`` ``[B, z_dim, T', H', W']`` and the requested stage features (time-concatenated).

        ``pixel_values`` must already satisfy the backbone's shape constraints (T = 1 + 4k, H and W multiples
        of the spatial factor); :class:`~pyratok_hf.PyraTokModel` pads for the user.
        """
        stages = sorted(set(stages))
        with self._collect_stages(stages) as collected:
            moments = self.vae._encode(pixel_values)
        z = moments[:, : self.z_dim]
        features = {s: torch.cat(chunks, dim=2) for s, chunks in collected.items()}
        return z, features

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae._decode(z).sample

    @contextmanager
    def adapters_disabled(self):
        """Run the frozen base encoder (PEFT adapters off) — the offline anchor of the drift term."""
        if getattr(self.vae, "_hf_peft_config_loaded", False):
            self.vae.disable_adapters()
            try:
                yield
            finally:
                self.vae.enable_adapters()
        else:
            yield
