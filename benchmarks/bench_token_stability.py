"""Do a tokenizer's ids follow what happens in a clip? Id change rates per level, still vs moving frames.

    python benchmarks/bench_token_stability.py [--model DIR] [--data data/heldout/val] [--max-clips 8]

Zero-shot localization scores each latent frame of the coarsest level against the query, so it can only work
if those tokens change when the action happens and stay put when nothing moves. On the ``procedural_long``
clips of a corpus split (objects still, then moving during labelled segments) this measures, per level, the
share of token ids that differ from the previous latent frame, separately for latent frames inside a moving
segment and for frames where every object is still, two ways:

* ``whole clip``: one ``encode`` of the clip (what ``localize`` sees);
* ``same phase``: each latent frame taken as the last latent frame of its own 17-frame window (``clip[:, e-16:e+1]``
  for e = 16, 20, ...), so consecutive frames are compared at the same position inside the causal window.

The reference: a tokenizer whose ids carry the action changes them more in moving frames than in still ones.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def _moving_frames(row) -> set[int]:
    return {t for s in row.get("segments", []) if s.get("action", "").startswith("moving") for t in range(s["start_frame"], s["end_frame"])}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None, help="tokenizer folder (default: the bundled pyratok-tiny)")
    parser.add_argument("--data", default="data/heldout/val", help="a corpus split folder with procedural_long clips")
    parser.add_argument("--max-clips", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)

    import torch

    from pyratok_hf import PyraTokModel, bundled_model_path
    from pyratok_hf.video_io import read_video

    torch.set_num_threads(args.threads)
    model = PyraTokModel.from_pretrained(args.model or bundled_model_path()).eval()
    with open(os.path.join(args.data, "metadata.jsonl")) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    rows = [r for r in rows if r.get("kind") == "procedural_long"][: args.max_clips]
    if not rows:
        raise SystemExit(f"{args.data}: no procedural_long clips; build a corpus with `pyratok build-corpus` (--num-long-val 16).")
    levels = model.config.num_levels
    # counts[(way, moving?)][level] = [changed ids, compared ids]
    counts = {(way, moving): [[0, 0] for _ in range(levels)] for way in ("whole clip", "same phase") for moving in (True, False)}

    def add(way, moving, previous, current):
        for level, (a, b) in enumerate(zip(previous, current)):
            counts[(way, moving)][level][0] += int((a != b).sum())
            counts[(way, moving)][level][1] += a.numel()

    for row in rows:
        clip = read_video(os.path.join(args.data, row["file_name"])).frames
        moving = _moving_frames(row)
        num_frames = clip.shape[1]
        with torch.no_grad():
            ids = [x[0] for x in model.encode(clip[None]).token_ids]  # [t, h, w] per level
        for t in range(1, ids[0].shape[0]):  # latent frame t covers input frames 4t-3 .. 4t
            frames = set(range(4 * t - 3, 4 * t + 1))
            add("whole clip", bool(frames & moving), [x[t - 1] for x in ids], [x[t] for x in ids])
        previous = None
        for end in range(16, num_frames, 4):
            with torch.no_grad():
                current = [x[0, -1] for x in model.encode(clip[None, :, end - 16 : end + 1]).token_ids]
            if previous is not None:
                add("same phase", bool(set(range(end - 3, end + 1)) & moving), previous, current)
            previous = current

    print(f"{len(rows)} procedural_long clips from {args.data}; share of token ids that change from one latent frame to the next")
    print("| encoding | frames | " + " | ".join(f"level {l}" for l in range(levels)) + " |")
    print("|---|---|" + "---|" * levels)
    table = []
    for (way, moving), per_level in counts.items():
        shares = [changed / max(1, total) for changed, total in per_level]
        table.append({"encoding": way, "moving": moving, "change_share": shares})
        print(f"| {way} | {'moving' if moving else 'still'} | " + " | ".join(f"{s:.2f}" for s in shares) + " |")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"model": args.model or "bundled pyratok-tiny", "data": args.data, "clips": len(rows), "rows": table}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
