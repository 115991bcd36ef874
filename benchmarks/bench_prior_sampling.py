"""Sampling speed of the PyraTok token prior: next-scale vs token-by-token, with and without a KV cache.

    python benchmarks/bench_prior_sampling.py                       # default prior config, random weights
    python benchmarks/bench_prior_sampling.py --model PIPELINE_OR_PRIOR_DIR --frames 17 --height 64 --width 64

Speed does not depend on the weights, so a random prior of the default size (4 layers, width 256) measures
the bundled configuration. Prints a markdown table with seconds per video and ratios to the fastest setting.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402


def load_prior(path: str | None, bits: int, levels: int):
    from pyratok_hf.prior import PyraTokPriorConfig, PyraTokPriorModel

    if path is None:
        return PyraTokPriorModel(PyraTokPriorConfig(codebook_bits=bits, num_levels=levels)).eval()
    if os.path.isfile(os.path.join(path, "model_index.json")):
        path = os.path.join(path, "prior")
    return PyraTokPriorModel.from_pretrained(path).eval()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a prior folder or a pipeline folder (default: random default-size prior)")
    parser.add_argument("--bits", type=int, default=16, help="codebook bits of the random prior")
    parser.add_argument("--levels", type=int, default=4, help="levels of the random prior")
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--guidance-scale", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 avoids spin-wait slowdowns on busy machines)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from pyratok_hf.prior.evaluation import benchmark_sampling, format_speed_table, pyramid_grids

    prior = load_prior(args.model, args.bits, args.levels)
    grids = pyramid_grids(args.frames, args.height, args.width, num_levels=prior.config.num_levels)
    rows = benchmark_sampling(prior, grids, guidance_scale=args.guidance_scale, repeats=args.repeats, progress=True)
    params = sum(p.numel() for p in prior.parameters()) / 1e6
    print(f"prior: {params:.2f} M parameters, K={prior.config.codebook_bits}, grids {grids} "
          f"({sum(g[0] * g[1] * g[2] for g in grids)} tokens), guidance {args.guidance_scale}, {args.threads} thread(s)")
    print(format_speed_table(rows))
    by_key = {(r["mode"], r["use_cache"]): r["seconds_per_video"] for r in rows}
    if ("token", True) in by_key and ("next_scale", True) in by_key:
        print(f"\ntoken / next-scale (cached): {by_key[('token', True)] / by_key[('next_scale', True)]:.1f}x")
    if ("token", False) in by_key and ("token", True) in by_key:
        print(f"token mode, no cache / cache: {by_key[('token', False)] / by_key[('token', True)]:.1f}x")
    if ("next_scale", False) in by_key and ("next_scale", True) in by_key:
        print(f"next-scale, no cache / cache: {by_key[('next_scale', False)] / by_key[('next_scale', True)]:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
