"""Bit rate of PyraTok token pyramids, as an ``evaluate`` metric (wraps the functional bpp helpers)."""

import datasets
import evaluate
import numpy as np

from pyratok_hf.metrics.functional import EvaluateInputChecksMixin
from pyratok_hf.metrics.functional import bits_per_pixel
from pyratok_hf.metrics.functional import bits_per_pixel_entropy
from pyratok_hf.errors import MetricInputError

_DESCRIPTION = """Bits per pixel of the token pyramids of a set of videos. `bpp` charges K bits per token
(sum over levels of numel * K, divided by the total T*H*W of the original videos); `bpp_entropy` charges each
level its empirical entropy (pooled over the whole dataset) per token, the rate of an ideal entropy coder."""

_KWARGS_DESCRIPTION = """
Args:
    token_ids: list (one entry per video) of lists (one per pyramid level) of flattened int64 token ids.
        64-bit codebooks store ids as int64 two's complement.
    num_pixels: list of T*H*W of each original video (channels excluded).
    codebook_bits (int or list of int per level): K, in [1, 64].
Returns:
    bpp, bpp_entropy (floats).
"""

_CITATION = ""


class BitsPerPixel(EvaluateInputChecksMixin, evaluate.Metric):
    """Thin wrapper: examples are concatenated per level, then the functional bpp code runs once."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "token_ids": datasets.Sequence(datasets.Sequence(datasets.Value("int64"))),
                    "num_pixels": datasets.Value("int64"),
                }
            ),
        )

    def _compute(self, token_ids, num_pixels, codebook_bits=None):
        if codebook_bits is None:
            raise MetricInputError("bits_per_pixel needs codebook_bits=K (an int in [1, 64], or one per level).")
        num_levels = {len(levels) for levels in token_ids}
        if len(num_levels) != 1:
            raise MetricInputError(f"every video must have the same number of token levels, got {sorted(num_levels)}.")
        levels = [
            np.concatenate([np.asarray(video[level], dtype=np.int64) for video in token_ids])
            for level in range(num_levels.pop())
        ]
        total_pixels = int(np.sum(num_pixels))
        # The functional API takes the original video shape; (total_pixels, 1, 1) read as (T, H, W) has
        # exactly the pooled pixel count of the dataset.
        shape = (total_pixels, 1, 1)
        return {
            "bpp": bits_per_pixel(levels, codebook_bits, shape),
            "bpp_entropy": bits_per_pixel_entropy(levels, shape, codebook_bits),
        }
