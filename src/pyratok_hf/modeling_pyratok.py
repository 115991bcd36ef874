"""PyraTok, the tokenizer: a causal Wan VAE backbone, LaPQ on its lateral features, and the two model classes.

Reading order, encode -> decode (with ``configuration_pyratok.py`` for the fields, ``lapq.py`` for the levels
and ``quantizer.py`` for the binary codes)::

    PyraTokCore.encode             check pixels, pad (_pad), project text (encode_text)
      _encode_continuous           one causal pass per window: WanBackbone.encode -> CausalEncoder, or
                                   _tiled_encode_continuous for large frames; latents normalised
      LaPQ (lapq.py)               q(l) = Q_l(q(l-1), F(l), text), shared binary codebook -> token ids
    PyraTokCore.decode             ids_to_latents (lapq.codes_to_latent) -> _decode_latent -> WanBackbone.decode
                                   (CausalDecoder), or _TiledDecoder for large frames
    encode_streaming / decode_streaming   the same causal chunking, one chunk at a time (memory flat in length)

Blocks come first (outputs, input checks, the backbone and its causal chunking, spatial tiles, stream
chunking), then :class:`PyraTokCore`, the mixin holding every module and the encode / decode / loss logic, and
the transformers class :class:`PyraTokModel`. ``AutoencoderPyraTok`` (``autoencoder_pyratok.py``, diffusers)
inherits the same mixin, so both classes have identical parameter names and one saved folder loads in either.

Module tree (these are the weight names)::

    backbone.vae.{encoder,quant_conv,post_quant_conv,decoder}.*   diffusers AutoencoderKLWan, frozen (+ LoRA)
    lapq.levels.{l}.*                                             LaPQ level blocks, coarse -> fine
    text_proj.*                                                   text states -> text_embed_dim
    text_to_code.*, video_projection.*, text_projection.*         alignment heads (codebook & zero-shot)

>>> from pyratok_hf import PyraTokModel
>>> model = PyraTokModel.from_pretrained("org/pyratok-l")           # Hub id (or a local folder)
>>> enc = model.encode(video, text="a red ball rolls left")        # video [B, 3, T, H, W] in [-1, 1]
>>> video_hat = model.decode(token_ids=enc.token_ids, output_shape=enc.input_shape).sample

Weights are safetensors only; pickled checkpoints are refused unless ``allow_pickle=True`` is passed.
"""

from __future__ import annotations

import functools
import logging
import math
import operator
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKLWan
from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d, WanResample, WanResidualDownBlock
from torch import nn
from transformers import AutoConfig, AutoModel, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPooling
from transformers.utils import ModelOutput

from .configuration_pyratok import PyraTokConfig
from .errors import CheckpointError, CheckpointNotFoundError, ConfigError, InvalidInputError, NonFiniteOutputError, ResourceLimitError
from .inference import inference_context
from .lapq import LaPQ, _resize_time
from .losses import (
    codebook_text_alignment_loss,
    commitment_loss,
    contrastive_loss,
    drift_loss,
    level_kl_loss,
    lfq_entropy_loss,
    reconstruction_loss,
    text_code_fit_loss,
    token_text_alignment_loss,
)
from .quantizer import as_int64_ids, check_ids_in_range, ids_to_codes
from .text_encoder import FrozenTextEncoder, TextEncoding, validate_prompts

logger = logging.getLogger(__name__)



# ----------------------------------------------------------------------------- outputs
@dataclass
class PyraTokEncoderOutput(ModelOutput):
    """Result of :meth:`encode`.

    Args:
        token_ids: one ``LongTensor`` ``[B, t_l, h_l, w_l]`` per level, coarse to fine; id = bit pattern.
        latents: the quantized latent ``[B, z_dim, T', H', W']`` (sum of the levels), what the decoder consumes.
        level_codes: per level, the ±1 codes ``[B, t_l, h_l, w_l, K]`` (straight-through, differentiable).
        level_logits: per level, the pre-quantization values ``[B, t_l, h_l, w_l, K]``.
        continuous_latents: the backbone's (normalised) latent before quantization.
        input_shape: ``(T, H, W)`` of the input before padding, used to crop the decoded video.
    """

    token_ids: tuple[torch.LongTensor, ...] | None = None
    latents: torch.FloatTensor | None = None
    level_codes: tuple[torch.FloatTensor, ...] | None = None
    level_logits: tuple[torch.FloatTensor, ...] | None = None
    continuous_latents: torch.FloatTensor | None = None
    input_shape: tuple[int, int, int] | None = None


@dataclass
class PyraTokDecoderOutput(ModelOutput):
    """Result of :meth:`decode`: ``sample`` ``[B, 3, T, H, W]`` in [-1, 1]."""

    sample: torch.FloatTensor | None = None


@dataclass
class PyraTokModelOutput(ModelOutput):
    """Result of ``forward``. ``loss`` comes first so HF ``Trainer`` can train on it."""

    loss: torch.FloatTensor | None = None
    recon_loss: torch.FloatTensor | None = None
    codebook_loss: torch.FloatTensor | None = None
    ar_loss: torch.FloatTensor | None = None
    drift_loss: torch.FloatTensor | None = None
    reconstruction: torch.FloatTensor | None = None
    token_ids: tuple[torch.LongTensor, ...] | None = None
    loss_terms: dict | None = None

    @property
    def sample(self) -> torch.FloatTensor | None:
        """The reconstruction, under the name diffusers autoencoders use (``vae(x).sample``)."""
        return self.reconstruction


@dataclass
class StreamingChunk:
    """One chunk of :func:`encode_streaming`.

    Args:
        token_ids: per level, coarse to fine, ``[B, n, h_l, w_l]`` for the chunk's ``n`` latent frames.
        latents: the quantized latent of the chunk ``[B, z_dim, n, H', W']``.
        latent_start: index of the chunk's first latent frame in the clip.
        num_frames: pixel frames of the input consumed by this chunk (before time padding).
        frame_size: ``(H, W)`` of the input frames (before spatial padding).
        level_logits: per level, the pre-quantization values ``[B, n, h_l, w_l, K]`` (float32).
    """

    token_ids: tuple[torch.Tensor, ...]
    latents: torch.Tensor
    latent_start: int
    num_frames: int
    frame_size: tuple[int, int]
    level_logits: tuple[torch.Tensor, ...]

    @property
    def num_latent_frames(self) -> int:
        return self.latents.shape[2]


def concat_chunks(chunks: Iterable[StreamingChunk]) -> tuple[tuple[torch.Tensor, ...], torch.Tensor, tuple[int, int, int]]:
    """Concatenate streamed chunks: ``(token_ids per level, quantized latents, input_shape (T, H, W))``.

    This materialises the whole clip again; use it for short clips and tests, and consume chunks one at a time
    for long ones.
    """
    chunks = list(chunks)
    if not chunks:
        raise InvalidInputError("no chunks to concatenate: the stream was empty.")
    levels = len(chunks[0].token_ids)
    token_ids = tuple(torch.cat([c.token_ids[l] for c in chunks], dim=1) for l in range(levels))
    latents = torch.cat([c.latents for c in chunks], dim=2)
    frames = sum(c.num_frames for c in chunks)
    return token_ids, latents, (frames, *chunks[0].frame_size)


# ----------------------------------------------------------------------------- input checks
def _fp32_module_names(model) -> list[str]:
    """The modules either library keeps in float32 (diffusers: ``_keep_in_fp32_modules``; transformers: ``_strict``)."""
    cls = type(model)
    return list(getattr(cls, "_keep_in_fp32_modules", None) or ()) + list(getattr(cls, "_keep_in_fp32_modules_strict", None) or ())


def _execution_device(module: nn.Module) -> torch.device:
    """Where ``module`` computes: its weights' device, or, when accelerate offloaded them (``device_map`` with
    CPU / disk offload leaves them on ``meta``), the execution device of its offload hooks."""
    weight = next(module.parameters())
    if weight.device.type != "meta":
        return weight.device
    for sub in module.modules():
        hook = getattr(sub, "_hf_hook", None)
        for h in getattr(hook, "hooks", None) or ([hook] if hook is not None else []):  # SequentialHook or one hook
            device = getattr(h, "execution_device", None)
            if device is not None:
                return torch.device("cuda", device) if isinstance(device, int) else torch.device(device)
    return torch.device("cpu")


def _check_output_shape(output_shape) -> tuple[int, int, int]:
    """``(T, H, W)`` of positive integers, or :class:`InvalidInputError` (it sizes the latent and the crop)."""
    try:
        values = tuple(operator.index(v) for v in output_shape if not isinstance(v, bool))  # numpy ints welcome
    except TypeError:
        values = ()
    if len(values) != 3 or min(values) < 1:
        raise InvalidInputError(f"output_shape must be (T, H, W) of positive integers (encode(...).input_shape), got {output_shape!r}.")
    return values


def check_tensor_kind(tensor: torch.Tensor, what: str) -> None:
    """Refuse tensors that hold no ordinary data: sparse / nested / quantized layouts, the meta device, complex.

    Non-contiguous and channels-last tensors, views and ``requires_grad`` tensors are fine (nothing is copied).
    """
    if tensor.layout != torch.strided or getattr(tensor, "is_nested", False):
        raise InvalidInputError(f"{what} is a {tensor.layout} tensor; pass a dense one (x.to_dense()).")
    if tensor.is_quantized:
        raise InvalidInputError(f"{what} is a quantized tensor ({tensor.dtype}); pass x.dequantize().")
    if tensor.device.type == "meta":
        raise InvalidInputError(f"{what} is on the meta device, so it holds no values; load or compute real data first.")
    if tensor.is_complex():
        raise InvalidInputError(f"{what} has the complex dtype {tensor.dtype}; pass real values (x.real or x.abs()).")


def value_range(tensor: torch.Tensor) -> tuple[float, float]:
    """``(min, max)`` in one pass with no tensor-sized temporary; NaN propagates and Inf shows as itself."""
    low, high = torch.aminmax(tensor.detach())
    return float(low), float(high)


def check_finite_output(tensor: torch.Tensor, what: str, hint: str) -> None:
    """Raise :class:`NonFiniteOutputError` rather than return NaN / Inf as if they were a result (one cheap pass)."""
    low, high = value_range(tensor)
    if not (math.isfinite(low) and math.isfinite(high)):
        raise NonFiniteOutputError(
            f"{what} came out as NaN or Inf, so no result is returned. {hint} If the inputs are ordinary, the "
            "checkpoint may be damaged: re-download it or re-save it."
        )


# ----------------------------------------------------------------------------- the backbone (diffusers' AutoencoderKLWan) and its causal chunking
def checkpoint_function(module: nn.Module):
    """The checkpoint function the model classes installed on ``module``, else non-reentrant checkpointing."""
    func = getattr(module, "_gradient_checkpointing_func", None)
    if func is None:
        return functools.partial(torch.utils.checkpoint.checkpoint, use_reentrant=False)
    keywords = getattr(func, "keywords", None) or {}
    if keywords.get("use_reentrant", False):
        # A reentrant checkpoint only back-propagates into its parameters if some input needs a gradient; a
        # frozen input (pixels, an empty cache) does not, so hand it one that does (its value is unused).
        def reentrant(step, *args):
            anchor = torch.ones((), requires_grad=True)
            return func(lambda _anchor, *rest: step(*rest), anchor, *args)

        return reentrant
    return func


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


