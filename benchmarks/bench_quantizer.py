"""Binary quantizer + entropy loss: pyratok-hf (O(K) per token) vs vector-quantize-pytorch's ``LFQ`` (O(2^K)).

Both run forward + backward of: sign quantization with straight-through gradient, token ids, and the
MAGVIT-v2 entropy loss (per-sample entropy minus ``diversity_gamma`` x codebook entropy, weight 0.1), plus the
mean of the quantized output as a stand-in downstream loss, on the same input ``[1, K, 5, 16, 16]`` (1280 tokens).

Matching settings: ``LFQ(dim=K, entropy_loss_weight=0.1, diversity_gamma=1.0)`` called with
``inv_temperature=100``. The peer's code distribution is ``softmax(-inv_t * distance)`` with
``distance = -2 <x, c>``, i.e. logits ``2 * inv_t * <x, c>``; ours is ``softmax(inv_t' * <u, c>)``, so
``inv_t' = 2 * inv_t = 200`` is the same distribution (the script checks that both per-sample entropies agree).
The codebook-entropy term differs by design: the peer uses the entropy of the batch-averaged joint over 2^K
codes, ours the sum of per-bit marginal entropies (an upper bound that needs no 2^K table; see quantizer.py).

Each (implementation, K) runs in its own subprocess so its peak RSS can be read cleanly (see _common.py).

    python benchmarks/bench_quantizer.py            # K = 10, 14, 16, 18 (+ 32, 64 ours only)
    python benchmarks/bench_quantizer.py --quick    # K = 10, 14, 16 (+ 32, 64), fewer repeats
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

PEER_INV_TEMPERATURE = 100.0
OURS_INV_TEMPERATURE = 2 * PEER_INV_TEMPERATURE
ENTROPY_WEIGHT = 0.1
SHAPE_AFTER_K = (5, 16, 16)


def _peer_bytes(num_tokens: int, bits: int) -> float:
    """Rough peak of the peer: ~8 live float32 [tokens, 2^K] tensors (distance, prob, log, products, grads)."""
    return 8.0 * num_tokens * (2**bits) * 4


def _rss_ratio(ours: dict, peer: dict) -> str:
    """Ours often needs less than 1 MB above the baseline (it reuses already-mapped heap): then give a bound."""
    if ours["peak_rss_delta_mb"] < 1.0:
        return f">{peer['peak_rss_delta_mb']:.0f}x"
    return C.fmt(peer["peak_rss_delta_mb"] / ours["peak_rss_delta_mb"], suffix="x")


def worker(spec: dict) -> dict:
    import torch

    bits, impl = spec["K"], spec["impl"]
    generator = torch.Generator().manual_seed(0)
    x0 = torch.randn(1, bits, *SHAPE_AFTER_K, generator=generator) * 0.1
    extra = {}
    if impl == "peer":
        from vector_quantize_pytorch import LFQ

        quantizer = LFQ(dim=bits, codebook_size=2**bits, entropy_loss_weight=ENTROPY_WEIGHT, diversity_gamma=1.0).train()

        def step():
            x = x0.clone().requires_grad_(True)
            quantized, ids, aux = quantizer(x, inv_temperature=PEER_INV_TEMPERATURE)
            (aux + quantized.mean()).backward()
            return ids

        if bits <= 16:
            with torch.no_grad():
                _, breakdown = quantizer(x0, inv_temperature=PEER_INV_TEMPERATURE, return_loss_breakdown=True)
            extra["per_sample_entropy"] = float(breakdown.per_sample_entropy)
    else:
        from pyratok_hf.quantizer import binary_quantize, codes_to_ids, entropy_terms, lfq_entropy_loss

        def step():
            x = x0.clone().requires_grad_(True)
            logits = x.movedim(1, -1)  # channel-last tokens [1, 5, 16, 16, K]
            codes = binary_quantize(logits)
            ids = codes_to_ids(codes.detach())
            aux = ENTROPY_WEIGHT * lfq_entropy_loss(logits, OURS_INV_TEMPERATURE, 1.0, 1.0)
            (aux + codes.mean()).backward()
            return ids

        with torch.no_grad():
            extra["per_sample_entropy"] = float(entropy_terms(x0.movedim(1, -1), OURS_INV_TEMPERATURE)[0])
    for _ in range(spec.get("warmup", 1)):
        step()
    _, memory = C.measure_peak_rss(step)
    times = []
    for _ in range(spec["repeats"]):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    if spec.get("tensor_peak", True):
        with C.tensor_peak_tracker() as tracker:
            step()
        extra["tensor_peak_mb"] = tracker.peak / 2**20
    return {"time_s": min(times), "times_s": times, **memory, **extra}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="K up to 16 for the peer, fewer repeats")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per worker (default 1: the machine is shared)")
    parser.add_argument("--max-peer-gb", type=float, default=14.0, help="skip peer runs estimated to need more RAM")
    parser.add_argument("--replot", action="store_true", help="only redraw the plot from benchmarks/results/bench_quantizer.json")
    args = parser.parse_args()
    if args.replot:
        import json

        _plot(json.loads((C.RESULTS_DIR / "bench_quantizer.json").read_text())["results"])
        return
    peer_bits = [10, 14, 16] if args.quick else [10, 14, 16, 18]
    all_bits = peer_bits + [32, 64]
    tokens = 5 * 16 * 16
    rows, results = [], []
    for bits in all_bits:
        ours = C.run_worker(__file__, {"impl": "ours", "K": bits, "repeats": 10 if args.quick else 30, "warmup": 2, "threads": args.threads})
        if bits not in peer_bits:
            peer = {"skipped": f"LFQ builds a [2^K, K] codebook: {2**bits * bits * 4 / 2**30:.3g} GiB at K={bits}"}
        elif _peer_bytes(tokens, bits) > args.max_peer_gb * 2**30:
            peer = {"skipped": f"estimated {_peer_bytes(tokens, bits) / 2**30:.1f} GiB > --max-peer-gb"}
        else:
            slow = bits >= 18
            peer = C.run_worker(__file__, {"impl": "peer", "K": bits, "repeats": 1 if slow else (2 if args.quick else 3),
                                           "warmup": 0 if slow else 1, "threads": args.threads, "tensor_peak": not slow})  # fmt: skip
        results.append({"K": bits, "ours": ours, "peer": peer})
        ok = "time_s" in peer and "time_s" in ours
        rows.append([
            bits,
            C.fmt(ours.get("time_s", 0) * 1e3, suffix=" ms") if "time_s" in ours else ours.get("error"),
            C.fmt(peer["time_s"] * 1e3, suffix=" ms") if "time_s" in peer else "n/a",
            C.fmt(peer["time_s"] / ours["time_s"], suffix="x") if ok else "n/a",
            "<1 MB" if ours.get("peak_rss_delta_mb", 1) < 1 else C.fmt(ours.get("peak_rss_delta_mb"), suffix=" MB"),
            C.fmt(peer.get("peak_rss_delta_mb"), suffix=" MB"),
            _rss_ratio(ours, peer) if ok else "n/a",
            C.fmt(ours.get("tensor_peak_mb"), suffix=" MB"),
            C.fmt(peer.get("tensor_peak_mb"), suffix=" MB"),
            C.fmt(peer["tensor_peak_mb"] / ours["tensor_peak_mb"], suffix="x") if ok and "tensor_peak_mb" in peer else "n/a",
        ])  # fmt: skip
        print(f"K={bits}: done", flush=True)
    table = C.print_table(
        "Quantizer forward+backward, [1, K, 5, 16, 16] tokens (ours vs vector-quantize-pytorch LFQ)",
        ["K", "ours time", "LFQ time", "speedup", "ours peak RSS", "LFQ peak RSS", "RSS ratio", "ours tensor peak", "LFQ tensor peak", "tensor ratio"],
        rows,
    )  # fmt: skip
    checks = [(r["K"], r["ours"].get("per_sample_entropy"), r["peer"].get("per_sample_entropy")) for r in results if "per_sample_entropy" in r["peer"]]
    for bits, ours_h, peer_h in checks:
        print(f"per-sample entropy at K={bits}: ours {ours_h:.5f} nats, LFQ {peer_h:.5f} nats (same distribution)")
    import vector_quantize_pytorch

    C.write_results("bench_quantizer", {
        "command": " ".join(["python"] + sys.argv), "machine": C.machine_info(args.threads), "tokens": tokens,
        "peer": f"vector-quantize-pytorch {getattr(vector_quantize_pytorch, '__version__', '?')} LFQ",
        "settings": {"entropy_loss_weight": ENTROPY_WEIGHT, "diversity_gamma": 1.0, "peer_inv_temperature": PEER_INV_TEMPERATURE,
                     "ours_inv_temperature": OURS_INV_TEMPERATURE},
        "results": results, "table": table,
    })  # fmt: skip
    _plot(results)


def _plot(results: list[dict]) -> None:
    plt = C.pyplot()
    fig, (ax_time, ax_mem) = plt.subplots(1, 2, figsize=(10, 3.8))
    for impl, label, marker in (("ours", "pyratok-hf (O(K))", "o"), ("peer", "vector-quantize-pytorch LFQ (O(2^K))", "s")):
        points = [(r["K"], r[impl]) for r in results if "time_s" in r[impl]]
        ks = [k for k, _ in points]
        ax_time.plot(ks, [p["time_s"] * 1e3 for _, p in points], marker=marker, label=label)
        # Live tensor peak where measured (ours is below RSS resolution); the peer's K=18 point is its RSS peak.
        ax_mem.plot(ks, [p.get("tensor_peak_mb", p["peak_rss_delta_mb"]) for _, p in points], marker=marker, label=label)
    for ax, title, unit in ((ax_time, "forward+backward time", "ms"), (ax_mem, "peak memory of one step", "MB")):
        ax.set_yscale("log")
        ax.set_xlabel("bits per token K (codebook 2^K)")
        ax.set_ylabel(unit)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    ax_time.legend(fontsize=8)
    fig.suptitle("Quantizer cost vs K, 1280 tokens (LFQ cannot build K=32, 64)", fontsize=10)
    print("plot:", C.save_plot(fig, "perf_quantizer_vs_k"))


if __name__ == "__main__":
    if not C.worker_main(worker):
        main()
