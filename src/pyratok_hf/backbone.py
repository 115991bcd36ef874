"""The frozen causal video VAE that PyraTok adapts: diffusers' ``AutoencoderKLWan``, used as is.

Wan's encoder runs causally over chunks of frames (the first frame alone, then 4 at a time) and keeps a
feature cache between chunks; its decoder does the same one latent frame at a time. :class:`CausalEncoder` /
:class:`CausalDecoder` are that chunking, written once: whole-clip ``encode`` / ``decode`` and streaming
(:mod:`pyratok_hf.streaming`) both use them. Lateral features for LaPQ are the outputs of the encoder's
*stages* (the blocks between two downsamplings), collected with forward hooks on the stage-closing modules of
``encoder.down_blocks`` and concatenated along time across chunks, so they are exactly the features the
backbone computed, whatever the chunking.

Gradient checkpointing (``enable_gradient_checkpointing`` / ``gradient_checkpointing_enable`` of either model
class) recomputes each chunk's encoder / decoder call in backward. The call reads and refills the feature
cache, so it is checkpointed as a pure function of (chunk, cache before) -> (output, stage features, cache
after): the recomputation sees the cache the forward saw, and gradients still flow through the cache from
chunk to chunk.
"""

from __future__ import annotations

import functools
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKLWan
from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d, WanResample, WanResidualDownBlock
from torch import nn

from .checkpointing import checkpoint_function


def stage_output_indices(encoder: nn.Module) -> list[int]:
    """Index in ``encoder.down_blocks`` of the last module of each stage (one stage per ``dim_mult`` entry)."""
    blocks = list(encoder.down_blocks)
    if any(isinstance(b, WanResidualDownBlock) for b in blocks):  # Wan 2.2 layout: one block per stage
        return list(range(len(blocks)))
    ends = [i for i, b in enumerate(blocks) if isinstance(b, WanResample)]
    return ends + [len(blocks) - 1]


