"""Plot held-out PSNR against CPU-minutes for the training runs, and print the table for docs/training.md.

    python benchmarks/plot_training_curves.py runs/backbone/curve.jsonl:backbone runs/tokenizer/curve.jsonl:tokenizer \
        --output docs/images/training_curves.png

Each ``curve.jsonl`` is written by ``examples/recipes/train_backbone.py`` / ``train_tokenizer.py`` (one JSON
line per evaluation: step, CPU-minutes, PSNR on the fixed held-out real clips).
"""

from __future__ import annotations

import argparse
import json
import sys

SERIES = {  # key in the curve file -> label
    "psnr_ema": "backbone (EMA weights)",
    "psnr_raw": "backbone (raw weights)",
    "psnr_tokens_ema": "tokens -> video",
    "psnr_backbone_ema": "backbone of the tokenizer run",
}


def load(path: str) -> list[dict]:
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("curves", nargs="+", help="PATH[:NAME] of curve.jsonl files")
    parser.add_argument("--output", default="docs/images/training_curves.png")
    parser.add_argument("--offset", action="append", default=[], metavar="NAME=MINUTES",
                        help="shift a run's CPU-minutes (a run that starts from another run's weights)")
    args = parser.parse_args(argv)
    offsets = {k: float(v) for k, v in (item.split("=", 1) for item in args.offset)}

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    rows = []
    for spec in args.curves:
        path, _, name = spec.partition(":")
        name = name or path
        records = load(path)
        shift = offsets.get(name, 0.0)
        for key, label in SERIES.items():
            points = [(r["cpu_minutes"] + shift, r[key]) for r in records if isinstance(r.get(key), (int, float)) and r[key] == r[key]]
            if points:
                ax.plot(*zip(*points), marker="o", label=f"{name}: {label}")
        for r in records:
            rows.append((name, r["step"], r["cpu_minutes"] + shift, r.get("psnr_ema", r.get("psnr_tokens_ema")), r.get("psnr_raw", r.get("psnr_backbone_ema")), r.get("phase", "")))
    ax.set_xlabel("CPU-minutes (one core)")
    ax.set_ylabel("held-out real clips, PSNR (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.output, dpi=110)
    print("| run | step | CPU-min | PSNR (EMA / tokens) | PSNR (raw / backbone) | phase |")
    print("|---|---|---|---|---|---|")
    for name, step, minutes, a, b, phase in rows:
        fmt = lambda v: f"{v:.2f}" if isinstance(v, (int, float)) and v == v else "-"  # noqa: E731
        print(f"| {name} | {step} | {minutes:.1f} | {fmt(a)} | {fmt(b)} | {phase} |")
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
