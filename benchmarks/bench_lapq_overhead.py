"""What LaPQ costs on top of the backbone: PyraTok encode+decode vs plain ``AutoencoderKLWan`` encode+decode.

Both sides use the *same* Wan VAE module (``model.backbone.vae``, random weights) on the same input, timed
interleaved in one process (plain, pyratok, plain, pyratok, ...) so machine load hits both alike; the extra time
is the median over rounds of (pyratok time / plain time) within a round, which cancels slow load drifts. PyraTok's side is the full tokenizer round trip: encode (backbone + stage hooks + lateral
pooling + LaPQ levels + ids) and decode *from token ids* (ids -> codes -> latent -> backbone decoder). The plain
side is ``vae.encode(x).latent_dist.mode()`` then ``vae.decode(z)``.

    python benchmarks/bench_lapq_overhead.py            # tiny at 9x128x128, pyratok-l at 5x64x64
    python benchmarks/bench_lapq_overhead.py --quick    # smaller clips, fewer repeats
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402


def measure(name: str, model, shape, repeats: int, text=None) -> dict:
    import torch

    video = torch.rand(*shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    vae = model.backbone.vae

    def plain_encode():
        return vae.encode(video).latent_dist.mode()

    latent = None

    def plain_decode():
        return vae.decode(latent).sample

    encoded = None

    def ours_encode():
        return model.encode(video, text=text)

    def ours_decode():
        return model.decode(token_ids=encoded.token_ids, output_shape=encoded.input_shape).sample

    with torch.inference_mode():
        latent = plain_encode()
        encoded = ours_encode()
        if text is not None:  # the text encoder is loaded on first use: keep that out of the timings
            model.get_text_encoder()
        timings = C.time_calls(
            {"plain_encode": plain_encode, "ours_encode": ours_encode, "plain_decode": plain_decode, "ours_decode": ours_decode},
            repeats=repeats,
        )
    plain = timings["plain_encode"]["min_s"] + timings["plain_decode"]["min_s"]
    ours = timings["ours_encode"]["min_s"] + timings["ours_decode"]["min_s"]
    lapq_params = sum(p.numel() for p in model.lapq.parameters())
    # Median of per-round ratios: each round runs plain and ours back to back, so slow load drifts cancel.
    return {
        "name": name, "input_shape": list(shape), "timings": timings, "plain_roundtrip_s": plain, "ours_roundtrip_s": ours,
        "extra_percent": 100 * (C.paired_ratio(timings, ["ours_encode", "ours_decode"], ["plain_encode", "plain_decode"]) - 1),
        "encode_extra_percent": 100 * (C.paired_ratio(timings, ["ours_encode"], ["plain_encode"]) - 1),
        "decode_extra_percent": 100 * (C.paired_ratio(timings, ["ours_decode"], ["plain_decode"]) - 1),
        "backbone_params_m": sum(p.numel() for p in vae.parameters()) / 1e6, "lapq_params_m": lapq_params / 1e6,
        "text": text is not None,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the machine is shared)")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    repeats = args.repeats or (3 if args.quick else 7)
    tiny_shape = (1, 3, 5, 64, 64) if args.quick else (1, 3, 9, 128, 128)
    large_shape = (1, 3, 5, 32, 32) if args.quick else (1, 3, 5, 64, 64)
    runs = []
    tiny = C.load_model(None, "pyratok-tiny")
    runs.append(measure("pyratok-tiny", tiny, tiny_shape, repeats))
    runs.append(measure("pyratok-tiny + text (MiniLM, incl. text encoder)", tiny, tiny_shape, repeats, text=["a red ball rolls to the left"]))
    del tiny
    large = C.load_model(None, "pyratok-l")
    runs.append(measure("pyratok-l", large, large_shape, max(3, repeats - 2)))
    del large
    rows = [[
        r["name"], "x".join(map(str, r["input_shape"][2:])), f"{r['backbone_params_m']:.1f}M + {r['lapq_params_m']:.2f}M",
        C.fmt(r["plain_roundtrip_s"], suffix=" s"), C.fmt(r["ours_roundtrip_s"], suffix=" s"),
        f"{r['extra_percent']:+.1f}%", f"{r['encode_extra_percent']:+.1f}%", f"{r['decode_extra_percent']:+.1f}%",
    ] for r in runs]  # fmt: skip
    table = C.print_table(
        "PyraTok round trip vs plain AutoencoderKLWan (same backbone weights and input; goal <= +10%)",
        ["config", "T x H x W", "params (VAE + LaPQ)", "Wan enc+dec", "PyraTok enc+dec", "extra", "encode extra", "decode extra"],
        rows,
    )
    C.write_results("bench_lapq_overhead", {"command": " ".join(["python"] + sys.argv), "machine": C.machine_info(args.threads), "runs": runs, "table": table})


if __name__ == "__main__":
    main()
