"""The autoregressive token prior: teacher forcing, block-causal masking, sampling, the L_AR hook, training."""

from __future__ import annotations

import json
import os

import pytest
import torch
from conftest import make_tiny_config, make_tiny_model, random_text_embeds, random_video

from pyratok_hf.errors import ConfigError, InvalidInputError
from pyratok_hf.prior import PriorARLoss, PyraTokPriorConfig, PyraTokPriorModel
from pyratok_hf.prior.evaluation import benchmark_sampling, count_forward_passes, format_speed_table, pyramid_grids
from pyratok_hf.prior.generation import sample_bits, sample_classes
from pyratok_hf.quantizer import binary_quantize, ids_to_codes

K, LEVELS, TEXT_DIM = 8, 3, 16
GRIDS = [(2, 1, 1), (2, 2, 2), (2, 4, 4)]
TINY_LM = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4)


# Tiny matmuls on two shared, busy cores are far faster single-threaded (conftest.one_thread).
pytestmark = pytest.mark.usefixtures("one_thread")


def make_prior(seed: int = 0, **overrides) -> PyraTokPriorModel:
    torch.manual_seed(seed)
    fields = dict(codebook_bits=K, num_levels=LEVELS, text_dim=TEXT_DIM, lm_config=TINY_LM, cfg_dropout_prob=0.0)
    fields.update(overrides)
    return PyraTokPriorModel(PyraTokPriorConfig(**fields)).eval()


def random_ids(batch: int = 2, seed: int = 0, grids=GRIDS, bits: int = K):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 2**bits, (batch, *g), generator=gen) for g in grids]


def random_text(batch: int = 2, tokens: int = 5, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    states = torch.randn(batch, tokens, TEXT_DIM, generator=gen)
    mask = torch.ones(batch, tokens, dtype=torch.bool)
    mask[0, 3:] = False  # first prompt is shorter: padding must be ignored
    return states, mask


@pytest.fixture(scope="module")
def prior():
    # Larger initial weights than the default 0.02, so that text and guidance visibly change the samples.
    return make_prior(initializer_range=0.2)


# ----------------------------------------------------------------------------- config
def test_config_round_trip_and_auto_classes(tmp_path):
    from transformers import AutoConfig, AutoModel

    model = make_prior()
    model.save_pretrained(tmp_path)
    config = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, PyraTokPriorConfig) and config.lm_config["hidden_size"] == 32
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, PyraTokPriorModel)
    ids, (states, mask) = random_ids(), random_text()
    a = model(token_ids=ids, text_states=states, text_mask=mask).logits
    b = loaded(token_ids=ids, text_states=states, text_mask=mask).logits
    assert all(torch.allclose(x, y, atol=1e-6) for x, y in zip(a, b))


def test_softmax_head_refused_for_more_than_16_bits():
    with pytest.raises(ConfigError, match="softmax"):
        PyraTokPriorConfig(codebook_bits=17, head="softmax")
    PyraTokPriorConfig(codebook_bits=16, head="softmax")  # the largest allowed


@pytest.mark.parametrize("field,value", [("mode", "diagonal"), ("head", "mixture"), ("lm_type", "gpt9"), ("cfg_dropout_prob", 1.0)])
def test_config_rejects_bad_fields(field, value):
    with pytest.raises(ConfigError):
        PyraTokPriorConfig(**{field: value})


def test_llama_backbone_works():
    model = make_prior(lm_type="llama")
    assert type(model.lm).__name__ == "LlamaModel"
    out = model(token_ids=random_ids(), text_states=random_text()[0])
    assert torch.isfinite(out.loss)


def test_for_tokenizer_matches_the_tokenizer_config():
    tok = make_tiny_config()
    raw = PyraTokPriorConfig.for_tokenizer(tok)
    projected = PyraTokPriorConfig.for_tokenizer(tok, text_source="projected")
    assert raw.codebook_bits == tok.codebook_bits and raw.num_levels == tok.num_levels
    assert raw.text_dim == tok.text_hidden_size and projected.text_dim == tok.text_embed_dim


