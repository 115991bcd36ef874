"""Streaming encode/decode (pyratok_hf.modeling_pyratok.encode_streaming / decode_streaming): same tokens as the whole clip, memory flat in clip length.

Why ids are compared with a tiny tolerance: the backbone features of streaming and whole-clip encoding are
bit-identical (the encoder is called on the same frame groups with the same cache), but LaPQ's 1x1 projections
run a oneDNN kernel chosen by tensor shape, so a chunk-sized call can round differently from a clip-sized one
(<= 1e-6). A token id can only change where a logit is within that distance of 0; we allow 0.1 % and in practice
see none.
"""

from __future__ import annotations

import weakref

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from conftest import make_tiny_model, random_text_embeds, random_video
from pyratok_hf.errors import ConfigError, InvalidInputError, ResourceLimitError
from pyratok_hf.quantizer import codes_to_ids
from pyratok_hf.inference import inference_context
from pyratok_hf.modeling_pyratok import PyraTokCore, concat_chunks, decode_streaming, encode_streaming

ID_MISMATCH_TOLERANCE = 1e-3


@pytest.fixture(autouse=True)
def _one_thread():
    """These ops are tiny: on shared, busy cores OpenMP barriers of a 2-thread pool cost more than they save."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _mismatch(a, b) -> float:
    return max((x != y).float().mean().item() for x, y in zip(a, b))


def _whole(model, video, **kwargs):
    with torch.inference_mode():
        return model.encode(video, **kwargs)


@pytest.mark.parametrize("chunk,fuse_grid", [(1, "level"), (3, "level"), (3, "latent")])
def test_streaming_ids_equal_whole_clip_with_text(chunk, fuse_grid):
    model = make_tiny_model(codebook_bits=16, level_fuse_grid=fuse_grid)
    video = random_video(2, 3, 19, 32, 48)  # T=19 pads to 21 -> 6 latent frames (chunks of 3: 3 + 3)
    text = random_text_embeds(2)
    whole = _whole(model, video, text_embeds=text)
    ids, latents, shape = concat_chunks(encode_streaming(model, video, chunk_latent_frames=chunk, text_embeds=text))
    assert shape == whole.input_shape == (19, 32, 48)
    assert [tuple(t.shape) for t in ids] == [tuple(t.shape) for t in whole.token_ids]
    assert _mismatch(ids, whole.token_ids) <= ID_MISMATCH_TOLERANCE
    torch.testing.assert_close(latents, whole.latents, atol=1e-5, rtol=0)


def test_frame_iterator_matches_tensor_input_and_pads_odd_sizes():
    model = make_tiny_model()
    video = random_video(1, 3, 7, 22, 28)  # needs time padding (7 -> 9) and spatial padding (22x28 -> 24x32)
    from_tensor = concat_chunks(encode_streaming(model, video, chunk_latent_frames=2))
    from_frames = concat_chunks(encode_streaming(model, (video[:, :, i] for i in range(7)), chunk_latent_frames=2))
    from_single = concat_chunks(encode_streaming(model, (video[0, :, i] for i in range(7)), chunk_latent_frames=2))
    for other in (from_frames, from_single):
        assert all(torch.equal(a, b) for a, b in zip(from_tensor[0], other[0]))
        assert other[2] == (7, 22, 28)
    whole = _whole(model, video)
    assert _mismatch(from_tensor[0], whole.token_ids) <= ID_MISMATCH_TOLERANCE


@pytest.mark.parametrize("fuse_grid", ["level", "latent"])
def test_streaming_with_spatial_tiling_matches_tiled_whole_clip(fuse_grid):
    model = make_tiny_model(codebook_bits=16, level_fuse_grid=fuse_grid)
    model.enable_tiling(64, 64, 48, 48)  # a 96x136 frame -> 2x3 encoder tiles (origins on the 8-cell grid)
    video = random_video(1, 3, 9, 96, 136)
    whole = _whole(model, video)
    ids, latents, _ = concat_chunks(encode_streaming(model, video, chunk_latent_frames=1))
    assert _mismatch(ids, whole.token_ids) <= ID_MISMATCH_TOLERANCE
    torch.testing.assert_close(latents, whole.latents, atol=1e-5, rtol=0)
    with torch.inference_mode():
        reference = model.decode(token_ids=whole.token_ids, output_shape=whole.input_shape).sample
    streamed = torch.cat(list(decode_streaming(model, whole.token_ids, chunk_latent_frames=1, output_shape=whole.input_shape)), 2)
    torch.testing.assert_close(streamed, reference, atol=1e-4, rtol=0)


def test_decode_streaming_matches_decode_and_chains_with_encode():
    model = make_tiny_model()
    video = random_video(1, 3, 10, 16, 24)
    whole = _whole(model, video)
    with torch.inference_mode():
        reference = model.decode(token_ids=whole.token_ids, output_shape=whole.input_shape).sample
    pieces = list(decode_streaming(model, whole.token_ids, chunk_latent_frames=2, output_shape=whole.input_shape))
    assert [p.shape[2] for p in pieces] == [5, 5]  # 1 + 4, then 4 per latent frame, cropped to T=10
    torch.testing.assert_close(torch.cat(pieces, 2), reference, atol=1e-4, rtol=0)
    # Straight from the encoder's chunks, never holding the clip's tokens.
    chained = torch.cat(list(decode_streaming(model, encode_streaming(model, video, chunk_latent_frames=2), output_shape=(10, 16, 24))), 2)
    torch.testing.assert_close(chained, reference, atol=1e-4, rtol=0)


def test_64_bit_codebook_end_to_end():
    model = make_tiny_model(codebook_bits=64)
    video = random_video(1, 3, 9, 16, 24)
    whole = _whole(model, video)
    assert any(bool((t < 0).any()) for t in whole.token_ids)  # bit 63 set -> negative int64, still exact
    ids, _, _ = concat_chunks(encode_streaming(model, video, chunk_latent_frames=1))
    assert _mismatch(ids, whole.token_ids) <= ID_MISMATCH_TOLERANCE
    with torch.inference_mode():
        from_ids = model.decode(token_ids=whole.token_ids).sample
        from_latents = model.decode(latents=whole.latents).sample
    assert torch.equal(from_ids, from_latents)


class _TensorMemoryPeak(TorchDispatchMode):
    """Peak bytes of live CPU tensor storages created inside the block (torch has no CPU allocator stats).

    Every aten op's outputs are recorded by storage; a storage is released when the last tensor recorded on it
    is freed (weakref finalizers fire when the C++ tensor dies). Kernel-internal scratch buffers are not seen,
    which is fine for comparing two runs of the same code.
    """

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


def _frames(count, size=32):
    generator = torch.Generator().manual_seed(0)
    for _ in range(count):
        yield torch.rand(1, 3, size, size, generator=generator) * 2 - 1


def test_streaming_memory_does_not_grow_with_clip_length():
    model = make_tiny_model()
    peaks = {}
    for latent_frames in (9, 33):
        with _TensorMemoryPeak() as tracker:
            for _ in encode_streaming(model, _frames(1 + 4 * (latent_frames - 1)), chunk_latent_frames=2):
                pass  # chunks are dropped as they come, as a consumer writing them out would
        peaks[latent_frames] = tracker.peak
    assert peaks[33] <= 1.3 * peaks[9], peaks
    # The tracker does see growth: the whole-clip path holds every frame's features at once.
    video = torch.cat(list(_frames(1 + 4 * 32)), 0).permute(1, 0, 2, 3).unsqueeze(0)
    with _TensorMemoryPeak() as tracker, torch.inference_mode():
        model.encode(video)
    assert tracker.peak > 1.5 * peaks[33], (tracker.peak, peaks)


def test_8k_without_tiling_names_enable_tiling_and_auto_tiling_tiles(monkeypatch):
    model = make_tiny_model(auto_tiling=False)  # default max_pixels_untiled = 1280 x 736
    frame_8k = torch.zeros(1, 3, 4320, 7680)
    with pytest.raises(ResourceLimitError, match="enable_tiling"):
        model.encode(frame_8k)
    with pytest.raises(ResourceLimitError, match="enable_tiling"):
        next(encode_streaming(model, frame_8k.unsqueeze(2)))
    del frame_8k
    auto = make_tiny_model(auto_tiling=True)
    assert auto._needs_tiling(4320, 7680)  # the 8K request would be tiled, not refused
    # Run the auto-tiled path for real at a size a test can afford (threshold lowered to 32x32).
    calls = []
    original = PyraTokCore._tiled_encode_continuous

    def spy(self, x, encode_tile=None):
        calls.append(encode_tile is not None)
        return original(self, x, encode_tile=encode_tile)

    monkeypatch.setattr(PyraTokCore, "_tiled_encode_continuous", spy)
    small = make_tiny_model(auto_tiling=True, max_pixels_untiled=32 * 32)
    video = random_video(1, 3, 5, 40, 48)
    whole = _whole(small, video)
    ids, _, _ = concat_chunks(encode_streaming(small, video, chunk_latent_frames=1))
    assert calls == [False, True, True]  # whole clip once, then one streamed chunk per latent frame
    assert _mismatch(ids, whole.token_ids) <= ID_MISMATCH_TOLERANCE


def test_autocast_keeps_quantization_in_float32():
    """bf16/fp16 autocast runs the backbone and level convs in low precision; the bit projection and sign stay fp32.

    Codes therefore always equal sign(fp32 logits) of the same run. Against a float32 run, bits flip only where
    the fp32 logit is near zero; on this *untrained* random model (logits crowd around 0) that is a few percent
    of bits at the finest level with bf16 and ~0.1% with fp16 (docs/performance.md); trained models push
    |logit| towards 1 and flip far fewer.
    """
    model = make_tiny_model(codebook_bits=16)
    video = random_video(1, 3, 5, 48, 48)
    reference = _whole(model, video)
    for dtype, bound in (("bf16", 0.15), ("fp16", 0.02)):
        with inference_context("cpu", dtype):
            low = model.encode(video)
        for logits, codes, ids in zip(low.level_logits, low.level_codes, low.token_ids):
            assert logits.dtype == torch.float32
            assert torch.equal(codes, torch.where(logits >= 0, 1.0, -1.0))
            assert torch.equal(ids, codes_to_ids(codes))
        flips = max(((a > 0) != (b > 0)).float().mean().item() for a, b in zip(reference.level_codes, low.level_codes))
        assert flips <= bound, (dtype, flips)


def test_streaming_rejects_levels_that_mix_frames_and_bad_arguments():
    model = make_tiny_model(level_temporal_downsample=[2, 1, 1, 1])
    with pytest.raises(ConfigError, match="per-latent-frame"):
        next(encode_streaming(model, random_video(1, 3, 5, 32, 32)))
    model = make_tiny_model()
    with pytest.raises(InvalidInputError, match="chunk_latent_frames"):
        next(encode_streaming(model, random_video(1, 3, 5, 32, 32), chunk_latent_frames=0))
    with pytest.raises(InvalidInputError, match="no frames"):
        next(encode_streaming(model, iter([])))
    with pytest.raises(InvalidInputError, match="share batch"):
        list(encode_streaming(model, iter([torch.zeros(3, 32, 32), torch.zeros(3, 40, 32)])))


def test_row_streaming_tiled_decode_equals_diffusers_tiled_decode():
    """The tiled decode blends row by row into a preallocated output (memory ~ the output, not 3.5x it) with
    diffusers' arithmetic: the result equals ``AutoencoderKLWan.tiled_decode`` up to float rounding (the 1x1x1
    ``post_quant_conv`` runs over a tile's frames at once instead of frame by frame: 6e-7 seen here, 0 on other runs)."""
    model = make_tiny_model()
    vae = model.backbone.vae
    for tiles, shape in (((64, 64, 48, 48), (1, 16, 3, 12, 17)), ((32, 48, 24, 32), (2, 16, 2, 9, 13))):
        model.enable_tiling(*tiles)
        latent = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
        with torch.inference_mode():
            ours = model._tiled_decode(latent)
            vae.enable_tiling(*tiles)
            try:
                reference = vae.tiled_decode(latent).sample
            finally:
                vae.disable_tiling()
        assert ours.shape == reference.shape
        torch.testing.assert_close(ours, reference, rtol=0, atol=1e-5)


