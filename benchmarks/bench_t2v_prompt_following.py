"""Prompt following of a text-to-video pipeline vs classifier-free guidance, with sampling time.

    python benchmarks/bench_t2v_prompt_following.py [--pipeline DIR] [--scales 1 3 5] [--seeds 0 1]

Prompts pair the corpus's 8 colours with its 4 directions ("a large red circle moves right on a black
background"; shapes and backgrounds rotate); ``--num-prompts N --prompt-seed S`` draws N prompts in the corpus's
own phrasings instead. Each video is judged by the weight-free checker
(pyratok_hf.evaluation.prompt_following: colour of what moves, travel of its centroid); the same videos are
also judged against a derangement of the prompts (chance level). Prints one row per (mode, guidance scale):
colour and direction hits for matched and shuffled prompts, and seconds per video; then, summed over all rows,
the colour hits per stated colour and what the misses were drawn as (where a pipeline fails).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time

def save_picture(videos, texts, path) -> None:
    """One panel per prompt (first, middle and last frame stacked), the prompt's colour and direction under it."""
    import numpy as np
    from PIL import Image, ImageDraw

    from pyratok_hf.evaluation.prompt_following import parse_caption

    panels = []
    for video, text in zip(videos, texts):
        frames = ((video[:, [0, video.shape[1] // 2, -1]].clamp(-1, 1) + 1) * 127.5).byte().permute(1, 2, 3, 0).numpy()
        label = Image.new("RGB", (frames.shape[2], 14))
        facts = parse_caption(text)
        ImageDraw.Draw(label).text((1, 1), f"{facts.color} {facts.direction}", fill=(255, 255, 255))
        panels.append(np.concatenate([*frames, np.asarray(label)], 0))  # [3H + 14, W, 3]
    gap = np.full((panels[0].shape[0], 2, 3), 255, dtype=np.uint8)
    picture = Image.fromarray(np.concatenate([x for p in panels for x in (p, gap)][:-1], 1))
    picture.resize((picture.width * 2, picture.height * 2), Image.NEAREST).save(path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pipeline", default=None, help="pipeline folder (default: the bundled pyratok-tiny-t2v)")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 3.0, 5.0])
    parser.add_argument("--modes", nargs="+", default=["next_scale"], choices=["next_scale", "token"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--num-prompts", type=int, default=None,
                        help="N seeded random prompts in the corpus's words (sample_colour_direction_prompts) instead of the fixed 8")
    parser.add_argument("--prompt-seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    parser.add_argument("--picture", default=None, help="PNG of the first row's videos: frames 0, 8, 16 of each prompt, side by side")
    args = parser.parse_args(argv)

    import torch

    from pyratok_hf import PyraTokT2VPipeline, bundled_pipeline_path
    from pyratok_hf.evaluation.prompt_following import colour_direction_prompts, prompt_following_report, sample_colour_direction_prompts

    torch.set_num_threads(args.threads)
    pipe = PyraTokT2VPipeline.from_pretrained(args.pipeline or bundled_pipeline_path())
    pipe.set_progress_bar_config(disable=True)
    texts = colour_direction_prompts() if args.num_prompts is None else sample_colour_direction_prompts(args.num_prompts, args.prompt_seed)
    rows = []
    per_colour: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])  # stated colour -> [hits, prompts]
    drawn_as: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)  # stated -> detected, misses
    print("| mode | guidance | seed | colour (matched) | direction (matched) | colour (shuffled) | direction (shuffled) | s / video |")
    print("|---|---|---|---|---|---|---|---|")
    for mode in args.modes:
        for scale in args.scales:
            for seed in args.seeds:
                videos, started = [], time.perf_counter()
                for i, text in enumerate(texts):
                    out = pipe(text, guidance_scale=scale, mode=mode, generator=torch.Generator().manual_seed(seed * 100 + i), output_type="pt")
                    videos.append(out.frames[0].permute(1, 0, 2, 3) * 2 - 1)
                seconds = (time.perf_counter() - started) / len(texts)
                report = prompt_following_report(videos, texts, seed=seed)
                m, s = report["matched"], report["shuffled"]
                row = {"mode": mode, "guidance_scale": scale, "seed": seed, "seconds_per_video": round(seconds, 3),
                       "colour": round(m["color_accuracy"] * m["num_color"]), "direction": round(m["direction_accuracy"] * m["num_direction"]),
                       "colour_shuffled": round(s["color_accuracy"] * s["num_color"]),
                       "direction_shuffled": round(s["direction_accuracy"] * s["num_direction"]), "n": len(texts)}
                rows.append(row)
                for check in report["per_video"]:
                    if check["color_match"] is not None:
                        per_colour[check["stated_color"]][0] += int(check["color_match"])
                        per_colour[check["stated_color"]][1] += 1
                        if not check["color_match"]:
                            drawn_as[check["stated_color"]][check["detected_color"] or "nothing"] += 1
                if args.picture and len(rows) == 1:
                    save_picture(videos, texts, args.picture)
                print(f"| {mode} | {scale:g} | {seed} | {row['colour']}/{len(texts)} | {row['direction']}/{len(texts)} | "
                      f"{row['colour_shuffled']}/{len(texts)} | {row['direction_shuffled']}/{len(texts)} | {seconds:.2f} |", flush=True)
    print("\ncolour hits per stated colour, all rows (misses drawn as):")
    for colour, (hits, total) in sorted(per_colour.items()):
        misses = ", ".join(f"{name} {n}" for name, n in drawn_as[colour].most_common())
        print(f"  {colour:<7} {hits}/{total}" + (f"  ({misses})" if misses else ""))
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"prompts": texts, "rows": rows, "per_colour": {c: {"hits": h, "prompts": n, "drawn_as": dict(drawn_as[c])}
                                                          for c, (h, n) in per_colour.items()}}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
