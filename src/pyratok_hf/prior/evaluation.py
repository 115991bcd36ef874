"""Evaluation helpers for the token prior: sampling speed of the two orders, with and without a KV cache.

>>> from pyratok_hf.prior.evaluation import benchmark_sampling, format_speed_table, pyramid_grids
>>> rows = benchmark_sampling(prior, pyramid_grids(17, 64, 64))
>>> print(format_speed_table(rows))
"""

from __future__ import annotations

import math
import statistics
import time

import torch

from ..lapq import level_grid


def pyramid_grids(
    num_frames: int,
    height: int,
    width: int,
    num_levels: int = 4,
    level_spatial_downsample: list[int] | None = None,
    level_temporal_downsample: list[int] | None = None,
    temporal_compression: int = 4,
    spatial_compression: int = 8,
) -> list[tuple[int, int, int]]:
    """Token grids of a PyraTok pyramid without building a tokenizer (defaults: the ``pyratok-tiny`` layout)."""
    spatial = level_spatial_downsample or [2 ** (num_levels - 1 - i) for i in range(num_levels)]
    temporal = level_temporal_downsample or [1] * num_levels
    latent = (1 + math.ceil((num_frames - 1) / temporal_compression), math.ceil(height / spatial_compression), math.ceil(width / spatial_compression))
    return [level_grid(latent, s, t) for s, t in zip(spatial, temporal)]


def count_forward_passes(grids, mode: str) -> int:
    """LM forward passes needed for one video: one per level (next-scale) or one per token (token mode)."""
    return len(grids) if mode == "next_scale" else sum(math.prod(g) for g in grids)


def benchmark_sampling(
    prior,
    grids,
    text_states: torch.Tensor | None = None,
    text_mask: torch.Tensor | None = None,
    modes=("next_scale", "token"),
    cache_options=(True, False),
    batch_size: int = 1,
    guidance_scale: float = 3.0,
    repeats: int = 3,
    warmup: int = 1,
    seed: int = 0,
    progress: bool = False,
) -> list[dict]:
    """Time ``prior.generate`` for every (mode, use_cache) pair; returns one row per pair.

    Each row: ``mode``, ``use_cache``, ``seconds_per_video`` (median over ``repeats`` of wall time / batch),
    ``forward_passes`` (per video), ``tokens`` (per video). Without ``text_states`` a random 8-token text of the
    prior's width is used (speed does not depend on the words).
    """
    from tqdm.auto import tqdm

    if text_states is None:
        gen = torch.Generator().manual_seed(seed)
        text_states = torch.randn(batch_size, 8, prior.config.text_dim, generator=gen)
        text_mask = torch.ones(batch_size, 8, dtype=torch.bool)
    rows = []
    pairs = [(m, c) for m in modes for c in cache_options]
    for mode, use_cache in tqdm(pairs, desc="sampling benchmark", disable=not progress):
        times = []
        for run in range(warmup + repeats):
            generator = torch.Generator().manual_seed(seed + run)
            start = time.perf_counter()
            prior.generate(text_states, text_mask, grids, mode=mode, use_cache=use_cache, guidance_scale=guidance_scale, generator=generator)
            if run >= warmup:
                times.append((time.perf_counter() - start) / text_states.shape[0])
        rows.append({
            "mode": mode,
            "use_cache": use_cache,
            "seconds_per_video": statistics.median(times),
            "forward_passes": count_forward_passes(grids, mode),
            "tokens": sum(math.prod(g) for g in grids),
        })  # fmt: skip
    return rows


def format_speed_table(rows: list[dict]) -> str:
    """A markdown table; ``x slower`` is each row's time over the fastest row's."""
    fastest = min(r["seconds_per_video"] for r in rows)
    lines = ["| mode | KV cache | LM passes | s / video | x slower than fastest |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['mode']} | {'yes' if r['use_cache'] else 'no'} | {r['forward_passes']} | {r['seconds_per_video']:.3f} | "
            f"{r['seconds_per_video'] / fastest:.1f} |"
        )
    return "\n".join(lines)
