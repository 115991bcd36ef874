"""Text-to-video through an autoregressive prior over the PyraTok token pyramid.

* :class:`PyraTokPriorConfig` / :class:`PyraTokPriorModel`: a small transformers causal LM (Qwen2 or Llama)
  predicting the pyramid coarse to fine from text (``model_type="pyratok_prior"``, registered with
  ``AutoConfig`` / ``AutoModel``).
* :class:`PriorARLoss`: the prior as the tokenizer's L_AR hook (``PyraTokModel.set_ar_loss_hook``).
* :func:`~pyratok_hf.prior.generation.generate`: next-scale or token-by-token sampling with guidance.
* :mod:`pyratok_hf.prior.training`: ``train_prior`` and ``build_t2v_pipeline``.
* :mod:`pyratok_hf.prior.evaluation`: sampling-speed benchmark.
"""

from .configuration_prior import PyraTokPriorConfig
from .modeling_prior import PriorARLoss, PyraTokPriorModel, PyraTokPriorOutput, register_auto_classes

register_auto_classes()

__all__ = ["PyraTokPriorConfig", "PyraTokPriorModel", "PyraTokPriorOutput", "PriorARLoss", "register_auto_classes"]