# ----------------------------------------------------------------------------- spatial tiles
# Large frames, in bounded memory. Encoding runs the backbone on overlapping pixel tiles; each tile's *continuous*
# latent and its lateral features (already pooled onto every level's token grid) are blended into full-size
# canvases with linear ramps over the overlaps, and LaPQ quantizes the stitched result once. Ids or codes are
# never averaged (averaging signs is meaningless), and since quantization follows stitching the token grids have
# no seam. Tile origins stay on multiples of the coarsest level's cell, so each tile's pooled grid lines up with
# the global one. Decoding blends like diffusers' AutoencoderKLWan.tiled_decode (:class:`_TiledDecoder`).
def _ramp(length: int, overlap_before: int, overlap_after: int, device, dtype) -> torch.Tensor:
    """1-D blending weights: rising over the leading overlap, falling over the trailing one, 1 elsewhere."""
    w = torch.ones(length, device=device, dtype=dtype)
    if overlap_before > 0:
        n = min(overlap_before, length)
        w[:n] = torch.arange(1, n + 1, device=device, dtype=dtype) / (n + 1)
    if overlap_after > 0:
        n = min(overlap_after, length)
        w[length - n :] = torch.minimum(w[length - n :], torch.arange(n, 0, -1, device=device, dtype=dtype) / (n + 1))
    return w


class _Canvas:
    """Weighted accumulation of tiles at one resolution (``factor`` latent cells per cell)."""

    def __init__(self, factor: int):
        self.factor = factor
        self.sum = None
        self.weight = None

    def add(self, tile: torch.Tensor, origin_hw: tuple[int, int], full_hw: tuple[int, int], overlap_hw: tuple[int, int], has_next: tuple[bool, bool]):
        f = self.factor
        oh, ow = origin_hw[0] // f, origin_hw[1] // f
        th, tw = tile.shape[-2:]
        full = (math.ceil(full_hw[0] / f), math.ceil(full_hw[1] / f))
        if self.sum is None:
            self.sum = tile.new_zeros(*tile.shape[:-2], *full)
            self.weight = tile.new_zeros(full)
        ov_h, ov_w = (max(1, math.ceil(o / f)) if o > 0 else 0 for o in overlap_hw)
        wh = _ramp(th, ov_h if oh > 0 else 0, ov_h if has_next[0] else 0, tile.device, tile.dtype)
        ww = _ramp(tw, ov_w if ow > 0 else 0, ov_w if has_next[1] else 0, tile.device, tile.dtype)
        w = wh[:, None] * ww[None, :]
        self.sum[..., oh : oh + th, ow : ow + tw] += tile * w
        self.weight[oh : oh + th, ow : ow + tw] += w

    def result(self) -> torch.Tensor:
        return self.sum / self.weight.clamp_min(1e-8)


def _tile_origins(size: int, tile: int, stride: int) -> list[int]:
    origins = list(range(0, max(size - tile, 0) + 1, stride))
    if origins[-1] + tile < size:
        origins.append(origins[-1] + stride)
    return origins


class _TiledDecoder:
    """Wan's decoder over overlapping spatial tiles, one :class:`CausalDecoder` (and cache) per tile.

    The tiles, per-tile causal decoding and blend arithmetic are those of diffusers'
    ``AutoencoderKLWan.tiled_decode`` (the same output up to float rounding, ~1e-6), but each row of tiles is blended into a
    preallocated output as soon as it is decoded: peak memory is the output plus two rows of tiles, where
    diffusers keeps every decoded tile, then their cropped copies, then the concatenation (about 3.5x the
    output; 2 GB extra for a 5-frame 4K clip). The per-tile caches persist across calls, so whole-clip decoding
    calls it once and streaming calls it once per chunk of latent frames.
    """

    def __init__(self, model):
        self.backbone = model.backbone
        self.vae = model.backbone.vae
        if self.vae.config.patch_size is not None:
            raise ConfigError("tiled decoding of patchified (Wan 2.2) backbones goes through diffusers' own tiled_decode; it cannot be streamed: disable tiling.")
        self.fs = model.pyratok_config.spatial_compression
        self.tile_h, self.tile_w = model.tile_sample_min_height // self.fs, model.tile_sample_min_width // self.fs
        self.stride_h, self.stride_w = model.tile_sample_stride_height // self.fs, model.tile_sample_stride_width // self.fs
        self.out_stride_h, self.out_stride_w = model.tile_sample_stride_height, model.tile_sample_stride_width
        self.blend_h = model.tile_sample_min_height - model.tile_sample_stride_height
        self.blend_w = model.tile_sample_min_width - model.tile_sample_stride_width
        self.decoders: dict[tuple[int, int], CausalDecoder] = {}

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """Raw (denormalised) latent frames ``[B, C, t, h, w]`` -> pixel frames, not yet clamped."""
        height, width = z.shape[-2], z.shape[-1]
        out = None
        previous_row = None
        for row_index, i in enumerate(range(0, height, self.stride_h)):
            row = [
                self.decoders.setdefault((i, j), CausalDecoder(self.backbone))(z[:, :, :, i : i + self.tile_h, j : j + self.tile_w])
                for j in range(0, width, self.stride_w)
            ]
            if out is None:
                out = row[0].new_empty(*row[0].shape[:3], height * self.fs, width * self.fs)
            for col_index, tile in enumerate(row):
                # In place, in diffusers' order: the tile above and the one to the left are already blended.
                if previous_row is not None:
                    tile = self.vae.blend_v(previous_row[col_index], tile, self.blend_h)
                if col_index > 0:
                    tile = self.vae.blend_h(row[col_index - 1], tile, self.blend_w)
                top, left = row_index * self.out_stride_h, col_index * self.out_stride_w
                crop = tile[:, :, :, : min(self.out_stride_h, out.shape[-2] - top), : min(self.out_stride_w, out.shape[-1] - left)]
                out[:, :, :, top : top + crop.shape[-2], left : left + crop.shape[-1]] = crop
            previous_row = row
        return out


# ----------------------------------------------------------------------------- stream chunking
# Streaming drives the causal encoder / decoder (CausalEncoder / CausalDecoder above, the same chunking as
# whole-clip encode and decode) chunk by chunk and never concatenates: every ``chunk_latent_frames`` latent frames
# it pools the chunk's lateral features onto the level grids, runs LaPQ on the chunk and yields its token ids,
# keeping only the feature cache (a few frames per layer) between chunks.
#
# Why chunked LaPQ is the whole-clip LaPQ: with ``level_temporal_downsample == 1`` and ``level_temporal_kernel ==
# 1`` (the defaults) every level operation is per latent frame (temporal kernel 1, resampling keeps time, text
# attention per token), and the lateral features of latent frame t are averages of the stage frames produced by
# the encoder call of that frame. So the ids of a latent frame depend only on that call and the causal cache,
# which streaming reproduces call for call. Configurations that pool or convolve across latent frames are
# refused with ConfigError. Large frames are tiled as in the whole-clip path, one causal cache per tile.
def _check_streamable(config) -> None:
    temporal = list(getattr(config, "level_temporal_downsample", [1]))
    kernel = getattr(config, "level_temporal_kernel", 1)
    if any(f != 1 for f in temporal) or kernel != 1:
        raise ConfigError(
            f"streaming needs per-latent-frame levels (level_temporal_downsample all 1 and level_temporal_kernel 1), "
            f"got {temporal} and {kernel}: these levels mix latent frames, so encode the clip whole with model.encode()."
        )


def _frame_source(video) -> Iterator[torch.Tensor]:
    """Yield ``[B, 3, t, H, W]`` pieces from a tensor ``[B, 3, T, H, W]`` / ``[B, 3, H, W]`` or an iterable of
    frames (``[3, H, W]``, ``[B, 3, H, W]``) or frame chunks (``[B, 3, t, H, W]``)."""
    if torch.is_tensor(video):
        if video.dim() == 4:  # an image batch, like model.encode
            yield video.unsqueeze(2)
            return
        if video.dim() != 5:
            raise InvalidInputError(f"video must be [B, 3, T, H, W] (or an iterable of frames), got shape {tuple(video.shape)}.")
        yield video
        return
    try:
        iterator = iter(video)
    except TypeError:
        raise InvalidInputError(
            f"video must be a tensor [B, 3, T, H, W] or an iterable of frames [3, H, W] / [B, 3, H, W] / chunks "
            f"[B, 3, t, H, W], got {type(video).__name__}."
        ) from None
    for piece in iterator:
        if not torch.is_tensor(piece):
            raise InvalidInputError(f"frame iterables must yield tensors, got {type(piece).__name__}.")
        if piece.dim() == 3:
            piece = piece.unsqueeze(0).unsqueeze(2)
        elif piece.dim() == 4:
            piece = piece.unsqueeze(2)
        elif piece.dim() != 5:
            raise InvalidInputError(f"frames must be [3, H, W], [B, 3, H, W] or [B, 3, t, H, W], got shape {tuple(piece.shape)}.")
        yield piece


def _uniform_pieces(video) -> Iterator[torch.Tensor]:
    """:func:`_frame_source`, refusing a piece whose batch, channels or frame size differ from the first's."""
    shape = None
    for piece in _frame_source(video):
        if shape is None:
            shape = (piece.shape[0], piece.shape[1], *piece.shape[3:])
        elif (piece.shape[0], piece.shape[1], *piece.shape[3:]) != shape:
            raise InvalidInputError(
                f"all frames of a stream must share batch, channels and size; got {tuple(piece.shape)} after {shape}."
            )
        yield piece


def _pixel_chunks(video, chunk_latent_frames: int, temporal: int) -> Iterator[tuple[torch.Tensor, int, bool]]:
    """Regroup the input into chunks of whole latent frames: ``(frames, real frame count, is_first)``.

    The first chunk holds ``1 + temporal * (n - 1)`` frames (the causal first frame alone, then groups), later
    chunks ``temporal * n``. The last chunk is completed by repeating the final frame, like ``model.encode``'s
    padding to ``T = 1 + 4k``.
    """
    pending: list[torch.Tensor] = []
    count = 0
    first = True
    seen = False
    for piece in _uniform_pieces(video):
        seen = True
        pending.append(piece)
        count += piece.shape[2]
        need = 1 + temporal * (chunk_latent_frames - 1) if first else temporal * chunk_latent_frames
        while count >= need:
            frames = torch.cat(pending, dim=2) if len(pending) > 1 else pending[0]
            yield frames[:, :, :need], need, first
            rest = frames[:, :, need:]
            pending = [rest] if rest.shape[2] else []
            count -= need
            first = False
            need = temporal * chunk_latent_frames
    if count:
        frames = torch.cat(pending, dim=2) if len(pending) > 1 else pending[0]
        pad = (-(count - 1)) % temporal if first else (-count) % temporal
        if pad:
            frames = torch.cat([frames, frames[:, :, -1:].expand(-1, -1, pad, -1, -1)], dim=2)
        yield frames, count, first
    elif not seen:
        raise InvalidInputError("the video stream yielded no frames.")


