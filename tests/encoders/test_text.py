"""The text encoder with a tiny RoBERTa, and the loading errors every encoder shares."""

from __future__ import annotations

import numpy as np
import pytest

from emoapp.bench.tinymodels import make_text_model
from emoapp.core.errors import ModelLoadError, UnmappedLabelsError
from emoapp.core.messages import Modality, ModalityPrediction, NoPrediction, TextEntry
from emoapp.encoders.base import EncoderConfig
from emoapp.encoders.text import TextEncoder


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models run faster on one thread, and do not stall on a busy CI machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def encoder(tiny_models) -> TextEncoder:
    enc = TextEncoder(EncoderConfig(str(tiny_models["text"]), device="cpu"))
    enc.load()
    return enc


def test_short_text_gives_one_chunk(encoder):
    [out] = encoder.encode([TextEntry(4.0, "I am so happy to see you today.")])
    assert isinstance(out, ModalityPrediction)
    assert out.modality is Modality.TEXT
    assert out.t == 4.0
    assert out.probs.sum() == pytest.approx(1.0)
    assert np.array_equal(out.mask, encoder.label_map.mask)
    assert out.detail["chunks"] == 1


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_text_gives_no_prediction(encoder, text):
    [out] = encoder.encode([TextEntry(2.0, text)])
    assert isinstance(out, NoPrediction)
    assert out.reason == "empty text"
    assert out.t == 2.0


def test_long_text_is_chunked(encoder):
    sentence = "I feel sad and lonely tonight. "
    n_tokens = len(encoder.processor(sentence, add_special_tokens=False)["input_ids"])
    text = sentence * (10 * encoder.max_length // n_tokens + 1)
    [out] = encoder.encode([TextEntry(0.0, text)])
    assert isinstance(out, ModalityPrediction)
    assert out.detail["chunks"] >= 10
    assert out.probs.sum() == pytest.approx(1.0)


def test_batch_keeps_order_and_accepts_plain_strings(encoder):
    outs = encoder.encode(
        ["Wow, I did not expect that!", TextEntry(1.0, ""), "That is disgusting."]
    )
    assert [type(o) for o in outs] == [ModalityPrediction, NoPrediction, ModalityPrediction]
    [alone] = encoder.encode(["That is disgusting."])
    np.testing.assert_allclose(outs[2].probs, alone.probs, atol=1e-5)


def test_unmappable_labels_are_refused(tmp_path):
    path = make_text_model(tmp_path / "sentiment", labels=("positive", "negative"))
    with pytest.raises(UnmappedLabelsError) as info:
        TextEncoder(EncoderConfig(str(path), device="cpu")).load()
    assert info.value.unmapped == ["positive", "negative"]
    assert "positive" in str(info.value) and "negative" in str(info.value)


def test_a_face_model_is_not_a_text_model(tiny_models):
    with pytest.raises(ModelLoadError, match="text-classification"):
        TextEncoder(EncoderConfig(str(tiny_models["face"]), device="cpu")).load()


def test_missing_hub_model_says_how_to_pull_it():
    model = "emoapp-tests/no-such-model"
    with pytest.raises(ModelLoadError) as info:
        TextEncoder(EncoderConfig(model, local_files_only=True, device="cpu")).load()
    assert f"emoapp models pull {model}" in str(info.value)


def test_info_describes_the_loaded_model(encoder):
    info = encoder.info()
    assert info.modality is Modality.TEXT
    assert info.device == "cpu" and info.dtype == "float32"
    assert ("joy", "happy") in info.label_mapping
