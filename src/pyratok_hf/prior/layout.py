"""The flattened sequence of :class:`~pyratok_hf.prior.PyraTokPriorModel` and its block-causal attention mask.

Shared by teacher forcing (:mod:`~pyratok_hf.prior.modeling_prior`) and sampling
(:mod:`~pyratok_hf.prior.generation`); it imports neither, so the two never import each other through it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class SequenceLayout:
    """Where everything sits in the flattened sequence (shared by the whole batch)."""

    text_length: int
    grids: list[tuple[int, int, int]]
    sep_positions: list[int]  # index of SEP_l
    block_starts: list[int]  # first slot of level l
    block_ends: list[int]  # one past the last slot of level l
    group: torch.Tensor  # [N] 0 = text, 1 = SOV, 2 + l = SEP_l and the slots of level l

    @property
    def length(self) -> int:
        return self.block_ends[-1]

    @property
    def sov_position(self) -> int:
        return self.text_length


def build_layout(text_length: int, grids: list[tuple[int, int, int]]) -> SequenceLayout:
    """Sequence positions of the text prefix, SOV, and each level's separator + slots."""
    seps, starts, ends, groups = [], [], [], [0] * text_length + [1]
    position = text_length + 1
    for level, grid in enumerate(grids):
        count = math.prod(grid)
        seps.append(position)
        starts.append(position + 1)
        ends.append(position + 1 + count)
        groups += [2 + level] * (1 + count)
        position += 1 + count
    return SequenceLayout(text_length, [tuple(g) for g in grids], seps, starts, ends, torch.tensor(groups))


def block_causal_mask(layout: SequenceLayout, text_mask: torch.Tensor, mode: str, dtype: torch.dtype) -> torch.Tensor:
    """Additive 4D mask ``[B, 1, N, N]`` (0 = may attend, dtype min = blocked) for ``Qwen2Model``/``LlamaModel``.

    Query i may attend key j when j's group is earlier than i's, or the same group and (text prefix, or
    ``next_scale`` level block, or ``token`` mode with j <= i). Padded text keys are blocked for everyone; each
    position may always attend to itself so that no softmax row is empty. A float (not bool) mask works with
    both the ``eager`` (added to the scores) and ``sdpa`` attention implementations.
    """
    group = layout.group.to(text_mask.device)
    n = group.numel()
    earlier = group[None, :] < group[:, None]
    same = group[None, :] == group[:, None]
    if mode == "token":
        index = torch.arange(n, device=group.device)
        same_allowed = same & ((group[:, None] == 0) | (index[None, :] <= index[:, None]))
    else:
        same_allowed = same
    allowed = earlier | same_allowed  # [N, N]
    key_valid = torch.cat([text_mask.bool(), text_mask.new_ones(text_mask.shape[0], n - layout.text_length, dtype=torch.bool)], 1)
    allowed = allowed[None] & key_valid[:, None, :]
    allowed = allowed | torch.eye(n, dtype=torch.bool, device=group.device)[None]
    mask = torch.zeros(allowed.shape, dtype=dtype, device=group.device)
    mask = mask.masked_fill(~allowed, torch.finfo(dtype).min)
    return mask.unsqueeze(1)



def position_ids(layout: SequenceLayout, text_mask: torch.Tensor) -> torch.Tensor:
    """``[B, N]`` rotary positions: each position counts the *real* positions before it in its row.

    Padded text positions are skipped (a padded one repeats its predecessor's index; nothing attends to it),
    so a prompt padded to the longest one of a batch sees exactly the positions it sees alone: a video does
    not depend on which other prompts share its batch. Without padding this is ``0 .. N-1``.
    """
    n = layout.length
    valid = torch.cat([text_mask.bool(), text_mask.new_ones(text_mask.shape[0], n - layout.text_length, dtype=torch.bool)], 1)
    return (valid.long().cumsum(1) - 1).clamp_min(0)


__all__ = ["SequenceLayout", "build_layout", "block_causal_mask", "position_ids"]
