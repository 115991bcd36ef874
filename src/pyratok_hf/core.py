"""The tokenizer itself, shared by the transformers and diffusers classes.

:class:`PyraTokCore` is a mixin holding every module and the encode / decode / loss logic. ``PyraTokModel``
(transformers) and ``AutoencoderPyraTok`` (diffusers) both inherit it, so they have identical parameter
names and one saved folder loads in either.

Module tree (these are the weight names)::

    backbone.vae.{encoder,quant_conv,post_quant_conv,decoder}.*   diffusers AutoencoderKLWan, frozen (+ LoRA)
    lapq.levels.{l}.*                                             LaPQ level blocks, coarse -> fine
    text_proj.*                                                   text states -> text_embed_dim
    text_to_code.*, video_projection.*, text_projection.*         alignment heads (codebook & zero-shot)
"""

from __future__ import annotations

import logging
import math
import operator
import warnings
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers.utils import ModelOutput

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
from .backbone import WanBackbone, set_norm_upcast
from .errors import ConfigError, InvalidInputError, NonFiniteOutputError, ResourceLimitError
from .lapq import LaPQ, level_grid, resize_causal
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


# ----------------------------------------------------------------------------- the shared core
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
            from .tiling import tiled_encode_continuous

            return tiled_encode_continuous(self, x)
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
            from .tiling import tiled_decode

            return tiled_decode(self, z)
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
