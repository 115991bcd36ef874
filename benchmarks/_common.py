"""Shared helpers of the benchmark scripts: timing, peak memory, subprocess workers, tables, results, plots.

Memory is measured two ways, because PyTorch has no CPU allocator statistics:

* **peak RSS delta** (primary): each measurement runs in a fresh subprocess; just before the measured call the
  kernel's peak-RSS counter is reset (``echo 5 > /proc/self/clear_refs``, Linux >= 4.0) and the baseline RSS read
  (``VmRSS``); after it the new peak (``VmHWM``) is read. ``peak - baseline`` is what the call itself needed, all
  allocations included (PyTorch's CPU allocator returns large blocks to the OS, so this tracks real use). Where
  ``clear_refs`` is unavailable we fall back to ``ru_maxrss`` minus the baseline (flagged in the results).
* **peak live tensor bytes** (secondary, exact for tensors): a ``TorchDispatchMode`` records every op output's
  storage and releases it when its last tensor dies; scratch memory inside kernels is not seen.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
import weakref
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "benchmarks" / "results"
IMAGES_DIR = REPO / "docs" / "images"
WORKER_FLAG = "--_worker"
RESULT_PREFIX = "BENCH_RESULT "


# ----------------------------------------------------------------------------- memory
def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def measure_peak_rss(fn: Callable[[], Any]) -> tuple[Any, dict]:
    """Run ``fn`` and return ``(its result, {"peak_rss_delta_mb", "baseline_rss_mb", "method"})``."""
    import gc
    import resource

    gc.collect()
    exact = _reset_peak_rss()
    baseline_kib = _status_kib("VmRSS") or 0
    start_max_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = fn()
    if exact:
        peak_kib = _status_kib("VmHWM") or baseline_kib
        method = "VmHWM after clear_refs"
    else:
        peak_kib = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, start_max_kib)
        method = "ru_maxrss (process-lifetime peak; may include import-time peak)"
    return result, {"peak_rss_delta_mb": max(0, peak_kib - baseline_kib) / 1024, "baseline_rss_mb": baseline_kib / 1024, "method": method}


def tensor_peak_tracker():
    """A context manager whose ``.peak`` is the peak bytes of live CPU tensor storages created inside it."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    class TensorMemoryPeak(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.live: dict[int, list[int]] = {}
            self.current = 0
            self.peak = 0

        def _release(self, key):
            entry = self.live.get(key)
            if entry is not None:
                entry[1] -= 1
                if entry[1] == 0:
                    self.current -= entry[0]
                    del self.live[key]

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            for tensor in tree_flatten(out)[0]:
                if isinstance(tensor, torch.Tensor) and tensor.device.type == "cpu":
                    storage = tensor.untyped_storage()
                    key = storage.data_ptr()
                    entry = self.live.get(key)
                    if entry is None:
                        entry = self.live[key] = [storage.nbytes(), 0]
                        self.current += entry[0]
                        self.peak = max(self.peak, self.current)
                    entry[1] += 1
                    weakref.finalize(tensor, self._release, key)
            return out

    return TensorMemoryPeak()


# ----------------------------------------------------------------------------- timing
def time_calls(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1) -> dict[str, dict]:
    """Time several callables *interleaved* (a, b, a, b, ...) so machine load hits them alike.

    Returns per name ``{"min_s", "median_s", "runs", "samples_s"}``. On a loaded machine compare either minima or,
    better, the median of per-round ratios (:func:`paired_ratio`), which cancels slow drifts in load.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return {name: {"min_s": min(v), "median_s": statistics.median(v), "runs": len(v), "samples_s": v} for name, v in samples.items()}


def paired_ratio(timings: dict, numerator: list[str], denominator: list[str]) -> float:
    """Median over rounds of sum(numerator times) / sum(denominator times) measured in the same round."""
    rounds = len(timings[numerator[0]]["samples_s"])
    ratios = [
        sum(timings[n]["samples_s"][i] for n in numerator) / sum(timings[d]["samples_s"][i] for d in denominator)
        for i in range(rounds)
    ]
    return statistics.median(ratios)


# ----------------------------------------------------------------------------- subprocess workers
def run_worker(script: str, spec: dict, timeout: float = 1800, threads: int | None = None) -> dict:
    """Run ``python SCRIPT --_worker JSON`` and return the dict it printed (``{"error": ...}`` on failure)."""
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    command = [sys.executable, script, WORKER_FLAG, json.dumps(spec)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX) :])
    tail = (done.stderr or done.stdout)[-1500:]
    return {"error": f"worker exited with {done.returncode}: {tail.strip().splitlines()[-1] if tail.strip() else 'no output'}"}


def worker_main(handler: Callable[[dict], dict]) -> bool:
    """If this process is a worker, run ``handler(spec)``, print its result and return True."""
    if WORKER_FLAG not in sys.argv:
        return False
    spec = json.loads(sys.argv[sys.argv.index(WORKER_FLAG) + 1])
    if spec.get("threads"):
        import torch

        torch.set_num_threads(int(spec["threads"]))
    print(RESULT_PREFIX + json.dumps(handler(spec)), flush=True)
    return True


# ----------------------------------------------------------------------------- reporting
def machine_info(threads: int | None = None) -> dict:
    import torch

    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": threads or torch.get_num_threads(),
        "load_average": load,
        "python": platform.python_version(),
    }


def fmt(value, digits: int = 3, suffix: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value
    if abs(value) >= 100:
        return f"{value:.0f}{suffix}"
    return f"{value:.{digits}g}{suffix}"


def print_table(title: str, headers: list[str], rows: list[list[Any]]) -> str:
    """Print (and return) a GitHub-markdown table."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = [f"### {title}", "", "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths)) + " |",
             "| " + " | ".join("-" * w for w in widths) + " |"]  # fmt: skip
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |" for row in cells]
    text = "\n".join(lines) + "\n"
    print(text, flush=True)
    return text


def write_results(name: str, payload: dict) -> Path:
    """Write ``benchmarks/results/NAME.json`` atomically."""
    from pyratok_hf.video_io import atomic_write_json

    return atomic_write_json(payload, RESULTS_DIR / f"{name}.json")


def save_plot(fig, name: str) -> Path:
    """Save a matplotlib figure to ``docs/images/NAME.png`` atomically."""
    from pyratok_hf.video_io import atomic_output_path

    path = IMAGES_DIR / f"{name}.png"
    with atomic_output_path(path) as temporary:
        fig.savefig(temporary, dpi=110, bbox_inches="tight")
    return path


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def tiny_model(seed: int = 0, **overrides):
    """The ``pyratok-tiny`` preset with random weights (the bundled trained model when present and asked for)."""
    import torch

    from pyratok_hf import PyraTokConfig, PyraTokModel

    torch.manual_seed(seed)
    return PyraTokModel(PyraTokConfig.from_preset("pyratok-tiny", **overrides)).eval()


def load_model(path: str | None, preset: str = "pyratok-tiny", **overrides):
    """``PyraTokModel.from_pretrained(path)`` when given, else a random-weight model of ``preset``."""
    import torch

    from pyratok_hf import PyraTokConfig, PyraTokModel

    if path:
        return PyraTokModel.from_pretrained(path).eval()
    torch.manual_seed(0)
    return PyraTokModel(PyraTokConfig.from_preset(preset, **overrides)).eval()
