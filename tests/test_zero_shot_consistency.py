"""One clip, one answer: classify(), the transformers pipeline, the Space tab and `pyratok evaluate` agree.

They once disagreed on the bundled city clip (the Space downscaled to 128 px, the others read full size, and
the pipeline pooled features its own way). Every entry point now decodes files by one rule
(``tasks.retrieval.MAX_FILE_SIDE``) and scores through the same features.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
import torch

from pyratok_hf import bundled_model_path, space_app
from pyratok_hf.cli import main as cli_main
from pyratok_hf.tasks.pipelines import ZeroShotVideoClassificationPipeline
from pyratok_hf.tasks.retrieval import MAX_FILE_SIDE, as_video_tensor, classify
from pyratok_hf.video_io import write_video

pytestmark = pytest.mark.skipif(
    not os.path.isfile(os.path.join(bundled_model_path(), "config.json")), reason="the bundled pyratok-tiny is not built yet"
)
SAMPLE = str(Path(space_app.__file__).resolve().parent / "assets" / "city_sample.mp4")
LABELS = ["skyscrapers at night", "a cat", "a red circle moving right", "a city street", "a forest"]


@pytest.fixture
def large_clip():
    """A clip wider than MAX_FILE_SIDE, inside the Space's upload folder (so the Space accepts it); removed after."""
    folder = space_app.upload_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"consistency-{uuid.uuid4().hex}.mp4"
    frames = torch.nn.functional.interpolate(as_video_tensor(SAMPLE)[0][:, :9], size=(192, 320), mode="bilinear")
    write_video(frames.clamp(-1, 1), path, fps=8)
    yield str(path)
    path.unlink(missing_ok=True)


def _rankings(path: str, tmp_path) -> dict[str, list[tuple[str, float]]]:
    model = space_app.tokenizer_model()
    direct = classify(model, path, LABELS).top(len(LABELS))[0]
    piped = [(r["label"], r["score"]) for r in ZeroShotVideoClassificationPipeline(model=model)(path, candidate_labels=LABELS)]
    tab = sorted(space_app.zero_shot_classify(path, ", ".join(LABELS)).items(), key=lambda kv: -kv[1])
    out = tmp_path / "eval"
    assert cli_main(["-q", "evaluate", "--task", "classification", "--video", path, "--labels", ",".join(LABELS), "--output", str(out)]) == 0
    evaluated = [(r["label"], r["probability"]) for r in json.loads((out / "classification_results.json").read_text())["ranking"]]
    assert (out / "plots" / "classification.png").is_file()
    return {"classify": direct, "pipeline": piped, "space": tab, "evaluate": evaluated}


@pytest.mark.parametrize("which", ["bundled sample", "larger than MAX_FILE_SIDE"])
def test_every_entry_point_ranks_the_labels_the_same(which, tmp_path, request):
    path = SAMPLE if which == "bundled sample" else request.getfixturevalue("large_clip")
    rankings = _rankings(path, tmp_path)
    reference = rankings["classify"]
    assert [label for label, _ in reference] != [] and sorted(label for label, _ in reference) == sorted(LABELS)
    for name, ranking in rankings.items():
        assert [label for label, _ in ranking] == [label for label, _ in reference], name
        assert torch.allclose(torch.tensor([p for _, p in ranking]), torch.tensor([p for _, p in reference]), atol=1e-5), name


def test_files_are_read_at_one_size(large_clip):
    path = large_clip
    frames, _ = as_video_tensor(path)
    assert max(frames.shape[-2:]) == MAX_FILE_SIDE and frames.shape[-2] % 8 == 0
    space_frames, _ = space_app.load_clip(path, zero_shot=True)
    assert space_frames.shape == frames.shape and torch.equal(space_frames, frames)
