"""Training throughput (samples/s) and peak memory of one tokenizer training step, for two model sizes.

Each size runs in its own subprocess (so peak RSS is that run's own), with the same batch, clip size,
LoRA setup and loss as `pyratok train`. Sizes: pyratok-tiny (base_dim 16) and a 2x-wider "small"
(base_dim 32, level width 128). Prints a table with the ratio small/tiny.

    python benchmarks/bench_training_throughput.py [--steps 6] [--batch-size 4] [--frames 9] [--size 64]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

SIZES = {
    "pyratok-tiny": {},
    "small (2x width)": {"backbone_config": {"base_dim": 32}, "level_hidden_dim": 128},
}


def worker(spec: dict) -> dict:
    import torch

    from pyratok_hf import PyraTokConfig, PyraTokModel
    from pyratok_hf.configuration_pyratok import TINY_VAE_CONFIG

    torch.manual_seed(0)
    torch.set_num_threads(spec["threads"])
    overrides = dict(spec["overrides"])
    if "backbone_config" in overrides:
        overrides["backbone_config"] = {**TINY_VAE_CONFIG, **overrides["backbone_config"]}
    model = PyraTokModel(PyraTokConfig.from_preset("pyratok-tiny", use_text_conditioning=False, token_text_weight=0.0,
                                                    codebook_text_weight=0.0, contrastive_weight=0.0, **overrides))
    model.backbone.add_lora(16, 32)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    video = torch.rand(spec["batch_size"], 3, spec["frames"], spec["size"], spec["size"]) * 2 - 1
    timings = []
    for step in range(spec["steps"] + 1):
        started = time.perf_counter()
        loss = model(video).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step:  # the first step pays one-off allocation costs
            timings.append(time.perf_counter() - started)
    seconds = sorted(timings)[len(timings) // 2]
    return {
        "samples_per_second": spec["batch_size"] / seconds,
        "seconds_per_step": seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "parameters_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "trainable_m": sum(p.numel() for p in params) / 1e6,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--frames", type=int, default=9)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default="benchmarks/results/training_throughput.json")
    parser.add_argument("--_worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._worker:
        print(json.dumps(worker(json.loads(args._worker))))
        return 0
    rows = {}
    for name, overrides in SIZES.items():
        spec = {"overrides": overrides, "steps": args.steps, "batch_size": args.batch_size, "frames": args.frames,
                "size": args.size, "threads": args.threads}
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        out = subprocess.run([sys.executable, __file__, "--_worker", json.dumps(spec)], capture_output=True, text=True, env=env, check=True)
        rows[name] = json.loads(out.stdout.strip().splitlines()[-1])
    tiny, small = rows["pyratok-tiny"], rows["small (2x width)"]
    print(f"batch {args.batch_size} x {args.frames}x{args.size}x{args.size}, {args.threads} thread(s), median of {args.steps} steps")
    print("| model | params (M) | trainable (M) | samples/s | s/step | peak RSS (MB) |")
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['parameters_m']:.2f} | {r['trainable_m']:.2f} | {r['samples_per_second']:.2f} | {r['seconds_per_step']:.2f} | {r['peak_rss_mb']:.0f} |")
    print(f"small / tiny: {small['seconds_per_step'] / tiny['seconds_per_step']:.2f}x time per step, "
          f"{small['peak_rss_mb'] / tiny['peak_rss_mb']:.2f}x peak memory")
    os.makedirs(os.path.dirname(args.output), exist_ok=True)
    from pyratok_hf.video_io import atomic_write_json

    atomic_write_json({"settings": vars(args), "rows": rows}, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
