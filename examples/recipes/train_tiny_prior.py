"""Train the tiny text-to-video token prior on the frozen tiny tokenizer, then assemble the pipeline folder.

    python examples/recipes/train_tiny_prior.py --tokenizer runs/tiny-tokenizer-stage2/final \
        --data data/corpus/train --output runs/tiny-prior --steps 300
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokenizer", default="runs/tiny-tokenizer-stage2/final")
    parser.add_argument("--data", default="data/corpus/train")
    parser.add_argument("--output", default="runs/tiny-prior")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args(argv)

    from pyratok_hf import PyraTokModel
    from pyratok_hf.prior.training import build_t2v_pipeline, train_prior

    tokenizer = PyraTokModel.from_pretrained(args.tokenizer).eval()
    prior = train_prior(
        tokenizer, args.data, os.path.join(args.output, "final"), steps=args.steps, batch_size=args.batch_size,
        lr=args.lr, warmup_steps=30, num_frames=17, height=64, width=64, num_threads=1, seed=0,
    )
    build_t2v_pipeline(args.tokenizer, prior, output_dir=os.path.join(args.output, "pipeline"))
    print(f"prior and pipeline written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
