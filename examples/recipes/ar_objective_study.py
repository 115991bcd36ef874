"""The paper's global AR objective in stage 2: the same run with and without L_AR, same budget.

    python examples/recipes/ar_objective_study.py --tokenizer src/pyratok_hf/bundled/pyratok-tiny \
        --data data/corpus --heldout data/heldout --output runs/ar-study --steps 100

1. Trains an L_AR prior on the tokenizer's codes (projected text states, as the hook passes them):
   next-token loss over text -> level 1 -> ... -> level L.
2. Runs stage 2 twice from the same tokenizer (LoRA + LaPQ, `pyratok train`): ``ar_weight`` 1.5 with that prior
   plugged in, and ``ar_weight`` 0; same steps, batch, seed and data.
3. Measures each on held-out clips: reconstruction PSNR (17 frames), the frozen prior's bits per token on the
   new tokens (how predictable the token hierarchy is), and zero-shot retrieval after training the shared-space
   heads the same way (examples/recipes/train_alignment.py's procedure).
Writes OUTPUT/report.json and prints a table with the cost of every step.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time


def _run_stage2(args, name: str, prior_dir: str | None) -> tuple[str, float]:
    """One `pyratok train` stage-2 run from the tokenizer; only ``ar_weight`` and ``prior`` differ between runs."""
    out = os.path.join(args.output, name)
    config = {
        "task": "tokenizer", "stage": 2, "output_dir": out, "model": {"init_from": args.tokenizer},
        "data": {"train": os.path.join(args.data, "train"), "num_frames": 9, "size": [64, 64]},
        "training": {"max_steps": args.steps, "per_device_train_batch_size": 4, "learning_rate": 1.0e-3, "warmup_steps": 10,
                     "logging_steps": 25, "save_steps": 100000, "seed": 0, "data_seed": 0},
        "loss_overrides": {"ar_weight": 1.5 if prior_dir else 0.0},
        "sample_every": 100000,
    }  # fmt: skip
    if prior_dir:
        config["prior"] = prior_dir
    os.makedirs(args.output, exist_ok=True)
    run_file = os.path.join(args.output, f"{name}.json")
    with open(run_file, "w") as f:
        json.dump(config, f)
    started = time.time()
    subprocess.run([sys.executable, "-m", "pyratok_hf.cli", "-q", "train", run_file, "--no-resume"], check=True)
    return os.path.join(out, "final"), time.time() - started


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokenizer", default="src/pyratok_hf/bundled/pyratok-tiny")
    parser.add_argument("--data", default="data/corpus")
    parser.add_argument("--heldout", default="data/heldout")
    parser.add_argument("--output", default="runs/ar-study")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--prior-steps", type=int, default=600)
    parser.add_argument("--head-steps", type=int, default=1500)
    args = parser.parse_args(argv)

    import torch

    from pyratok_hf import PyraTokModel
    from pyratok_hf.data.datasets import VideoFolderDataset, collate_video_text
    from pyratok_hf.evaluation.benchmarks import evaluate_reconstruction
    from pyratok_hf.prior import PyraTokPriorConfig, PyraTokPriorModel
    from pyratok_hf.prior.training import load_text_encoder, tokenize_batch, train_prior
    from pyratok_hf.training.alignment import reset_video_projection, tokenize_split, train_alignment_heads

    torch.set_num_threads(1)
    report = {"steps": args.steps, "batch_size": 4, "clip": "9 x 64 x 64", "threads": 1, "runs": {}}
    prior_dir = os.path.join(args.output, "prior")
    base = PyraTokModel.from_pretrained(args.tokenizer).eval()
    text_tokenizer, text_encoder = load_text_encoder(base.config.text_encoder_name_or_path)
    if not os.path.isfile(os.path.join(prior_dir, "config.json")):
        started = time.time()
        config = PyraTokPriorConfig.for_tokenizer(base.config, text_source="projected")
        train_prior(base, VideoFolderDataset(os.path.join(args.data, "train"), num_frames=9, size=(64, 64), start="random"),
                    prior_dir, steps=args.prior_steps, batch_size=8, lr=1e-3, warmup_steps=50, prior_config=config,
                    text_encoder=text_encoder, text_tokenizer=text_tokenizer, num_threads=1, seed=0)
        report["prior_seconds"] = round(time.time() - started, 1)
    prior = PyraTokPriorModel.from_pretrained(prior_dir).eval()

    heldout = VideoFolderDataset(os.path.join(args.heldout, "val"), num_frames=9, size=(64, 64), start="first")
    heldout_batches = [collate_video_text([heldout[i] for i in range(j, min(j + 8, len(heldout)))]) for j in range(0, min(48, len(heldout)), 8)]

    for name, use_prior in (("without_L_AR", None), ("with_L_AR", prior_dir)):
        final, seconds = _run_stage2(args, name, use_prior)
        model = PyraTokModel.from_pretrained(final).eval()
        run = {"train_seconds": round(seconds, 1)}
        with torch.no_grad():  # bits per token of the frozen prior on this tokenizer's held-out tokens
            nats, bits_count = 0.0, 0
            for batch in heldout_batches:
                ids, states, mask = tokenize_batch(model, text_tokenizer, text_encoder, batch, prior.config, "cpu", projected=True)
                out = prior(token_ids=ids, text_states=states, text_mask=mask)
                tokens = sum(x.numel() for x in ids)
                nats += float(out.loss) / len(ids) * tokens  # loss: sum over levels of the mean per-bit BCE
                bits_count += tokens
            run["prior_bits_per_token"] = nats / bits_count * model.config.codebook_bits / math.log(2)
        recon = evaluate_reconstruction(model, args.heldout, split="val", max_samples=48, num_frames=17, progress=False)
        run["psnr_db"] = recon["metrics"]["psnr"]
        started = time.time()
        train_split = tokenize_split(model, os.path.join(args.data, "train"), progress=False)
        val_split = tokenize_split(model, os.path.join(args.heldout, "val"), max_clips=48, progress=False)
        reset_video_projection(model, 256, seed=0)
        history = train_alignment_heads(model, train_split, val_split, steps=args.head_steps, eval_every=args.head_steps, progress=False)
        run.update({k: history[-1][k] for k in ("t2v_R@1", "t2v_R@5")})
        run["heads_seconds"] = round(time.time() - started, 1)
        report["runs"][name] = run
        print(name, json.dumps(run), flush=True)
    with open(os.path.join(args.output, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
    print("| run | recon PSNR (dB) | prior bits/token | T2V R@1 | T2V R@5 | stage-2 seconds |")
    print("|---|---|---|---|---|---|")
    for name, run in report["runs"].items():
        print(f"| {name} | {run['psnr_db']:.2f} | {run['prior_bits_per_token']:.3f} | {100 * run['t2v_R@1']:.1f} | {100 * run['t2v_R@5']:.1f} | {run['train_seconds']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
