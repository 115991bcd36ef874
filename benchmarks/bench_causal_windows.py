"""Per-frame PSNR of the bundled tokenizer on the bundled 33-frame sample: one causal pass vs 17-frame windows.

The bundled model was trained on 17-frame clips; this shows what ``causal_window_frames`` changes past frame 17
(the numbers quoted in docs/architecture.md and docs/training.md), and the bits each way.

    python benchmarks/bench_causal_windows.py   -> benchmarks/results/bench_causal_windows.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

from pyratok_hf import PyraTokModel, bundled_model_path
from pyratok_hf.data import sample_video_path
from pyratok_hf.metrics.functional import bits_per_pixel
from pyratok_hf.training.real_data import psnr
from pyratok_hf.video_io import read_video


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=int, default=17)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results", "bench_causal_windows.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    clip = read_video(sample_video_path()).frames
    rows = {}
    for name, window in (("one pass", None), (f"{args.window}-frame windows", args.window)):
        model = PyraTokModel.from_pretrained(bundled_model_path(), causal_window_frames=window).eval()
        with torch.inference_mode():
            enc = model.encode(clip[None])
            recon = model.decode(token_ids=enc.token_ids, output_shape=enc.input_shape).sample[0]
        per_frame = [round(psnr(recon[:, t], clip[:, t]), 2) for t in range(clip.shape[1])]
        bpp = float(bits_per_pixel(list(enc.token_ids), model.config.codebook_bits, tuple(clip.shape[1:])))
        rows[name] = {"mean_psnr": round(psnr(recon, clip), 2), "bits_per_pixel": round(bpp, 4), "per_frame": per_frame}
    print(f"bundled pyratok-tiny, bundled sample {tuple(clip.shape)}")
    for name, row in rows.items():
        pf = row["per_frame"]
        print(f"{name:<20} mean {row['mean_psnr']:.2f} dB  {row['bits_per_pixel']:.4f} bpp  frame 0 {pf[0]:.1f}, "
              f"frame 16 {pf[16]:.1f}, frame 24 {pf[24]:.1f}, frame 32 {pf[-1]:.1f} dB")
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as handle:
        json.dump(rows, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