def test_bf16_autocast_warns_on_cpus_without_native_bf16(monkeypatch):
    import warnings

    import pyratok_hf.inference as inference

    assert inference.cpu_has_native_bf16("processor : 0\nflags : fpu sse2 avx2 avx512f avx512bw\n") is False
    assert inference.cpu_has_native_bf16("flags : fpu avx512f avx512_bf16\n") is True
    assert inference.cpu_has_native_bf16("flags : fpu amx_tile amx_bf16\n") is True
    assert inference.cpu_has_native_bf16("Features : fp asimd bf16\n") is True  # ARM
    assert inference.cpu_has_native_bf16("model name : something\n") is None  # no flags line: cannot tell, no warning
    assert inference.cpu_has_native_bf16() in (True, False, None)  # this machine's /proc/cpuinfo parses

    monkeypatch.setattr(inference, "cpu_has_native_bf16", lambda: False)
    with pytest.warns(UserWarning, match="bf16 autocast on a CPU without native bf16.*use fp32"):
        with inference_context("cpu", "bf16"):
            pass
    monkeypatch.setattr(inference, "cpu_has_native_bf16", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with inference_context("cpu", "bf16"):
            pass
        with inference_context("cpu", "fp32"):
            pass
    with pytest.warns(UserWarning, match="fp16 autocast on CPU"):
        with inference_context("cpu", "fp16"):
            pass