# ----------------------------------------------------------------------------- teacher forcing
@pytest.mark.parametrize("mode", ["next_scale", "token"])
def test_teacher_forcing_loss_shapes_and_finite(mode):
    prior = make_prior()
    states, mask = random_text()
    out = prior(token_ids=random_ids(), text_states=states, text_mask=mask, mode=mode)
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    assert out.level_losses.shape == (LEVELS,)
    assert torch.allclose(out.loss, out.level_losses.sum())
    assert [tuple(l.shape) for l in out.logits] == [(2, *g, K) for g in GRIDS]
    # A random prior is near chance: log 2 nats per bit.
    assert torch.allclose(out.level_losses, torch.full((LEVELS,), 0.6931), atol=0.05)
    assert out.to_tuple()[0] is out.loss  # loss is the first field


def test_unconditional_forward_without_text(prior):
    out = prior(token_ids=random_ids())
    assert torch.isfinite(out.loss)


@pytest.mark.parametrize("mode,head", [("next_scale", "bits"), ("token", "bits"), ("next_scale", "softmax")])
def test_loss_decreases_when_overfitting_two_clips(mode, head):
    model = make_prior(seed=1, mode=mode, head=head).train()
    ids, (states, mask) = random_ids(seed=3), random_text(seed=3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss = model(token_ids=ids, text_states=states, text_mask=mask).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0], losses


def test_invalid_inputs_raise_typed_errors(prior):
    with pytest.raises(InvalidInputError):
        prior(token_ids=random_ids()[0])  # a tensor, not a list
    with pytest.raises(InvalidInputError):
        prior(token_ids=random_ids(), level_codes=[ids_to_codes(i, K) for i in random_ids()])
    with pytest.raises(InvalidInputError, match="text_dim"):
        prior(token_ids=random_ids(), text_states=torch.randn(2, 4, TEXT_DIM + 1))
    with pytest.raises(InvalidInputError):
        prior(token_ids=[torch.full((2, 2, 1, 1), 2**K)] + random_ids()[1:])  # id out of range


# ----------------------------------------------------------------------------- the block-causal mask
def test_next_scale_mask_later_levels_do_not_change_earlier_logits(prior):
    states, mask = random_text()
    codes = [ids_to_codes(i, K) for i in random_ids()]
    base = prior(level_codes=codes, text_states=states, text_mask=mask).logits
    changed = [c.clone() for c in codes]
    changed[1] = -changed[1]  # flip every bit of level 1
    after = prior(level_codes=changed, text_states=states, text_mask=mask).logits
    assert torch.allclose(base[0], after[0], atol=1e-6) and torch.allclose(base[1], after[1], atol=1e-6)
    assert not torch.allclose(base[2], after[2], atol=1e-4)  # level 2 is predicted from level 1


def test_token_mode_mask_later_tokens_do_not_change_earlier_logits(prior):
    states, mask = random_text()
    codes = [ids_to_codes(i, K) for i in random_ids()]
    base = prior(level_codes=codes, text_states=states, text_mask=mask, mode="token").logits
    changed = [c.clone() for c in codes]
    j = 9  # raster index in the finest 2x4x4 grid
    flat = changed[2].reshape(2, -1, K)
    flat[:, j] = -flat[:, j]
    after = prior(level_codes=changed, text_states=states, text_mask=mask, mode="token").logits
    for level in range(2):
        assert torch.allclose(base[level], after[level], atol=1e-6)
    before_slots = base[2].reshape(2, -1, K)
    after_slots = after[2].reshape(2, -1, K)
    assert torch.allclose(before_slots[:, : j + 1], after_slots[:, : j + 1], atol=1e-6)
    assert not torch.allclose(before_slots[:, j + 1 :], after_slots[:, j + 1 :], atol=1e-4)


def test_padded_text_positions_are_ignored(prior):
    states, mask = random_text()
    codes = random_ids()
    base = prior(token_ids=codes, text_states=states, text_mask=mask).logits
    noisy = states.clone()
    noisy[0, 3:] = 100.0  # only padding of the first prompt
    after = prior(token_ids=codes, text_states=noisy, text_mask=mask).logits
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(base, after))


