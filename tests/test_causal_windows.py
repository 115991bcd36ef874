"""config.causal_window_frames: the backbone runs over independent windows, everywhere the same way.

The bundled tiny model was trained on 17-frame clips; past frame 17 its causal decoder drifts (measured on the
bundled sample, benchmarks/bench_causal_windows.py: 16.5 dB at frame 16, 10.9 dB at frame 32 in one pass; 16.4-17.0 dB
on every frame with 17-frame windows).
"""

from __future__ import annotations

import pytest
import torch

from conftest import make_tiny_model, random_video
from pyratok_hf import PyraTokConfig
from pyratok_hf.errors import ConfigError
from pyratok_hf.modeling_pyratok import concat_chunks, decode_streaming, encode_streaming


@pytest.mark.parametrize("frames,padded,latent", [(5, 5, 2), (9, 9, 3), (10, 10, 4), (12, 14, 5), (18, 18, 6), (21, 23, 8), (22, 23, 8)])
def test_frame_arithmetic(frames, padded, latent):
    config = PyraTokConfig.from_preset("pyratok-tiny", causal_window_frames=9)
    assert config.padded_num_frames(frames) == padded
    assert config.latent_num_frames(frames) == latent
    windows = config.causal_windows(padded)
    assert windows[0][0] == 0 and windows[-1][1] == padded
    assert all((stop - start - 1) % 4 == 0 for start, stop in windows)


def test_no_window_is_one_pass():
    config = PyraTokConfig.from_preset("pyratok-tiny")
    assert config.causal_windows(33) == [(0, 33)] and config.latent_num_frames(33) == 9


@pytest.mark.parametrize("bad", [8, 0, -1, 2.5, "17"])
def test_window_must_be_one_plus_4k(bad):
    with pytest.raises(ConfigError, match="causal_window_frames"):
        PyraTokConfig.from_preset("pyratok-tiny", causal_window_frames=bad)


def test_window_needs_per_frame_levels():
    with pytest.raises(ConfigError, match="per-frame levels"):
        PyraTokConfig.from_preset("pyratok-tiny", causal_window_frames=9, level_temporal_downsample=[2, 1, 1, 1])


def test_windowed_encode_decode_equals_independent_windows():
    model = make_tiny_model(causal_window_frames=9)
    plain = make_tiny_model()
    video = random_video(1, 3, 14, 32, 32, seed=3)  # windows: frames 0-8, then 9-13 (padded to 9-13: 5 frames)
    with torch.inference_mode():
        enc = model.encode(video)
        assert enc.token_ids[-1].shape[1] == model.latent_shape(14, 32, 32)[0] == 3 + 2
        first, second = plain.encode(video[:, :, :9]), plain.encode(video[:, :, 9:])
        for whole, a, b in zip(enc.token_ids, first.token_ids, second.token_ids):
            assert torch.equal(whole, torch.cat([a, b], dim=1))
        recon = model.decode(token_ids=enc.token_ids, output_shape=enc.input_shape).sample
        parts = [plain.decode(token_ids=e.token_ids, output_shape=e.input_shape).sample for e in (first, second)]
        assert recon.shape == video.shape
        torch.testing.assert_close(recon, torch.cat(parts, dim=2), atol=1e-5, rtol=0)


def test_streaming_matches_windowed_encode():
    model = make_tiny_model(causal_window_frames=9)
    video = random_video(1, 3, 23, 32, 32, seed=4)
    with torch.inference_mode():
        enc = model.encode(video)
        whole = model.decode(token_ids=enc.token_ids, output_shape=enc.input_shape).sample
    frames = (video[:, :, i] for i in range(video.shape[2]))  # one frame at a time, as from a file
    token_ids, _, shape = concat_chunks(encode_streaming(model, frames, chunk_latent_frames=2))
    assert shape == tuple(enc.input_shape)
    for a, b in zip(token_ids, enc.token_ids):
        assert (a != b).float().mean() <= 1e-3
    streamed = torch.cat(list(decode_streaming(model, enc.token_ids, chunk_latent_frames=2, output_shape=enc.input_shape)), dim=2)
    torch.testing.assert_close(streamed, whole, atol=1e-4, rtol=0)