def _windowed_pixel_chunks(video, chunk_latent_frames: int, config) -> Iterator[tuple[torch.Tensor, int, bool]]:
    """:func:`_pixel_chunks` restarted at every causal window (``config.causal_window_frames``), so streaming
    cuts the clip where ``model.encode`` does; ``is_first`` marks the first chunk of each window."""
    window = config.causal_window_frames
    if window is None:
        yield from _pixel_chunks(video, chunk_latent_frames, config.temporal_compression)
        return
    pending: list[torch.Tensor] = []
    count, seen = 0, False
    for piece in _uniform_pieces(video):
        pending.append(piece)
        count += piece.shape[2]
        while count >= window:
            frames = torch.cat(pending, dim=2) if len(pending) > 1 else pending[0]
            yield from _pixel_chunks(frames[:, :, :window], chunk_latent_frames, config.temporal_compression)
            seen = True
            rest = frames[:, :, window:]
            pending = [rest] if rest.shape[2] else []
            count -= window
    if pending or not seen:  # an empty stream gets _pixel_chunks' error
        yield from _pixel_chunks(pending, chunk_latent_frames, config.temporal_compression)


def _pool_time(feature: torch.Tensor, latent_frames: int, first: bool) -> torch.Tensor:
    """Average a chunk's stage feature onto its latent frames exactly as the whole-clip path does.

    The whole-clip path (:func:`pyratok_hf.lapq.resize_causal`) keeps stage frame 0 alone and pools the rest in
    equal groups. A later chunk has no frame 0, so a placeholder copy of its first frame is put in front, pooled
    with the same function and dropped: every latent frame is then the same average, computed by the same kernel.
    """
    if first:
        return _resize_time(feature, latent_frames, "nearest")
    padded = torch.cat([feature[:, :, :1], feature], dim=2)
    return _resize_time(padded, latent_frames + 1, "nearest")[:, :, 1:]


class _ChunkEncoder:
    """The backbone's :class:`CausalEncoder` (one per spatial tile), with each chunk's stage
    features pooled onto its latent frames and the posterior mode taken."""

    def __init__(self, model):
        self.encoder = CausalEncoder(model.backbone, model.pyratok_config.lateral_stages)
        self.vae = model.backbone.vae

    def __call__(self, frames: torch.Tensor, origin=None):
        """Pixels of whole latent frames -> (raw posterior mode ``z``, stage features pooled to latent frames)."""
        first = not self.encoder.started
        out, collected = self.encoder(frames)
        z = self.vae.quant_conv(out)[:, : self.vae.config.z_dim]
        features = {s: _pool_time(torch.cat(chunks, dim=2), len(chunks), first) for s, chunks in collected.items()}
        return z, features


# ----------------------------------------------------------------------------- the model
def video_token_projection(code_bits: int, projection_dim: int, hidden_dim: int | None) -> nn.Module:
    """Each token's ±1 code -> the shared video-text space (``config.video_projection_hidden_dim``).

    Linear when ``hidden_dim`` is None (folders saved before the option keep their ``video_projection.weight``).
    With a hidden width it is a per-token MLP: a linear head makes the clip feature a linear function of the
    per-bit averages, which carried no retrievable meaning in our runs (docs/zero-shot.md).
    """
    if hidden_dim is None:
        return nn.Linear(code_bits, projection_dim)
    return nn.Sequential(
        nn.Linear(code_bits, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, projection_dim)
    )


