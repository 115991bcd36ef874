"""Re-weight a `--scenes text-to-video` corpus by object colour, for the decoder-only legs of train_t2v.sh.

The centred corpus is uneven (seed 11: cyan 380 clips ... green 208) and the decoder learned the rare colours
worst: the bundled pipeline drew purple prompts as blue or white. A subset folder holds only a new
`metadata.jsonl` (rows repeated or dropped) and symlinks to the source's `procedural/` and `masks/`.

    python examples/recipes/make_colour_subset.py data/t2v-centred/train data/t2v-centred-pg \
        --repeat purple=3 green=2 blue=1 white=1 --others 100
    python examples/recipes/make_colour_subset.py data/t2v-centred/train data/t2v-centred-uni --per-colour 400
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="a corpus split folder with metadata.jsonl")
    parser.add_argument("output", help="the subset folder to write")
    parser.add_argument("--repeat", nargs="*", default=[], metavar="COLOUR=N",
                        help="keep every clip of COLOUR, N times")
    parser.add_argument("--others", type=int, default=None,
                        help="with --repeat: keep this many clips of each colour not named there")
    parser.add_argument("--per-colour", type=int, default=None,
                        help="draw this many clips of every colour (repeating clips where a colour has fewer)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if (args.per_colour is None) == (not args.repeat):
        parser.error("give either --repeat (with --others) or --per-colour")

    rows = [json.loads(line) for line in open(os.path.join(args.source, "metadata.jsonl"))]
    by_colour: dict[str, list[dict]] = collections.defaultdict(list)
    for row in rows:
        by_colour[row["objects"][0]["color"]].append(row)
    rng = random.Random(args.seed)
    chosen: list[dict] = []
    if args.per_colour is not None:
        for colour in sorted(by_colour):
            group = by_colour[colour]
            whole, rest = divmod(args.per_colour, len(group))
            chosen += group * whole + rng.sample(group, rest)
    else:
        repeats = {}
        for item in args.repeat:
            colour, _, times = item.partition("=")
            if colour not in by_colour or not times.isdigit():
                parser.error(f"--repeat {item!r}: expected COLOUR=N with COLOUR one of {sorted(by_colour)}")
            repeats[colour] = int(times)
        for colour in sorted(by_colour):
            group = by_colour[colour]
            if colour in repeats:
                chosen += group * repeats[colour]
            elif args.others:
                chosen += rng.sample(group, min(args.others, len(group)))
    rng.shuffle(chosen)

    os.makedirs(args.output, exist_ok=True)
    with open(os.path.join(args.output, "metadata.jsonl"), "w") as handle:
        handle.writelines(json.dumps(row) + "\n" for row in chosen)
    for folder in ("procedural", "masks"):
        link = os.path.join(args.output, folder)
        if not os.path.lexists(link):
            os.symlink(os.path.abspath(os.path.join(args.source, folder)), link)
    counts = collections.Counter(row["objects"][0]["color"] for row in chosen)
    print(f"{args.output}: {len(chosen)} rows, " + ", ".join(f"{c} {n}" for c, n in sorted(counts.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
