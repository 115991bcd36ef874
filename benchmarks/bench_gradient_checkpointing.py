"""Peak memory and time of one training step with and without gradient checkpointing, side by side.

Each setting runs in a fresh process (the peak resident set of a process never goes down, so one process
cannot measure two settings). The step is a full ``PyraTokModel`` forward + backward with every weight
trainable (the paper's stage-3 fine-tune), on the pyratok-tiny architecture; what is reported is the growth of
the peak RSS over the process's RSS just before the step (model, optimizer-free), i.e. the activations.

    python benchmarks/bench_gradient_checkpointing.py [--frames 17 --size 128 --batch 2]
    -> benchmarks/results/bench_gradient_checkpointing.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def one_step(setting: str, frames: int, size: int, batch: int, threads: int) -> dict:
    import torch

    from pyratok_hf import PyraTokConfig, PyraTokModel

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = PyraTokModel(PyraTokConfig.from_preset("pyratok-tiny")).train()
    model.requires_grad_(True)
    if setting != "off":
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": setting == "reentrant"})
    video = torch.rand(batch, 3, frames, size, size) * 2 - 1
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB (Linux reports KiB)
    start = time.perf_counter()
    out = model(video, return_loss=True)
    out.loss.backward()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"setting": setting, "activation_peak_mib": round(peak - before, 1), "process_peak_mib": round(peak, 1),
            "step_seconds": round(seconds, 2), "loss": float(out.loss)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results", "bench_gradient_checkpointing.json"))
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(one_step(args.child, args.frames, args.size, args.batch, args.threads)))
        return 0
    rows = []
    for setting in ("off", "non-reentrant", "reentrant"):
        cmd = [sys.executable, __file__, "--child", setting, "--frames", str(args.frames), "--size", str(args.size),
               "--batch", str(args.batch), "--threads", str(args.threads)]
        result = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
    base = rows[0]
    print(f"one training step, pyratok-tiny, {args.batch}x3x{args.frames}x{args.size}x{args.size}, {args.threads} thread(s)")
    print(f"{'setting':<16}{'activations MiB':>16}{'ratio':>8}{'step s':>9}{'ratio':>8}  loss")
    for row in rows:
        print(f"{row['setting']:<16}{row['activation_peak_mib']:>16.1f}{row['activation_peak_mib'] / base['activation_peak_mib']:>8.2f}"
              f"{row['step_seconds']:>9.2f}{row['step_seconds'] / base['step_seconds']:>8.2f}  {row['loss']:.6f}")
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as handle:
        json.dump({"shape": [args.batch, 3, args.frames, args.size, args.size], "threads": args.threads, "rows": rows}, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
