"""``pyratok evaluate``, the zero-shot benchmark with baseline (b), and the prompt-following checker.

Runs on a tiny corpus built here (32x32 clips) with a random tiny PyraTok saved to a folder; the checker is
tested on synthetic clips drawn here (a red square moving right, ...).
"""

import os

for _name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_name, "1")

import json

import numpy as np
import pytest
import torch

from pyratok_hf import PyraTokConfig, PyraTokModel
from pyratok_hf.configuration_pyratok import TINY_VAE_CONFIG
from pyratok_hf.errors import DatasetError, InvalidInputError
from pyratok_hf.evaluation.benchmarks import PixelStatisticsBaseline, evaluate_generation, evaluate_localization, load_records, run_zero_shot_benchmark
from pyratok_hf.evaluation.prompt_following import check_prompt, parse_caption, prompt_following_report, sample_colour_direction_prompts
from pyratok_hf.video_io import from_uint8_frames, write_video

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
COLOURS = {"red": (220, 40, 40), "blue": (50, 90, 235), "green": (40, 180, 60), "yellow": (240, 220, 50), "cyan": (40, 210, 220)}
STEPS = {"right": (1, 0), "left": (-1, 0), "up": (0, -1), "down": (0, 1), "static": (0, 0)}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # The CI machine's 2 cores are shared: torch's intra-op threads oversubscribe them and slow tiny ops 20x.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def moving_square(colour: str, direction: str, frames: int = 9, size: int = 32, background=(0, 0, 0), side: int = 6, speed: int = 2) -> np.ndarray:
    """uint8 [T, H, W, 3]: a square of a corpus colour moving ``speed`` px per frame, starting so it stays inside."""
    dx, dy = STEPS[direction]
    travel = speed * (frames - 1)
    x0 = size // 2 - side // 2 - dx * travel // 2
    y0 = size // 2 - side // 2 - dy * travel // 2
    video = np.empty((frames, size, size, 3), dtype=np.uint8)
    video[:] = background
    for t in range(frames):
        x, y = x0 + dx * speed * t, y0 + dy * speed * t
        video[t, y : y + side, x : x + side] = COLOURS[colour]
    return video


def _render_caption(caption: str, seed: int) -> torch.Tensor:
    """An oracle 'generator': draws exactly what a caption states (used to test the evaluation plumbing)."""
    facts = parse_caption(caption)
    return from_uint8_frames(moving_square(facts.color, facts.direction))


GEN_CAPTIONS = [
    ("red", "right", "A small red square moves right on a black background."),
    ("blue", "up", "On a dark blue background, a large blue square rises."),
    ("green", "left", "A big green square travels leftward against a black backdrop."),
    ("yellow", "down", "A little yellow square sinks on a black background."),
]


