"""The lookup-free binary quantizer: ids <-> codes, the straight-through sign, and the per-bit entropy terms.

The per-bit formulas are checked against ``quantizer.naive_reference``, which enumerates all 2^K codes the
way public LFQ implementations do (small K only).
"""

from __future__ import annotations

import math

import pytest
import torch

from pyratok_hf.errors import InvalidInputError
from pyratok_hf.quantizer import (
    bernoulli_entropy,
    bernoulli_entropy_from_logits,
    binary_quantize,
    check_ids_in_range,
    codes_to_ids,
    entropy_terms,
    enumerate_codebook,
    ids_to_codes,
    naive_reference,
)


@pytest.mark.parametrize("bits", [4, 8, 12])
@pytest.mark.parametrize("inv_temperature", [0.5, 2.0])
def test_per_bit_terms_equal_the_enumerating_reference(bits, inv_temperature):
    gen = torch.Generator().manual_seed(bits)
    logits = torch.randn(96, bits, generator=gen) * 0.7
    reference = naive_reference(logits, inv_temperature)
    sample_entropy, codebook_entropy = entropy_terms(logits, inv_temperature)
    ids = codes_to_ids(binary_quantize(logits))
    assert torch.equal(ids, reference["ids"])
    assert abs(float(sample_entropy) - float(reference["sample_entropy"])) < 1e-5
    assert abs(float(codebook_entropy) - float(reference["codebook_entropy"])) < 1e-5
    # The per-bit usage entropy bounds the joint usage entropy from above (module docstring).
    assert float(codebook_entropy) >= float(reference["joint_codebook_entropy"]) - 1e-5


def test_entropy_of_undecided_tokens_is_k_log_2():
    logits = torch.zeros(10, 6)
    sample_entropy, codebook_entropy = entropy_terms(logits, 1.0)
    assert sample_entropy.item() == pytest.approx(6 * math.log(2), abs=1e-6)
    assert codebook_entropy.item() == pytest.approx(6 * math.log(2), abs=1e-6)


def test_binary_quantize_is_exactly_plus_minus_one_with_a_straight_through_gradient():
    logits = torch.tensor([[-2.0, -1e-9, 0.0, 3.5]], requires_grad=True)
    codes = binary_quantize(logits)
    assert torch.equal(codes.detach(), torch.tensor([[-1.0, -1.0, 1.0, 1.0]]))  # 0 maps to +1
    (codes * torch.tensor([1.0, 2.0, 3.0, 4.0])).sum().backward()
    assert torch.equal(logits.grad, torch.tensor([[1.0, 2.0, 3.0, 4.0]]))  # identity gradient


def test_ids_use_bit_k_for_channel_k():
    codes = torch.tensor([[1.0, -1.0, -1.0], [-1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]])
    assert codes_to_ids(codes).tolist() == [1, 6, 0]
    assert torch.equal(ids_to_codes(torch.tensor([1, 6, 0]), 3), codes)


@pytest.mark.parametrize("bits", [1, 7, 16, 31, 32, 33, 63, 64])
def test_ids_codes_round_trip(bits):
    gen = torch.Generator().manual_seed(bits)
    codes = torch.randint(0, 2, (5, 7, bits), generator=gen).float() * 2 - 1
    ids = codes_to_ids(codes)
    assert ids.dtype == torch.int64
    assert torch.equal(ids_to_codes(ids, bits), codes)
    if bits < 64:
        assert int(ids.min()) >= 0 and int(ids.max()) < 2**bits


def test_64_bit_ids_cover_negative_values():
    ids = torch.tensor([-1, -(2**63), 2**63 - 1, 0, 42, -987654321])
    codes = ids_to_codes(ids, 64)
    assert torch.equal(codes_to_ids(codes), ids)
    assert torch.equal(codes[0], torch.ones(64))  # -1 = all bits set
    assert codes[1, 63] == 1 and (codes[1, :63] == -1).all()  # only the sign bit
    check_ids_in_range(ids, 64)  # every int64 is a valid 64-bit code


def test_id_validation_errors():
    with pytest.raises(InvalidInputError, match="integer"):
        check_ids_in_range(torch.tensor([1.0]), 8)
    with pytest.raises(InvalidInputError, match=r"2\^8 - 1.*\[0, 256\]"):
        check_ids_in_range(torch.tensor([0, 256]), 8, what="token_ids[0]")
    with pytest.raises(InvalidInputError, match="different codebook_bits"):
        check_ids_in_range(torch.tensor([-3]), 8)
    with pytest.raises(InvalidInputError, match="integer tensor"):
        ids_to_codes(torch.tensor([1.5]), 8)
    with pytest.raises(InvalidInputError, match="64"):
        codes_to_ids(torch.ones(2, 65))
    with pytest.raises(InvalidInputError, match="2\\^20"):
        enumerate_codebook(21)


def test_enumerated_codebook_order_matches_ids():
    codebook = enumerate_codebook(5)
    assert codebook.shape == (32, 5)
    assert torch.equal(codes_to_ids(codebook), torch.arange(32))


def test_bernoulli_entropy_forms_agree():
    l = torch.linspace(-8, 8, 33)
    assert torch.allclose(bernoulli_entropy_from_logits(l), bernoulli_entropy(torch.sigmoid(l)), atol=1e-5)
    assert bernoulli_entropy(torch.tensor(0.5)).item() == pytest.approx(math.log(2))
    # Stable for huge logits (no NaN from 0 * log 0).
    assert torch.isfinite(bernoulli_entropy_from_logits(torch.tensor([-1e4, 1e4]))).all()


def test_large_k_entropy_needs_no_codebook_table():
    # K = 64 would need 2^64 rows if anything enumerated the codebook; the per-bit form is O(N * K).
    logits = torch.randn(1000, 64, requires_grad=True)
    sample_entropy, codebook_entropy = entropy_terms(logits, 10.0)
    (sample_entropy - codebook_entropy).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


@pytest.mark.parametrize("bits", [1, 5, 16, 64])
def test_msb_first_ids_round_trip_and_reverse_the_lsb_order(bits):
    from pyratok_hf.convert_release import release_ids_to_ours

    codes = torch.where(torch.rand(3, 4, bits, generator=torch.Generator().manual_seed(bits)) > 0.5, 1.0, -1.0)
    msb = codes_to_ids(codes, msb_first=True)
    assert torch.equal(ids_to_codes(msb, bits, msb_first=True), codes)
    assert torch.equal(release_ids_to_ours(msb, bits), codes_to_ids(codes))
    # channel 0 alone set: the top bit in msb order (the sign bit at K = 64), bit 0 in lsb order
    one_hot = torch.full((bits,), -1.0)
    one_hot[0] = 1.0
    assert int(codes_to_ids(one_hot)) == 1
    assert int(codes_to_ids(one_hot, msb_first=True)) == (1 << (bits - 1) if bits < 64 else -(2**63))
