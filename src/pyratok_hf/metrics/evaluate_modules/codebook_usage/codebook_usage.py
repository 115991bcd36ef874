"""Codebook usage and perplexity per pyramid level, as an ``evaluate`` metric (wraps ``codebook_usage``)."""

import datasets
import evaluate
import numpy as np

from pyratok_hf.metrics.functional import EvaluateInputChecksMixin
from pyratok_hf.metrics.functional import codebook_usage
from pyratok_hf.errors import MetricInputError

_DESCRIPTION = """Per-level codebook utilisation of token ids pooled over all added videos: used codes,
usage as a fraction of the codebook (used / 2^K) and of what was reachable (used / min(2^K, tokens)), empirical
entropy in bits and perplexity exp(entropy). Never allocates anything of size 2^K, so K may be up to 64."""

_KWARGS_DESCRIPTION = """
Args:
    token_ids: list (one entry per video) of lists (one per level) of flattened int64 token ids.
    codebook_bits (int or list of int per level): K, in [1, 64].
Returns:
    flat dict with keys "level_{l}/used_codes", "level_{l}/usage_fraction_codebook",
    "level_{l}/usage_fraction_reachable", "level_{l}/entropy_bits", "level_{l}/perplexity",
    "level_{l}/num_tokens", plus "mean_perplexity" over levels.
"""

_CITATION = ""


class CodebookUsage(EvaluateInputChecksMixin, evaluate.Metric):
    """Thin wrapper around the functional codebook statistics."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"token_ids": datasets.Sequence(datasets.Sequence(datasets.Value("int64")))}),
        )

    def _compute(self, token_ids, codebook_bits=None):
        if codebook_bits is None:
            raise MetricInputError("codebook_usage needs codebook_bits=K (an int in [1, 64], or one per level).")
        num_levels = {len(levels) for levels in token_ids}
        if len(num_levels) != 1:
            raise MetricInputError(f"every video must have the same number of token levels, got {sorted(num_levels)}.")
        levels = [
            np.concatenate([np.asarray(video[level], dtype=np.int64) for video in token_ids])
            for level in range(num_levels.pop())
        ]
        results = {}
        for stats in codebook_usage(levels, codebook_bits):
            prefix = f"level_{stats['level']}/"
            for key in (
                "num_tokens",
                "used_codes",
                "usage_fraction_codebook",
                "usage_fraction_reachable",
                "entropy_bits",
                "perplexity",
            ):
                results[prefix + key] = stats[key]
        results["mean_perplexity"] = float(np.mean([v for k, v in results.items() if k.endswith("/perplexity")]))
        return results
