"""Streaming (causally chunked) tokenization, and the speed knobs of the inference path.

Memory of :meth:`~pyratok_hf.core.PyraTokCore.encode` grows with clip length: the backbone's stage features
and latents of every frame are held at once. Wan's encoder is causal, though: diffusers' own
``AutoencoderKLWan._encode`` already runs it one latent frame at a time (the first pixel frame alone, then
4 frames per latent frame) with a feature cache (``feat_cache`` / ``feat_idx``) carrying the last frames of
every causal conv from one call to the next. :func:`encode_streaming` drives the encoder exactly that way but
never concatenates: every ``chunk_latent_frames`` latent frames it pools the chunk's lateral stage features
onto the level grids, runs LaPQ on the chunk and yields its token ids, keeping only the feature cache (a few
frames per layer) between chunks. :func:`decode_streaming` does the same with the decoder's cache (diffusers'
``_decode`` loop) and yields decoded frames chunk by chunk.

Why chunked LaPQ is the whole-clip LaPQ: with ``level_temporal_downsample == 1`` and
``level_temporal_kernel == 1`` (the defaults) every level operation is per latent frame — the level convs
have a temporal kernel of 1, resampling between grids keeps time unchanged, and the text attention is per
token — and the lateral features of latent frame ``t`` are averages of the stage frames produced by the
encoder call of that latent frame. So token ids of a latent frame depend only on that frame's encoder call and
the causal cache, which streaming reproduces call for call. Configurations that pool or convolve across latent
frames are refused with :class:`~pyratok_hf.errors.ConfigError`.

Large frames are tiled spatially as in the whole-clip path (:mod:`pyratok_hf.tiling`), with one causal cache per
tile, so memory is bounded in time *and* space.

Speed knobs (see ``docs/performance.md`` for measurements): :func:`inference_context` (``torch.inference_mode``
plus optional bf16/fp16 autocast; quantization itself always runs in float32), :func:`compile_model`
(``torch.compile`` of the LaPQ level blocks and, optionally, the backbone), and batching (every function here
takes ``[B, 3, T, H, W]``).
"""

from __future__ import annotations

import logging
import warnings
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator

import torch

from .backbone import CausalDecoder, CausalEncoder
from .errors import ConfigError, InvalidInputError
from .lapq import _resize_time

logger = logging.getLogger(__name__)

__all__ = [
    "StreamingChunk",
    "encode_streaming",
    "decode_streaming",
    "concat_chunks",
    "cpu_has_native_bf16",
    "inference_context",
    "compile_model",
    "resolve_dtype",
]


# ----------------------------------------------------------------------------- speed knobs
_DTYPES = {
    None: None, "fp32": None, "float32": None, "32": None,
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
    "fp16": torch.float16, "float16": torch.float16, "half": torch.float16,
}  # fmt: skip


def resolve_dtype(dtype) -> torch.dtype | None:
    """``"bf16"`` / ``"fp16"`` / ``torch.bfloat16`` ... -> the autocast dtype, ``None`` for float32."""
    if isinstance(dtype, torch.dtype):
        return None if dtype == torch.float32 else dtype
    key = dtype.lower() if isinstance(dtype, str) else dtype
    if key not in _DTYPES:
        raise InvalidInputError(f"unknown dtype {dtype!r}; use one of fp32, bf16, fp16.")
    return _DTYPES[key]


_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
_cpu_bf16: list = []


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool | None:
    """Whether this CPU computes bf16 natively (x86 ``avx512_bf16`` or ``amx_bf16``; ARM ``bf16``).

    Read from ``/proc/cpuinfo`` (Linux); ``None`` when that cannot be told (other systems), so no warning is given.
    ``cpuinfo`` (the file's text) is for tests.
    """
    if cpuinfo is None:
        if _cpu_bf16:
            return _cpu_bf16[0]
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
                text = handle.read()
        except OSError:
            text = ""
        _cpu_bf16.append(cpu_has_native_bf16(text) if text else None)
        return _cpu_bf16[0]
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    if not flags:
        return None
    return any(flag in flags for flag in _BF16_FLAGS + ("bf16",))


@contextmanager
def inference_context(device: torch.device | str = "cpu", dtype=None):
    """``torch.inference_mode()`` plus autocast to ``dtype`` (``None``/``"fp32"``: no autocast).

    Autocast speeds up the backbone's convolutions (on GPUs mostly; see docs/performance.md for CPU). LaPQ turns
    autocast off around its bit projection and sign, so the quantizer always sees float32 logits; codes can still
    differ from a float32 run where a logit is within bf16 rounding of zero.
    """
    autocast_dtype = resolve_dtype(dtype)
    device_type = torch.device(device).type
    if autocast_dtype is torch.float16 and device_type == "cpu":
        warnings.warn("fp16 autocast on CPU has no fast kernels (55x slower than fp32 in docs/performance.md); use fp32, or bf16 on a CPU with native bf16.", stacklevel=3)
    if autocast_dtype is torch.bfloat16 and device_type == "cpu" and cpu_has_native_bf16() is False:
        warnings.warn(
            "bf16 autocast on a CPU without native bf16 instructions (no avx512_bf16 / amx_bf16 in /proc/cpuinfo) gives "
            "no speed-up and can be far slower than fp32 (20x with AVX2 kernels, ~90x reported; docs/performance.md); use fp32.",
            stacklevel=3,
        )
    with ExitStack() as stack:
        stack.enter_context(torch.inference_mode())
        if autocast_dtype is not None:
            stack.enter_context(torch.autocast(device_type=device_type, dtype=autocast_dtype))
        yield


