"""Reconstruction table of the small-scale LaPQ ablation (paper Table 6 at tiny scale) on the validation split.

Every model is evaluated on the same validation clips (17 frames, 64x64, centred), with its captions as text.
The continuous backbone (no quantization) is listed as the upper bound the tokenizers approach.

    python benchmarks/ablation_table.py --data data/corpus/val --output docs/results_ablation.md
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch
from tqdm.auto import tqdm

DEFAULT_RUNS = {
    "full LaPQ (4 levels, text)": "runs/ablation-full/final",
    "(a) single-level LFQ, same bits": "runs/ablation-single_level_lfq/final",
    "(b) no text guidance": "runs/ablation-no_text/final",
    "(c) 2 levels": "runs/ablation-two_levels/final",
}


def load_clips(data_dir: str, max_clips: int | None, num_frames: int = 17, size=(64, 64)):
    from pyratok_hf.data.datasets import load_video_text_dataset

    dataset = load_video_text_dataset(data_dir, num_frames=num_frames, size=size, start="center", random_crop=False, seed=0)
    count = len(dataset) if max_clips is None else min(max_clips, len(dataset))
    return [dataset[i] for i in range(count)]


@torch.inference_mode()
def evaluate_tokenizer(path: str, clips, batch_size: int = 8) -> dict:
    from pyratok_hf import PyraTokModel
    from pyratok_hf.metrics.functional import CodebookUsageAccumulator, bits_per_pixel, psnr, ssim

    model = PyraTokModel.from_pretrained(path).eval()
    psnrs, ssims, bpps = [], [], []
    usage = CodebookUsageAccumulator(model.config.codebook_bits, model.config.num_levels)
    for start in tqdm(range(0, len(clips), batch_size), desc=os.path.basename(os.path.dirname(path)), leave=False):
        batch = clips[start : start + batch_size]
        video = torch.stack([c["pixel_values"] for c in batch])
        text = [c["text"] for c in batch] if model.config.use_text_conditioning else None
        enc = model.encode(video, text=text)
        recon = model.decode(token_ids=enc.token_ids, output_shape=enc.input_shape).sample
        psnrs += psnr(recon, video).tolist()
        ssims += ssim(recon, video).tolist()
        bpps.append(bits_per_pixel(enc.token_ids, model.config.codebook_bits, tuple(video.shape[1:])) / len(batch))
        usage.update(list(enc.token_ids))
    levels = usage.compute()
    return {
        "psnr": sum(psnrs) / len(psnrs),
        "ssim": sum(ssims) / len(ssims),
        "bpp": sum(bpps) / len(bpps),
        "codebook_usage": [round(l["usage_fraction_reachable"], 3) for l in levels],
        "perplexity": [round(l["perplexity"], 1) for l in levels],
        "num_clips": len(psnrs),
    }


@torch.inference_mode()
def evaluate_backbone(path: str, clips, batch_size: int = 8) -> dict:
    from diffusers import AutoencoderKLWan

    from pyratok_hf.metrics.functional import psnr, ssim

    vae = AutoencoderKLWan.from_pretrained(path).eval()
    psnrs, ssims = [], []
    for start in range(0, len(clips), batch_size):
        video = torch.stack([c["pixel_values"] for c in clips[start : start + batch_size]])
        recon = vae.decode(vae.encode(video).latent_dist.mode()).sample
        psnrs += psnr(recon, video).tolist()
        ssims += ssim(recon, video).tolist()
    return {"psnr": sum(psnrs) / len(psnrs), "ssim": sum(ssims) / len(ssims), "bpp": None, "num_clips": len(psnrs)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/corpus/val")
    parser.add_argument("--output", default="docs/results_ablation.md")
    parser.add_argument("--backbone", default="runs/tiny-backbone/vae")
    parser.add_argument("--max-clips", type=int, default=None)
    parser.add_argument("--run", action="append", default=[], metavar="NAME=PATH", help="extra or replacement rows")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    runs = dict(DEFAULT_RUNS)
    for item in args.run:
        name, path = item.split("=", 1)
        runs[name] = path
    clips = load_clips(args.data, args.max_clips)
    rows = {}
    if os.path.isdir(args.backbone):
        rows["continuous backbone (no quantization, upper bound)"] = evaluate_backbone(args.backbone, clips)
    for name, path in runs.items():
        if not os.path.isfile(os.path.join(path, "config.json")):
            print(f"skipping {name}: {path} not found", file=sys.stderr)
            continue
        rows[name] = evaluate_tokenizer(path, clips)
    lines = [
        f"| variant | PSNR (dB) | SSIM | bits/pixel | codebook use per level | perplexity per level |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        bpp = "—" if r["bpp"] is None else f"{r['bpp']:.4f}"
        lines.append(f"| {name} | {r['psnr']:.2f} | {r['ssim']:.3f} | {bpp} | {r.get('codebook_usage', '—')} | {r.get('perplexity', '—')} |")
    table = "\n".join(lines)
    print(table)
    from pyratok_hf.video_io import atomic_write_json, atomic_write_text

    n = next(iter(rows.values()))["num_clips"] if rows else 0
    atomic_write_text(f"<!-- generated by benchmarks/ablation_table.py on {n} validation clips -->\n{table}\n", args.output)
    atomic_write_json(rows, os.path.splitext(args.output)[0] + ".json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
