"""Evaluation of PyraTok models on the offline corpus: ``pyratok evaluate`` and the zero-shot benchmark.

* :mod:`pyratok_hf.evaluation.cli`: the ``pyratok evaluate --task ...`` command (JSON, markdown, PNG outputs);
* :mod:`pyratok_hf.evaluation.benchmarks`: dataset-level evaluators, baseline (b) and
  :func:`~pyratok_hf.evaluation.benchmarks.run_zero_shot_benchmark`;
* :mod:`pyratok_hf.evaluation.prompt_following`: the weight-free prompt-following checker for generated clips.
"""

from .benchmarks import (
    PixelStatisticsBaseline,
    evaluate_generation,
    evaluate_localization,
    evaluate_reconstruction,
    evaluate_retrieval,
    evaluate_segmentation,
    run_zero_shot_benchmark,
)
from .prompt_following import check_prompt, parse_caption, prompt_following_report

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