def compile_model(model, mode: str | None = None, backbone: bool = False, dynamic: bool | None = None):
    """Compile the hot modules of ``model`` in place with ``torch.compile`` and return the model.

    * ``lapq.levels[*]``: each level block (fuse convs, text attention, bit projection) as one graph.
    * with ``backbone=True`` also every residual block / resample / attention block of the Wan encoder and
      decoder (the encoder's top-level forward mutates its Python feature-cache list, so it is compiled block by
      block, where dynamo sees plain tensors). These are compiled with static shapes unless ``dynamic`` says
      otherwise: with dynamic shapes torch 2.13's inductor fails to lower the cached causal convs on CPU, and a
      clip has only a few chunk shapes (first frame, 4-frame groups) anyway.

    ``mode`` is passed to ``torch.compile`` (``None``, ``"reduce-overhead"``, ``"max-autotune"``). Compilation
    happens on the first call (minutes for the backbone). Measured on the project's 2-core CPU the gain is within
    noise (docs/performance.md): use it on GPUs. Token ids are unchanged in our tests (float reassociation only).
    """
    for level in model.lapq.levels:
        level.compile(mode=mode, dynamic=dynamic)
    if backbone:
        from diffusers.models.autoencoders.autoencoder_kl_wan import (
            WanAttentionBlock,
            WanResample,
            WanResidualBlock,
        )

        for module in model.backbone.vae.modules():
            if isinstance(module, (WanResidualBlock, WanResample, WanAttentionBlock)):
                module.compile(mode=mode, dynamic=False if dynamic is None else dynamic)
    return model


# ----------------------------------------------------------------------------- streaming outputs
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


# ----------------------------------------------------------------------------- helpers
def _check_streamable(config) -> None:
    temporal = list(getattr(config, "level_temporal_downsample", [1]))
    kernel = getattr(config, "level_temporal_kernel", 1)
    if any(f != 1 for f in temporal) or kernel != 1:
        raise ConfigError(
            f"streaming needs per-latent-frame levels (level_temporal_downsample all 1 and level_temporal_kernel 1), "
            f"got {temporal} and {kernel}: these levels mix latent frames, so encode the clip whole with model.encode()."
        )


def _wan_modules():
    from diffusers.models.autoencoders import autoencoder_kl_wan as wan

    return wan


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


class _CausalEncoder:
    """The backbone's :class:`~pyratok_hf.backbone.CausalEncoder` (one per spatial tile), with each chunk's stage
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


class _TiledCausalDecoder:
    """diffusers' ``AutoencoderKLWan.tiled_decode`` with one cache per tile kept across chunks."""

    def __init__(self, model, latent_hw: tuple[int, int]):
        self.model = model
        self.vae = model.backbone.vae
        fs = model.pyratok_config.spatial_compression
        self.tile_h, self.tile_w = model.tile_sample_min_height // fs, model.tile_sample_min_width // fs
        self.stride_h, self.stride_w = model.tile_sample_stride_height // fs, model.tile_sample_stride_width // fs
        self.sample_stride_h, self.sample_stride_w = model.tile_sample_stride_height, model.tile_sample_stride_width
        self.blend_h = model.tile_sample_min_height - model.tile_sample_stride_height
        self.blend_w = model.tile_sample_min_width - model.tile_sample_stride_width
        if self.vae.config.patch_size is not None:
            raise ConfigError("streamed tiled decoding of patchified (Wan 2.2) backbones is not supported; disable tiling.")
        self.latent_hw = latent_hw
        self.decoders: dict[tuple[int, int], CausalDecoder] = {}

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        height, width = self.latent_hw
        fs = self.model.pyratok_config.spatial_compression
        rows = []
        for i in range(0, height, self.stride_h):
            row = []
            for j in range(0, width, self.stride_w):
                decoder = self.decoders.setdefault((i, j), CausalDecoder(self.model.backbone))
                row.append(decoder(z[:, :, :, i : i + self.tile_h, j : j + self.tile_w]))
            rows.append(row)
        result_rows = []
        for i, row in enumerate(rows):
            result_row = []
            for j, tile in enumerate(row):
                if i > 0:
                    tile = self.vae.blend_v(rows[i - 1][j], tile, self.blend_h)
                if j > 0:
                    tile = self.vae.blend_h(row[j - 1], tile, self.blend_w)
                result_row.append(tile[:, :, :, : self.sample_stride_h, : self.sample_stride_w])
            result_rows.append(torch.cat(result_row, dim=-1))
        return torch.cat(result_rows, dim=3)[:, :, :, : height * fs, : width * fs]


# ----------------------------------------------------------------------------- encode
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
                from .tiling import tiled_encode_continuous

                encoders = state["encoders"]

                def encode_tile(tile, origin):
                    return encoders.setdefault(origin, _CausalEncoder(model))(tile)

                z, laterals = tiled_encode_continuous(model, x, encode_tile=encode_tile)
            else:
                encoder = state["encoders"].setdefault(None, _CausalEncoder(model))
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


# ----------------------------------------------------------------------------- decode
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
                decoder = _TiledCausalDecoder(model, tuple(z.shape[-2:])) if tiled else CausalDecoder(model.backbone)
            out = decoder(z)
            patch = model.backbone.vae.config.patch_size
            if patch is not None:
                out = _wan_modules().unpatchify(out, patch_size=patch)
            out = out.clamp(-1.0, 1.0)
            if output_shape is not None:
                out = out[:, :, :, : output_shape[1], : output_shape[2]]
                keep = max(0, output_shape[0] - emitted)
                out = out[:, :, :keep]
        if out.shape[2] == 0:
            return
        emitted += out.shape[2]
        yield out
