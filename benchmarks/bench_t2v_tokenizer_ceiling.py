"""The ceiling of text-to-video prompt following through a tokenizer: the checker on its reconstructions.

    python benchmarks/bench_t2v_tokenizer_ceiling.py --model src/pyratok_hf/bundled/pyratok-tiny \
        --data data/corpus/val [--max-clips 16] [--large-only] [--picture docs/images/t2v_tokenizer_ceiling.png]

A prior can only produce what its tokenizer decodes. This encodes single-object procedural clips (with their
captions, as the prior's training does), decodes the tokens, and runs the weight-free prompt-following checker
(colour of what moves, travel of its centroid) on the reconstructions and on the real clips side by side.
Prints hits / clips for both and the mean PSNR; ``--picture`` writes real (top) vs reconstructed rows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None, help="tokenizer folder (default: the bundled pyratok-tiny)")
    parser.add_argument("--data", default="data/corpus/val", help="a corpus split folder with procedural clips")
    parser.add_argument("--max-clips", type=int, default=16)
    parser.add_argument("--large-only", action="store_true", help="only clips whose caption says large / big")
    parser.add_argument("--picture", default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from pyratok_hf import PyraTokModel, bundled_model_path
    from pyratok_hf.evaluation.prompt_following import check_prompt
    from pyratok_hf.metrics import psnr
    from pyratok_hf.video_io import read_video

    torch.set_num_threads(args.threads)
    model = PyraTokModel.from_pretrained(args.model or bundled_model_path()).eval()
    with open(os.path.join(args.data, "metadata.jsonl")) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    rows = [r for r in rows if r.get("kind") == "procedural" and len(r.get("objects") or []) == 1]
    if args.large_only:
        rows = [r for r in rows if any(word in r["text"].lower() for word in ("large", "big"))]
    rows = rows[: args.max_clips]
    if not rows:
        raise SystemExit(f"{args.data}: no single-object procedural clips; build a corpus with `pyratok build-corpus`.")
    hits = {"reconstruction": [0, 0], "real clip": [0, 0]}
    scores, strips = [], []
    for row in rows:
        clip = read_video(os.path.join(args.data, row["file_name"]), max_frames=17).frames
        with torch.no_grad():
            enc = model.encode(clip[None], text=row["text"] if model.config.use_text_conditioning else None)
            rec = model.decode(latents=enc.latents, output_shape=enc.input_shape).sample.clamp(-1, 1)[0]
        scores.append(float(psnr(rec, clip)))
        for name, video in (("reconstruction", rec), ("real clip", clip)):
            check = check_prompt(video, row["text"])
            hits[name][0] += bool(check.color_match)
            hits[name][1] += bool(check.direction_match)
        if len(strips) < 8:
            frames = range(0, clip.shape[1], max(1, clip.shape[1] // 5))
            strips += [torch.cat([v[:, t] for t in frames], dim=2) for v in (clip, rec)]
    print(f"{len(rows)} clips from {args.data}; tokens PSNR {sum(scores) / len(scores):.2f} dB")
    print("| video | colour | direction |\n|---|---|---|")
    for name, (colour, direction) in hits.items():
        print(f"| {name} | {colour}/{len(rows)} | {direction}/{len(rows)} |")
    if args.picture:
        from PIL import Image

        image = torch.cat(strips, dim=1).permute(1, 2, 0).numpy()
        image = ((image + 1) * 127.5).clip(0, 255).astype(np.uint8)
        os.makedirs(os.path.dirname(os.path.abspath(args.picture)), exist_ok=True)
        Image.fromarray(image).resize((image.shape[1] * 2, image.shape[0] * 2), Image.NEAREST).save(args.picture)
        print(f"wrote {args.picture} (pairs of rows: real clip, reconstruction)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
