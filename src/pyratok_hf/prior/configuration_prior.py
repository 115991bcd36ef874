"""Configuration of the PyraTok token prior (``model_type="pyratok_prior"``).

The prior is a small causal language model (a transformers ``Qwen2Model`` or ``LlamaModel`` built from the
nested ``lm_config`` dict, never a hand-written transformer) that reads a text prefix and predicts the
PyraTok token pyramid coarse to fine. See ``docs/text-to-video.md`` for the sequence layout.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from transformers import PretrainedConfig

from ..errors import ConfigError

#: Architectures the prior can be built on: ``lm_type`` -> (config class name, model class name).
SUPPORTED_LMS = {"qwen2": ("Qwen2Config", "Qwen2Model"), "llama": ("LlamaConfig", "LlamaModel")}

#: Small enough to train on 2 CPU cores in ~15 minutes on 64x64x17 clips (~1.7 M LM parameters).
DEFAULT_LM_CONFIG: dict[str, Any] = {
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0,
    "attention_dropout": 0.0,
    "vocab_size": 1,  # the LM's token table is unused: every input is an embedding (inputs_embeds)
}

#: The largest codebook a 2^K-way softmax head may have (2^16 = 65536 classes).
MAX_SOFTMAX_BITS = 16

MODES = ("next_scale", "token")
HEADS = ("bits", "softmax")


class PyraTokPriorConfig(PretrainedConfig):
    r"""Configuration of :class:`~pyratok_hf.prior.PyraTokPriorModel`.

    Args:
        codebook_bits (`int`): K, bits per token; must equal the tokenizer's ``codebook_bits``.
        num_levels (`int`): pyramid levels L; must equal the tokenizer's ``num_levels``.
        lm_type (`str`): ``"qwen2"`` (default) or ``"llama"``: which transformers decoder runs the sequence.
        lm_config (`dict`): keyword arguments of that architecture's config (``Qwen2Config`` / ``LlamaConfig``);
            missing keys take :data:`DEFAULT_LM_CONFIG`. ``hidden_size`` is the prior's width d.
        text_dim (`int`): width of the text states the prior reads. Default 384: the *raw* states of the text
            encoder (all-MiniLM-L6-v2), which keeps the prior independent of the tokenizer's ``text_proj``. Use the
            tokenizer's ``text_embed_dim`` instead for a prior that serves as the tokenizer's stage-2 L_AR hook
            (that hook receives projected states; see :class:`~pyratok_hf.prior.PriorARLoss`).
        text_encoder_name_or_path (`str`): text model whose states the prior was trained on (documentation and
            the default for :func:`~pyratok_hf.prior.training.train_prior`).
        text_hidden_layer (`int`): which hidden state of the text encoder is used (-1 = last).
        text_max_length (`int`): prompts are truncated to this many text tokens (with a warning).
        mode (`str`): ``"next_scale"`` (default, VAR style: all tokens of a level in parallel) or ``"token"``
            (token by token inside each level, raster t, h, w). The training order; ``generate`` defaults to it.
        head (`str`): ``"bits"`` (default): K independent bit logits trained with binary cross-entropy, as
            Infinity does; ``"softmax"``: one 2^K-way softmax, allowed only for K <= 16.
        cfg_dropout_prob (`float`): probability of dropping the text of a training sample (the text prefix is
            masked out entirely), so the same model gives the unconditional branch of classifier-free guidance.
        initializer_range (`float`): std of the normal initialisation of linear and embedding weights.
        guidance_scale (`float`): the classifier-free guidance scale the text-to-video pipeline uses when a call
            gives none (``pipe(prompt)``, ``pyratok generate``): the scale this prior was measured to follow
            prompts best at (a guidance sweep, ``benchmarks/bench_t2v_prompt_following.py``). 1 disables guidance.
    """

    model_type = "pyratok_prior"

    def __init__(
        self,
        codebook_bits: int = 16,
        num_levels: int = 4,
        lm_type: str = "qwen2",
        lm_config: dict | None = None,
        text_dim: int = 384,
        text_encoder_name_or_path: str | None = "sentence-transformers/all-MiniLM-L6-v2",
        text_hidden_layer: int = -1,
        text_max_length: int = 32,
        mode: str = "next_scale",
        head: str = "bits",
        cfg_dropout_prob: float = 0.1,
        initializer_range: float = 0.02,
        guidance_scale: float = 3.0,
        **kwargs,
    ):
        self.codebook_bits = codebook_bits
        self.num_levels = num_levels
        self.lm_type = lm_type
        self.lm_config = {**copy.deepcopy(DEFAULT_LM_CONFIG), **copy.deepcopy(lm_config or {})}
        self.lm_config.setdefault("initializer_range", initializer_range)  # the LM initialises its own layers
        self.text_dim = text_dim
        self.text_encoder_name_or_path = text_encoder_name_or_path
        self.text_hidden_layer = text_hidden_layer
        self.text_max_length = text_max_length
        self.mode = mode
        self.head = head
        self.cfg_dropout_prob = cfg_dropout_prob
        self.initializer_range = initializer_range
        self.guidance_scale = guidance_scale
        super().__init__(**kwargs)
        self.validate()

    @property
    def hidden_size(self) -> int:
        """The prior's width d (the LM's hidden size)."""
        return int(self.lm_config["hidden_size"])

    @property
    def num_outputs(self) -> int:
        """Outputs per token of the head: K bit logits, or 2^K class logits."""
        return self.codebook_bits if self.head == "bits" else 2**self.codebook_bits

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the field when the configuration cannot describe a prior."""
        K = self.codebook_bits
        if not isinstance(K, int) or not 1 <= K <= 64:
            raise ConfigError(f"codebook_bits must be an integer in [1, 64], got {K!r}.")
        if not isinstance(self.num_levels, int) or self.num_levels < 1:
            raise ConfigError(f"num_levels must be a positive integer, got {self.num_levels!r}.")
        if self.head not in HEADS:
            raise ConfigError(f"head must be one of {HEADS}, got {self.head!r}.")
        if self.head == "softmax" and K > MAX_SOFTMAX_BITS:
            raise ConfigError(
                f"head='softmax' needs a 2^K-way output layer; K={K} would be 2^{K} classes. It is allowed only for "
                f"codebook_bits <= {MAX_SOFTMAX_BITS}: use head='bits' (K bit logits) for larger codebooks."
            )
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, got {self.mode!r}.")
        if self.lm_type not in SUPPORTED_LMS:
            raise ConfigError(f"lm_type must be one of {sorted(SUPPORTED_LMS)}, got {self.lm_type!r}.")
        d, heads = self.lm_config.get("hidden_size"), self.lm_config.get("num_attention_heads")
        if not isinstance(d, int) or not isinstance(heads, int) or d <= 0 or heads <= 0 or d % heads:
            raise ConfigError(f"lm_config hidden_size ({d!r}) must be a positive multiple of num_attention_heads ({heads!r}).")
        if (d // heads) % 2:
            raise ConfigError(f"the head width hidden_size / num_attention_heads = {d // heads} must be even (rotary embeddings).")
        if not isinstance(self.text_dim, int) or self.text_dim < 1:
            raise ConfigError(f"text_dim must be a positive integer, got {self.text_dim!r}.")
        g = self.guidance_scale
        if isinstance(g, bool) or not isinstance(g, (int, float)) or not math.isfinite(g) or g < 0:
            raise ConfigError(f"guidance_scale must be a finite number >= 0 (1 = no guidance), got {g!r}.")
        if not 0.0 <= float(self.cfg_dropout_prob) < 1.0:
            raise ConfigError(f"cfg_dropout_prob must be in [0, 1), got {self.cfg_dropout_prob!r}.")

    def build_lm_config(self, attn_implementation: str | None = None):
        """The backbone LM's own config object (``Qwen2Config`` or ``LlamaConfig``).

        ``attn_implementation`` (``"sdpa"``, ``"eager"``, ...) is set on it when given (the prior passes its own).
        """
        import transformers

        config_cls = getattr(transformers, SUPPORTED_LMS[self.lm_type][0])
        kwargs = dict(self.lm_config)
        if attn_implementation is not None:
            kwargs["attn_implementation"] = attn_implementation
        rope_theta = kwargs.pop("rope_theta", None)
        if rope_theta is not None and "rope_parameters" not in kwargs:
            kwargs["rope_parameters"] = {"rope_theta": float(rope_theta), "rope_type": "default"}
        kwargs.setdefault("use_cache", True)
        return config_cls(**kwargs)

    @classmethod
    def for_tokenizer(cls, tokenizer_config, text_source: str = "raw", **overrides) -> "PyraTokPriorConfig":
        """A prior config matching a :class:`~pyratok_hf.PyraTokConfig` (bits, levels, text settings).

        ``text_source="raw"`` reads the text encoder's own states (width ``text_hidden_size``; the text-to-video
        pipeline); ``"projected"`` reads the tokenizer's projected states (width ``text_embed_dim``; what the
        tokenizer's L_AR hook receives during stage-2 training).
        """
        if text_source not in ("raw", "projected"):
            raise ConfigError(f"text_source must be 'raw' or 'projected', got {text_source!r}.")
        text_dim = tokenizer_config.text_hidden_size if text_source == "raw" else tokenizer_config.text_embed_dim
        fields = dict(
            codebook_bits=tokenizer_config.codebook_bits,
            num_levels=tokenizer_config.num_levels,
            text_dim=text_dim,
            text_encoder_name_or_path=tokenizer_config.text_encoder_name_or_path,
            text_hidden_layer=tokenizer_config.text_hidden_layer,
            text_max_length=tokenizer_config.text_max_length,
        )
        fields.update(overrides)
        return cls(**fields)
