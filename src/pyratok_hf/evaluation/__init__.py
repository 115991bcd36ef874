"""Evaluation of PyraTok models on the offline corpus: ``pyratok evaluate`` and the zero-shot benchmark.

* :mod:`pyratok_hf.evaluation.cli`: the ``pyratok evaluate --task ...`` command (JSON, markdown, PNG outputs);
* :mod:`pyratok_hf.evaluation.benchmarks`: dataset-level evaluators, baseline (b) and
  :func:`~pyratok_hf.evaluation.benchmarks.run_zero_shot_benchmark`;
* :mod:`pyratok_hf.evaluation.prompt_following`: the weight-free prompt-following checker for generated clips.
"""

import importlib

_LAZY = {
    "PixelStatisticsBaseline": ".benchmarks",
    "evaluate_generation": ".benchmarks",
    "evaluate_localization": ".benchmarks",
    "evaluate_reconstruction": ".benchmarks",
    "evaluate_retrieval": ".benchmarks",
    "evaluate_segmentation": ".benchmarks",
    "run_zero_shot_benchmark": ".benchmarks",
    "check_prompt": ".prompt_following",
    "parse_caption": ".prompt_following",
    "prompt_following_report": ".prompt_following",
}


def __getattr__(name):  # imported on first use, so ``pyratok evaluate --help`` stays fast
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "PixelStatisticsBaseline",
    "check_prompt",
    "evaluate_generation",
    "evaluate_localization",
    "evaluate_reconstruction",
    "evaluate_retrieval",
    "evaluate_segmentation",
    "parse_caption",
    "prompt_following_report",
    "run_zero_shot_benchmark",
]