# ----------------------------------------------------------------------------- generation
@pytest.mark.parametrize("mode", ["next_scale", "token"])
@pytest.mark.parametrize("guidance", [1.0, 3.0])
def test_kv_cache_generation_equals_no_cache(prior, mode, guidance):
    states, mask = random_text()
    kw = dict(mode=mode, guidance_scale=guidance)
    with_cache = prior.generate(states, mask, GRIDS, generator=torch.Generator().manual_seed(7), use_cache=True, **kw)
    without = prior.generate(states, mask, GRIDS, generator=torch.Generator().manual_seed(7), use_cache=False, **kw)
    assert [tuple(x.shape) for x in with_cache] == [(2, *g) for g in GRIDS]
    assert all(x.dtype == torch.long and int(x.min()) >= 0 and int(x.max()) < 2**K for x in with_cache)
    assert all(torch.equal(a, b) for a, b in zip(with_cache, without))


def test_seed_prompt_and_guidance_control_the_sample(prior):
    states, mask = random_text()

    def sample(seed=0, s=states, m=mask, g=3.0):
        return torch.cat([x.flatten() for x in prior.generate(s, m, GRIDS, guidance_scale=g, generator=torch.Generator().manual_seed(seed))])

    reference = sample()
    assert torch.equal(reference, sample())
    assert not torch.equal(reference, sample(seed=1))
    assert not torch.equal(reference, sample(s=random_text(seed=5)[0]))
    assert not torch.equal(reference, sample(g=1.0))


def test_negative_prompt_and_unconditional_generation(prior):
    states, mask = random_text()
    neg, neg_mask = random_text(batch=1, seed=9)
    a = prior.generate(states, mask, GRIDS, guidance_scale=4.0, generator=torch.Generator().manual_seed(0))
    b = prior.generate(states, mask, GRIDS, guidance_scale=4.0, negative_text_states=neg, negative_text_mask=neg_mask, generator=torch.Generator().manual_seed(0))
    assert any(not torch.equal(x, y) for x, y in zip(a, b))
    free = prior.generate(None, None, GRIDS, batch_size=3, generator=torch.Generator().manual_seed(0))
    assert free[0].shape[0] == 3


def test_softmax_head_generation_with_and_without_cache():
    model = make_prior(head="softmax")
    states, mask = random_text()
    for mode in ("next_scale", "token"):
        a = model.generate(states, mask, GRIDS, mode=mode, guidance_scale=2.0, top_k=50, top_p=0.9, generator=torch.Generator().manual_seed(3))
        b = model.generate(states, mask, GRIDS, mode=mode, guidance_scale=2.0, top_k=50, top_p=0.9, generator=torch.Generator().manual_seed(3), use_cache=False)
        assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_level_callback_sees_each_level_and_can_replace_it(prior):
    states, mask = random_text()
    seen = []

    def callback(level, ids):
        seen.append((level, len(ids)))
        if level == 0:
            return [torch.zeros_like(ids[0])]

    out = prior.generate(states, mask, GRIDS, level_callback=callback, generator=torch.Generator().manual_seed(0))
    assert seen == [(0, 1), (1, 2), (2, 3)]
    assert int(out[0].abs().sum()) == 0


def test_generate_rejects_bad_arguments(prior):
    states, mask = random_text()
    with pytest.raises(InvalidInputError):
        prior.generate(states, mask, GRIDS, temperature=-1.0)
    with pytest.raises(InvalidInputError):
        prior.generate(states, mask, GRIDS, top_p=1.5)
    with pytest.raises(InvalidInputError):
        prior.generate(states, mask, GRIDS + GRIDS)  # more levels than the prior has
    with pytest.raises(InvalidInputError):
        prior.generate(states, mask, GRIDS, mode="spiral")


def test_bit_sampling_filters():
    logits = torch.randn(64, K, generator=torch.Generator().manual_seed(0)) * 2
    greedy = torch.where(logits >= 0, 1.0, -1.0)
    gen = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    assert torch.equal(sample_bits(logits, temperature=0), greedy)
    assert torch.equal(sample_bits(logits, top_k=0, generator=gen()), greedy)
    assert torch.equal(sample_bits(logits, top_p=0.5, generator=gen()), greedy)  # every bit is >= 50% confident
    assert torch.equal(sample_bits(logits, top_k=K, generator=gen()), sample_bits(logits, generator=gen()))
    free = sample_bits(logits, generator=gen())
    two = sample_bits(logits, top_k=2, generator=gen())
    differs = (two != greedy).sum(-1)
    assert int(differs.max()) <= 2 and bool((free != greedy).any())
    # top_p: bits more confident than p take their argmax.
    probs = torch.sigmoid(logits)
    confident = torch.maximum(probs, 1 - probs) >= 0.8
    nucleus = sample_bits(logits, top_p=0.8, generator=gen())
    assert torch.equal(nucleus[confident], greedy[confident])
    ids = sample_classes(torch.randn(10, 32), temperature=0)
    assert ids.shape == (10,)


