"""get_text_features / get_video_features follow transformers' feature-API contract (as CLIPModel in v5)."""

from __future__ import annotations

import pytest
import torch
from transformers.modeling_outputs import BaseModelOutputWithPooling

from conftest import make_tiny_model, random_text_embeds, random_video
from pyratok_hf.errors import InvalidInputError


@pytest.fixture(scope="module")
def model():
    return make_tiny_model()


def test_text_features_output_object(model):
    embeds = random_text_embeds(2)
    out = model.get_text_features(text_embeds=embeds)
    assert isinstance(out, BaseModelOutputWithPooling)
    assert out.pooler_output.shape == (2, model.config.projection_dim)
    torch.testing.assert_close(out.pooler_output.norm(dim=-1), torch.ones(2))
    assert out.last_hidden_state.shape == (2, embeds.shape[1], model.config.text_embed_dim)
    assert out.hidden_states is None
    raw = model.get_text_features(text_embeds=embeds, normalize=False, output_hidden_states=True)
    torch.testing.assert_close(torch.nn.functional.normalize(raw.pooler_output, dim=-1), out.pooler_output)
    assert raw.hidden_states[0] is embeds and raw.hidden_states[1].shape == out.last_hidden_state.shape
    as_tuple = model.get_text_features(text_embeds=embeds, return_dict=False)
    assert isinstance(as_tuple, tuple) and torch.equal(as_tuple[1], out.pooler_output)


def test_text_features_without_input_is_a_clear_error(model):
    with pytest.raises(InvalidInputError, match="text=.*text_embeds"):
        model.get_text_features()


def test_video_features_output_object(model):
    video = random_video(2, 3, 5, 32, 32)
    out = model.get_video_features(pixel_values=video, output_hidden_states=True)
    dim = model.config.projection_dim
    assert isinstance(out, BaseModelOutputWithPooling)
    assert out.pooler_output.shape == (2, dim)
    grids = model.token_grids(5, 32, 32)
    assert out.last_hidden_state.shape == (2, grids[-1][0] * grids[-1][1] * grids[-1][2], dim)
    assert [h.shape[1] for h in out.hidden_states] == [t * h * w for t, h, w in grids]
    frame = model.get_video_features(pixel_values=video, pooling="frame", level=0)
    assert frame.pooler_output.shape == (2, grids[0][0], dim) and frame.hidden_states is None
    token = model.get_video_features(pixel_values=video, pooling="token", level=1)
    assert token.pooler_output.shape == (2, *grids[1], dim)
    ids = model.encode(video).token_ids
    torch.testing.assert_close(model.get_video_features(token_ids=ids).pooler_output, out.pooler_output)
    with pytest.raises(InvalidInputError, match="pixel_values"):
        model.get_video_features()
    with pytest.raises(InvalidInputError, match="level"):
        model.get_video_features(token_ids=ids, pooling="frame", level=9)
