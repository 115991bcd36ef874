"""Stage 2a: train a tokenizer's shared-space heads on its text-free tokens, tracking held-out retrieval.

    python examples/recipes/train_alignment.py --tokenizer src/pyratok_hf/bundled/pyratok-tiny \
        --data data/corpus --output runs/alignment --seeds 0 1 2

Tokenizes ``DATA/train`` and ``DATA/val`` once (cached in OUTPUT/tokens_*.pt), then per seed trains
``video_projection`` (per-token MLP, ``--hidden-dim``; 0 = the linear head of earlier releases),
``level_embedding`` and ``text_projection`` with the contrastive term, everything else frozen. Writes
OUTPUT/seed<N>/model (a PyraTok folder), OUTPUT/history.json (R@1/R@5 curves, cost), OUTPUT/curves.png, and
prints mean +- std over seeds. ``--variants`` runs the head ablation (linear vs MLP; tokens with vs without
text cross-attention at training time are not separate runs: zero-shot tokens are always text-free).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokenizer", default="src/pyratok_hf/bundled/pyratok-tiny")
    parser.add_argument("--data", default="data/corpus")
    parser.add_argument("--output", default="runs/alignment")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--hidden-dim", type=int, default=256, help="0: linear head")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--variants", action="store_true", help="also train the linear head (ablation)")
    parser.add_argument("--token-weight", type=float, default=0.0, help="weight of the token-level (late interaction) term")
    parser.add_argument("--extra-train", nargs="*", default=[], help="more corpus split folders to train on")
    parser.add_argument("--install-into", default=None, help="put the first seed's heads into this tokenizer folder "
                        "(its model.safetensors and config.json; e.g. the bundle written by bundle_tiny.py)")
    args = parser.parse_args(argv)

    import torch

    from pyratok_hf import PyraTokModel
    from pyratok_hf.training.alignment import TokenizedSplit, reset_video_projection, tokenize_split, train_alignment_heads

    torch.set_num_threads(args.threads)
    os.makedirs(args.output, exist_ok=True)
    base = PyraTokModel.from_pretrained(args.tokenizer).eval()
    splits = {}
    for name in ("train", "val"):
        cache = os.path.join(args.output, f"tokens_{name}.pt")
        if os.path.isfile(cache):
            splits[name] = TokenizedSplit.load(cache)
        else:
            splits[name] = tokenize_split(base, os.path.join(args.data, name))
            splits[name].save(cache)
    for k, folder in enumerate(args.extra_train):
        cache = os.path.join(args.output, f"tokens_extra{k}.pt")
        if os.path.isfile(cache):
            extra = TokenizedSplit.load(cache)
        else:
            extra = tokenize_split(base, folder)
            extra.save(cache)
        t = splits["train"]
        splits["train"] = TokenizedSplit(t.token_ids + extra.token_ids, t.texts + extra.texts, t.kinds + extra.kinds, t.seconds + extra.seconds)
    heldout = splits["val"].select(("procedural", "camera"))
    variants = {"mlp": args.hidden_dim or None}
    if args.variants:
        variants["linear"] = None
    report = {"tokenizer": args.tokenizer, "train_clips": len(splits["train"]), "eval_clips": len(heldout),
              "tokenize_seconds": {k: round(v.seconds, 1) for k, v in splits.items()}, "threads": args.threads,
              "steps": args.steps, "batch_size": args.batch_size, "runs": []}
    for variant, hidden in variants.items():
        for seed in args.seeds:
            model = PyraTokModel.from_pretrained(args.tokenizer).eval()
            reset_video_projection(model, hidden, seed=seed)
            started = time.time()
            history = train_alignment_heads(model, splits["train"], heldout, steps=args.steps, batch_size=args.batch_size,
                                            lr=args.lr, eval_every=args.eval_every, seed=seed, token_weight=args.token_weight)
            final = history[-1]
            run = {"variant": variant, "seed": seed, "seconds": round(time.time() - started, 1),
                   "final": {k: final[k] for k in ("t2v_R@1", "t2v_R@5", "v2t_R@1", "v2t_R@5")},
                   "curve": [h for h in history if "t2v_R@1" in h]}
            report["runs"].append(run)
            print(f"{variant} seed {seed}: t2v R@1 {final['t2v_R@1']:.3f} R@5 {final['t2v_R@5']:.3f} "
                  f"v2t R@1 {final['v2t_R@1']:.3f} ({run['seconds']} s)", flush=True)
            if variant == "mlp":
                model.save_pretrained(os.path.join(args.output, f"seed{seed}", "model"))
                if args.install_into and seed == args.seeds[0]:
                    _install(os.path.join(args.output, f"seed{seed}", "model"), args.install_into, hidden)
    summary = {}
    for variant in variants:
        finals = [r["final"] for r in report["runs"] if r["variant"] == variant]
        summary[variant] = {k: (statistics.mean(f[k] for f in finals), statistics.pstdev(f[k] for f in finals)) for k in finals[0]}
        print(variant, "  ".join(f"{k} {100 * m:.1f} +- {100 * s:.1f}" for k, (m, s) in summary[variant].items()))
    report["summary"] = summary
    report["chance_t2v_R@1"] = 1.0 / len(heldout)
    with open(os.path.join(args.output, "history.json"), "w") as f:
        json.dump(report, f, indent=1)
    _plot(report, os.path.join(args.output, "curves.png"))
    return 0


def _install(trained: str, folder: str, hidden) -> None:
    """Copy the trained weights (only the heads differ) and the head's shape into an existing tokenizer folder."""
    import shutil

    shutil.copyfile(os.path.join(trained, "model.safetensors"), os.path.join(folder, "model.safetensors"))
    path = os.path.join(folder, "config.json")
    with open(path) as f:
        config = json.load(f)
    config["video_projection_hidden_dim"] = hidden
    with open(path, "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    print(f"installed the aligned heads into {folder}")


def _plot(report, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for run in report["runs"]:
        steps = [h["step"] for h in run["curve"]]
        ax.plot(steps, [100 * h["t2v_R@1"] for h in run["curve"]], label=f"{run['variant']} seed {run['seed']}", alpha=0.8)
    ax.axhline(100 * report["chance_t2v_R@1"], color="gray", ls="--", label="chance")
    ax.set_xlabel("head training step")
    ax.set_ylabel("held-out T2V R@1 (%)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