# ----------------------------------------------------------------------------- L_AR hook
def test_ar_hook_gradients_reach_the_codes():
    model = make_prior(text_dim=TEXT_DIM)
    hook = PriorARLoss(model)
    logits = [torch.randn(2, *g, K, requires_grad=True) for g in GRIDS]
    codes = [binary_quantize(l) for l in logits]  # straight-through, like the tokenizer's
    states, mask = random_text()
    loss = hook(codes, states, mask)
    loss.backward()
    for level, l in enumerate(logits):
        assert l.grad is not None and float(l.grad.abs().sum()) > 0, level
    with pytest.raises(ConfigError, match="projected"):
        hook(codes, torch.randn(2, 5, TEXT_DIM * 2), mask)


def test_ar_hook_in_the_tokenizer_training_loss_reaches_the_quantizer():
    tok = make_tiny_model()
    prior = make_prior(text_dim=tok.config.text_embed_dim, num_levels=tok.config.num_levels)
    tok.set_ar_loss_hook(prior.as_ar_loss_hook())
    tok.train()
    out = tok(random_video(1, 3, 5, 32, 32), text_embeds=random_text_embeds(1), return_loss=True)
    assert float(out.ar_loss.detach()) > 0
    out.ar_loss.backward()
    to_bits = tok.lapq.levels[0].to_bits[-1].weight
    assert to_bits.grad is not None and float(to_bits.grad.abs().sum()) > 0
    assert prior.head.weight.grad is not None  # the prior trains jointly when it is in the optimizer


# ----------------------------------------------------------------------------- evaluation and training
def test_sampling_benchmark_reports_every_setting(prior):
    rows = benchmark_sampling(prior, GRIDS, repeats=1, warmup=0, guidance_scale=1.0)
    assert {(r["mode"], r["use_cache"]) for r in rows} == {("next_scale", True), ("next_scale", False), ("token", True), ("token", False)}
    assert all(r["seconds_per_video"] > 0 for r in rows)
    assert count_forward_passes(GRIDS, "next_scale") == 3 and count_forward_passes(GRIDS, "token") == 2 + 8 + 32
    assert "x slower" in format_speed_table(rows)
    assert pyramid_grids(17, 64, 64) == [(5, 1, 1), (5, 2, 2), (5, 4, 4), (5, 8, 8)]


class _Clips(torch.utils.data.Dataset):
    def __init__(self):
        self.captions = ["a red ball moves left", "a blue square spins"]

    def __len__(self):
        return 2

    def __getitem__(self, i):
        return {"pixel_values": random_video(3, 5, 32, 32, seed=i), "text": self.captions[i]}


def test_train_prior_runs_and_saves_atomically(tmp_path):
    from transformers import AutoTokenizer, BertConfig, BertModel

    from pyratok_hf.prior.training import train_prior
    from pyratok_hf.text_encoder import resolve_text_encoder_path

    tok = make_tiny_model()
    text_tokenizer = AutoTokenizer.from_pretrained(resolve_text_encoder_path("all-MiniLM-L6-v2"))
    torch.manual_seed(0)
    text_encoder = BertModel(BertConfig(vocab_size=text_tokenizer.vocab_size, hidden_size=TEXT_DIM, num_hidden_layers=1,
                                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=64))  # fmt: skip
    config = PyraTokPriorConfig.for_tokenizer(tok.config, text_dim=TEXT_DIM, lm_config=TINY_LM)
    out_dir = tmp_path / "prior"
    prior = train_prior(tok, _Clips(), out_dir, steps=4, batch_size=2, lr=1e-3, prior_config=config, text_encoder=text_encoder,
                        text_tokenizer=text_tokenizer, warmup_steps=1, log_every=2, progress=False)  # fmt: skip
    assert not prior.training
    assert sorted(os.listdir(out_dir)) == ["config.json", "model.safetensors", "training_log.json"]
    log = json.loads((out_dir / "training_log.json").read_text())
    assert log["steps"] == 4 and len(log["history"][0]["level_losses"]) == tok.config.num_levels
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no temporary folders left behind
    reloaded = PyraTokPriorModel.from_pretrained(out_dir)
    assert torch.equal(reloaded.head.weight, prior.head.weight)


