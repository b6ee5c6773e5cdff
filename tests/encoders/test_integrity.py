"""A model loads whole or not at all: a checkpoint whose head transformers would leave
random (renamed, missing, another shape) or whose tensors it would drop is refused with
one line naming the keys; a head layout emoapp knows (the ehcalabres wav2vec2 head) is
recognised by the tensors the checkpoint holds and loads through its adapter, matching a
forward written here from the layout's description.

Every checkpoint is a tiny model built on the spot and saved as safetensors or as a
PyTorch .bin, then loaded through the encoders users run."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from emoapp.bench.tinymodels import (
    IEMOCAP_LABELS,
    RAVDESS_LABELS,
    make_asr_model,
    make_hubert_er_model,
    make_pooled_head_voice_model,
)
from emoapp.cli import main
from emoapp.core.errors import ModelLoadError
from emoapp.core.messages import AudioChunk, Modality, ModalityPrediction
from emoapp.encoders.base import EncoderConfig
from emoapp.encoders.face import FaceEncoder
from emoapp.encoders.heads import PooledTanhHead
from emoapp.encoders.text import TextEncoder
from emoapp.encoders.voice import VoiceConfig, VoiceEncoder
from emoapp.encoders.whisper import WhisperRecognizer

Edit = Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]


def _rewrite(folder: Path, edit: Edit, weights: str = "safetensors") -> Path:
    """Apply ``edit`` to the checkpoint's tensors and save them in ``weights`` format."""
    path = folder / "model.safetensors"
    state = edit(load_file(str(path)))
    path.unlink()
    if weights == "safetensors":
        save_file(state, str(path), metadata={"format": "pt"})
    else:
        torch.save(state, folder / "pytorch_model.bin")
    return folder


def _renamed(old: str, new: str) -> Edit:
    return lambda s: {(new + k[len(old) :] if k.startswith(old) else k): v for k, v in s.items()}


def _voice(folder: Path) -> VoiceEncoder:
    return VoiceEncoder(EncoderConfig(str(folder), device="cpu"), VoiceConfig(vad="off"))


