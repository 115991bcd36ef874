"""Start-up time of the ``pyratok`` command next to ``python -c "import torch"``, measured in one run.

Each command runs ``--repeats`` times as a fresh process, the commands interleaved round by round (so a burst of
load on a shared machine hits them all alike); the table gives the median wall time and its ratio to
``import torch``. The target (issue "First ten minutes"): ``pyratok --help`` and ``pyratok reconstruct --help``
within 1.5x of ``import torch``.

    python benchmarks/bench_startup.py [--repeats 7] [--json benchmarks/results/bench_startup.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_RATIO = 1.5


def pyratok_command() -> list[str]:
    """The installed ``pyratok`` console script next to this interpreter, else ``python -m pyratok_hf.cli``."""
    script = Path(sys.executable).with_name("pyratok")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "pyratok_hf.cli"]


def commands() -> dict[str, list[str]]:
    pyratok = pyratok_command()
    return {
        'python -c "import torch"': [sys.executable, "-c", "import torch"],
        'python -c "import pyratok_hf"': [sys.executable, "-c", "import pyratok_hf"],
        "pyratok --help": pyratok + ["--help"],
        "pyratok reconstruct --help": pyratok + ["reconstruct", "--help"],
    }


def time_once(argv: list[str], env: dict) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def measure(repeats: int = 7, warmup: int = 1) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    todo = commands()
    for argv in todo.values():  # warm the page cache and .pyc files
        for _ in range(warmup):
            time_once(argv, env)
    times: dict[str, list[float]] = {name: [] for name in todo}
    for _ in range(repeats):
        for name, argv in todo.items():
            times[name].append(time_once(argv, env))
    baseline = statistics.median(times['python -c "import torch"'])
    rows = []
    for name, values in times.items():
        median = statistics.median(values)
        rows.append({"command": name, "median_s": round(median, 3), "min_s": round(min(values), 3), "ratio_to_import_torch": round(median / baseline, 2)})
    passed = all(r["ratio_to_import_torch"] <= TARGET_RATIO for r in rows if r["command"].startswith("pyratok"))
    return {
        "repeats": repeats, "rows": rows, "target_ratio": TARGET_RATIO, "target_met": passed,
        "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }  # fmt: skip


def table(result: dict) -> str:
    lines = ["| command | median | min | x import torch |", "|---|---:|---:|---:|"]
    lines += [f"| `{r['command']}` | {r['median_s']:.3f} s | {r['min_s']:.3f} s | {r['ratio_to_import_torch']:.2f}x |" for r in result["rows"]]
    verdict = "met" if result["target_met"] else "NOT met"
    lines.append(f"\n{result['repeats']} runs each, interleaved; target (pyratok commands <= {TARGET_RATIO}x import torch): {verdict}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", default=None, help="also write the result here")
    args = parser.parse_args(argv)
    result = measure(args.repeats)
    print(table(result))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0 if result["target_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
