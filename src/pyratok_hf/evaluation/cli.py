"""``pyratok evaluate``: run one evaluation on a corpus folder and write JSON, a markdown report and PNG plots.

::

    pyratok evaluate --task reconstruction|retrieval|localization|segmentation|generation \\
        --data DIR [--model PATH_OR_ID] [--output OUT_DIR] [--max-samples N]
    pyratok evaluate --task benchmark --data DIR [--model NAME=PATH ...]   # + baseline (b)
    pyratok evaluate --task classification --video CLIP --labels "a city,a cat" [--model PATH]

``--data`` is a corpus folder (``train/`` and ``val/`` with ``metadata.jsonl``, as written by
``pyratok build-corpus``) or one split folder. ``--model`` is a saved PyraTok folder; for ``generation`` it is
a saved text-to-video pipeline folder. Without ``--model`` the bundled models are used (``pyratok-tiny``; for
``generation`` the bundled tiny text-to-video pipeline), as for every other command. Outputs (written atomically) in ``--output``:
``<task>_results.json``, ``<task>_report.md`` and ``plots/*.png``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from ..video_io import atomic_write_json, atomic_write_text

logger = logging.getLogger(__name__)

TASKS = ("reconstruction", "retrieval", "localization", "segmentation", "generation", "benchmark", "classification")


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", required=True, choices=TASKS, help="what to evaluate")
    parser.add_argument(
        "--model", action="extend", nargs="+", default=[], metavar="PATH_OR_ID",
        help="saved PyraTok model folder (default: the bundled pyratok-tiny; generation: a text-to-video pipeline folder, "
        "default the bundled one; benchmark: NAME=PATH pairs)",
    )  # fmt: skip
    parser.add_argument("--data", default=None, help="corpus folder with train/ and val/ (or one split folder); every task but classification")
    parser.add_argument("--output", default=None, help="output folder (default: outputs/evaluate-TASK)")
    parser.add_argument("--max-samples", type=int, default=None, help="evaluate at most N clips (or prompts)")
    parser.add_argument("--split", default="val", help="split to evaluate on (default: val)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--num-plots", type=int, default=4, help="example plots to draw (localization/segmentation)")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    group = parser.add_argument_group("reconstruction")
    group.add_argument("--num-frames", type=int, default=17, help="frames per clip, 1 + 4k (default 17)")
    group.add_argument("--size", type=int, nargs=2, default=None, metavar=("H", "W"), help="resize clips to H x W")
    group = parser.add_argument_group("localization")
    group.add_argument("--window", type=int, default=25, help="smoothing window in frames (paper: 25)")
    group.add_argument("--tau", type=float, default=None, help="fixed threshold (default: mean + STD_FACTOR * std)")
    group.add_argument("--std-factor", type=float, default=0.5, help="threshold = mean + STD_FACTOR * std (default 0.5)")
    group = parser.add_argument_group("segmentation")
    group.add_argument("--threshold", type=float, default=0.5, help="threshold on rescaled similarity, in (0, 1)")
    group.add_argument("--crf", action="store_true", help="refine masks with the dense CRF")
    group = parser.add_argument_group("generation")
    group.add_argument("--seed", type=int, default=0, help="base seed (prompt i uses seed + i)")
    group.add_argument("--gen-num-frames", type=int, default=17)
    group.add_argument("--gen-height", type=int, default=64)
    group.add_argument("--gen-width", type=int, default=64)
    group.add_argument("--guidance-scale", type=float, default=3.0)
    group = parser.add_argument_group("classification (one clip, as classify(), the pipeline and the Space tab)")
    group.add_argument("--video", default=None, help="the clip to classify")
    group.add_argument("--labels", default=None, help="candidate labels, comma separated")
    group.add_argument("--template", default="a video of {}", help="prompt template with {} for the label")
    group = parser.add_argument_group("benchmark")
    group.add_argument("--no-baseline", action="store_true", help="benchmark: leave out baseline (b)")


def _default_model(task: str) -> str:
    from .. import bundled_model_path, bundled_pipeline_path

    return bundled_pipeline_path() if task == "generation" else bundled_model_path()


def _single_model(args: argparse.Namespace) -> str:
    if not args.model:
        return _default_model(args.task)
    if len(args.model) != 1:
        raise InvalidInputError(f"--task {args.task} needs exactly one --model PATH, got {len(args.model)}.")
    return args.model[0]


def _benchmark_models(values: list[str]) -> dict[str, str]:
    models: dict[str, str] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep:
            name, path = Path(value).name or value, value
        if not name or not path:
            raise InvalidInputError(f"--model for the benchmark takes NAME=PATH pairs, got {value!r}.")
        models[name] = path
    return models


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    """Run the evaluation described by parsed arguments; returns the result dict (also written to disk)."""
    from . import benchmarks as B

    out_dir = Path(args.output or f"outputs/evaluate-{args.task}")
    plot_dir = out_dir / "plots"
    progress = not args.no_progress
    common = {"split": args.split, "max_samples": args.max_samples, "progress": progress}
    if args.task == "classification":
        return _classify_clip(args, out_dir)
    if not args.data:
        raise InvalidInputError(f"--task {args.task} needs --data CORPUS (build one with `pyratok build-corpus OUT`).")
    if args.task == "benchmark":
        return B.run_zero_shot_benchmark(
            _benchmark_models(args.model or [f"pyratok-tiny={_default_model(args.task)}"]), args.data, out_dir, split=args.split, max_samples=args.max_samples,
            include_baseline=not args.no_baseline, window=args.window, crf=args.crf, device=args.device, progress=progress,
        )  # fmt: skip
    if args.task == "generation":
        generate = B.pipeline_generator(
            _single_model(args), num_frames=args.gen_num_frames, height=args.gen_height, width=args.gen_width,
            device=args.device, guidance_scale=args.guidance_scale,
        )  # fmt: skip
        result = B.evaluate_generation(generate, args.data, seed=args.seed, plot_dir=plot_dir, **common)
    else:
        model = B.load_model(_single_model(args), args.device)
        if args.task == "reconstruction":
            result = B.evaluate_reconstruction(model, args.data, num_frames=args.num_frames, size=tuple(args.size) if args.size else None, plot_dir=plot_dir, **common)
        elif args.task == "retrieval":
            result = B.evaluate_retrieval(model, args.data, plot_dir=plot_dir, **common)
        elif args.task == "localization":
            result = B.evaluate_localization(
                model, args.data, window=args.window, threshold=args.tau, std_factor=args.std_factor,
                plot_dir=plot_dir, num_plots=args.num_plots, **common,
            )  # fmt: skip
        else:
            result = B.evaluate_segmentation(model, args.data, threshold=args.threshold, crf=args.crf, plot_dir=plot_dir, num_plots=args.num_plots, **common)
    result = {
        **result,
        "model": args.model[0] if args.model else _default_model(args.task),
        "data": str(args.data),
        "split": args.split,
        "max_samples": args.max_samples,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    result["plots"] = [str(Path(p).relative_to(out_dir)) if Path(p).is_relative_to(out_dir) else p for p in result.get("plots", [])]
    atomic_write_json(result, out_dir / f"{args.task}_results.json")
    atomic_write_text(markdown_report(result), out_dir / f"{args.task}_report.md")
    return result


def _classify_clip(args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    """Zero-shot classification of one clip through ``classify`` itself (the pipeline and the Space call it too)."""
    from ..tasks.retrieval import classify
    from . import benchmarks as B

    if not args.video or not args.labels:
        raise InvalidInputError('--task classification needs --video CLIP and --labels "label a,label b".')
    labels = [label.strip() for label in args.labels.split(",") if label.strip()]
    classified = classify(B.load_model(_single_model(args), args.device), args.video, labels, prompt_template=args.template)
    ranking = [{"label": label, "probability": prob} for label, prob in classified.top(len(labels))[0]]
    result = {
        "task": "classification", "model": args.model[0] if args.model else _default_model(args.task), "data": str(args.video),
        "split": None, "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "settings": {"template": args.template, "temperature": classified.temperature}, "ranking": ranking,
        "metrics": {f"p({row['label']})": row["probability"] for row in ranking},
        "plots": [],
    }  # fmt: skip
    plot = classified.plot(out_dir / "plots" / "classification.png")
    result["plots"] = [str(Path(plot).relative_to(out_dir))]
    atomic_write_json(result, out_dir / "classification_results.json")
    atomic_write_text(markdown_report(result), out_dir / "classification_report.md")
    return result


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value + 0.0:.4g}"  # + 0.0 turns -0.0 into 0.0
    return "n/a" if value is None else str(value)


def _table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> list[str]:
    if not rows:
        return []
    columns = columns or list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_number(row.get(c)) for c in columns) + " |" for row in rows]
    return lines


_NOTES = {
    "reconstruction": "Row k decodes the first k pyramid levels (coarse to fine); bpp counts K bits per token of those levels per input pixel. "
    "PSNR is capped at 100 dB; SSIM uses an 11x11 Gaussian window (smaller on tiny frames).",
    "retrieval": "Recall@k of text->video (t2v) and video->text (v2t) among the split's captioned clips; identical captions are mutual positives.",
    "localization": "Zero-shot localization (coarsest-level frame features, sliding-window average, threshold, best segment) of every moving "
    "segment of the procedural_long clips, queried by its label; mAP over tIoU 0.1:0.1:0.7 with the action as class.",
    "segmentation": "Each object of the short procedural clips is queried as 'the COLOUR SHAPE'; masks come from the finest level's token "
    "similarities; mIoU pools each query over its frames, J averages per-frame IoU (DAVIS convention).",
    "classification": "classify(): each label in the template, cosine of the clip-pooled video feature with the text feature, softmax at "
    "the model's contrastive temperature; the transformers pipeline and the Space tab give the same ranking for the same file.",
    "generation": "A weight-free checker compares the stated colour and motion direction with the generated pixels; 'shuffled' pairs "
    "each video with another prompt (chance level) and 'real clips' runs the checker on the corpus clips (its ceiling).",
}


def markdown_report(result: dict[str, Any]) -> str:
    """A short human-readable report of one evaluation."""
    task = result.get("task", "evaluation")
    lines = [f"# pyratok evaluate: {task}", ""]
    lines += [f"* model: `{result.get('model')}`", f"* data: `{result.get('data')}` (split `{result.get('split')}`)", f"* date: {result.get('date')}"]
    for key in ("num_clips", "num_queries", "num_prompts", "settings"):
        if key in result:
            lines.append(f"* {key.replace('_', ' ')}: {json.dumps(result[key]) if isinstance(result[key], dict) else result[key]}")
    lines += ["", "## Metrics", ""]
    lines += _table([{"metric": k, "value": v} for k, v in result.get("metrics", {}).items()])
    if task == "reconstruction":
        lines += ["", "## Per number of decoded levels", ""] + _table(result["per_levels"])
        lines += ["", "## Codebook usage per level", ""]
        lines += _table(result["codebook_usage"], ["level", "num_tokens", "used_codes", "usage_fraction_reachable", "entropy_bits", "perplexity"])
    references = {"chance_R@1": "Chance R@1", "whole_clip_reference_mAP": "Reference: whole-clip prediction mAP", "whole_frame_reference_mIoU": "Reference: all-pixel prediction mIoU"}
    lines += [f"\n{label}: {result[key]:.4g}." for key, label in references.items() if isinstance(result.get(key), float)]
    lines += ["", "## Notes", "", _NOTES.get(task, "")]
    if result.get("plots"):
        lines += ["", "## Plots", ""] + [f"![{Path(p).stem}]({p})" for p in result["plots"]]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    result = evaluate(args)
    out_dir = Path(args.output or f"outputs/evaluate-{args.task}")
    metrics = result.get("metrics") or {}
    if args.task == "benchmark":
        print(result["table"])
    else:
        print(", ".join(f"{k}={_number(v)}" for k, v in metrics.items()))
    print(f"wrote results to {out_dir}")
    return 0