def _speech(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    tone = 0.3 * np.sin(2 * np.pi * (150 + 50 * np.sin(3 * t)) * t)
    return (tone + 0.02 * rng.standard_normal(t.size)).astype(np.float32)


def _analyze(media: Path, voice_model: Path, out: Path) -> list[str]:
    return [
        "analyze", str(media), "--voice-model", str(voice_model), "--face-model", "none",
        "--text-model", "none", "--out", str(out), "-q",
    ]  # fmt: skip


@pytest.fixture
def copy_of(tiny_models: dict[str, Path], tmp_path: Path) -> Callable[[str], Path]:
    def make(kind: str) -> Path:
        return Path(shutil.copytree(tiny_models[kind], tmp_path / kind))

    return make


# --- refusals -------------------------------------------------------------------------


@pytest.mark.parametrize("weights", ["safetensors", "bin"])
def test_a_head_saved_under_other_names_is_refused_naming_the_keys(
    copy_of: Callable[[str], Path], weights: str
) -> None:
    folder = _rewrite(
        copy_of("voice"),
        lambda s: _renamed("projector.", "head.proj.")(_renamed("classifier.", "head.out.")(s)),
        weights,
    )
    with pytest.raises(ModelLoadError) as caught:
        _voice(folder).load()
    message = str(caught.value)
    assert "\n" not in message
    assert "Wav2Vec2ForSequenceClassification" in message
    for key in ("classifier.weight", "classifier.bias", "projector.weight", "projector.bias"):
        assert key in message.split("checkpoint tensors left unused")[0]
    for key in ("head.out.weight", "head.proj.bias"):
        assert key in message.split("checkpoint tensors left unused")[1]


def test_a_missing_head_is_refused(copy_of: Callable[[str], Path]) -> None:
    folder = _rewrite(
        copy_of("voice"),
        lambda s: {k: v for k, v in s.items() if not k.startswith("classifier.")},
    )
    with pytest.raises(ModelLoadError, match=r"would be random\): classifier\.bias, "):
        _voice(folder).load()


def test_extra_tensors_are_refused(copy_of: Callable[[str], Path]) -> None:
    folder = _rewrite(copy_of("voice"), lambda s: {**s, "adapter.extra.weight": torch.zeros(3)})
    with pytest.raises(ModelLoadError, match=r"left unused: adapter\.extra\.weight"):
        _voice(folder).load()


def test_a_head_of_another_shape_is_refused_not_raised_by_transformers(
    copy_of: Callable[[str], Path],
) -> None:
    def grow(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        state = dict(state)
        state["classifier.weight"] = torch.zeros(5, state["classifier.weight"].shape[1])
        state["classifier.bias"] = torch.zeros(5)
        return state

    folder = _rewrite(copy_of("voice"), grow)
    with pytest.raises(ModelLoadError, match=r"another shape .*classifier\.bias \[5\] vs \[4\]"):
        _voice(folder).load()


def test_many_keys_are_counted_not_listed(copy_of: Callable[[str], Path]) -> None:
    folder = _rewrite(
        copy_of("voice"), _renamed("wav2vec2.encoder.layers.", "wav2vec2.encoder.blocks.")
    )
    with pytest.raises(ModelLoadError) as caught:
        _voice(folder).load()
    assert "\n" not in str(caught.value) and "more)" in str(caught.value)


def test_text_face_and_speech_recogniser_loads_are_checked_too(
    copy_of: Callable[[str], Path], tmp_path: Path
) -> None:
    text = _rewrite(copy_of("text"), _renamed("classifier.out_proj.", "classifier.output."))
    with pytest.raises(ModelLoadError, match=r"classifier\.out_proj\.weight"):
        TextEncoder(EncoderConfig(str(text), device="cpu")).load()
    face = _rewrite(copy_of("face"), _renamed("classifier.", "head."))
    with pytest.raises(ModelLoadError, match=r"left unused: head\.bias, head\.weight"):
        FaceEncoder(EncoderConfig(str(face), device="cpu")).load()
    asr = make_asr_model(tmp_path / "asr")
    _rewrite(asr, lambda s: {k: v for k, v in s.items() if "encoder.layer_norm" not in k})
    with pytest.raises(ModelLoadError, match=r"model\.encoder\.layer_norm\.bias"):
        WhisperRecognizer(EncoderConfig(str(asr), device="cpu")).load()


def test_the_untouched_tiny_models_load_clean(tiny_models: dict[str, Path]) -> None:
    encoder = _voice(tiny_models["voice"])
    encoder.load()
    assert encoder.head == ""
    TextEncoder(EncoderConfig(str(tiny_models["text"]), device="cpu")).load()


def test_analyze_with_a_renamed_head_exits_with_one_line(
    copy_of: Callable[[str], Path], samples: Path, tmp_path: Path, capsys
) -> None:
    folder = _rewrite(copy_of("voice"), _renamed("classifier.", "classifier.output."))
    out = tmp_path / "out.jsonl"
    code = main(_analyze(samples / "speech.wav", folder, out))
    err = capsys.readouterr().err
    assert code != 0
    assert err.count("\n") == 1, err
    assert "weights not in the checkpoint (would be random): classifier.bias" in err
    assert "classifier.output.weight" in err


# --- the ehcalabres head: recognised by what the checkpoint holds ------------------------


def _reference_probs(folder: Path, clip: np.ndarray) -> np.ndarray:
    """The layout as described (mean over time of the backbone's last hidden states ->
    dense -> tanh -> output -> softmax), computed here from the checkpoint's own tensors
    and a bare wav2vec2 backbone, one clip at a time, as the original code runs it."""
    from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2Model

    files = list(folder.glob("*.safetensors"))
    state = (
        load_file(str(files[0]))
        if files
        else torch.load(folder / "pytorch_model.bin", weights_only=True)
    )
    backbone = Wav2Vec2Model.from_pretrained(folder).eval()
    extractor = Wav2Vec2FeatureExtractor.from_pretrained(folder)
    inputs = extractor(clip, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        hidden = backbone(inputs["input_values"]).last_hidden_state[0]
        pooled = hidden.mean(dim=0)
        x = torch.tanh(state["classifier.dense.weight"] @ pooled + state["classifier.dense.bias"])
        logits = state["classifier.output.weight"] @ x + state["classifier.output.bias"]
        return torch.softmax(logits, dim=-1).numpy()


@pytest.mark.parametrize("weights", ["safetensors", "bin"])
def test_the_ehcalabres_layout_loads_through_its_adapter_and_matches_the_reference(
    tmp_path: Path, weights: str
) -> None:
    folder = make_pooled_head_voice_model(tmp_path / "any-name", weights=weights)  # type: ignore[arg-type]
    encoder = _voice(folder)
    encoder.load()
    assert encoder.head == PooledTanhHead.name
    assert [encoder.model.config.id2label[i] for i in range(8)] == list(RAVDESS_LABELS)
    assert encoder.label_map is not None
    clips = [_speech(1.0, seed=1), _speech(1.6, seed=2)]
    for clip in clips:
        got = encoder.forward_probs(encoder.collate([clip]))[0]
        np.testing.assert_allclose(got, _reference_probs(folder, clip), atol=1e-5)
    # In one padded batch each clip is averaged over its own frames only.
    batch = encoder.forward_probs(encoder.collate(clips))
    for row, clip in zip(batch, clips, strict=True):
        np.testing.assert_allclose(row, _reference_probs(folder, clip), atol=1e-4)
    # And through the whole encoder: 'calm' reaches the canonical labels as neutral.
    [out] = encoder.encode([AudioChunk(0.0, clips[0], 16000, "t")])
    assert isinstance(out, ModalityPrediction) and out.modality is Modality.VOICE
    raw = _reference_probs(folder, clips[0])
    neutral = encoder.label_map.apply(raw[None, :])[0]
    np.testing.assert_allclose(out.probs, neutral, atol=1e-5)


def test_the_adapter_is_chosen_by_tensors_not_by_name(tmp_path: Path) -> None:
    # The audeering regression head (classifier.dense + classifier.out_proj) is not a
    # classifier: no layout takes it, so it is refused rather than softmaxed.
    other = make_pooled_head_voice_model(tmp_path / "ehcalabres", head=("dense", "out_proj"))
    with pytest.raises(ModelLoadError, match=r"left unused: classifier\.dense\.bias"):
        _voice(other).load()


def test_a_head_whose_rows_disagree_with_the_labels_is_refused(tmp_path: Path) -> None:
    folder = make_pooled_head_voice_model(tmp_path / "m")
    config = json.loads((folder / "config.json").read_text())
    config["id2label"] = {str(i): name for i, name in enumerate(RAVDESS_LABELS[:7])}
    config["label2id"] = {name: i for i, name in enumerate(RAVDESS_LABELS[:7])}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="no known head layout takes it"):
        _voice(folder).load()


def test_analyze_with_the_ehcalabres_layout_runs(tmp_path: Path, samples: Path, capsys) -> None:
    folder = make_pooled_head_voice_model(tmp_path / "m")
    out = tmp_path / "out.jsonl"
    code = main(_analyze(samples / "speech.wav", folder, out))
    assert code == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert any((r.get("modalities") or {}).get("voice") for r in rows)


def test_the_hubert_large_er_layout_loads_with_transformers_own_class(tmp_path: Path) -> None:
    encoder = _voice(make_hubert_er_model(tmp_path / "hubert"))
    encoder.load()
    assert encoder.head == "" and type(encoder.model).__name__ == "HubertForSequenceClassification"
    assert [encoder.model.config.id2label[i] for i in range(4)] == list(IEMOCAP_LABELS)
    [out] = encoder.encode([AudioChunk(0.0, _speech(1.0), 16000, "t")])
    assert isinstance(out, ModalityPrediction)


@pytest.mark.parametrize("layout", ["hubert-er", "ehcalabres"])
def test_old_checkpoints_with_weight_norm_g_and_v_still_load_whole(
    tmp_path: Path, layout: str
) -> None:
    """Checkpoints saved before torch's weight-norm parametrisations (as the superb and
    ehcalabres ones were) name the positional convolution ``weight_g``/``weight_v``;
    transformers renames them on load, so they are neither missing nor unused."""
    make = make_hubert_er_model if layout == "hubert-er" else make_pooled_head_voice_model
    folder = make(tmp_path / layout)
    old = {
        "parametrizations.weight.original0": "weight_g",
        "parametrizations.weight.original1": "weight_v",
    }

    def rename(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        renamed = {}
        for key, value in state.items():
            for new, before in old.items():
                key = key.replace(new, before)
            renamed[key] = value
        assert any(k.endswith("weight_g") for k in renamed)
        return renamed

    _rewrite(folder, rename, "bin")
    encoder = _voice(folder)
    encoder.load()
    assert (encoder.head != "") == (layout == "ehcalabres")


def test_a_sharded_checkpoint_is_read_through_its_index(tmp_path: Path) -> None:
    folder = make_pooled_head_voice_model(tmp_path / "sharded")
    state = load_file(str(folder / "model.safetensors"))
    (folder / "model.safetensors").unlink()
    names = sorted(state)
    first, second = "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
    shards = {first: names[::2], second: names[1::2]}
    weight_map = {}
    for shard, keys in shards.items():
        save_file({k: state[k] for k in keys}, str(folder / shard), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(keys, shard))
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )
    encoder = _voice(folder)
    encoder.load()
    assert encoder.head == PooledTanhHead.name
    np.testing.assert_allclose(
        encoder.model.output.weight.detach().numpy(), state["classifier.output.weight"].numpy()
    )


def test_a_config_naming_an_unknown_class_loads_when_the_checkpoint_fits(
    copy_of: Callable[[str], Path],
) -> None:
    """An author's own class name in ``architectures`` does not block a checkpoint that
    loads whole into transformers' class for its model type; a transformers class of
    another task still does."""
    folder = copy_of("voice")
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["MyWav2Vec2EmotionClassifier"]
    (folder / "config.json").write_text(json.dumps(config))
    _voice(folder).load()
    config["architectures"] = ["Wav2Vec2ForCTC"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="is a Wav2Vec2ForCTC by its config"):
        _voice(folder).load()
