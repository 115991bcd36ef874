"""Plain torch/numpy implementations of every PyraTok evaluation metric.

These functions hold all the arithmetic; the ``evaluate`` modules under ``evaluate_modules/`` and the
:class:`~pyratok_hf.metrics.fvd.FVDMetric` class are thin wrappers around them. Keeping the maths here, free of
any ``evaluate``/``datasets`` machinery, means it can be unit-tested against hand-computed values and reused from
training loops without Arrow round-trips.

Conventions shared by the whole module:

* Videos are ``[B, C, T, H, W]`` or ``[C, T, H, W]`` (``C`` is 3 for RGB) with values in ``[-1, 1]``, so the
  default ``data_range`` is 2. Torch tensors and numpy arrays are both accepted.
* Arithmetic runs in float64 on CPU-friendly ops: metric values are reported with a few decimals and must not
  drift with the input dtype.
* Every unusable input raises :class:`~pyratok_hf.errors.MetricInputError` (a ``ValueError``) whose message says
  what was wrong, instead of returning a silently meaningless number.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any, Union

import numpy as np
import torch

from pyratok_hf.errors import MetricInputError

ArrayLike = Union[torch.Tensor, np.ndarray, Sequence[Any]]

__all__ = [
    "ACTIVITYNET_TIOU_THRESHOLDS",
    "THUMOS14_TIOU_THRESHOLDS",
    "CodebookUsageAccumulator",
    "EvaluateInputChecksMixin",
    "average_precision",
    "bits_per_pixel",
    "bits_per_pixel_entropy",
    "class_mean_iou",
    "codebook_usage",
    "cosine_similarity_matrix",
    "frechet_distance",
    "gaussian_statistics",
    "jaccard_j",
    "mean_iou",
    "nested_to_array",
    "per_frame_iou",
    "psnr",
    "retrieval_metrics",
    "ssim",
    "temporal_action_localization_map",
    "temporal_iou",
]

#: tIoU thresholds 0.1, 0.2, ..., 0.7 used for THUMOS'14 temporal action localization.
THUMOS14_TIOU_THRESHOLDS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
#: tIoU thresholds 0.5, 0.55, ..., 0.95 used for ActivityNet-1.3 ("average mAP").
ACTIVITYNET_TIOU_THRESHOLDS: tuple[float, ...] = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))

_MAX_CODEBOOK_BITS = 64


# ----------------------------------------------------------------------------------------------------------------
# Input helpers
# ----------------------------------------------------------------------------------------------------------------


def _to_tensor(value: Any, name: str) -> torch.Tensor:
    """Turn a tensor, numpy array or nested list into a CPU tensor without copying when possible.

    numpy ``uint64`` arrays are reinterpreted as ``int64`` (two's complement) because torch cannot sort/unique
    unsigned 64-bit integers; this is exactly how 64-bit codebook ids are stored elsewhere in the package.
    """
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, np.ndarray):
        array = value
    elif isinstance(value, (list, tuple, int, float, bool, np.generic)):
        try:
            array = np.asarray(value)
        except ValueError as err:  # ragged nested lists
            raise MetricInputError(
                f"{name} could not be turned into an array ({err}); give a tensor or array."
            ) from None
    else:
        raise MetricInputError(f"{name} must be a torch.Tensor or numpy array, got {type(value).__name__}.")
    if array.dtype == np.uint64:
        array = array.view(np.int64)
    if array.dtype == object or array.dtype.kind in "USV":
        raise MetricInputError(f"{name} must be numeric, got an array of dtype {array.dtype}.")
    return torch.from_numpy(np.ascontiguousarray(array))


def _to_float64(value: Any, name: str) -> torch.Tensor:
    """Convert to float64 and reject empty or non-finite inputs, which would otherwise yield NaN metrics."""
    tensor = _to_tensor(value, name)
    if tensor.is_complex():
        raise MetricInputError(f"{name} must be real-valued, got dtype {tensor.dtype}.")
    tensor = tensor.to(torch.float64)
    if tensor.numel() == 0:
        raise MetricInputError(f"{name} is empty (shape {tuple(tensor.shape)}).")
    if not torch.isfinite(tensor).all():
        raise MetricInputError(f"{name} contains NaN or infinite values.")
    return tensor


class EvaluateInputChecksMixin:
    """Mixin for the bundled ``evaluate.Metric`` wrappers: turns their bad-input cases into MetricInputError.

    ``evaluate`` reports mismatched column lengths and "nothing added" as bare ``ValueError`` with Arrow or
    cache-file wording; checking first gives users the same clear error type as the functional API. It has no
    import-time dependency on ``evaluate`` (it only calls ``super()``), so it can live here.
    """

    def _check_columns(self, columns: dict[str, Any]) -> None:
        names = list(self._feature_names())  # type: ignore[attr-defined]
        given = {name: columns.get(name) for name in names}
        missing = [name for name, value in given.items() if value is None]
        if missing:
            raise MetricInputError(f"missing metric inputs {missing}; this metric needs {names}.")
        lengths = {name: len(value) for name, value in given.items()}
        if len(set(lengths.values())) > 1:
            raise MetricInputError(f"inputs must pair up one to one, got lengths {lengths}.")
        if next(iter(lengths.values())) == 0:
            raise MetricInputError(f"got empty inputs {names}: metrics over an empty dataset are undefined.")

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Validate the batch (see the class docstring), then store it like ``evaluate.Metric.add_batch``."""
        self._check_columns({"predictions": predictions, "references": references, **kwargs})
        return super().add_batch(predictions=predictions, references=references, **kwargs)  # type: ignore[misc]

    def compute(self, *, predictions=None, references=None, **kwargs):
        """Compute the metric over everything added; ``evaluate`` appends the module's input description here."""
        inputs = {"predictions": predictions, "references": references, **kwargs}
        nothing_given = all(inputs.get(name) is None for name in self._feature_names())  # type: ignore[attr-defined]
        if nothing_given and getattr(self, "writer", None) is None:
            raise MetricInputError("no examples were added: call add_batch() or pass inputs to compute().")
        return super().compute(predictions=predictions, references=references, **kwargs)  # type: ignore[misc]


def nested_to_array(value: Any, name: str, dtype: Any = np.float64) -> np.ndarray:
    """Turn one example as stored by ``datasets`` (nested Python lists) back into an array.

    Ragged nesting (e.g. frames of different sizes inside one video) is reported as a MetricInputError.
    """
    try:
        return np.asarray(value, dtype=dtype)
    except (ValueError, TypeError) as err:
        raise MetricInputError(f"{name} is not a regular (rectangular) array: {err}") from None


def _video_pair(prediction: ArrayLike, reference: ArrayLike) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Validate a prediction/reference video pair and return them as float64 ``[B, C, T, H, W]``.

    Returns a flag saying whether the input was batched, so results can be reported with the caller's rank.
    """
    pred = _to_float64(prediction, "prediction")
    ref = _to_float64(reference, "reference")
    if pred.ndim not in (4, 5):
        raise MetricInputError(
            f"prediction must be a video [C, T, H, W] or a batch [B, C, T, H, W]; got rank {pred.ndim} "
            f"(shape {tuple(pred.shape)})."
        )
    if pred.shape != ref.shape:
        raise MetricInputError(
            f"prediction shape {tuple(pred.shape)} does not match reference shape {tuple(ref.shape)}."
        )
    batched = pred.ndim == 5
    if not batched:
        pred, ref = pred.unsqueeze(0), ref.unsqueeze(0)
    return pred, ref, batched


def _check_data_range(data_range: float) -> float:
    if isinstance(data_range, bool) or not isinstance(data_range, (int, float)) or not data_range > 0:
        raise MetricInputError(f"data_range must be a positive number (2 for [-1, 1] videos), got {data_range!r}.")
    if not math.isfinite(data_range):
        raise MetricInputError(f"data_range must be finite, got {data_range!r}.")
    return float(data_range)


# ----------------------------------------------------------------------------------------------------------------
# Reconstruction quality: PSNR and SSIM
# ----------------------------------------------------------------------------------------------------------------


def psnr(
    prediction: ArrayLike,
    reference: ArrayLike,
    data_range: float = 2.0,
    max_psnr: float | None = None,
) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB, one value per video.

    The mean squared error is pooled over all channels, frames and pixels of a video before taking the log
    (rather than averaging per-frame PSNRs), so one perfect frame cannot push the score to infinity.

    Args:
        prediction, reference: videos ``[B, C, T, H, W]`` or ``[C, T, H, W]`` of identical shape.
        data_range: peak-to-peak range of the signal; 2 for ``[-1, 1]`` videos, 255 for uint8 frames.
        max_psnr: optional cap. Identical videos have zero error and hence PSNR ``+inf``; pass e.g. ``100.0``
            to report a finite number instead (useful when averaging over a dataset).

    Returns:
        float64 tensor of shape ``[B]`` (or a 0-dim tensor for an unbatched input).
    """
    data_range = _check_data_range(data_range)
    pred, ref, batched = _video_pair(prediction, reference)
    mse = (pred - ref).pow(2).flatten(1).mean(dim=1)
    values = 10.0 * torch.log10(data_range**2 / mse)  # mse == 0 -> +inf, by IEEE division
    if max_psnr is not None:
        values = values.clamp(max=float(max_psnr))
    return values if batched else values[0]


def _window_1d(window_size: int, sigma: float, kind: str) -> torch.Tensor:
    if kind == "gaussian":
        coords = torch.arange(window_size, dtype=torch.float64) - (window_size - 1) / 2.0
        weights = torch.exp(-(coords**2) / (2.0 * sigma**2))
    elif kind == "uniform":
        weights = torch.ones(window_size, dtype=torch.float64)
    else:
        raise MetricInputError(f"window must be 'gaussian' or 'uniform', got {kind!r}.")
    return weights / weights.sum()


def ssim(
    prediction: ArrayLike,
    reference: ArrayLike,
    data_range: float = 2.0,
    window_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    window: str = "gaussian",
    frames_per_chunk: int = 64,
) -> torch.Tensor:
    """Structural similarity (Wang et al., 2004), one value per video.

    SSIM is computed independently on every channel of every frame with a sliding window (an 11x11 Gaussian
    with sigma 1.5 by default, "valid" positions only, i.e. no padding, matching the reference implementation),
    averaged over window positions, then over the channels (per-channel mean rather than luminance only, so
    colour artefacts of the tokenizer count), then over frames. Local statistics use the window weights as a
    probability distribution (no Bessel correction), as in the original paper.

    Args:
        prediction, reference: videos ``[B, C, T, H, W]`` or ``[C, T, H, W]``; ``H`` and ``W`` must be at least
            ``window_size``.
        data_range: peak-to-peak range; 2 for ``[-1, 1]``. Sets ``C1 = (k1 * L)^2`` and ``C2 = (k2 * L)^2``.
        window: ``"gaussian"`` (default) or ``"uniform"`` (box filter, handy for hand-checked tests).
        frames_per_chunk: frames processed per convolution call, bounding peak memory for long videos.

    Returns:
        float64 tensor of shape ``[B]`` (or 0-dim for an unbatched input); identical inputs give exactly 1.
    """
    data_range = _check_data_range(data_range)
    if isinstance(window_size, bool) or not isinstance(window_size, int) or window_size < 1:
        raise MetricInputError(f"window_size must be a positive int, got {window_size!r}.")
    if window == "gaussian" and not sigma > 0:
        raise MetricInputError(f"sigma must be positive for a Gaussian window, got {sigma!r}.")
    pred, ref, batched = _video_pair(prediction, reference)
    batch, channels, frames, height, width = pred.shape
    if height < window_size or width < window_size:
        raise MetricInputError(
            f"frames of {height}x{width} are smaller than the {window_size}x{window_size} SSIM window; "
            "pass a smaller window_size."
        )
    weights_1d = _window_1d(window_size, sigma, window)
    # Both windows are separable (outer products of 1-D weights), so two 1-D passes replace one k x k pass; the
    # five local moments share each pass as grouped channels. This is ~5x faster than a 2-D float64 kernel.
    row_kernel = weights_1d.reshape(1, 1, 1, window_size).repeat(5, 1, 1, 1)
    col_kernel = weights_1d.reshape(1, 1, window_size, 1).repeat(5, 1, 1, 1)
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2

    # [B, C, T, H, W] -> one single-channel image per (video, channel, frame).
    flat_pred = pred.reshape(-1, 1, height, width)
    flat_ref = ref.reshape(-1, 1, height, width)
    chunk = max(1, int(frames_per_chunk))
    per_image = []
    for start in range(0, flat_pred.shape[0], chunk):
        x = flat_pred[start : start + chunk]
        y = flat_ref[start : start + chunk]
        moments = torch.cat([x, y, x * x, y * y, x * y], dim=1)
        moments = torch.nn.functional.conv2d(moments, row_kernel, groups=5)
        moments = torch.nn.functional.conv2d(moments, col_kernel, groups=5)
        mu_x, mu_y, mean_xx, mean_yy, mean_xy = moments.unbind(dim=1)
        var_x = mean_xx - mu_x**2
        var_y = mean_yy - mu_y**2
        cov_xy = mean_xy - mu_x * mu_y
        numerator = (2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)
        denominator = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
        per_image.append((numerator / denominator).flatten(1).mean(dim=1))
    per_image_ssim = torch.cat(per_image).reshape(batch, channels, frames)
    per_frame = per_image_ssim.mean(dim=1)  # channel mean -> [B, T]
    values = per_frame.mean(dim=1)
    return values if batched else values[0]


# ----------------------------------------------------------------------------------------------------------------
# Token statistics: bits per pixel, codebook usage, perplexity
# ----------------------------------------------------------------------------------------------------------------


def _check_codebook_bits(codebook_bits: Any, num_levels: int) -> list[int]:
    """Accept one K for all levels or one per level; K must be an int in [1, 64]."""
    bits = list(codebook_bits) if isinstance(codebook_bits, (list, tuple)) else [codebook_bits] * num_levels
    if len(bits) != num_levels:
        raise MetricInputError(f"Got {len(bits)} codebook_bits values for {num_levels} token levels.")
    for k in bits:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= _MAX_CODEBOOK_BITS:
            raise MetricInputError(f"codebook_bits must be an int in [1, {_MAX_CODEBOOK_BITS}], got {k!r}.")
    return [int(k) for k in bits]


def _level_ids(level: Any, index: int) -> torch.Tensor:
    """Flatten one level's token ids (a tensor/array, or a list of per-batch chunks) into an int64 vector."""
    if isinstance(level, (list, tuple)) and len(level) > 0 and isinstance(level[0], (torch.Tensor, np.ndarray)):
        chunks = [_to_tensor(chunk, f"token_ids[{index}]").reshape(-1) for chunk in level]
        ids = torch.cat(chunks) if chunks else torch.empty(0, dtype=torch.int64)
    else:
        ids = _to_tensor(level, f"token_ids[{index}]").reshape(-1)
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise MetricInputError(f"token_ids[{index}] must hold integers, got dtype {ids.dtype}.")
    if ids.numel() == 0:
        raise MetricInputError(f"token_ids[{index}] is empty; every level needs at least one token.")
    return ids.to(torch.int64)


def _as_levels(token_ids: Any) -> list[Any]:
    if isinstance(token_ids, Mapping):
        return list(token_ids.values())
    if isinstance(token_ids, (torch.Tensor, np.ndarray)):
        return [token_ids]
    if isinstance(token_ids, (list, tuple)):
        if len(token_ids) == 0:
            raise MetricInputError("token_ids is empty; pass one id tensor per pyramid level.")
        return list(token_ids)
    raise MetricInputError(
        f"token_ids must be a tensor or a sequence of per-level tensors, got {type(token_ids).__name__}."
    )


def _check_id_range(ids: torch.Tensor, bits: int, index: int) -> None:
    """Ids must fit in K bits. For K=64 every int64 is valid: negative values are the upper half (two's complement)."""
    if bits >= 64:
        return
    low, high = int(ids.min()), int(ids.max())
    if low < 0 or high >= 2**bits:
        raise MetricInputError(
            f"token_ids[{index}] has ids in [{low}, {high}], outside [0, 2^{bits}) for codebook_bits={bits}."
        )


def _num_pixels(video_shape: Any) -> int:
    """Pixel count (channels excluded) of the original video(s) the tokens encode.

    ``video_shape`` may be a tensor/array (its shape is used) or a shape tuple: ``(T, H, W)``, ``(C, T, H, W)`` or
    ``(B, C, T, H, W)``, matching how videos are laid out in this package.
    """
    if isinstance(video_shape, (torch.Tensor, np.ndarray)):
        video_shape = tuple(video_shape.shape)
    try:
        dims = [int(d) for d in video_shape]
    except (TypeError, ValueError):
        raise MetricInputError(f"video_shape must be a shape tuple or a video tensor, got {video_shape!r}.") from None
    if len(dims) == 3:
        frames, height, width = dims
        batch = 1
    elif len(dims) == 4:
        _, frames, height, width = dims
        batch = 1
    elif len(dims) == 5:
        batch, _, frames, height, width = dims
    else:
        raise MetricInputError(f"video_shape must be (T, H, W), (C, T, H, W) or (B, C, T, H, W), got {tuple(dims)}.")
    pixels = batch * frames * height * width
    if pixels <= 0:
        raise MetricInputError(f"video_shape {tuple(dims)} has no pixels.")
    return pixels


def _empirical_entropy_bits(ids: torch.Tensor) -> tuple[float, int]:
    """Entropy (bits) of the empirical id distribution and the number of distinct ids.

    ``torch.unique`` keeps memory proportional to the number of tokens, never to the codebook size 2^K.
    """
    counts = torch.unique(ids, return_counts=True)[1].to(torch.float64)
    probs = counts / counts.sum()
    entropy = float(-(probs * torch.log2(probs)).sum())
    return max(entropy, 0.0), int(counts.numel())


def bits_per_pixel(token_ids: Any, codebook_bits: int | Sequence[int], video_shape: Any) -> float:
    """Raw bit rate of a token pyramid: every token costs its codebook's K bits.

    ``total_bits = sum_l numel(ids_l) * K_l`` and ``bpp = total_bits / (B * T * H * W)`` of the original
    video(s); channels are not counted, as is usual for video codecs.

    Args:
        token_ids: one id tensor per level (any shape, e.g. ``[B, t_l, h_l, w_l]``), a single tensor, or a
            mapping level-name -> tensor.
        codebook_bits: K, one int for all levels or one per level, in ``[1, 64]``.
        video_shape: the original video tensor or its shape (see :func:`_num_pixels`).
    """
    levels = _as_levels(token_ids)
    bits = _check_codebook_bits(codebook_bits, len(levels))
    total_bits = 0
    for index, (level, k) in enumerate(zip(levels, bits)):
        ids = _level_ids(level, index)
        _check_id_range(ids, k, index)
        total_bits += ids.numel() * k
    return total_bits / _num_pixels(video_shape)


def bits_per_pixel_entropy(token_ids: Any, video_shape: Any, codebook_bits: int | Sequence[int] | None = None) -> float:
    """Bit rate an ideal entropy coder would reach with per-level empirical id frequencies ("bpp_entropy").

    ``bpp_entropy = sum_l H_l * numel(ids_l) / (B * T * H * W)`` with ``H_l`` the empirical entropy in bits of
    level ``l``. It ignores the cost of transmitting the frequency table, so it is a lower bound that is only
    meaningful over many tokens; it never exceeds :func:`bits_per_pixel`. ``codebook_bits`` is optional and, when
    given, only used to validate the id range.
    """
    levels = _as_levels(token_ids)
    bits = _check_codebook_bits(codebook_bits, len(levels)) if codebook_bits is not None else None
    total_bits = 0.0
    for index, level in enumerate(levels):
        ids = _level_ids(level, index)
        if bits is not None:
            _check_id_range(ids, bits[index], index)
        entropy, _ = _empirical_entropy_bits(ids)
        total_bits += entropy * ids.numel()
    return total_bits / _num_pixels(video_shape)


def codebook_usage(token_ids: Any, codebook_bits: int | Sequence[int]) -> list[dict[str, float]]:
    """Per-level codebook utilisation and perplexity of token ids (e.g. gathered over a whole dataset).

    For each level, with ``N`` tokens, ``U`` distinct ids and codebook size ``2^K``:

    * ``used_codes`` = U
    * ``usage_fraction_codebook`` = U / 2^K: share of the whole codebook ever used (tiny for large K).
    * ``usage_fraction_reachable`` = U / min(2^K, N): share of what *could* have been used given only N tokens,
      which is the informative number when 2^K exceeds the dataset size.
    * ``entropy_bits`` = empirical entropy of the id distribution, ``perplexity`` = exp(entropy in nats)
      = 2^entropy_bits, the "effective number of codes" (uniform use of 4 codes gives 4).

    Nothing of size 2^K is ever allocated (counts come from ``torch.unique``), so K up to 64 works; 64-bit ids
    may be negative int64 (two's complement).
    """
    levels = _as_levels(token_ids)
    bits = _check_codebook_bits(codebook_bits, len(levels))
    report = []
    for index, (level, k) in enumerate(zip(levels, bits)):
        ids = _level_ids(level, index)
        _check_id_range(ids, k, index)
        report.append(_usage_from_counts(torch.unique(ids, return_counts=True)[1], k, index))
    return report


def _usage_from_counts(counts: torch.Tensor, bits: int, index: int) -> dict[str, float]:
    counts = counts.to(torch.float64)
    num_tokens = int(counts.sum())
    used = int(counts.numel())
    probs = counts / num_tokens
    entropy_bits = max(float(-(probs * torch.log2(probs)).sum()), 0.0)
    codebook_size = 2**bits  # exact Python int, never materialised as a tensor
    return {
        "level": index,
        "codebook_bits": bits,
        "num_tokens": num_tokens,
        "used_codes": used,
        "usage_fraction_codebook": used / codebook_size,
        "usage_fraction_reachable": used / min(codebook_size, num_tokens),
        "entropy_bits": entropy_bits,
        "perplexity": 2.0**entropy_bits,
    }


class CodebookUsageAccumulator:
    """Streaming version of :func:`codebook_usage` that keeps only (distinct id, count) pairs per level.

    Memory grows with the number of *distinct* ids seen, not with the number of tokens, so usage over a full
    dataset can be gathered batch by batch during evaluation.
    """

    def __init__(self, codebook_bits: int | Sequence[int], num_levels: int | None = None) -> None:
        if num_levels is None:
            num_levels = len(codebook_bits) if isinstance(codebook_bits, (list, tuple)) else None
        self._codebook_bits = codebook_bits
        self._bits: list[int] | None = (
            _check_codebook_bits(codebook_bits, num_levels) if num_levels is not None else None
        )
        self._ids: list[torch.Tensor] = []
        self._counts: list[torch.Tensor] = []

    def update(self, token_ids: Any) -> None:
        """Add one batch: one id tensor per level, in the same level order every call."""
        levels = _as_levels(token_ids)
        if self._bits is None:
            self._bits = _check_codebook_bits(self._codebook_bits, len(levels))
        if len(levels) != len(self._bits):
            raise MetricInputError(f"Expected {len(self._bits)} levels per update, got {len(levels)}.")
        for index, level in enumerate(levels):
            ids = _level_ids(level, index)
            _check_id_range(ids, self._bits[index], index)
            new_ids, new_counts = torch.unique(ids, return_counts=True)
            if index == len(self._ids):
                self._ids.append(new_ids)
                self._counts.append(new_counts)
                continue
            merged, inverse = torch.unique(torch.cat([self._ids[index], new_ids]), return_inverse=True)
            counts = torch.zeros(merged.numel(), dtype=torch.int64)
            counts.scatter_add_(0, inverse, torch.cat([self._counts[index], new_counts]))
            self._ids[index], self._counts[index] = merged, counts

    def compute(self) -> list[dict[str, float]]:
        if not self._ids:
            raise MetricInputError("No token ids were added; call update() before compute().")
        return [_usage_from_counts(c, k, i) for i, (c, k) in enumerate(zip(self._counts, self._bits))]

    def reset(self) -> None:
        self._ids, self._counts = [], []


# ----------------------------------------------------------------------------------------------------------------
# Text-video retrieval
# ----------------------------------------------------------------------------------------------------------------


def cosine_similarity_matrix(text_features: ArrayLike, video_features: ArrayLike) -> torch.Tensor:
    """``[num_texts, num_videos]`` cosine similarities of L2-normalised features."""
    text = _to_float64(text_features, "text_features")
    video = _to_float64(video_features, "video_features")
    if text.ndim != 2 or video.ndim != 2:
        raise MetricInputError(
            f"features must be 2-D [N, D]; got text {tuple(text.shape)} and video {tuple(video.shape)}."
        )
    if text.shape[1] != video.shape[1]:
        raise MetricInputError(f"feature widths differ: text D={text.shape[1]}, video D={video.shape[1]}.")
    text_norm, video_norm = text.norm(dim=1, keepdim=True), video.norm(dim=1, keepdim=True)
    if (text_norm == 0).any() or (video_norm == 0).any():
        raise MetricInputError("a feature vector is all zeros; its cosine similarity is undefined.")
    return (text / text_norm) @ (video / video_norm).T


def _positive_mask(positives: Any, num_texts: int, num_videos: int) -> torch.Tensor:
    """Build the boolean ``[num_texts, num_videos]`` ground-truth pairing matrix."""
    if positives is None:
        if num_texts != num_videos:
            raise MetricInputError(
                f"the default diagonal pairing needs a square similarity matrix, got {num_texts}x{num_videos}; "
                "pass positives=[{video ids} per text]."
            )
        return torch.eye(num_texts, dtype=torch.bool)
    if isinstance(positives, (torch.Tensor, np.ndarray)) and positives.ndim == 2:
        mask = _to_tensor(positives, "positives").to(torch.bool)
        if mask.shape != (num_texts, num_videos):
            raise MetricInputError(
                f"positives mask shape {tuple(mask.shape)} != similarity shape ({num_texts}, {num_videos})."
            )
        return mask
    if len(positives) != num_texts:
        raise MetricInputError(f"positives has {len(positives)} entries for {num_texts} texts.")
    mask = torch.zeros(num_texts, num_videos, dtype=torch.bool)
    for text_index, entry in enumerate(positives):
        videos = [entry] if isinstance(entry, (int, np.integer)) else list(entry)
        for video_index in videos:
            if isinstance(video_index, bool) or not isinstance(video_index, (int, np.integer)):
                raise MetricInputError(f"positives[{text_index}] must hold video indices, got {video_index!r}.")
            if not 0 <= video_index < num_videos:
                raise MetricInputError(
                    f"positives[{text_index}] has video index {video_index} outside [0, {num_videos})."
                )
            mask[text_index, int(video_index)] = True
    return mask


def _ranks(similarity: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
    """1-based rank of each query's best-scored positive among all candidates.

    Other positives never push a query down; ties with negatives are counted against the query (a negative
    scoring exactly as high as the best positive is ranked above it), so a constant similarity matrix cannot
    score well.
    """
    best_positive = torch.where(positive, similarity, torch.full_like(similarity, -math.inf)).max(dim=1).values
    beaten_by = ((similarity >= best_positive[:, None]) & ~positive).sum(dim=1)
    return beaten_by + 1


def retrieval_metrics(
    similarity: ArrayLike | None = None,
    positives: Any = None,
    *,
    text_features: ArrayLike | None = None,
    video_features: ArrayLike | None = None,
    ks: Sequence[int] = (1, 5, 10),
) -> dict[str, float]:
    """Text-to-video and video-to-text recall@k, median rank and mean rank.

    Args:
        similarity: ``[num_texts, num_videos]`` scores (higher = more similar). Alternatively give
            ``text_features`` ``[N_t, D]`` and ``video_features`` ``[N_v, D]`` to use cosine similarity.
        positives: ground truth. ``None`` = diagonal (text i describes video i, square matrix); a list with one
            entry per text holding a video index or a set of video indices (several captions per video, or
            several matching videos); or a boolean ``[num_texts, num_videos]`` mask. Every text and every video
            needs at least one positive.
        ks: the recall cut-offs.

    Returns:
        ``{"t2v_R@1", "t2v_R@5", "t2v_R@10", "t2v_median_rank", "t2v_mean_rank", "v2t_..."}``; recalls are
        fractions in ``[0, 1]`` (multiply by 100 for the percentages papers print). For a query with several
        positives the best-ranked one counts (standard for MSR-VTT-style multi-caption evaluation).
    """
    if similarity is None:
        if text_features is None or video_features is None:
            raise MetricInputError("pass either a similarity matrix or both text_features and video_features.")
        sim = cosine_similarity_matrix(text_features, video_features)
    else:
        if text_features is not None or video_features is not None:
            raise MetricInputError("pass either a similarity matrix or features, not both.")
        sim = _to_float64(similarity, "similarity")
        if sim.ndim != 2:
            raise MetricInputError(f"similarity must be 2-D [num_texts, num_videos], got shape {tuple(sim.shape)}.")
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise MetricInputError(f"recall cut-offs must be positive ints, got {k!r}.")
    num_texts, num_videos = sim.shape
    mask = _positive_mask(positives, num_texts, num_videos)
    if not mask.any(dim=1).all():
        raise MetricInputError(f"text {int((~mask.any(dim=1)).nonzero()[0])} has no positive video.")
    if not mask.any(dim=0).all():
        raise MetricInputError(f"video {int((~mask.any(dim=0)).nonzero()[0])} has no positive text.")

    results: dict[str, float] = {}
    for prefix, scores, pos in (("t2v", sim, mask), ("v2t", sim.T, mask.T)):
        ranks = _ranks(scores, pos).to(torch.float64)
        for k in ks:
            results[f"{prefix}_R@{k}"] = float((ranks <= k).to(torch.float64).mean())
        # The median of an even count is the mean of the two middle ranks (numpy convention).
        results[f"{prefix}_median_rank"] = float(np.median(ranks.numpy()))
        results[f"{prefix}_mean_rank"] = float(ranks.mean())
    return results


# ----------------------------------------------------------------------------------------------------------------
# Temporal action localization
# ----------------------------------------------------------------------------------------------------------------


def _segments(value: ArrayLike, name: str) -> tuple[torch.Tensor, bool]:
    segs = _to_float64(value, name)
    single = segs.ndim == 1
    if single:
        segs = segs.unsqueeze(0)
    if segs.ndim != 2 or segs.shape[1] != 2:
        raise MetricInputError(f"{name} must be (start, end) or [N, 2], got shape {tuple(segs.shape)}.")
    if (segs[:, 1] < segs[:, 0]).any():
        raise MetricInputError(f"{name} has a segment whose end is before its start.")
    return segs, single


def temporal_iou(segments_a: ArrayLike, segments_b: ArrayLike) -> torch.Tensor:
    """Temporal intersection over union of 1-D segments.

    ``tIoU = |a ∩ b| / (|a| + |b| - |a ∩ b|)``. Inputs are one ``(start, end)`` pair or ``[N, 2]`` arrays; the
    result is ``[N, M]`` with the dimension of a single-pair input squeezed out. Two zero-length segments have
    an empty union and are given tIoU 0 (a point cannot be localized by overlap).
    """
    a, single_a = _segments(segments_a, "segments_a")
    b, single_b = _segments(segments_b, "segments_b")
    start = torch.maximum(a[:, None, 0], b[None, :, 0])
    end = torch.minimum(a[:, None, 1], b[None, :, 1])
    intersection = (end - start).clamp(min=0)
    union = (a[:, 1] - a[:, 0])[:, None] + (b[:, 1] - b[:, 0])[None, :] - intersection
    iou = torch.where(
        union > 0, intersection / union.clamp(min=torch.finfo(torch.float64).tiny), torch.zeros_like(union)
    )
    if single_a:
        iou = iou[0]
    if single_b:
        iou = iou[..., 0]
    return iou


def average_precision(is_true_positive: ArrayLike, num_positives: int, precision_envelope: bool = True) -> float:
    """All-points average precision of a ranked list (no 11-point sampling).

    Args:
        is_true_positive: booleans for the detections sorted by decreasing score.
        num_positives: number of ground-truth instances (recall denominator); missed ones lower AP.
        precision_envelope: ``True`` (default) replaces precision by its running maximum from the right before
            integrating over recall, as in PASCAL VOC 2010+ and the ActivityNet/THUMOS toolkits. ``False`` gives
            the plain mean of precision at each true positive (divided by ``num_positives``).
    """
    if isinstance(num_positives, bool) or not isinstance(num_positives, (int, np.integer)) or num_positives < 1:
        raise MetricInputError(f"num_positives must be a positive int, got {num_positives!r}.")
    flags = _to_tensor(is_true_positive, "is_true_positive").reshape(-1).to(torch.bool)
    if int(flags.sum()) > num_positives:
        raise MetricInputError("more true positives than ground-truth instances.")
    if flags.numel() == 0:
        return 0.0
    tp = torch.cumsum(flags.to(torch.float64), 0)
    fp = torch.cumsum((~flags).to(torch.float64), 0)
    precision = tp / (tp + fp)
    recall = tp / num_positives
    if not precision_envelope:
        return float(precision[flags].sum() / num_positives)
    precision = torch.cat([torch.zeros(1, dtype=torch.float64), precision, torch.zeros(1, dtype=torch.float64)])
    recall = torch.cat([torch.zeros(1, dtype=torch.float64), recall, torch.ones(1, dtype=torch.float64)])
    precision = torch.flip(torch.cummax(torch.flip(precision, [0]), 0).values, [0])
    steps = torch.nonzero(recall[1:] != recall[:-1]).reshape(-1) + 1
    return float(((recall[steps] - recall[steps - 1]) * precision[steps]).sum())


def _check_thresholds(thresholds: Any) -> list[float]:
    values = [float(t) for t in (thresholds if isinstance(thresholds, Iterable) else [thresholds])]
    if not values:
        raise MetricInputError("tiou_thresholds is empty.")
    for t in values:
        if not 0.0 < t <= 1.0:
            raise MetricInputError(f"tIoU thresholds must lie in (0, 1], got {t}.")
    return values


def _parse_rows(rows: Any, width: int, name: str) -> list[tuple]:
    if rows is None:
        raise MetricInputError(f"{name} is required.")
    parsed = []
    for index, row in enumerate(rows):
        row = tuple(row)
        if len(row) != width:
            layout = "(video_id, label, start, end, score)" if width == 5 else "(video_id, label, start, end)"
            raise MetricInputError(f"{name}[{index}] has {len(row)} fields; expected {layout}.")
        try:
            numbers = [float(x) for x in row[2:]]
        except (TypeError, ValueError):
            raise MetricInputError(f"{name}[{index}] start/end/score must be numbers, got {row[2:]!r}.") from None
        if not all(math.isfinite(x) for x in numbers):
            raise MetricInputError(f"{name}[{index}] has a NaN or infinite start/end/score.")
        if numbers[1] < numbers[0]:
            raise MetricInputError(f"{name}[{index}] ends ({numbers[1]}) before it starts ({numbers[0]}).")
        if not isinstance(row[0], Hashable) or not isinstance(row[1], Hashable):
            raise MetricInputError(f"{name}[{index}] video_id and label must be hashable.")
        parsed.append((row[0], row[1], *numbers))
    return parsed


def temporal_action_localization_map(
    predictions: Iterable[Sequence[Any]],
    ground_truth: Iterable[Sequence[Any]],
    tiou_thresholds: Sequence[float] = THUMOS14_TIOU_THRESHOLDS,
    precision_envelope: bool = True,
) -> dict[str, Any]:
    """Detection mAP for temporal action localization (THUMOS'14 / ActivityNet protocol).

    For each class and tIoU threshold, detections of that class are visited by decreasing score (ties keep input
    order) and each is a true positive if it overlaps an as-yet-unmatched ground-truth segment of the same class
    in the same video with tIoU >= threshold (the highest-tIoU such segment is consumed); otherwise it is a false
    positive. AP is the all-points AP of :func:`average_precision`. mAP averages AP over the classes that have
    ground truth (predicted labels absent from the ground truth are ignored; classes never predicted score 0),
    and the headline ``mAP`` averages over thresholds.

    Args:
        predictions: rows ``(video_id, label, start, end, score)``; may be empty (then every AP is 0).
        ground_truth: rows ``(video_id, label, start, end)``; must not be empty.
        tiou_thresholds: :data:`THUMOS14_TIOU_THRESHOLDS` (default, 0.1:0.1:0.7) or
            :data:`ACTIVITYNET_TIOU_THRESHOLDS` (0.5:0.05:0.95), or any values in (0, 1].

    Returns:
        ``{"mAP": float, "mAP_per_threshold": {thr: float}, "AP_per_class": {label: [AP per thr]},
        "tiou_thresholds": [float]}``.
    """
    thresholds = _check_thresholds(tiou_thresholds)
    preds = _parse_rows(predictions, 5, "predictions")
    truths = _parse_rows(ground_truth, 4, "ground_truth")
    if not truths:
        raise MetricInputError("ground_truth is empty: mAP is undefined without ground-truth segments.")

    truth_by_class: dict[Any, dict[Any, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for video_id, label, start, end in truths:
        truth_by_class[label][video_id].append((start, end))
    preds_by_class: dict[Any, list[tuple]] = defaultdict(list)
    for video_id, label, start, end, score in preds:
        preds_by_class[label].append((video_id, start, end, score))

    ap_per_class: dict[Any, list[float]] = {}
    for label, truth_videos in truth_by_class.items():
        num_truth = sum(len(segs) for segs in truth_videos.values())
        detections = sorted(preds_by_class.get(label, []), key=lambda d: -d[3])  # stable: ties keep input order
        truth_tensors = {vid: torch.tensor(segs, dtype=torch.float64) for vid, segs in truth_videos.items()}
        # tIoU of every detection with every ground-truth segment of its video, computed once for all thresholds.
        overlaps = [
            temporal_iou(torch.tensor([start, end], dtype=torch.float64), truth_tensors[vid])
            if vid in truth_tensors
            else None
            for vid, start, end, _ in detections
        ]
        per_threshold = []
        for threshold in thresholds:
            matched = {vid: torch.zeros(len(segs), dtype=torch.bool) for vid, segs in truth_videos.items()}
            flags = torch.zeros(len(detections), dtype=torch.bool)
            for index, ((vid, _, _, _), iou) in enumerate(zip(detections, overlaps)):
                if iou is None:
                    continue
                candidates = torch.where(matched[vid] | (iou < threshold), -1.0, iou)
                best = int(torch.argmax(candidates))
                if candidates[best] >= 0:
                    matched[vid][best] = True
                    flags[index] = True
            per_threshold.append(average_precision(flags, num_truth, precision_envelope))
        ap_per_class[label] = per_threshold

    map_per_threshold = {t: float(np.mean([aps[i] for aps in ap_per_class.values()])) for i, t in enumerate(thresholds)}
    return {
        "mAP": float(np.mean(list(map_per_threshold.values()))),
        "mAP_per_threshold": map_per_threshold,
        "AP_per_class": ap_per_class,
        "tiou_thresholds": thresholds,
    }


# ----------------------------------------------------------------------------------------------------------------
# Video segmentation
# ----------------------------------------------------------------------------------------------------------------


def _binary_masks(value: ArrayLike, name: str) -> torch.Tensor:
    """Masks must be boolean or numeric 0/1; probabilities must be thresholded by the caller, on purpose."""
    mask = _to_tensor(value, name)
    if mask.numel() == 0:
        raise MetricInputError(f"{name} is empty (shape {tuple(mask.shape)}).")
    if mask.dtype != torch.bool:
        if mask.is_floating_point() and not torch.isfinite(mask).all():
            raise MetricInputError(f"{name} contains NaN or infinite values.")
        if not ((mask == 0) | (mask == 1)).all():
            raise MetricInputError(f"{name} must be a binary mask (0/1 or bool); threshold probabilities first.")
        mask = mask != 0
    return mask


def _mask_pair(prediction: ArrayLike, reference: ArrayLike) -> tuple[torch.Tensor, torch.Tensor, bool]:
    pred = _binary_masks(prediction, "prediction")
    ref = _binary_masks(reference, "reference")
    if pred.ndim not in (3, 4):
        raise MetricInputError(
            f"masks must be [T, H, W] (one object) or [O, T, H, W] (O objects/queries), got shape {tuple(pred.shape)}."
        )
    if pred.shape != ref.shape:
        raise MetricInputError(f"prediction mask shape {tuple(pred.shape)} != reference shape {tuple(ref.shape)}.")
    single = pred.ndim == 3
    if single:
        pred, ref = pred.unsqueeze(0), ref.unsqueeze(0)
    return pred, ref, single


def per_frame_iou(prediction: ArrayLike, reference: ArrayLike) -> torch.Tensor:
    """IoU of binary masks per frame: ``[T]`` for ``[T, H, W]`` input, ``[O, T]`` for ``[O, T, H, W]``.

    A frame where both prediction and ground truth are empty scores 1 (the object is correctly reported
    absent), following the DAVIS toolkit; an empty prediction against a non-empty ground truth scores 0.
    """
    pred, ref, single = _mask_pair(prediction, reference)
    intersection = (pred & ref).flatten(2).sum(dim=2).to(torch.float64)
    union = (pred | ref).flatten(2).sum(dim=2).to(torch.float64)
    iou = torch.where(union > 0, intersection / union.clamp(min=1), torch.ones_like(union))
    return iou[0] if single else iou


def jaccard_j(prediction: ArrayLike, reference: ArrayLike) -> float:
    """DAVIS / YouTube-VOS region similarity J: per-object IoU averaged over frames, then over objects.

    Frames where the object is absent from both masks count as IoU 1 (see :func:`per_frame_iou`).
    """
    iou = per_frame_iou(prediction, reference)
    return float(iou.reshape(-1, iou.shape[-1]).mean(dim=1).mean())


def mean_iou(prediction: ArrayLike, reference: ArrayLike) -> dict[str, Any]:
    """Per-query (or per-object) IoU over whole videos, averaged: the mIoU of referring video segmentation.

    Each query's IoU pools intersection and union over all its frames; a query whose prediction and ground
    truth are empty everywhere scores 1. ``overall_iou`` pools intersection and union over every query
    ("overall IoU" of A2D-Sentences), which weighs large objects more.

    Returns:
        ``{"mIoU": float, "per_query_iou": [float], "overall_iou": float, "intersection": [int],
        "union": [int]}``; the pixel counts let callers pool ``overall_iou`` across several calls.
    """
    pred, ref, _ = _mask_pair(prediction, reference)
    intersection = (pred & ref).flatten(1).sum(dim=1).to(torch.float64)
    union = (pred | ref).flatten(1).sum(dim=1).to(torch.float64)
    per_query = torch.where(union > 0, intersection / union.clamp(min=1), torch.ones_like(union))
    total_union = float(union.sum())
    return {
        "mIoU": float(per_query.mean()),
        "per_query_iou": per_query.tolist(),
        "overall_iou": float(intersection.sum()) / total_union if total_union > 0 else 1.0,
        "intersection": [int(v) for v in intersection.tolist()],
        "union": [int(v) for v in union.tolist()],
    }


def class_mean_iou(
    prediction: ArrayLike, reference: ArrayLike, num_classes: int, ignore_index: int | None = None
) -> dict[str, Any]:
    """Semantic-segmentation mIoU over classes from integer label maps of any (matching) shape.

    Intersections and unions are accumulated over every pixel given (e.g. a whole dataset) before dividing.
    Classes absent from both prediction and reference get ``nan`` IoU and are left out of the mean; reference
    pixels equal to ``ignore_index`` are skipped.

    Returns:
        ``{"mIoU": float, "per_class_iou": [float or nan]}``.
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise MetricInputError(f"num_classes must be a positive int, got {num_classes!r}.")
    pred = _to_tensor(prediction, "prediction")
    ref = _to_tensor(reference, "reference")
    if pred.shape != ref.shape:
        raise MetricInputError(f"prediction shape {tuple(pred.shape)} != reference shape {tuple(ref.shape)}.")
    for name, labels in (("prediction", pred), ("reference", ref)):
        if labels.is_floating_point() or labels.is_complex():
            raise MetricInputError(f"{name} must hold integer class labels, got dtype {labels.dtype}.")
    pred, ref = pred.reshape(-1).to(torch.int64), ref.reshape(-1).to(torch.int64)
    if ignore_index is not None:
        keep = ref != ignore_index
        pred, ref = pred[keep], ref[keep]
    if ref.numel() == 0:
        raise MetricInputError("no labelled pixels (empty input, or every pixel is ignore_index).")
    for name, labels in (("prediction", pred), ("reference", ref)):
        if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
            raise MetricInputError(f"{name} has labels outside [0, {num_classes}).")
    intersection = torch.bincount(ref[pred == ref], minlength=num_classes).to(torch.float64)
    union = (torch.bincount(pred, minlength=num_classes) + torch.bincount(ref, minlength=num_classes)).to(
        torch.float64
    ) - intersection
    iou = torch.where(union > 0, intersection / union.clamp(min=1), torch.full_like(union, math.nan))
    return {"mIoU": float(iou[~torch.isnan(iou)].mean()), "per_class_iou": iou.tolist()}


# ----------------------------------------------------------------------------------------------------------------
# Frechet distance (FVD)
# ----------------------------------------------------------------------------------------------------------------


def gaussian_statistics(features: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``[D]`` and unbiased covariance ``[D, D]`` (divisor N-1, like ``np.cov``) of ``[N, D]`` features."""
    feats = _to_float64(features, "features")
    if feats.ndim != 2:
        raise MetricInputError(f"features must be [N, D], got shape {tuple(feats.shape)}.")
    if feats.shape[0] < 2:
        raise MetricInputError(f"need at least 2 feature vectors to estimate a covariance, got {feats.shape[0]}.")
    mean = feats.mean(dim=0)
    centered = feats - mean
    return mean, centered.T @ centered / (feats.shape[0] - 1)


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a PSD matrix by eigendecomposition; round-off negative eigenvalues become 0."""
    eigenvalues, eigenvectors = torch.linalg.eigh(matrix)
    return (eigenvectors * eigenvalues.clamp(min=0).sqrt()) @ eigenvectors.T


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike, sigma2: ArrayLike) -> float:
    """Squared Frechet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2).

    ``d = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))``.

    The product ``S1 S2`` is not symmetric, and ``scipy.linalg.sqrtm`` of it can return complex values with
    tiny imaginary parts for near-singular covariances (common when there are fewer videos than feature
    dimensions). Instead we use that ``S1 S2`` is similar to the symmetric PSD matrix
    ``A S2 A`` with ``A = S1^(1/2)``, so ``tr((S1 S2)^(1/2)) = sum(sqrt(eig(A S2 A)))``; with ``eigh`` this is
    real by construction and stable. A result that round-off pushes below 0 is reported as 0.
    """
    m1, m2 = _to_float64(mu1, "mu1").reshape(-1), _to_float64(mu2, "mu2").reshape(-1)
    s1, s2 = _to_float64(sigma1, "sigma1"), _to_float64(sigma2, "sigma2")
    dim = m1.numel()
    if m2.numel() != dim or s1.shape != (dim, dim) or s2.shape != (dim, dim):
        raise MetricInputError(
            f"inconsistent Gaussian shapes: mu1 {tuple(m1.shape)}, mu2 {tuple(m2.shape)}, "
            f"sigma1 {tuple(s1.shape)}, sigma2 {tuple(s2.shape)}."
        )
    s1 = (s1 + s1.T) / 2
    s2 = (s2 + s2.T) / 2
    root1 = _psd_sqrt(s1)
    middle = root1 @ s2 @ root1
    middle = (middle + middle.T) / 2
    trace_sqrt = torch.linalg.eigvalsh(middle).clamp(min=0).sqrt().sum()
    distance = (m1 - m2).pow(2).sum() + torch.trace(s1) + torch.trace(s2) - 2 * trace_sqrt
    return max(float(distance), 0.0)
