"""Resumable run state as safetensors + JSON (no pickle): weights, EMA weights, optimizer state, step.

``save_run_state(folder, tensors, optimizer, meta)`` writes ``state.safetensors`` (every tensor, flattened:
``model.*``, ``ema.*``, ``optimizer.<param index>.<name>``) and ``state.json`` (step, CPU-minutes, the
optimizer's param groups, any JSON metadata), each atomically; ``load_run_state`` reverses it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


def save_run_state(folder, tensors: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer, meta: dict) -> None:
    folder = Path(folder)
    flat = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    optim = optimizer.state_dict()
    for index, values in optim["state"].items():
        for name, value in values.items():
            flat[f"optimizer.{index}.{name}"] = torch.as_tensor(value).contiguous().cpu()
    save_file(flat, folder / "state.safetensors.partial")
    (folder / "state.json.partial").write_text(json.dumps({**meta, "param_groups": optim["param_groups"]}))
    os.replace(folder / "state.safetensors.partial", folder / "state.safetensors")
    os.replace(folder / "state.json.partial", folder / "state.json")


def load_run_state(folder, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Restore ``optimizer`` in place; return (the non-optimizer tensors, the metadata)."""
    folder = Path(folder)
    flat = load_file(folder / "state.safetensors")
    meta = json.loads((folder / "state.json").read_text())
    state: dict[int, dict] = {}
    for key in [k for k in flat if k.startswith("optimizer.")]:
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = flat.pop(key)
    optimizer.load_state_dict({"state": state, "param_groups": meta.pop("param_groups")})
    return flat, meta


def has_run_state(folder) -> bool:
    return (Path(folder) / "state.safetensors").is_file() and (Path(folder) / "state.json").is_file()