# ----------------------------------------------------------------------------- attention implementation
def _lm_attention_implementations(model) -> set:
    """Every attention implementation a config inside the model names (the outer one, the LM, its layers)."""
    found = {model.config._attn_implementation, model.lm.config._attn_implementation}
    found |= {layer.self_attn.config._attn_implementation for layer in model.lm.layers}
    return found


def test_attn_implementation_reaches_the_inner_lm(tmp_path):
    model = make_prior()
    assert _lm_attention_implementations(model) == {"sdpa"}
    assert _lm_attention_implementations(make_prior(attn_implementation="eager")) == {"eager"}
    model.save_pretrained(tmp_path / "prior")
    for implementation in ("eager", "sdpa"):
        loaded = PyraTokPriorModel.from_pretrained(tmp_path / "prior", attn_implementation=implementation)
        assert _lm_attention_implementations(loaded) == {implementation}
    assert _lm_attention_implementations(PyraTokPriorModel.from_pretrained(tmp_path / "prior")) == {"sdpa"}


def test_attention_can_be_switched_dynamically_with_the_same_result():
    model = make_prior(initializer_range=0.2)
    states, mask = random_text()
    codes = random_ids()
    with torch.no_grad():
        sdpa = model(token_ids=codes, text_states=states, text_mask=mask)
        model.set_attn_implementation("eager")
        assert _lm_attention_implementations(model) == {"eager"}
        eager = model(token_ids=codes, text_states=states, text_mask=mask)
        eager_ids = model.generate(states, mask, GRIDS, guidance_scale=3.0, temperature=0, generator=torch.Generator().manual_seed(0))
        model.set_attn_implementation("sdpa")
        assert _lm_attention_implementations(model) == {"sdpa"}
        sdpa_ids = model.generate(states, mask, GRIDS, guidance_scale=3.0, temperature=0, generator=torch.Generator().manual_seed(0))
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(sdpa.logits, eager.logits))
    assert torch.allclose(sdpa.level_losses, eager.level_losses, atol=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(eager_ids, sdpa_ids))


# ----------------------------------------------------------------------------- batches and generators
def _padded_batch():
    """Two prompts of 8 and 3 text tokens: the second is padded to 8 in the batch."""
    gen = torch.Generator().manual_seed(3)
    states = torch.randn(2, 8, TEXT_DIM, generator=gen)
    mask = torch.ones(2, 8, dtype=torch.bool)
    mask[1, 3:] = False
    return states, mask


@pytest.mark.parametrize("mode", ["next_scale", "token"])
@pytest.mark.parametrize("guidance", [1.0, 3.0])
def test_one_generator_per_video_equals_each_video_alone(prior, mode, guidance):
    states, mask = _padded_batch()
    kw = dict(mode=mode, guidance_scale=guidance)
    batch = prior.generate(states, mask, GRIDS, generator=[torch.Generator().manual_seed(s) for s in (10, 11)], **kw)
    first = prior.generate(states[:1], mask[:1], GRIDS, generator=torch.Generator().manual_seed(10), **kw)
    second = prior.generate(states[1:, :3], mask[1:, :3], GRIDS, generator=torch.Generator().manual_seed(11), **kw)  # unpadded
    assert all(torch.equal(b[:1], x) for b, x in zip(batch, first))
    assert all(torch.equal(b[1:], x) for b, x in zip(batch, second))
    # the videos differ, so the generators really are used per video
    assert any(not torch.equal(b[:1], b[1:]) for b in batch)