@functools.lru_cache(maxsize=1)
def lora_layer_class():
    """The PEFT LoRA layer for ``WanCausalConv3d`` (built on first use, so peft is only needed for LoRA)."""
    from peft.tuners.lora.layer import Conv3d as LoraConv3d

    class _CausalConvForLoRA(WanCausalConv3d):
        """A ``WanCausalConv3d`` with the constructor peft expects (``groups``, ``bias``), used only to build adapters."""

        def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, groups=1, bias=True):
            if groups != 1:
                raise ValueError("LoRA on a grouped WanCausalConv3d is not supported.")
            super().__init__(in_channels, out_channels, kernel_size, stride, padding)
            if not bias:
                self.register_parameter("bias", None)


    class LoraWanCausalConv3d(LoraConv3d):
        """PEFT LoRA for Wan's causal conv, registered with ``LoraConfig._register_custom_module``.

        peft's own Conv3d adapter runs ``lora_A`` on the raw input, but Wan's conv pads causally (and prepends its
        frame cache) inside ``forward``; here ``lora_A`` is itself a causal conv with the base layer's padding and
        receives the same ``cache_x``, so the adapter sees exactly what the base layer sees. Merging is peft's.
        """

        def update_layer(self, adapter_name, r, lora_alpha, config, **kwargs):
            base = self.get_base_layer()
            pad = base._padding  # (w, w, h, h, 2*t, 0): recover the constructor's padding for lora_A
            saved = base.__class__, base.padding
            base.__class__, base.padding = _CausalConvForLoRA, (pad[4] // 2, pad[2], pad[0])
            try:
                super().update_layer(adapter_name, r, lora_alpha=lora_alpha, config=config, **kwargs)
            finally:
                base.__class__, base.padding = saved

        def forward(self, x, cache_x=None, *args, **kwargs):
            if self.disable_adapters:
                if self.merged:
                    self.unmerge()
                return self.base_layer(x, cache_x)
            result = self.base_layer(x, cache_x)
            if self.merged:
                return result
            for name in self.active_adapters:
                if name not in self.lora_A:
                    continue
                lora_input = self._cast_input_dtype(self.lora_dropout[name](x), self.lora_A[name].weight.dtype)
                cache = None if cache_x is None else cache_x.to(lora_input.dtype)
                result = result + self.lora_B[name](self.lora_A[name](lora_input, cache)).to(result.dtype) * self.scaling[name]
            return result

    return LoraWanCausalConv3d


def _single_frame_conv_forward(conv: WanCausalConv3d, x: torch.Tensor, cache_x: torch.Tensor | None = None) -> torch.Tensor:
    """``WanCausalConv3d.forward`` that skips the zero frames of causal padding on a lone first frame.

    With no cache and one input frame, a k-frame causal kernel sees k - 1 zero frames: only its last time
    slice touches data, so a 2-D convolution with that slice gives the same output at 1/k of the cost
    (3x fewer FLOPs for Wan's 3x3x3 kernels on images). Equal up to float rounding (~1e-7).
    """
    pad = conv._padding
    if cache_x is None and x.shape[2] == 1 and conv.stride[0] == 1 and pad[5] == 0 and pad[4] == conv.kernel_size[0] - 1:
        out = F.conv2d(x[:, :, 0], conv.weight[:, :, -1], conv.bias, stride=conv.stride[1:], padding=(pad[2], pad[0]))
        return out.unsqueeze(2)
    return WanCausalConv3d.forward(conv, x, cache_x)


def _rms_norm_in_input_dtype(norm: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``WanRMS_norm.forward`` without diffusers' float32 upcast: normalise in ``x``'s own dtype, as the authors'
    release code does (their bf16 token ids are reproduced only with these numerics)."""
    return F.normalize(x, dim=1 if norm.channel_first else -1) * norm.scale * norm.gamma + norm.bias


def set_norm_upcast(vae: nn.Module, upcast: bool = True) -> int:
    """``upcast=True``: diffusers' Wan RMS norms (float32 normalisation under fp16 / bf16); ``False``: the release's
    (normalise in the activations' dtype). Identical in float32. Returns how many norms were set."""
    count = 0
    for module in vae.modules():
        if type(module).__name__ == "WanRMS_norm":
            if upcast:
                module.__dict__.pop("forward", None)
            else:
                module.forward = functools.partial(_rms_norm_in_input_dtype, module)
            count += 1
    return count


def set_single_frame_fast_path(vae: nn.Module, enabled: bool = True) -> int:
    """Turn the single-frame fast path of every causal conv in ``vae`` on or off; returns how many convs.

    A training speed knob (image batches, T = 1): the saved weights are unchanged.
    """
    count = 0
    for module in vae.modules():
        if type(module) is WanCausalConv3d:
            if enabled:
                module.forward = functools.partial(_single_frame_conv_forward, module)
            else:
                module.__dict__.pop("forward", None)
            count += 1
    return count


# ----------------------------------------------------------------------------- causal chunking
def conv_count(vae: nn.Module, part: str) -> int:
    """Length of the feature cache Wan keeps for ``part`` ('encoder' / 'decoder')."""
    counts = getattr(vae, "_cached_conv_counts", None)
    if counts and part in counts:
        return counts[part]
    return sum(isinstance(m, WanCausalConv3d) for m in getattr(vae, part).modules())


class _CachedCall:
    """One Wan encoder/decoder with its feature cache; each call is one chunk (checkpointed when enabled)."""

    part = ""

    def __init__(self, backbone: "WanBackbone"):
        self.backbone = backbone
        self.vae = backbone.vae
        self.module = getattr(self.vae, self.part)
        self.cache: list[torch.Tensor | None] = [None] * conv_count(self.vae, self.part)
        self.started = False

    def _chunk(self, x: torch.Tensor, stages: list[int] = (), **kwargs) -> tuple[torch.Tensor, list[torch.Tensor]]:
        module, n = self.module, len(self.cache)

        def step(chunk, *cache):
            local = list(cache)
            with self.backbone._collect_stages(stages) as collected:
                out = module(chunk, feat_cache=local, feat_idx=[0], **kwargs)
            return (out, *(collected[s][0] for s in stages), *local)

        if getattr(module, "gradient_checkpointing", False) and module.training and torch.is_grad_enabled():
            outs = checkpoint_function(module)(step, x, *self.cache)
        else:
            outs = step(x, *self.cache)
        self.cache = list(outs[len(outs) - n :])
        self.started = True
        return outs[0], list(outs[1 : len(outs) - n])


class CausalEncoder(_CachedCall):
    """Wan's encoder over consecutive frame chunks, as ``AutoencoderKLWan._encode`` runs it, with the cache kept
    between calls (streaming) and the requested encoder-stage features."""

    part = "encoder"

    def __init__(self, backbone: "WanBackbone", stages: list[int] | tuple[int, ...] = ()):
        super().__init__(backbone)
        self.stages = sorted(set(stages))

    def __call__(self, frames: torch.Tensor) -> tuple[torch.Tensor, dict[int, list[torch.Tensor]]]:
        """Pixels of whole latent frames (the first call starts with the lone first frame) -> (encoder output
        before ``quant_conv``, stage -> per-group features)."""
        if self.vae.config.patch_size is not None:
            frames = _wan().patchify(frames, patch_size=self.vae.config.patch_size)
        start = 0 if self.started else 1
        groups = [] if self.started else [frames[:, :, :1]]
        groups += [frames[:, :, i : i + 4] for i in range(start, frames.shape[2], 4)]
        outs, features = [], {s: [] for s in self.stages}
        for group in groups:
            out, feats = self._chunk(group, self.stages)
            outs.append(out)
            for s, f in zip(self.stages, feats):
                features[s].append(f)
        return (torch.cat(outs, dim=2) if len(outs) > 1 else outs[0]), features


class CausalDecoder(_CachedCall):
    """Wan's decoder one latent frame at a time, as ``AutoencoderKLWan._decode`` runs it, cache kept between calls."""

    part = "decoder"

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """Latent frames (raw, before ``post_quant_conv``) -> pixel frames (not yet unpatchified / clamped)."""
        x = self.vae.post_quant_conv(z)
        outs = []
        for i in range(x.shape[2]):
            first = not self.started
            out, _ = self._chunk(x[:, :, i : i + 1], first_chunk=first) if first else self._chunk(x[:, :, i : i + 1])
            outs.append(out)
        return torch.cat(outs, dim=2) if len(outs) > 1 else outs[0]


def _wan():
    from diffusers.models.autoencoders import autoencoder_kl_wan

    return autoencoder_kl_wan


class WanBackbone(nn.Module):
    """A diffusers ``AutoencoderKLWan`` plus access to its encoder-stage features.

    ``self.vae`` is the untouched diffusers model, so its weights keep diffusers' names (``vae.encoder.*``,
    ``vae.decoder.*``, ``vae.quant_conv.*``) and any saved Wan VAE loads into it; PEFT adapters attach to it
    with :meth:`add_lora` (PEFT, with a LoRA layer that understands Wan's causal padding and cache).
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
        if self.vae.use_tiling:  # diffusers' own spatial tiling (enabled on the inner VAE by the user)
            stages = sorted(set(stages))
            with self._collect_stages(stages) as collected:
                moments = self.vae._encode(pixel_values)
            return moments[:, : self.z_dim], {s: torch.cat(chunks, dim=2) for s, chunks in collected.items()}
        out, features = CausalEncoder(self, stages)(pixel_values)
        z = self.vae.quant_conv(out)[:, : self.z_dim]
        return z, {s: torch.cat(chunks, dim=2) for s, chunks in features.items()}

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        if self.vae.use_tiling:
            return self.vae._decode(z).sample
        out = CausalDecoder(self)(z)
        if self.vae.config.patch_size is not None:
            out = _wan().unpatchify(out, patch_size=self.vae.config.patch_size)
        return out.clamp(-1.0, 1.0)

    # ------------------------------------------------------------------ LoRA (PEFT)
    def default_lora_targets(self) -> list[str]:
        """Encoder convolutions with 3x3x3 kernels: what the paper adapts, and what peft can merge.

        Wan's temporal convs (3x1x1) and 1x1x1 shortcuts are left out: peft 0.21 cannot merge LoRA into a Conv3d
        whose kernel is 1 in a spatial dimension (peft#3768).
        """
        return [
            f"encoder.{name}" if name else "encoder"
            for name, module in self.vae.encoder.named_modules()
            if isinstance(module, nn.Conv3d) and tuple(module.kernel_size) == (3, 3, 3)
        ]

    def add_lora(self, rank: int = 16, alpha: int = 32, dropout: float = 0.0, target_modules: list[str] | None = None) -> None:
        """Inject PEFT LoRA adapters into the (frozen) backbone, in place; only the adapters train."""
        from peft import LoraConfig, inject_adapter_in_model

        targets = target_modules or self.default_lora_targets()
        config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, init_lora_weights=True)
        config._register_custom_module({WanCausalConv3d: lora_layer_class()})
        inject_adapter_in_model(config, self.vae, adapter_name="default")

    def lora_layers(self):
        from peft.tuners.tuners_utils import BaseTunerLayer

        return [(name, m) for name, m in self.vae.named_modules() if isinstance(m, BaseTunerLayer)]

    def has_adapters(self) -> bool:
        return bool(self.lora_layers())

    def merge_lora(self) -> None:
        """Fold the adapters into the base weights and remove them (the saved model needs no peft)."""
        for name, layer in self.lora_layers():
            layer.merge(safe_merge=True)
            parent_name, _, child = name.rpartition(".")
            parent = self.vae.get_submodule(parent_name) if parent_name else self.vae
            setattr(parent, child, layer.get_base_layer())

    @contextmanager
    def adapters_disabled(self):
        """Run the frozen base encoder (adapters off) — the offline anchor of the drift term."""
        layers = [m for _, m in self.lora_layers()]
        for layer in layers:
            layer.enable_adapters(False)
        try:
            yield
        finally:
            for layer in layers:
                layer.enable_adapters(True)