class PyraTokCore:
    """Mixin: build with :meth:`_build_pyratok(config)` from ``__init__`` of an ``nn.Module`` subclass."""

    def _build_pyratok(self, config) -> None:
        self.pyratok_config = config
        try:
            self.backbone = WanBackbone(config.backbone_config)
        except (TypeError, ValueError, IndexError, KeyError, AttributeError, ZeroDivisionError) as err:
            if isinstance(err, ConfigError):
                raise
            raise ConfigError(
                f"backbone_config cannot build a Wan VAE ({type(err).__name__}: {err}); check its fields against "
                "diffusers' AutoencoderKLWan (e.g. attn_scales: list of numbers, temperal_downsample: list of booleans)."
            ) from err
        self.backbone.requires_grad_(False)  # frozen by default; LoRA adapters add trainable weights
        if not config.norm_upcast:
            set_norm_upcast(self.backbone.vae, False)  # the authors' release numerics (config.norm_upcast)
        self.lapq = LaPQ(config, self.backbone.stage_channels()).float()  # float32 whatever torch's default dtype
        K = config.codebook_bits
        if config.use_text_conditioning or config.token_text_weight or config.contrastive_weight:
            hidden = getattr(config, "text_proj_hidden_dim", None) or max(config.text_embed_dim, 4 * config.text_embed_dim)
            self.text_proj = nn.Sequential(
                nn.Linear(config.text_hidden_size, hidden), nn.SiLU(), nn.Linear(hidden, config.text_embed_dim)
            )
        else:
            self.text_proj = None
        # Alignment heads: the text's per-bit code (Eq. 2 KL terms) and the shared video-text space.
        self.text_to_code = nn.Linear(config.text_embed_dim, K)
        self.video_projection = video_token_projection(K, config.projection_dim, getattr(config, "video_projection_hidden_dim", None))
        self.text_projection = nn.Linear(config.text_embed_dim, config.projection_dim)
        self.level_embedding = nn.Parameter(torch.zeros(config.num_levels, config.projection_dim))
        self.__dict__["_text_encoder"] = None  # referenced, not a submodule: never saved with our weights
        self.__dict__["ar_loss_hook"] = None
        self.__dict__["perceptual_loss"] = None
        self.__dict__["drift_anchor"] = None
        self.use_tiling = False
        self.use_slicing = False
        self.tile_sample_min_height = 256
        self.tile_sample_min_width = 256
        self.tile_sample_stride_height = 192
        self.tile_sample_stride_width = 192

    # ------------------------------------------------------------------ text
    def set_text_encoder(self, text_encoder: FrozenTextEncoder | None) -> None:
        self.__dict__["_text_encoder"] = text_encoder

    def get_text_encoder(self) -> FrozenTextEncoder:
        """The frozen text model named by the config, loaded on first use (offline: local path or MiniLM package)."""
        if self.__dict__.get("_text_encoder") is None:
            c = self.pyratok_config
            if not c.text_encoder_name_or_path:
                raise InvalidInputError("this model has no text encoder configured; pass text_embeds instead of text.")
            enc = FrozenTextEncoder.from_pretrained(
                c.text_encoder_name_or_path, hidden_layer=c.text_hidden_layer, pooling=c.text_pooling, max_length=c.text_max_length
            )
            self.__dict__["_text_encoder"] = enc.to(self._device())
        return self.__dict__["_text_encoder"]

    def _device(self) -> torch.device:
        # The release layout without text conditioning has a parameter-free LaPQ: fall back to the heads.
        return _execution_device(self.lapq if next(self.lapq.parameters(), None) is not None else self.text_to_code)

    def _backbone_dtype(self) -> torch.dtype:
        return next(self.backbone.parameters()).dtype

    def _backbone_device(self) -> torch.device:
        return _execution_device(self.backbone)

    def _keep_modules_in_fp32(self) -> None:
        """Put the modules named by ``_keep_in_fp32_modules`` back in float32 (after a cast to fp16 / bf16)."""
        for name in _fp32_module_names(self):
            module = getattr(self, name, None)
            if isinstance(module, nn.Module) and any(p.is_floating_point() and p.dtype != torch.float32 for p in module.parameters()):
                module.float()

    def _cast_keeping_fp32_modules(self, dtype: torch.dtype) -> None:
        """Cast floating-point weights to ``dtype`` except the ``_keep_in_fp32_modules`` (LaPQ), which are never
        rounded through ``dtype`` (the loaders' ``torch_dtype``)."""
        keep = set(_fp32_module_names(self))
        cast = lambda t: t.to(dtype) if t.is_floating_point() else t  # noqa: E731
        nn.Module._apply(self, cast, recurse=False)  # the model's own parameters (level_embedding)
        for name, child in self.named_children():
            if name not in keep:
                nn.Module._apply(child, cast)
        self._keep_modules_in_fp32()

    def _lapq_dtype(self) -> torch.dtype:
        """float32 (or float64); a half-precision LaPQ is refused: its sign quantization flips in fp16 / bf16."""
        p = next(self.lapq.parameters(), None)
        if p is None:
            return torch.float32
        if p.dtype not in (torch.float32, torch.float64):
            raise InvalidInputError(
                f"LaPQ is in {p.dtype} but must stay in float32 (signs of small half-precision values flip); the model was "
                "cast with .to()/.half(). Load with from_pretrained(..., torch_dtype=...) instead, or call model.lapq.float()."
            )
        return p.dtype

    def encode_text(self, text=None, text_embeds=None, text_attention_mask=None, batch_size: int | None = None):
        """Project text to the states levels attend to. Returns ``(states [B,S,E], mask [B,S], pooled [B,E])``
        or ``None`` without text. ``text``: str / list of str; ``text_embeds``: raw text-model states."""
        if text is None and text_embeds is None:
            return None
        if self.text_proj is None:
            raise InvalidInputError("this model was configured without text conditioning; call it without text.")
        if text is not None:
            if isinstance(text, TextEncoding):
                encoding = text
            else:
                prompts = validate_prompts(text)
                if batch_size is not None and len(prompts) == 1 and batch_size > 1:
                    prompts = prompts * batch_size
                encoding = self.get_text_encoder()(prompts, device=self._device())
            states, mask = encoding.states, encoding.mask
        else:
            states = text_embeds
            if not torch.is_tensor(states) or states.dim() != 3:
                raise InvalidInputError(
                    f"text_embeds must be a float tensor [batch, tokens, text_hidden_size], got {getattr(states, 'shape', type(states).__name__)}."
                )
            check_tensor_kind(states, "text_embeds")
            if not states.is_floating_point():
                raise InvalidInputError(
                    f"text_embeds must be floating point (the text model's hidden states), got {states.dtype}; for token ids or "
                    "strings pass text=... instead."
                )
            if states.shape[0] == 0 or states.shape[1] == 0:
                raise InvalidInputError(
                    f"text_embeds has no tokens (shape {tuple(states.shape)}); give at least one token per prompt, or omit text."
                )
            low, high = value_range(states)
            if not (math.isfinite(low) and math.isfinite(high)):
                raise InvalidInputError("text_embeds contains NaN or Inf; recompute the text states (or clean them with torch.nan_to_num).")
            mask = self._check_text_mask(text_attention_mask, tuple(states.shape[:2]))
        if states.shape[-1] != self.pyratok_config.text_hidden_size:
            raise InvalidInputError(
                f"text states have width {states.shape[-1]} but the model expects text_hidden_size="
                f"{self.pyratok_config.text_hidden_size}; use the text encoder the model was trained with."
            )
        if batch_size is not None and states.shape[0] != batch_size:
            raise InvalidInputError(f"got {states.shape[0]} prompts for {batch_size} videos; give one prompt per video (or one for all).")
        dtype = self.text_proj[0].weight.dtype
        mask = mask.to(self._device()).bool()
        projected = self.text_proj(states.to(self._device(), dtype))
        low, high = value_range(projected)  # [B, S, E]: tiny
        if not (math.isfinite(low) and math.isfinite(high)):
            raise InvalidInputError(
                "the text states overflow to NaN/Inf in the text projection (text_embeds values are far too large, e.g. 1e30); "
                "pass the text model's hidden states unscaled."
            )
        weights = mask.unsqueeze(-1).to(projected.dtype)
        pooled = (projected * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return projected, mask, pooled

    # ------------------------------------------------------------------ input checks and padding
    @staticmethod
    def _check_text_mask(mask, shape: tuple[int, int]) -> torch.Tensor:
        """``text_attention_mask``: ``[batch, tokens]`` of bool or 0/1, at least one real token per prompt."""
        if mask is None:
            return torch.ones(shape, dtype=torch.bool)
        if not torch.is_tensor(mask):
            raise InvalidInputError(f"text_attention_mask must be a tensor [batch, tokens] of bool or 0/1, got {type(mask).__name__}.")
        check_tensor_kind(mask, "text_attention_mask")
        if tuple(mask.shape) != shape:
            raise InvalidInputError(
                f"text_attention_mask has shape {tuple(mask.shape)} but text_embeds needs {shape} ([batch, tokens]); pass the "
                "attention_mask the tokenizer returned with these states."
            )
        if mask.dtype != torch.bool:
            valid = torch.logical_or(mask == 0, mask == 1).all()  # [B, S]: tiny
            if not bool(valid):
                raise InvalidInputError("text_attention_mask must hold only 0/1 (or True/False): 1 marks a real token, 0 padding.")
            mask = mask != 0
        if not bool(mask.any(dim=1).all()):
            rows = torch.nonzero(~mask.any(dim=1)).flatten().tolist()[:5]
            raise InvalidInputError(
                f"text_attention_mask masks every token of prompt(s) {rows}: attention over no token is undefined (NaN). "
                "Mark at least one real token per prompt, or omit text."
            )
        return mask

    def _check_pixels(self, pixel_values) -> tuple[torch.Tensor, bool]:
        if not torch.is_tensor(pixel_values):
            raise InvalidInputError(
                f"pixel_values must be a torch.Tensor [B, 3, T, H, W] in [-1, 1], got {type(pixel_values).__name__}; "
                "use pyratok_hf.video_io.read_video to load a file."
            )
        check_tensor_kind(pixel_values, "pixel_values")
        if pixel_values.dim() == 4:
            image = True
            pixel_values = pixel_values.unsqueeze(2)
        elif pixel_values.dim() == 5:
            image = False
        else:
            raise InvalidInputError(
                f"pixel_values must have 5 dims [B, 3, T, H, W] (or 4 for images [B, 3, H, W]), got shape {tuple(pixel_values.shape)}."
            )
        if pixel_values.shape[1] != 3:
            hint = " It looks channel-last: permute to [B, 3, T, H, W]." if pixel_values.shape[-1] == 3 else ""
            raise InvalidInputError(f"expected 3 colour channels at dim 1, got shape {tuple(pixel_values.shape)}.{hint}")
        if min(pixel_values.shape) == 0:
            raise InvalidInputError(f"pixel_values is empty (shape {tuple(pixel_values.shape)}).")
        if not pixel_values.is_floating_point():
            raise InvalidInputError(
                f"pixel_values must be floating point in [-1, 1], got {pixel_values.dtype}; for uint8 frames use x / 127.5 - 1."
            )
        # One pass and no clip-sized temporary (an 8K clip is GBs): min/max propagate NaN and expose +-Inf.
        low, high = (float(v) for v in torch.aminmax(pixel_values))
        if not (math.isfinite(low) and math.isfinite(high)):
            raise InvalidInputError("pixel_values contains NaN or Inf; clean the input (e.g. torch.nan_to_num) before encoding.")
        tol = self.pyratok_config.input_value_tolerance
        if low < -1 - tol or high > 1 + tol:
            raise InvalidInputError(
                f"pixel_values must be in [-1, 1], got values in [{low:.3g}, {high:.3g}]. "
                + ("Frames in [0, 255]? use x / 127.5 - 1." if high > 2 else "Rescale with x * 2 - 1 (from [0, 1]) or clamp.")
            )
        if low < -1 or high > 1:
            warnings.warn(f"pixel_values slightly outside [-1, 1] ([{low:.3g}, {high:.3g}]); clamped.", stacklevel=3)
            pixel_values = pixel_values.clamp(-1, 1)
        # Compute in the backbone's dtype: float16 / float64 frames would otherwise stop at the first
        # convolution with a bare "Input type and bias type should be the same" RuntimeError.
        # Inputs on another device than the model are moved (one copy, needed anyway; none when they match).
        device, dtype = self._backbone_device(), self._backbone_dtype()
        if pixel_values.dtype != dtype or pixel_values.device != device:
            pixel_values = pixel_values.to(device=device, dtype=dtype)
        return pixel_values, image

    def _pad(self, x: torch.Tensor, frames: bool = True) -> torch.Tensor:
        """Replicate-pad to T = 1 + 4k (per causal window; ``frames=False`` keeps T, as streaming chunks do) and
        H, W to multiples of the spatial factor. The one padding helper: outputs are cropped back after decoding."""
        c = self.pyratok_config
        t, h, w = x.shape[2:]
        fs = c.spatial_compression
        pad_t = c.padded_num_frames(t) - t if frames else 0  # 1 + 4k per causal window (config.causal_window_frames)
        pad_h, pad_w = (-h) % fs, (-w) % fs
        if pad_t:
            x = torch.cat([x, x[:, :, -1:].expand(-1, -1, pad_t, -1, -1)], dim=2)
        if pad_h or pad_w:
            b, ch, tt = x.shape[:3]
            flat = x.reshape(b, ch * tt, h, w)
            flat = F.pad(flat, (0, pad_w, 0, pad_h), mode="replicate")
            x = flat.reshape(b, ch, tt, h + pad_h, w + pad_w)
        return x

    @property
    def spatial_compression_ratio(self) -> int:
        """Pixels per latent cell along H and W (diffusers' name)."""
        return self.pyratok_config.spatial_compression

    @property
    def temporal_compression_ratio(self) -> int:
        """Frames per latent frame after the first (diffusers' name)."""
        return self.pyratok_config.temporal_compression

    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int]:
        c = self.pyratok_config
        return (c.latent_num_frames(num_frames), math.ceil(height / c.spatial_compression), math.ceil(width / c.spatial_compression))

    def token_grids(self, num_frames: int, height: int, width: int) -> list[tuple[int, int, int]]:
        """Each level's token grid ``(t, h, w)`` for a video of the given size."""
        return self.lapq.grids(self.latent_shape(num_frames, height, width))

    # ------------------------------------------------------------------ tiling / slicing (diffusers conventions)
    def enable_tiling(self, tile_sample_min_height=None, tile_sample_min_width=None, tile_sample_stride_height=None, tile_sample_stride_width=None):
        """Encode/decode in overlapping spatial tiles; continuous latents are blended at seams, then quantized."""
        self.use_tiling = True
        self.tile_sample_min_height = tile_sample_min_height or self.tile_sample_min_height
        self.tile_sample_min_width = tile_sample_min_width or self.tile_sample_min_width
        self.tile_sample_stride_height = tile_sample_stride_height or self.tile_sample_stride_height
        self.tile_sample_stride_width = tile_sample_stride_width or self.tile_sample_stride_width

    def disable_tiling(self):
        self.use_tiling = False

    def enable_slicing(self):
        """Process a batch one video at a time."""
        self.use_slicing = True

    def disable_slicing(self):
        self.use_slicing = False

    def _needs_tiling(self, height: int, width: int) -> bool:
        if self.use_tiling:
            return height > self.tile_sample_min_height or width > self.tile_sample_min_width
        c = self.pyratok_config
        if height * width > c.max_pixels_untiled:
            if c.auto_tiling:
                logger.info("input of %dx%d exceeds max_pixels_untiled=%d: tiling automatically.", height, width, c.max_pixels_untiled)
                return True
            raise ResourceLimitError(
                f"{height}x{width} frames exceed max_pixels_untiled={c.max_pixels_untiled}; call model.enable_tiling() "
                "(or set config.auto_tiling=True) to process them in bounded memory."
            )
        return False

    def _tiled_encode_continuous(self, x: torch.Tensor, encode_tile=None):
        """Padded pixels ``[B, 3, T, H, W]`` -> (normalised latent, laterals per level), built tile by tile.

        ``encode_tile(tile, origin) -> (z, stage features)`` replaces ``self.backbone.encode`` for one tile
        (``origin`` = its top-left latent cell, a stable key): streaming encode passes a function that keeps one
        causal feature cache per tile across time chunks.
        """
        c = self.pyratok_config
        fs = c.spatial_compression
        align = max(c.level_spatial_downsample)
        tile_h = max(align, self.tile_sample_min_height // fs)
        tile_w = max(align, self.tile_sample_min_width // fs)
        # Strides in latent cells, rounded down to a multiple of the coarsest level's cell (at least one cell).
        stride_h = max(align, (self.tile_sample_stride_height // fs) // align * align)
        stride_w = max(align, (self.tile_sample_stride_width // fs) // align * align)
        # Rounding the stride up to the coarse cell must not eat the overlap the caller asked for (it is what hides
        # the seams): grow the tile instead, so each seam keeps at least the requested overlap.
        tile_h = max(tile_h, stride_h + max(0, (self.tile_sample_min_height - self.tile_sample_stride_height) // fs))
        tile_w = max(tile_w, stride_w + max(0, (self.tile_sample_min_width - self.tile_sample_stride_width) // fs))
        stride_h, stride_w = min(stride_h, tile_h), min(stride_w, tile_w)
        full_hw = (x.shape[-2] // fs, x.shape[-1] // fs)
        rows = _tile_origins(full_hw[0], tile_h, stride_h)
        cols = _tile_origins(full_hw[1], tile_w, stride_w)
        latent_canvas = _Canvas(1)
        lateral_canvases = [_Canvas(f) for f in self.lapq.lateral_spatial_factors()]
        stages = list(c.lateral_stages)
        for r_i, r in enumerate(rows):
            for c_i, col in enumerate(cols):
                tile = x[..., r * fs : (r + tile_h) * fs, col * fs : (col + tile_w) * fs]
                z, feats = encode_tile(tile, (r, col)) if encode_tile is not None else self.backbone.encode(tile, stages)
                z = self._normalize(z)
                has_next = (r_i + 1 < len(rows), c_i + 1 < len(cols))
                overlap = (tile_h - stride_h, tile_w - stride_w)
                latent_canvas.add(z, (r, col), full_hw, overlap, has_next)
                if stages:
                    laterals = self.lapq.pool_laterals(feats, tuple(z.shape[2:]))
                    for canvas, lat in zip(lateral_canvases, laterals):
                        canvas.add(lat, (r, col), full_hw, overlap, has_next)
                del feats
        z = latent_canvas.result()
        laterals = [cv.result() for cv in lateral_canvases] if stages else [None] * c.num_levels
        return z, laterals

    def _tiled_decode(self, z: torch.Tensor) -> torch.Tensor:
        """Decode a (denormalised) latent in spatial tiles (:class:`_TiledDecoder`), clamped to [-1, 1].

        A patchified (Wan 2.2) backbone, or a latent that fits in one tile, goes through diffusers' own
        ``AutoencoderKLWan._decode`` with our tile sizes.
        """
        vae = self.backbone.vae
        fs = vae.spatial_compression_ratio
        if vae.config.patch_size is None and (z.shape[-2] > self.tile_sample_min_height // fs or z.shape[-1] > self.tile_sample_min_width // fs):
            return _TiledDecoder(self)(z).clamp_(-1.0, 1.0)
        saved = (vae.use_tiling, vae.tile_sample_min_height, vae.tile_sample_min_width, vae.tile_sample_stride_height, vae.tile_sample_stride_width)
        vae.enable_tiling(self.tile_sample_min_height, self.tile_sample_min_width, self.tile_sample_stride_height, self.tile_sample_stride_width)
        try:
            return vae._decode(z).sample
        finally:
            (vae.use_tiling, vae.tile_sample_min_height, vae.tile_sample_min_width, vae.tile_sample_stride_height, vae.tile_sample_stride_width) = saved

    # ------------------------------------------------------------------ encode
    def _backbone_stages(self) -> list[int]:
        return list(self.pyratok_config.lateral_stages)

    def _encode_continuous(self, x: torch.Tensor):
        """Padded pixels -> (normalised latent, laterals pooled onto each level's grid), one causal pass per window."""
        windows = self.pyratok_config.causal_windows(x.shape[2])
        if len(windows) == 1:
            return self._encode_window(x)
        parts = [self._encode_window(x[:, :, start:stop]) for start, stop in windows]
        z = torch.cat([p[0] for p in parts], dim=2)
        laterals = [None if parts[0][1][i] is None else torch.cat([p[1][i] for p in parts], dim=2) for i in range(len(parts[0][1]))]
        return z, laterals

    def _encode_window(self, x: torch.Tensor):
        if self._needs_tiling(x.shape[-2], x.shape[-1]):
            return self._tiled_encode_continuous(x)
        z, features = self.backbone.encode(x, self._backbone_stages())
        z = self._normalize(z)
        return z, self.lapq.pool_laterals(features, tuple(z.shape[2:]))

    def _check_encoding(self, z, levels) -> None:
        """No NaN / Inf may hide in ids: a NaN logit would quantize silently to -1 (latent and logits are small)."""
        hint = "Check the input video and text (text_embeds of the text model, unscaled)."
        check_finite_output(z, "the backbone's latent", hint)
        for l, level in enumerate(levels):
            check_finite_output(level.logits, f"level {l}'s pre-quantization values", hint)

    def _latent_statistics(self, like: torch.Tensor):
        # Built from the config on use, not stored as buffers: non-persistent buffers are left
        # uninitialised when transformers 5 loads a model on the meta device.
        c = self.pyratok_config
        mean = torch.tensor(c.latents_mean, device=like.device, dtype=like.dtype).view(1, -1, 1, 1, 1)
        std = torch.tensor(c.latents_std, device=like.device, dtype=like.dtype).view(1, -1, 1, 1, 1)
        return mean, std

    def _normalize(self, z):
        if not self.pyratok_config.normalize_latents:
            return z
        mean, std = self._latent_statistics(z)
        return (z - mean) / std

    def _denormalize(self, z):
        if not self.pyratok_config.normalize_latents:
            return z
        mean, std = self._latent_statistics(z)
        return z * std + mean

    def _encode_one(self, x, text_info, num_levels):
        z, laterals = self._encode_continuous(x)
        states, mask = (text_info[0], text_info[1]) if text_info is not None else (None, None)
        # LaPQ's boundary: it runs in float32 even when the backbone / text projection are fp16 or bf16
        # (latent-sized tensors only, 1/48 of the clip at most; nothing is cast when the dtypes already agree).
        dtype = self._lapq_dtype()
        z_q = z if z.dtype == dtype else z.to(dtype)
        laterals = [lat if lat is None or lat.dtype == dtype else lat.to(dtype) for lat in laterals]
        if states is not None and states.dtype != dtype:
            states = states.to(dtype)
        quantized, levels = self.lapq(z_q, laterals, states, mask, num_levels=num_levels)
        self._check_encoding(z, levels)
        return z, quantized, levels

    def encode(self, pixel_values, text=None, text_embeds=None, text_attention_mask=None, num_levels: int | None = None, return_dict: bool = True):
        """Tokenize videos ``[B, 3, T, H, W]`` (or images ``[B, 3, H, W]``) in [-1, 1]; any T, H, W."""
        out, _ = self._encode(pixel_values, text, text_embeds, text_attention_mask, num_levels)
        return out if return_dict else out.to_tuple()

    def _encode(self, pixel_values, text, text_embeds, text_attention_mask, num_levels) -> tuple[PyraTokEncoderOutput, tuple | None]:
        """The encode worker: the output and the projected text (``forward``'s losses need it)."""
        x, _ = self._check_pixels(pixel_values)
        input_shape = tuple(x.shape[2:])
        num_levels = self._check_num_levels(num_levels)
        x = self._pad(x)
        text_info = self.encode_text(text, text_embeds, text_attention_mask, batch_size=x.shape[0])
        if self.use_slicing and x.shape[0] > 1:
            parts = []
            for i in range(x.shape[0]):
                ti = None if text_info is None else tuple(t[i : i + 1] for t in text_info)
                parts.append(self._encode_one(x[i : i + 1], ti, num_levels))
            z = torch.cat([p[0] for p in parts])
            quantized = torch.cat([p[1] for p in parts])
            levels = [
                type(parts[0][2][l])(*(torch.cat([getattr(p[2][l], f) for p in parts]) for f in ("logits", "codes", "ids", "latent")))
                for l in range(num_levels)
            ]
        else:
            z, quantized, levels = self._encode_one(x, text_info, num_levels)
        out = PyraTokEncoderOutput(
            token_ids=tuple(lv.ids for lv in levels),
            latents=quantized,
            level_codes=tuple(lv.codes for lv in levels),
            level_logits=tuple(lv.logits for lv in levels),
            continuous_latents=z,
            input_shape=input_shape,
        )
        return out, text_info

    def _check_num_levels(self, num_levels):
        L_ = self.pyratok_config.num_levels
        if num_levels is None:
            return L_
        if not isinstance(num_levels, int) or isinstance(num_levels, bool) or not 1 <= num_levels <= L_:
            raise InvalidInputError(f"num_levels must be an integer in [1, {L_}], got {num_levels!r}.")
        return num_levels

    # ------------------------------------------------------------------ decode
    def ids_to_latents(self, token_ids, num_levels: int | None = None, output_shape: tuple[int, int, int] | None = None):
        """Token ids (one grid per level, coarse to fine) -> the quantized latent, with no encoder input."""
        c = self.pyratok_config
        if torch.is_tensor(token_ids):
            raise InvalidInputError("token_ids must be a tuple/list with one LongTensor per level (coarse to fine), not a single tensor.")
        try:
            token_ids = list(token_ids)
        except TypeError:
            raise InvalidInputError(f"token_ids must be a tuple/list with one LongTensor per level, got {type(token_ids).__name__}.") from None
        if not 1 <= len(token_ids) <= c.num_levels:
            raise InvalidInputError(f"got {len(token_ids)} token grids but the model has {c.num_levels} levels; pass 1..{c.num_levels} levels, coarse to fine.")
        use = self._check_num_levels(num_levels) if num_levels is not None else len(token_ids)
        if use > len(token_ids):
            raise InvalidInputError(f"num_levels={use} but only {len(token_ids)} token grids were given.")
        for i, ids in enumerate(token_ids):
            if not torch.is_tensor(ids) or ids.dim() != 4:
                raise InvalidInputError(f"token_ids[{i}] must be a LongTensor [B, t, h, w], got {getattr(ids, 'shape', type(ids).__name__)}.")
            check_tensor_kind(ids, f"token_ids[{i}]")
            if ids.numel() == 0:
                raise InvalidInputError(f"token_ids[{i}] is empty (shape {tuple(ids.shape)}); every level needs at least one token.")
            token_ids[i] = ids = as_int64_ids(ids, what=f"token_ids[{i}]")  # uint16/32/64 -> int64 (ids are small)
            check_ids_in_range(ids, c.codebook_bits, what=f"token_ids[{i}]")
        batch = token_ids[0].shape[0]
        if any(ids.shape[0] != batch for ids in token_ids):
            raise InvalidInputError("all levels' token grids must have the same batch size.")
        # Latent grid: from the requested output size, else from the finest given level.
        if output_shape is not None:
            latent_thw = self.latent_shape(*_check_output_shape(output_shape))
        else:
            last = len(token_ids) - 1
            t, h, w = token_ids[last].shape[1:]
            ft, fs = c.level_temporal_downsample[last], c.level_spatial_downsample[last]
            latent_thw = ((t - 1) * ft + 1, h * fs, w * fs)
        expected = self.lapq.grids(latent_thw)
        for i, ids in enumerate(token_ids):
            if tuple(ids.shape[1:]) != expected[i]:
                raise InvalidInputError(
                    f"token_ids[{i}] has grid {tuple(ids.shape[1:])} but level {i} of a {latent_thw} latent needs {expected[i]}: "
                    "levels must be passed coarse to fine, all from the same video."
                )
        codes = [ids_to_codes(ids.to(self._device()), c.codebook_bits, msb_first=c.ids_msb_first) for ids in token_ids[:use]]
        return self.lapq.codes_to_latent(codes, latent_thw)

    def decode(self, token_ids=None, latents=None, num_levels: int | None = None, output_shape: tuple[int, int, int] | None = None, return_dict: bool = True):
        """Decode from ``token_ids`` (tuple of per-level grids) or from the quantized ``latents``.

        ``output_shape=(T, H, W)`` crops the result to the original video size (``encode`` returns it as
        ``input_shape``); without it the padded size is returned.
        """
        if (token_ids is None) == (latents is None):
            raise InvalidInputError("pass exactly one of token_ids or latents to decode().")
        if output_shape is not None:
            output_shape = _check_output_shape(output_shape)
        if token_ids is not None:
            latents = self.ids_to_latents(token_ids, num_levels=num_levels, output_shape=output_shape)
        else:
            if not torch.is_tensor(latents) or latents.dim() != 5 or latents.shape[1] != self.pyratok_config.latent_channels:
                raise InvalidInputError(
                    f"latents must be a tensor [B, {self.pyratok_config.latent_channels}, T', H', W'], got {getattr(latents, 'shape', type(latents).__name__)}."
                )
            check_tensor_kind(latents, "latents")
            if output_shape is not None and self.latent_shape(*output_shape) != tuple(latents.shape[2:]):
                c = self.pyratok_config
                full = ((latents.shape[2] - 1) * c.temporal_compression + 1, latents.shape[3] * c.spatial_compression, latents.shape[4] * c.spatial_compression)
                raise InvalidInputError(
                    f"output_shape {tuple(output_shape)} needs a latent grid of {self.latent_shape(*output_shape)}, but these latents "
                    f"have {tuple(latents.shape[2:])} (a video of at most {full}): pass the input_shape that encode() returned "
                    "with these latents."
                )
        if not latents.is_floating_point() or latents.numel() == 0:
            raise InvalidInputError(f"latents must be a non-empty floating-point tensor, got dtype {latents.dtype} and shape {tuple(latents.shape)}.")
        low, high = value_range(latents)  # latent-sized: 1/48 of the video
        if not (math.isfinite(low) and math.isfinite(high)):
            raise InvalidInputError("latents contain NaN or Inf; pass the latents that encode() returned.")
        device, dtype = self._backbone_device(), self._backbone_dtype()
        if latents.dtype != dtype or latents.device != device:
            latents = latents.to(device=device, dtype=dtype)  # float16/64 latents would fail at the first conv
        z = self._denormalize(latents)
        if self.use_slicing and z.shape[0] > 1:
            video = torch.cat([self._decode_latent(zi) for zi in z.split(1)])
        else:
            video = self._decode_latent(z)
        if output_shape is not None:
            t, h, w = output_shape
            video = video[:, :, :t, :h, :w]
        # One reduction over the output (no copy): NaN / Inf video is an error, never a result.
        check_finite_output(
            video, "the decoded video",
            f"The latents span [{low:.3g}, {high:.3g}]; encode() gives values of a few units, so were they scaled or edited?",
        )
        out = PyraTokDecoderOutput(sample=video)
        return out if return_dict else (video,)

    def _decode_latent(self, z):
        """One causal decoder pass per window of latent frames (see ``config.causal_window_frames``)."""
        window = self.pyratok_config.causal_window_frames
        step = None if window is None else 1 + (window - 1) // self.pyratok_config.temporal_compression
        if step is None or z.shape[2] <= step:
            return self._decode_window(z)
        return torch.cat([self._decode_window(part) for part in z.split(step, dim=2)], dim=2)

    def _decode_window(self, z):
        c = self.pyratok_config
        height, width = z.shape[-2] * c.spatial_compression, z.shape[-1] * c.spatial_compression
        if self._needs_tiling(height, width):
            return self._tiled_decode(z)
        return self.backbone.decode(z)

    # ------------------------------------------------------------------ training objective
    def set_ar_loss_hook(self, hook) -> None:
        """Plug a token prior's L_AR (see :class:`pyratok_hf.losses.ARLossHook`)."""
        self.__dict__["ar_loss_hook"] = hook

    def set_perceptual_loss(self, module) -> None:
        self.__dict__["perceptual_loss"] = module

    def set_drift_anchor(self, fn) -> None:
        """``fn(pixel_values) -> features`` shaped like the adapted latent; default: the backbone without adapters."""
        self.__dict__["drift_anchor"] = fn

    def video_embeddings(self, level_codes, pooling: str = "clip") -> list[torch.Tensor]:
        """Per-level video features in the shared space, from ±1 codes (``clip``: mean over tokens)."""
        out = []
        for l, codes in enumerate(level_codes):
            tok = self.video_projection(codes.to(next(self.video_projection.parameters()).dtype)) + self.level_embedding[l]
            out.append(tok.mean(dim=(1, 2, 3)) if pooling == "clip" else tok)
        return out

    def compute_losses(self, pixel_values, enc: PyraTokEncoderOutput, reconstruction, text_info):
        c = self.pyratok_config
        terms: dict[str, torch.Tensor] = {}
        rec = reconstruction_loss(
            reconstruction, pixel_values, c.l1_weight, c.ssim_weight, c.perceptual_weight, self.__dict__.get("perceptual_loss"),
            motion_weight=getattr(c, "motion_weight", 0.0),
        )
        terms.update({f"recon/{k}": v for k, v in rec.items() if k != "total"})
        recon_loss = rec["total"]

        zero = reconstruction.new_zeros(()).float()
        commit = sum(commitment_loss(lg, cd) for lg, cd in zip(enc.level_logits, enc.level_codes))
        commit = commit + F.mse_loss(enc.latents.float(), enc.continuous_latents.detach().float())
        entropy = zero
        for lg in enc.level_logits:
            entropy = entropy + lfq_entropy_loss(lg, c.entropy_inv_temperature, c.sample_entropy_weight, c.codebook_entropy_weight) / c.codebook_bits
        level_kl = zero
        for l in range(1, len(enc.level_logits)):
            level_kl = level_kl + level_kl_loss(enc.level_logits[l], enc.level_logits[l - 1], c.entropy_inv_temperature)
        token_text = codebook_text = contrast = zero
        if text_info is not None:
            _, _, pooled = text_info
            text_code = self.text_to_code(pooled)
            for lg in enc.level_logits:
                token_text = token_text + token_text_alignment_loss(lg, text_code, c.entropy_inv_temperature)
                codebook_text = codebook_text + codebook_text_alignment_loss(lg, text_code, c.entropy_inv_temperature)
                codebook_text = codebook_text + text_code_fit_loss(lg, text_code, c.entropy_inv_temperature)
            if c.contrastive_weight:
                video = torch.stack(self.video_embeddings(enc.level_codes), 0).mean(0)
                contrast = contrastive_loss(video, self.text_projection(pooled), c.contrastive_temperature)
        codebook_loss = (
            c.commitment_weight * commit
            + c.entropy_weight * entropy
            + c.level_kl_weight * level_kl
            + c.token_text_weight * token_text
            + c.codebook_text_weight * codebook_text
            + c.contrastive_weight * contrast
        )
        terms.update({
            "codebook/commitment": commit, "codebook/entropy": entropy, "codebook/level_kl": level_kl,
            "codebook/token_text": token_text, "codebook/codebook_text": codebook_text, "codebook/contrastive": contrast,
        })  # fmt: skip

        ar_loss = zero
        hook = self.__dict__.get("ar_loss_hook")
        if hook is not None and c.ar_weight:
            states, mask = (text_info[0], text_info[1]) if text_info is not None else (None, None)
            ar_loss = hook(list(enc.level_codes), states, mask)

        drift = zero
        if c.drift_weight and (self.__dict__.get("drift_anchor") is not None or self.backbone.has_adapters()):
            drift = self._drift_loss(pixel_values, enc.continuous_latents)
        total = c.recon_weight * recon_loss + c.codebook_weight * codebook_loss + c.ar_weight * ar_loss + c.drift_weight * drift
        return total, recon_loss, codebook_loss, ar_loss, drift, terms

    def _drift_loss(self, pixel_values, adapted):
        anchor = self.__dict__.get("drift_anchor")
        with torch.no_grad():
            if anchor is not None:
                frozen = anchor(pixel_values)
            else:
                with self.backbone.adapters_disabled():
                    frozen, _ = self._encode_continuous(self._pad(pixel_values))
        return drift_loss(adapted, frozen, self.pyratok_config.drift_temperature)

    def _forward(self, pixel_values, text=None, text_embeds=None, text_attention_mask=None, return_loss=True, num_levels=None, return_dict=True, target_pixel_values=None):
        """``target_pixel_values``: what the reconstruction is compared with when the input is masked (training)."""
        x, image = self._check_pixels(pixel_values)
        enc, text_info = self._encode(x, text, text_embeds, text_attention_mask, num_levels)
        reconstruction = self.decode(latents=enc.latents, output_shape=enc.input_shape).sample
        if target_pixel_values is not None:
            x, _ = self._check_pixels(target_pixel_values)
            if x.shape[2:] != enc.input_shape or x.shape[0] != reconstruction.shape[0]:
                raise InvalidInputError("target_pixel_values must have the same shape as pixel_values.")
        if image:
            reconstruction = reconstruction[:, :, 0]
            x = x[:, :, 0]
        losses = {}
        if return_loss:
            total, rec, cb, ar, drift, terms = self.compute_losses(x, enc, reconstruction, text_info)
            losses = dict(loss=total, recon_loss=rec, codebook_loss=cb, ar_loss=ar, drift_loss=drift,
                          loss_terms={k: v.detach() for k, v in terms.items()})
        # ModelOutput keys are fixed at construction: build it once, with every field.
        out = PyraTokModelOutput(reconstruction=reconstruction, token_ids=enc.token_ids, **losses)
        return out if return_dict else out.to_tuple()


# ----------------------------------------------------------------------------- streaming
def encode_streaming(
    model,
    video,
    chunk_latent_frames: int = 4,
    text=None,
    text_embeds=None,
    text_attention_mask=None,
    num_levels: int | None = None,
    dtype=None,
) -> Iterator[StreamingChunk]:
    """Tokenize a video chunk by chunk in memory that does not grow with its length; yields :class:`StreamingChunk`.

    Args:
        model: a :class:`~pyratok_hf.PyraTokModel` or :class:`~pyratok_hf.AutoencoderPyraTok`.
        video: ``[B, 3, T, H, W]`` in [-1, 1], or any iterable of frames ``[3, H, W]`` / ``[B, 3, H, W]`` or of
            frame chunks ``[B, 3, t, H, W]`` (e.g. read lazily from a file); any T, H, W.
        chunk_latent_frames: latent frames per chunk (4 pixel frames each; the first chunk starts with the causal
            first frame). Larger chunks batch the level blocks better, smaller ones bound memory tighter.
        text / text_embeds / text_attention_mask: as in ``model.encode`` (one prompt per video or one for all).
        num_levels: keep only the first levels (coarse to fine).
        dtype: ``"bf16"`` / ``"fp16"`` autocast for the backbone (quantization stays float32); default float32.

    Token ids equal ``model.encode`` on the whole clip (see tests/test_streaming.py); the concatenation of every
    chunk's ids is the whole-clip ``token_ids``. Large frames are tiled as ``model.encode`` would tile them (and
    refused with :class:`~pyratok_hf.errors.ResourceLimitError` when tiling is off and ``auto_tiling`` is False).
    Work runs under ``torch.inference_mode``, so the yielded tensors carry no gradient.
    """
    config = model.pyratok_config
    _check_streamable(config)
    if not isinstance(chunk_latent_frames, int) or chunk_latent_frames < 1:
        raise InvalidInputError(f"chunk_latent_frames must be a positive integer, got {chunk_latent_frames!r}.")
    num_levels = model._check_num_levels(num_levels)
    device = model._device()
    state = None  # built from the first chunk: text states, tiling decision, per-tile encoders
    latent_start = 0
    for frames, real_frames, first in _windowed_pixel_chunks(video, chunk_latent_frames, config):
        # Tensors are produced inside the context and yielded outside it, so grad mode never leaks to the caller.
        with inference_context(device, dtype):
            if first and state is not None:
                state["encoders"] = {}  # a new causal window (config.causal_window_frames): fresh caches
            x, _ = model._check_pixels(frames.to(device))
            frame_size = tuple(x.shape[-2:])
            x = model._pad(x, frames=False)
            if state is None:
                text_info = model.encode_text(text, text_embeds, text_attention_mask, batch_size=x.shape[0])
                state = {
                    "text": (None, None) if text_info is None else (text_info[0], text_info[1]),
                    "tiled": model._needs_tiling(x.shape[-2], x.shape[-1]),
                    "encoders": {},
                }
            if state["tiled"]:
                encoders = state["encoders"]

                def encode_tile(tile, origin):
                    return encoders.setdefault(origin, _ChunkEncoder(model))(tile)

                z, laterals = model._tiled_encode_continuous(x, encode_tile=encode_tile)
            else:
                encoder = state["encoders"].setdefault(None, _ChunkEncoder(model))
                z, features = encoder(x)
                z = model._normalize(z)
                laterals = model.lapq.pool_laterals(features, tuple(z.shape[2:]))
            quantized, levels = model.lapq(z, laterals, *state["text"], num_levels=num_levels)
            chunk = StreamingChunk(
                token_ids=tuple(lv.ids for lv in levels),
                latents=quantized,
                latent_start=latent_start,
                num_frames=real_frames,
                frame_size=frame_size,
                level_logits=tuple(lv.logits for lv in levels),
            )
            # Drop this chunk's intermediates before handing over, so they do not live on next to the next chunk's.
            del x, z, laterals, quantized, levels
        latent_start += chunk.num_latent_frames
        yield chunk


def _id_chunks(model, token_ids, chunk_latent_frames: int) -> Iterator[tuple[torch.Tensor, ...]]:
    """Split whole-clip grids along time, or pass through an iterable of per-chunk grids / StreamingChunks."""
    if isinstance(token_ids, (tuple, list)) and token_ids and all(torch.is_tensor(t) for t in token_ids):
        frames = token_ids[0].shape[1] if token_ids[0].dim() == 4 else None
        if frames is None or any(t.dim() != 4 or t.shape[1] != frames for t in token_ids):
            raise InvalidInputError(
                "token_ids must be one LongTensor [B, t, h, w] per level with the same t (streaming needs per-frame levels)."
            )
        for start in range(0, frames, chunk_latent_frames):
            yield tuple(t[:, start : start + chunk_latent_frames] for t in token_ids)
        return
    if torch.is_tensor(token_ids):
        raise InvalidInputError("token_ids must be a tuple/list with one LongTensor per level (coarse to fine), not a single tensor.")
    for item in token_ids:
        yield tuple(item.token_ids) if isinstance(item, StreamingChunk) else tuple(item)


def _windowed_id_chunks(model, token_ids, chunk_latent_frames: int) -> Iterator[tuple[tuple[torch.Tensor, ...], bool]]:
    """``(per-level ids, starts a causal window)`` with chunks split where ``model.decode`` starts a new window."""
    window = model.pyratok_config.causal_window_frames
    step = None if window is None else 1 + (window - 1) // model.pyratok_config.temporal_compression
    position = 0
    for ids in _id_chunks(model, token_ids, chunk_latent_frames):
        if not ids or any(not torch.is_tensor(t) or t.dim() != 4 for t in ids):
            raise InvalidInputError("each chunk of token_ids must hold one LongTensor [B, t, h, w] per level.")
        if step is None:
            yield ids, position == 0
            position += ids[0].shape[1]
            continue
        offset = 0
        while offset < ids[0].shape[1]:
            take = min(ids[0].shape[1] - offset, step - position % step)
            yield tuple(t[:, offset : offset + take] for t in ids), position % step == 0
            position += take
            offset += take


def decode_streaming(
    model,
    token_ids,
    chunk_latent_frames: int = 4,
    output_shape: tuple[int, int, int] | None = None,
    num_levels: int | None = None,
    dtype=None,
) -> Iterator[torch.Tensor]:
    """Decode token ids chunk by chunk with Wan's causal decoder cache; yields frames ``[B, 3, t, H, W]``.

    Args:
        token_ids: whole-clip grids (one ``[B, T', h_l, w_l]`` per level, coarse to fine), or an iterable of
            per-chunk grids / :class:`StreamingChunk` (e.g. straight from :func:`encode_streaming`).
        chunk_latent_frames: latent frames decoded per yielded chunk (when ``token_ids`` are whole-clip grids).
        output_shape: ``(T, H, W)`` of the original video: frames are cropped to it (time crop on the last
            chunk). Without it the padded size is returned.
        num_levels: decode with only the first levels.

    The concatenated chunks equal ``model.decode(token_ids=..., output_shape=...)``. Frames are yielded in
    the first chunk as ``1 + 4 * (n - 1)`` and after that ``4 * n`` per ``n`` latent frames.
    """
    config = model.pyratok_config
    _check_streamable(config)
    if not isinstance(chunk_latent_frames, int) or chunk_latent_frames < 1:
        raise InvalidInputError(f"chunk_latent_frames must be a positive integer, got {chunk_latent_frames!r}.")
    device = model._device()
    fs, ft = config.spatial_compression, config.temporal_compression
    decoder = None
    emitted = 0
    for ids, window_start in _windowed_id_chunks(model, token_ids, chunk_latent_frames):
        with inference_context(device, dtype):
            if window_start:
                decoder = None  # a new causal window (config.causal_window_frames): fresh caches
            n = ids[0].shape[1]
            if output_shape is not None:
                height, width = output_shape[1], output_shape[2]
            else:  # the padded size implied by the finest given level, as ids_to_latents infers it
                last = len(ids) - 1
                height = ids[last].shape[2] * config.level_spatial_downsample[last] * fs
                width = ids[last].shape[3] * config.level_spatial_downsample[last] * fs
            latents = model.ids_to_latents(ids, num_levels=num_levels, output_shape=(1 + ft * (n - 1), height, width))
            z = model._denormalize(latents)
            if decoder is None:
                tiled = model._needs_tiling(z.shape[-2] * fs, z.shape[-1] * fs)
                decoder = _TiledDecoder(model) if tiled else CausalDecoder(model.backbone)
            out = decoder(z)
            patch = model.backbone.vae.config.patch_size
            if patch is not None:
                out = _wan().unpatchify(out, patch_size=patch)
            out = out.clamp(-1.0, 1.0)
            if output_shape is not None:
                out = out[:, :, :, : output_shape[1], : output_shape[2]]
                keep = max(0, output_shape[0] - emitted)
                out = out[:, :, :keep]
        if out.shape[2] == 0:
            return
        emitted += out.shape[2]
        yield out


# ----------------------------------------------------------------------------- the transformers class
class PyraTokPreTrainedModel(PreTrainedModel):
    config_class = PyraTokConfig
    base_model_prefix = "pyratok"
    main_input_name = "pixel_values"
    supports_gradient_checkpointing = True
    # Offloading (device_map with CPU / disk offload): accelerate's hooks must neither copy Wan's causal cache
    # (the encoder/decoder fill the feat_cache list in place; a copied list loses every cached frame) nor
    # unload a LaPQ level between its forward and codes_to_latent, so hooks sit on the Wan encoder/decoder as a
    # whole and on LaPQ's leaf layers.
    _no_split_modules = ["WanEncoder3d", "WanDecoder3d"]
    _skip_keys_device_placement = ["feat_cache", "feat_idx"]
    # LaPQ quantizes by sign: it stays float32 when loading in float16 *and* bfloat16 (transformers honours the
    # strict list for both; LaPQ is also built in float32 whatever the default dtype, see _build_pyratok).
    _keep_in_fp32_modules_strict = ["lapq"]

    def _init_weights(self, module):
        # Keep each layer's own PyTorch/diffusers initialisation: transformers' N(0, 0.02) default would
        # silently change how a from-scratch Wan backbone starts. Parameters without a reset method get the
        # values their constructors give them (Wan's RMS-norm gain 1, our level embeddings 0).
        if isinstance(module, nn.MultiheadAttention):
            module._reset_parameters()
        elif hasattr(module, "reset_parameters") and not isinstance(module, PreTrainedModel):
            module.reset_parameters()
        elif type(module).__name__ == "WanRMS_norm":
            nn.init.ones_(module.gamma)
            if isinstance(module.bias, nn.Parameter):
                nn.init.zeros_(module.bias)
        if isinstance(module, PyraTokPreTrainedModel) and hasattr(module, "level_embedding"):
            nn.init.zeros_(module.level_embedding)

    def get_input_embeddings(self) -> nn.Module:
        """The first layer the pixels meet (the Wan encoder's input convolution), transformers' input-embedding hook
        (``enable_input_require_grads`` for reentrant checkpointing / PEFT uses it)."""
        return self.backbone.vae.encoder.conv_in

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.backbone.vae.encoder.conv_in = value

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, allow_pickle: bool = False, strict: bool = True, **kwargs):
        if pretrained_model_name_or_path is None and kwargs.get("config") is not None and kwargs.get("state_dict") is not None:
            # transformers' in-memory form: a config and a state dict, no folder to check
            return super().from_pretrained(None, *model_args, **kwargs)
        return cls._from_pretrained_checked(pretrained_model_name_or_path, *model_args, allow_pickle=allow_pickle, strict=strict, **kwargs)

    @classmethod
    def _from_pretrained_checked(cls, pretrained_model_name_or_path, *model_args, allow_pickle: bool = False, strict: bool = True, **kwargs):
        """Load from a Hub id or a local folder (``subfolder``, ``revision`` as usual).

        Safetensors only unless ``allow_pickle=True``. With ``strict=True`` (default) a checkpoint whose tensors
        do not match the config (missing, unexpected or differently shaped weights) raises
        :class:`~pyratok_hf.errors.CheckpointError` naming the mismatch instead of silently re-initialising.
        """
        from .loading import check_checkpoint_folder, check_finite_weights, checkpoint_load_errors

        if not allow_pickle:
            if kwargs.get("use_safetensors") is False:
                raise CheckpointError("use_safetensors=False loads pickled weights, which can run code; pass allow_pickle=True to accept that risk.")
            kwargs["use_safetensors"] = True
        want_info = kwargs.pop("output_loading_info", False)
        # The gate: path, config.json and safetensors headers, before transformers sees anything.
        checked = check_checkpoint_folder(pretrained_model_name_or_path, kwargs.get("subfolder") or None, allow_pickle=allow_pickle, variant=kwargs.get("variant"))
        source = checked.folder if checked is not None else pretrained_model_name_or_path
        dtype = kwargs.get("dtype") or kwargs.get("torch_dtype")
        if checked is not None and checked.layout == "diffusers":
            # A folder written by AutoencoderPyraTok / diffusers (diffusion_pytorch_model.safetensors): the same
            # keys under another file name, read straight into an empty model of this class.
            from .loading import load_into_empty_model

            placement = {k: kwargs.get(k) for k in ("device_map", "max_memory", "offload_folder")}
            model = load_into_empty_model(cls, checked, dtype=dtype, strict=strict, **placement)
            info = {"missing_keys": [], "unexpected_keys": [], "mismatched_keys": [], "error_msgs": []}
            return (model, info) if want_info else model
        # Let transformers load past shape mismatches and list them: they are turned into a CheckpointError
        # naming the keys below (transformers 5 otherwise raises a bare RuntimeError that names none).
        kwargs.setdefault("ignore_mismatched_sizes", True)
        try:
            with checkpoint_load_errors(source):
                model, info = super().from_pretrained(pretrained_model_name_or_path, *model_args, output_loading_info=True, **kwargs)
        except CheckpointError:
            raise
        except (OSError, EnvironmentError) as err:
            text = str(err)
            if not allow_pickle and ("safetensors" in text or "model.safetensors" in text):
                raise CheckpointError(
                    f"{pretrained_model_name_or_path} has no safetensors weights. Pickled .bin/.pt files can run code when "
                    "loaded and are refused; convert them to safetensors, or pass allow_pickle=True if you trust the source."
                ) from err
            if checked is None:  # a Hub id that the Hub (or its cache) could not provide
                raise CheckpointNotFoundError(
                    f"{pretrained_model_name_or_path} is not a local folder, and it could not be loaded as a Hub repo "
                    f"({text.splitlines()[0] if text else type(err).__name__}). Check the path or repo id; offline, "
                    "download the repo first and pass its folder."
                ) from err
            raise CheckpointError(f"{source} could not be loaded: {text}. Re-save the model or re-download it.") from err
        except RuntimeError as err:
            if "size mismatch" in str(err) or "shape" in str(err) or "ignore_mismatched_sizes" in str(err):
                raise CheckpointError(f"weights in {pretrained_model_name_or_path} do not match its config: {err}") from err
            raise
        problems = []
        if info.get("mismatched_keys"):
            shown = ", ".join(f"{k} (checkpoint {tuple(a)} vs model {tuple(b)})" for k, a, b in sorted(info["mismatched_keys"], key=lambda item: item[0])[:5])
            problems.append(f"shape mismatch: {shown}")
        if info.get("missing_keys"):
            problems.append(f"missing from the checkpoint: {sorted(info['missing_keys'])[:5]}")
        if info.get("unexpected_keys"):
            problems.append(f"not used by the model: {sorted(info['unexpected_keys'])[:5]}")
        if strict and problems:
            weights = ", ".join(checked.weights) if checked is not None and checked.weights else "its weights"
            raise CheckpointError(
                f"checkpoint {pretrained_model_name_or_path} does not match its config.json ({weights}) — " + "; ".join(problems)
                + ". Was config.json edited (restore it), or are the weights damaged or from another model (re-download or "
                "re-save them)? (strict=False loads anyway)"
            )
        check_finite_weights(model, ", ".join(checked.weights) if checked is not None and checked.weights else source)  # flipped bytes inside tensor data pass every header check
        model._keep_modules_in_fp32()
        return (model, info) if want_info else model


class PyraTokModel(PyraTokCore, PyraTokPreTrainedModel):
    """PyraTok: a frozen Wan VAE + LaPQ, tokenizing videos into a language-aligned pyramid of binary tokens.

    See :class:`PyraTokCore` (above) for ``encode`` / ``decode`` / tiling, and ``docs/architecture.md``.
    """

    def __init__(self, config: PyraTokConfig):
        super().__init__(config)
        self._build_pyratok(config)
        self.post_init()

    @classmethod
    def from_backbone(cls, config: PyraTokConfig, backbone_name_or_path: str | None = None, subfolder: str | None = None, **kwargs) -> "PyraTokModel":
        """A new PyraTok whose backbone starts from a saved diffusers Wan VAE (local folder or Hub id).

        The VAE's own config replaces ``config.backbone_config`` so the two always agree.
        """
        path = backbone_name_or_path or config.backbone_pretrained
        if path is None:
            raise CheckpointError("no backbone given: pass backbone_name_or_path or set config.backbone_pretrained.")
        subfolder = subfolder if subfolder is not None else config.backbone_subfolder
        backbone = WanBackbone.from_pretrained(path, subfolder=subfolder, **kwargs)
        vae_config = {k: v for k, v in dict(backbone.vae.config).items() if not k.startswith("_") and k not in ("latents_mean", "latents_std")}
        config.backbone_config = vae_config
        config.backbone_pretrained = path
        # Normalise latents with the statistics stored in the VAE's config (Wan keeps them there).
        mean, std = backbone.vae.config.get("latents_mean"), backbone.vae.config.get("latents_std")
        if mean is not None and std is not None and len(mean) == vae_config.get("z_dim", 16):
            config.latents_mean, config.latents_std = list(mean), list(std)
        config.validate()
        model = cls(config)
        model.backbone.vae.load_state_dict(backbone.vae.state_dict())
        return model

    def forward(
        self,
        pixel_values: torch.Tensor,
        text=None,
        text_embeds: torch.Tensor | None = None,
        text_attention_mask: torch.Tensor | None = None,
        return_loss: bool = True,
        num_levels: int | None = None,
        return_dict: bool = True,
        target_pixel_values: torch.Tensor | None = None,
        **kwargs,
    ) -> PyraTokModelOutput:
        """Encode, quantize, decode; with ``return_loss`` the paper's total loss is the first output field.

        ``target_pixel_values`` (training with input masking): the clean video the loss compares against.
        """
        return self._forward(pixel_values, text, text_embeds, text_attention_mask, return_loss, num_levels, return_dict, target_pixel_values)

    # ----------------------------------------------------------------- CLIP-style shared space
    @torch.no_grad()
    def get_text_features(
        self, text=None, text_embeds=None, text_attention_mask=None, normalize: bool = True,
        output_hidden_states: bool | None = None, return_dict: bool | None = None,
    ) -> BaseModelOutputWithPooling | tuple:
        """Text in the shared video-text space, with transformers' feature-API contract (as ``CLIPModel``).

        Returns a ``BaseModelOutputWithPooling``: ``pooler_output`` ``[B, projection_dim]`` (L2-normalised unless
        ``normalize=False``), ``last_hidden_state`` the projected text states ``[B, S, text_embed_dim]`` that the
        levels attend to, and with ``output_hidden_states`` the text model's states and their projection.
        """
        if text is None and text_embeds is None:
            raise InvalidInputError("get_text_features needs text=... (str or list of str) or text_embeds=... (text-model states).")
        states, mask, pooled = self.encode_text(text, text_embeds, text_attention_mask)
        feats = self.text_projection(pooled)
        feats = nn.functional.normalize(feats, dim=-1) if normalize else feats
        hidden = None
        if self.config.output_hidden_states if output_hidden_states is None else output_hidden_states:
            raw = text_embeds if text_embeds is not None else self.get_text_encoder()(validate_prompts(text), device=self._device()).states
            hidden = (raw, states)
        out = BaseModelOutputWithPooling(last_hidden_state=states, pooler_output=feats, hidden_states=hidden)
        return out if (self.config.return_dict if return_dict is None else return_dict) else out.to_tuple()

    @torch.no_grad()
    def get_video_features(
        self, pixel_values=None, token_ids=None, pooling: str = "clip", level: int | None = None, normalize: bool = True,
        text=None, output_hidden_states: bool | None = None, return_dict: bool | None = None, pixel_values_videos=None,
    ) -> BaseModelOutputWithPooling | tuple:
        """Video in the shared space, from pixels or token ids, with transformers' feature-API contract.

        ``pooler_output``: ``pooling="clip"`` -> ``[B, D]``, ``"frame"`` -> ``[B, t, D]``, ``"token"`` ->
        ``[B, t, h, w, D]``; ``level`` picks one level (0 = coarsest), ``None`` averages the levels' clip
        embeddings (clip pooling only). ``last_hidden_state``: the token embeddings ``[B, t*h*w, D]`` of that level
        (the finest when ``level`` is None); ``hidden_states`` (``output_hidden_states``): every level's, coarse to fine.
        ``pixel_values_videos`` is accepted for ``pixel_values`` (the name transformers' video models use).
        """
        if pixel_values is None:
            pixel_values = pixel_values_videos
        if pooling not in ("clip", "frame", "token"):
            raise InvalidInputError(f"pooling must be 'clip', 'frame' or 'token', got {pooling!r}.")
        if level is None and pooling != "clip":
            raise InvalidInputError("frame/token pooling needs one level (grids differ between levels): pass level=...")
        if token_ids is None:
            if pixel_values is None:
                raise InvalidInputError("get_video_features needs pixel_values=... or token_ids=....")
            token_ids = self.encode(pixel_values, text=text).token_ids
        codes = [ids_to_codes(ids.to(self._device()), self.config.codebook_bits, msb_first=self.config.ids_msb_first) for ids in token_ids]
        per_level = self.video_embeddings(codes, pooling="token")  # [B, t, h, w, D] each
        if level is not None:
            if not isinstance(level, int) or isinstance(level, bool) or not 0 <= level < len(per_level):
                raise InvalidInputError(f"level must be an integer in [0, {len(per_level) - 1}], got {level!r}.")
            tok = per_level[level]
            feats = {"clip": tok.mean(dim=(1, 2, 3)), "frame": tok.mean(dim=(2, 3)), "token": tok}[pooling]
        else:
            feats = torch.stack([tok.mean(dim=(1, 2, 3)) for tok in per_level]).mean(0)
        feats = nn.functional.normalize(feats, dim=-1) if normalize else feats
        chosen = per_level[-1 if level is None else level]
        out = BaseModelOutputWithPooling(
            last_hidden_state=chosen.flatten(1, 3),
            pooler_output=feats,
            hidden_states=tuple(tok.flatten(1, 3) for tok in per_level)
            if (self.config.output_hidden_states if output_hidden_states is None else output_hidden_states) else None,
        )
        return out if (self.config.return_dict if return_dict is None else return_dict) else out.to_tuple()


def register_auto_classes() -> None:
    """Register with AutoConfig/AutoModel (in process) and for ``auto_map`` (pushed folders, remote code)."""
    try:
        AutoConfig.register("pyratok", PyraTokConfig)
    except ValueError:
        pass  # already registered
    try:
        AutoModel.register(PyraTokConfig, PyraTokModel)
    except ValueError:
        pass
    PyraTokConfig.register_for_auto_class()
    PyraTokModel.register_for_auto_class("AutoModel")


# Registering on import keeps ``from pyratok_hf import PyraTokModel`` + ``AutoModel.from_pretrained`` working
# while ``import pyratok_hf`` itself stays light (the package imports this module lazily).
register_auto_classes()

__all__ = [
    "PyraTokModel",
    "PyraTokPreTrainedModel",
    "PyraTokEncoderOutput",
    "PyraTokDecoderOutput",
    "PyraTokModelOutput",
    "register_auto_classes",
]
