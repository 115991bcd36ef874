"""``pyratok train RUN.yaml [--no-resume] [--resume-from CHECKPOINT] [--set key=value ...]``.

Multi-GPU / multi-process: ``accelerate launch [--config_file examples/accelerate/ddp.yaml] -m pyratok_hf.cli train RUN.yaml``.
"""

from __future__ import annotations

import json

import yaml


def add_args(parser) -> None:
    parser.add_argument("run_file", help="YAML or JSON run file (see examples/configs/)")
    parser.add_argument("--no-resume", action="store_true", help="start over even if output_dir holds checkpoints")
    parser.add_argument("--resume-from", default=None, help="resume from this checkpoint folder")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="override a setting, dotted for nested keys, e.g. --set training.max_steps=50 (value parsed as YAML)",
    )


def apply_overrides(raw: dict, assignments: list[str]) -> dict:
    from ..errors import ConfigError

    for item in assignments:
        if "=" not in item:
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}.")
        key, value = item.split("=", 1)
        target = raw
        parts = key.split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = yaml.safe_load(value)
    return raw


def run(args) -> int:
    import os

    from .config import RunConfig
    from .trainer import train

    with open(args.run_file) as f:
        raw = json.load(f) if args.run_file.endswith(".json") else yaml.safe_load(f)
    raw = apply_overrides(raw or {}, args.set)
    raw["source_path"] = os.path.abspath(args.run_file)
    config = RunConfig.from_dict(raw)
    summary = train(config, resume=args.resume_from or (not args.no_resume))
    print(f"trained {summary['task']} for {summary['global_step']} steps in {summary['train_seconds']:.0f}s; "
          f"final loss {summary['train_loss']:.4f}; outputs in {config.output_dir}")
    return 0
