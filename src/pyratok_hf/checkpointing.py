"""Which checkpoint function a module should use when the model classes turned gradient checkpointing on.

transformers' ``gradient_checkpointing_enable(gradient_checkpointing_kwargs=...)`` and diffusers'
``enable_gradient_checkpointing(...)`` set ``module.gradient_checkpointing`` and ``module._gradient_checkpointing_func``
(a ``functools.partial`` of ``torch.utils.checkpoint.checkpoint`` carrying ``use_reentrant``) on every module that
declares the flag; our checkpointed modules call what they were given.
"""

from __future__ import annotations

import functools

import torch
from torch import nn


def checkpoint_function(module: nn.Module):
    """The checkpoint function the model classes installed on ``module``, else non-reentrant checkpointing."""
    func = getattr(module, "_gradient_checkpointing_func", None)
    if func is None:
        return functools.partial(torch.utils.checkpoint.checkpoint, use_reentrant=False)
    keywords = getattr(func, "keywords", None) or {}
    if keywords.get("use_reentrant", False):
        # A reentrant checkpoint only back-propagates into its parameters if some input needs a gradient; a
        # frozen input (pixels, an empty cache) does not, so hand it one that does (its value is unused).
        def reentrant(step, *args):
            anchor = torch.ones((), requires_grad=True)
            return func(lambda _anchor, *rest: step(*rest), anchor, *args)

        return reentrant
    return func