def test_teacher_forcing_of_a_padded_prompt_equals_the_prompt_alone(prior):
    states, mask = _padded_batch()
    codes = random_ids()
    batch = prior(token_ids=codes, text_states=states, text_mask=mask).logits
    alone = prior(token_ids=[c[1:] for c in codes], text_states=states[1:, :3], text_mask=mask[1:, :3]).logits
    assert all(torch.allclose(b[1:], a, atol=1e-5) for b, a in zip(batch, alone))


def test_position_ids_skip_padded_text():
    from pyratok_hf.prior.layout import build_layout, position_ids

    layout = build_layout(4, [(1, 1, 1), (1, 2, 1)])  # 4 text + SOV + (SEP + 1) + (SEP + 2) = 10
    mask = torch.tensor([[True, True, True, True], [True, True, False, False], [False, False, False, False]])
    positions = position_ids(layout, mask)
    assert positions[0].tolist() == list(range(10))
    assert positions[1, 4:].tolist() == list(range(2, 8))  # SOV right after the 2 real text tokens
    assert positions[2, 4:].tolist() == list(range(0, 6))  # no text: SOV at 0


def test_generator_lists_are_checked(prior):
    states, mask = random_text()
    with pytest.raises(InvalidInputError, match="2 videos"):
        prior.generate(states, mask, GRIDS, generator=[torch.Generator() for _ in range(3)])
    with pytest.raises(InvalidInputError):
        prior.generate(states, mask, GRIDS, generator=[torch.Generator(), "seed"])
    one = prior.generate(states, mask, GRIDS, generator=[torch.Generator().manual_seed(4)])  # a list of one = that generator
    same = prior.generate(states, mask, GRIDS, generator=torch.Generator().manual_seed(4))
    assert all(torch.equal(a, b) for a, b in zip(one, same))


def test_sampling_functions_accept_one_generator_per_row():
    logits = torch.randn(2, 5, K, generator=torch.Generator().manual_seed(0))
    rows = sample_bits(logits, generator=[torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)])
    assert torch.equal(rows[1:], sample_bits(logits[1:], generator=torch.Generator().manual_seed(2)))
    class_logits = torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(0))
    ids = sample_classes(class_logits, generator=[torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)])
    assert torch.equal(ids[1:], sample_classes(class_logits[1:], generator=torch.Generator().manual_seed(2)))
    # one generator for a batch draws exactly what the per-row draws of a batch of one would
    assert torch.equal(sample_classes(class_logits[:1], generator=torch.Generator().manual_seed(1)), ids[:1])


# ----------------------------------------------------------------------------- module structure
def _package_import_graph():
    """Every import (module level *and* inside functions) between modules of the package, from the source."""
    import ast
    from pathlib import Path

    import pyratok_hf

    root = Path(pyratok_hf.__file__).parent
    modules = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                targets |= {t for t in [target] + [f"{target}.{a.name}" for a in node.names] if t in modules}
            elif isinstance(node, ast.Import):
                targets |= {a.name for a in node.names if a.name in modules}
        graph[name] = targets - {name}
    return graph


def _reaches(graph, start, goal) -> bool:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        for nxt in graph.get(node, ()):
            if nxt == goal:
                return True
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return False


def test_no_import_cycles_through_the_prior_the_pipeline_or_utils_io():
    graph = _package_import_graph()
    ours = [m for m in graph if m.startswith("pyratok_hf.prior") or m in ("pyratok_hf.pipeline_pyratok_t2v", "pyratok_hf.utils_io")]
    assert "pyratok_hf.prior.layout" in ours and "pyratok_hf.utils_io" in ours
    cycles = [m for m in ours if _reaches(graph, m, m)]
    assert cycles == [], f"import cycles through {cycles}"
    assert graph["pyratok_hf.utils_io"] == set()  # a leaf anyone may import
    assert "pyratok_hf.prior.modeling_prior" not in graph["pyratok_hf.prior.generation"]
    assert "pyratok_hf.prior.training" not in graph["pyratok_hf.pipeline_pyratok_t2v"]


def test_moved_helpers_are_still_importable_from_their_old_homes():
    from pyratok_hf import utils_io
    from pyratok_hf.prior import layout, modeling_prior, training

    assert training.atomic_directory is utils_io.atomic_directory
    for name in ("SequenceLayout", "build_layout", "block_causal_mask"):
        assert getattr(modeling_prior, name) is getattr(layout, name)
