"""The bundled text-to-video pipeline follows colour and direction prompts, judged by the weight-free checker.

The prompts are ``colour_direction_prompts()`` ("a large red circle moves right on a black background", every
palette colour once, every direction twice), generated with the pipeline's defaults (the prior's own
guidance scale and sampling order) and seeds 0..7, as ``benchmarks/bench_t2v_prompt_following.py --seeds 0``
does. The same videos judged against a derangement of the prompts give the chance level. The thresholds are
the measured hits of the bundled weights minus one, so a change that breaks the prior (or the checker) fails
here; docs/text-to-video.md has the full guidance sweep and a 32-prompt set.
"""

from __future__ import annotations

import os

import pytest
import torch

from pyratok_hf import PyraTokT2VPipeline, bundled_pipeline_path
from pyratok_hf.evaluation.prompt_following import colour_direction_prompts, prompt_following_report

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.skipif(not os.path.isfile(os.path.join(bundled_pipeline_path(), "model_index.json")), reason="no bundled T2V pipeline"),
]

# Measured on the bundled weights with these seeds (docs/text-to-video.md): colour 8/8, direction 8/8 (shuffled: 0/8, 1/8).
MIN_COLOUR_HITS = 7
MIN_DIRECTION_HITS = 7


def test_bundled_pipeline_follows_colour_and_direction_prompts():
    pipe = PyraTokT2VPipeline.from_pretrained(bundled_pipeline_path())
    pipe.set_progress_bar_config(disable=True)
    texts = colour_direction_prompts()
    videos = []
    for i, text in enumerate(texts):
        frames = pipe(text, generator=torch.Generator().manual_seed(i), output_type="pt").frames[0]  # [F, 3, H, W] in [0, 1]
        videos.append(frames.permute(1, 0, 2, 3) * 2 - 1)
    report = prompt_following_report(videos, texts)
    matched, shuffled = report["matched"], report["shuffled"]
    colour = round(matched["color_accuracy"] * matched["num_color"])
    direction = round(matched["direction_accuracy"] * matched["num_direction"])
    assert colour >= MIN_COLOUR_HITS and direction >= MIN_DIRECTION_HITS, report["per_video"]
    # Following the prompt means beating the same videos judged against other prompts.
    assert colour > round(shuffled["color_accuracy"] * shuffled["num_color"]) + 2
    assert direction > round(shuffled["direction_accuracy"] * shuffled["num_direction"]) + 2
