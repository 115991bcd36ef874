"""Speed knobs of the inference path: autocast dtype, ``torch.inference_mode`` and ``torch.compile``.

Measurements are in ``docs/performance.md``: :func:`inference_context` (``torch.inference_mode`` plus optional
bf16/fp16 autocast; quantization itself always runs in float32), :func:`compile_model` (``torch.compile`` of the
LaPQ level blocks and, optionally, the backbone). Every entry point (``encode``, ``decode``, streaming, the CLI)
takes batches ``[B, 3, T, H, W]``.
"""

from __future__ import annotations

import warnings
from contextlib import ExitStack, contextmanager

import torch

from .errors import InvalidInputError

__all__ = ["cpu_has_native_bf16", "compile_model", "inference_context", "resolve_dtype"]


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