def _is_png(path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(8) == PNG_MAGIC


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from pyratok_hf.data import build_corpus

    out = tmp_path_factory.mktemp("corpus")
    build_corpus(out, num_train=4, num_val=4, num_long_train=1, num_long_val=1, size=(32, 32), long_num_frames=(33,), city_clip=None, progress=False)
    return out


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    config = PyraTokConfig.from_preset("pyratok-tiny", backbone_config={**TINY_VAE_CONFIG, "base_dim": 8}, level_hidden_dim=32)
    path = tmp_path_factory.mktemp("model")
    PyraTokModel(config).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def synthetic_split(tmp_path_factory):
    """A val folder of single-object procedural-style clips (videos + metadata rows), as the corpus writes them."""
    root = tmp_path_factory.mktemp("synthetic")
    folder = root / "val"
    rows = []
    for index, (colour, direction, caption) in enumerate(GEN_CAPTIONS):
        name = f"procedural/clip_{index}.mp4"
        write_video(moving_square(colour, direction), folder / name, fps=8)
        rows.append({"file_name": name, "text": caption, "id": f"val/procedural/{index:05d}", "kind": "procedural", "template": "constant", "objects": [{"index": 1, "color": colour, "shape": "square"}], "segments": []})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


# ----------------------------------------------------------------------------------------------------------------
# Prompt-following checker
# ----------------------------------------------------------------------------------------------------------------


def test_parse_caption():
    assert (parse_caption("A red circle moves to the right.").color, parse_caption("A red circle moves to the right.").direction) == ("red", "right")
    facts = parse_caption("Over a plain dark blue background, a small orange square remains stationary and a cyan circle rises.")
    assert (facts.color, facts.direction) == ("orange", "static")  # background colours and the next object are ignored
    facts = parse_caption("A little white triangle stays still, then starts moving up at frame 13.")
    assert (facts.color, facts.direction) == ("white", "up")
    facts = parse_caption("a photo of a cat")
    assert (facts.color, facts.direction) == (None, None)


@pytest.mark.parametrize("colour,direction", [("red", "right"), ("blue", "up"), ("green", "left"), ("yellow", "down"), ("cyan", "static")])
def test_checker_recognises_colour_and_direction(colour, direction):
    video = moving_square(colour, direction)
    words = {"static": "stays still", "up": "moves up", "down": "moves down", "left": "moves left", "right": "moves right"}
    check = check_prompt(video, f"a {colour} square {words[direction]}")
    assert check.detected_color == colour and check.detected_direction == direction
    assert check.color_match and check.direction_match
    # The same check works on a float [3, T, H, W] tensor in [-1, 1].
    assert check_prompt(from_uint8_frames(video), f"a {colour} square {words[direction]}").color_match


def test_sampled_prompts_are_seeded_balanced_and_parse_back():
    from collections import Counter

    from pyratok_hf.data.corpus import COLORS

    prompts = sample_colour_direction_prompts(32, seed=3)
    assert prompts == sample_colour_direction_prompts(32, seed=3) and prompts != sample_colour_direction_prompts(32, seed=4)
    facts = [parse_caption(p) for p in prompts]
    assert Counter(f.color for f in facts) == Counter({c: 4 for c in COLORS})
    assert Counter(f.direction for f in facts) == Counter({d: 8 for d in ("right", "left", "up", "down")})
    assert all(("large" in p or "big" in p) and ("background" in p or "backdrop" in p) for p in prompts)
    with pytest.raises(InvalidInputError):
        sample_colour_direction_prompts(0)


def test_checker_rejects_wrong_prompts():
    check = check_prompt(moving_square("red", "right"), "a blue square moves left")
    assert check.color_match is False and check.direction_match is False
    assert check.detected_color == "red"
    unstated = check_prompt(moving_square("red", "right"), "a square")
    assert unstated.color_match is None and unstated.direction_match is None


def test_prompt_following_report_matched_vs_shuffled():
    videos = [moving_square(c, d) for c, d, _ in GEN_CAPTIONS]
    captions = [caption for _, _, caption in GEN_CAPTIONS]
    report = prompt_following_report(videos, captions)
    assert report["matched"]["color_accuracy"] == 1.0 and report["matched"]["direction_accuracy"] == 1.0
    assert report["shuffled"]["color_accuracy"] == 0.0  # every caption names another colour
    assert report["shuffled"]["direction_accuracy"] < 1.0
    with pytest.raises(InvalidInputError):
        prompt_following_report(videos, captions[:2])
    with pytest.raises(InvalidInputError):
        prompt_following_report(videos[:1], captions[:1])


def test_evaluate_generation_with_an_oracle_generator(synthetic_split, tmp_path):
    result = evaluate_generation(_render_caption, synthetic_split, plot_dir=tmp_path, progress=False)
    metrics = result["metrics"]
    assert metrics["color_accuracy"] == 1.0 and metrics["direction_accuracy"] == 1.0
    assert metrics["shuffled_color_accuracy"] == 0.0
    assert metrics["real_clips_color_accuracy"] == 1.0 and metrics["real_clips_direction_accuracy"] == 1.0  # survives H.264
    assert all(_is_png(p) for p in result["plots"]) and len(result["plots"]) == 2


# ----------------------------------------------------------------------------------------------------------------
# Baseline (b)
# ----------------------------------------------------------------------------------------------------------------


def test_pixel_statistics_baseline(synthetic_split):
    baseline = PixelStatisticsBaseline.with_minilm()
    with pytest.raises(InvalidInputError, match="not fitted"):
        baseline.get_video_features(torch.zeros(1, 3, 9, 32, 32))
    baseline.fit_on_split(synthetic_split, "val", progress=False)
    video = from_uint8_frames(moving_square("red", "right")).unsqueeze(0)
    dim = baseline.config.projection_dim
    assert baseline.get_video_features(video).pooler_output.shape == (1, dim)
    assert baseline.get_video_features(video, pooling="frame").pooler_output.shape == (1, 9, dim)
    assert baseline.get_video_features(video, pooling="token").pooler_output.shape == (1, 9, 32, 32, dim)
    assert torch.allclose(baseline.get_video_features(video).pooler_output.norm(dim=-1), torch.ones(1))
    # Fitted on these four clips, it retrieves them from their captions.
    from pyratok_hf.tasks import retrieve

    videos = [from_uint8_frames(moving_square(c, d)) for c, d, _ in GEN_CAPTIONS]
    assert retrieve(baseline, videos, [c for _, _, c in GEN_CAPTIONS]).metrics["t2v_R@1"] == 1.0


# ----------------------------------------------------------------------------------------------------------------
# pyratok evaluate and the benchmark
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("task,samples", [("reconstruction", 1), ("retrieval", 3), ("localization", 1), ("segmentation", 1)])
def test_cli_evaluate_writes_json_markdown_and_plots(task, samples, corpus, model_dir, tmp_path, capsys):
    from pyratok_hf.cli import main

    out = tmp_path / "out"
    code = main(["evaluate", "--task", task, "--model", str(model_dir), "--data", str(corpus), "--output", str(out), "--max-samples", str(samples), "--no-progress", "--num-plots", "1"])
    assert code == 0
    result = json.loads((out / f"{task}_results.json").read_text())
    assert result["task"] == task and result["metrics"]
    assert all(isinstance(v, (int, float)) for v in result["metrics"].values())
    report = (out / f"{task}_report.md").read_text()
    assert report.startswith(f"# pyratok evaluate: {task}") and "## Metrics" in report
    assert result["plots"] and all(_is_png(out / p) and f"]({p})" in report for p in result["plots"])
    assert "wrote results" in capsys.readouterr().out
    reference = {"retrieval": "chance_R@1", "localization": "whole_clip_reference_mAP", "segmentation": "whole_frame_reference_mIoU"}.get(task)
    assert reference is None or 0.0 <= result[reference] <= 1.0


def test_benchmark_table_with_baseline(corpus, model_dir, tmp_path):
    payload = run_zero_shot_benchmark({"tiny": model_dir}, corpus, tmp_path, max_samples=2, progress=False)
    table = (tmp_path / "benchmark.md").read_text()
    assert "| tiny |" in table and "| baseline (b)" in table and "Loc. mAP" in table
    assert set(payload["results"]) == {"tiny", "baseline (b): MiniLM text vs pixel statistics"}
    for tasks in payload["results"].values():
        assert {"t2v_R@1", "v2t_R@1"} <= set(tasks["retrieval"]["metrics"])
        assert "mAP" in tasks["localization"]["metrics"] and "mIoU" in tasks["segmentation"]["metrics"]
    assert json.loads((tmp_path / "benchmark.json").read_text())["table"] == payload["table"]


def test_empty_data_and_bad_arguments(corpus, synthetic_split, model_dir, tmp_path, capsys):
    from pyratok_hf.cli import main

    with pytest.raises(DatasetError, match="procedural_long"):
        evaluate_localization(PixelStatisticsBaseline.with_minilm(), synthetic_split, progress=False)
    with pytest.raises(InvalidInputError):
        load_records(corpus, "val", max_samples=0)
    assert main(["evaluate", "--task", "retrieval", "--model", str(model_dir), "--data", str(tmp_path / "missing")]) == 2
    assert main(["evaluate", "--task", "retrieval", "--model", str(model_dir), str(model_dir), "--data", str(corpus)]) == 2
    assert main(["evaluate", "--task", "segmentation", "--model", str(tmp_path / "no-model"), "--data", str(corpus)]) == 2
    assert "error" in capsys.readouterr().err


def test_cli_generation_with_a_tiny_pipeline(synthetic_split, model_dir, tmp_path):
    """A random tiny text-to-video pipeline goes through ``pyratok evaluate --task generation`` (plumbing only)."""
    from pyratok_hf.cli import main
    from pyratok_hf.prior import PyraTokPriorConfig, PyraTokPriorModel
    from pyratok_hf.prior.training import build_t2v_pipeline

    torch.manual_seed(0)
    tokenizer_config = PyraTokConfig.from_pretrained(model_dir)
    tiny_lm = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=4)
    prior = PyraTokPriorModel(PyraTokPriorConfig.for_tokenizer(tokenizer_config, lm_config=tiny_lm)).eval()
    build_t2v_pipeline(model_dir, prior, output_dir=tmp_path / "pipe")
    out = tmp_path / "out"
    args = ["evaluate", "--task", "generation", "--model", str(tmp_path / "pipe"), "--data", str(synthetic_split), "--output", str(out)]
    args += ["--max-samples", "2", "--gen-num-frames", "9", "--gen-height", "32", "--gen-width", "32", "--no-progress"]
    assert main(args) == 0
    result = json.loads((out / "generation_results.json").read_text())
    assert result["num_prompts"] == 2 and "shuffled_color_accuracy" in result["metrics"]
    assert all(_is_png(out / p) for p in result["plots"]) and (out / "generation_report.md").is_file()


def test_cli_evaluate_defaults_to_the_bundled_model(corpus, tmp_path, capsys):
    """Like every other command, ``--model`` defaults to the bundled pyratok-tiny."""
    from pyratok_hf import bundled_model_path, cli

    if not os.path.isfile(os.path.join(bundled_model_path(), "config.json")):
        pytest.skip("no bundled model")
    code = cli.main(["evaluate", "--task", "retrieval", "--data", str(corpus), "--output", str(tmp_path), "--no-progress"])
    assert code == 0
    result = json.loads((tmp_path / "retrieval_results.json").read_text())
    assert result["model"] == bundled_model_path() and "t2v_R@1" in json.dumps(result["metrics"])
