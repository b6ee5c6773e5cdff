"""A model's label order, preprocessing (image size, mean and std; sampling rate) and task
come from its own config when it loads, and a model whose config disagrees with what the
registry says of it is refused with a one-line message that names the disagreement.

The models are the tiny ones of emoapp.bench.tinymodels, copied and edited the way a
wrong upload or a wrong revision would differ, and loaded as registry models."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from emoapp.core.errors import ModelLoadError, UnmappedLabelsError
from emoapp.core.messages import Modality
from emoapp.encoders.factory import RuntimeOptions, build_encoder
from emoapp.registry import ModelSpec, registry

FACE_ID = "trpakov/vit-face-expression"
VOICE_ID = "ehcalabres/wav2vec2-lg-xlsr-en-speech-emotion-recognition"
TEXT_ID = "j-hartmann/emotion-english-distilroberta-base"


def _edit_json(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _as_registry_model(modality: Modality, model_id: str, folder: Path) -> Any:
    """An encoder for ``folder`` described by the registry entry ``model_id``."""
    entry = registry()[model_id]
    spec = ModelSpec(
        modality,
        str(folder),
        backend=entry.backend,
        label_overrides=dict(entry.label_overrides),
        reliability=entry.reliability,
        entry=entry,
    )
    return build_encoder(spec, RuntimeOptions(device="cpu"))


@pytest.fixture
def copy_of(tiny_models: dict[str, Path], tmp_path: Path) -> Callable[[str], Path]:
    def make(kind: str) -> Path:
        return Path(shutil.copytree(tiny_models[kind], tmp_path / kind))

    return make


def test_preprocessing_and_label_order_come_from_the_models_own_config(
    copy_of: Callable[[str], Path],
) -> None:
    voice_dir = copy_of("voice")
    voice = _as_registry_model(Modality.VOICE, VOICE_ID, voice_dir)
    voice.load()
    assert voice.sampling_rate == 16_000 == registry()[VOICE_ID].sampling_rate

    face_dir = copy_of("face")
    _edit_json(face_dir / "preprocessor_config.json", lambda c: c.update(image_mean=[0.1] * 3))
    face = _as_registry_model(Modality.FACE, FACE_ID, face_dir)
    face.load()
    assert list(face.processor.image_mean) == [0.1] * 3  # its own, not an assumed 0.5
    assert face.processor.size["height"] == 32  # the tiny model's own size, not 224

    # Label order: the config's, whatever it is (here reversed).
    text_dir = copy_of("text")

    def reverse(config: dict[str, Any]) -> None:
        labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))][::-1]
        config["id2label"] = {str(i): label for i, label in enumerate(labels)}
        config["label2id"] = {label: i for i, label in enumerate(labels)}

    _edit_json(text_dir / "config.json", reverse)
    text = _as_registry_model(Modality.TEXT, TEXT_ID, text_dir)
    text.load()
    order = [raw for raw, _ in text.label_map.describe()]
    assert order == [
        json.loads((text_dir / "config.json").read_text())["id2label"][str(i)]
        for i in range(len(order))
    ]


def _wrong_sampling_rate(folder: Path) -> None:
    _edit_json(folder / "preprocessor_config.json", lambda c: c.update(sampling_rate=8000))


def _no_sampling_rate(folder: Path) -> None:
    _edit_json(folder / "preprocessor_config.json", lambda c: c.update(sampling_rate=None))


def _speech_recogniser(folder: Path) -> None:
    _edit_json(folder / "config.json", lambda c: c.update(architectures=["Wav2Vec2ForCTC"]))


def _odd_labels(folder: Path) -> None:
    def change(config: dict[str, Any]) -> None:
        config["id2label"] = {"0": "boredom", "1": "hap", "2": "ang", "3": "sad"}
        config["label2id"] = {v: int(k) for k, v in config["id2label"].items()}

    _edit_json(folder / "config.json", change)


def _image_size_disagrees(folder: Path) -> None:
    _edit_json(
        folder / "preprocessor_config.json", lambda c: c.update(size={"height": 64, "width": 64})
    )


def _no_image_size(folder: Path) -> None:
    _edit_json(folder / "preprocessor_config.json", lambda c: c.update(size={}))


@pytest.mark.parametrize(
    ("kind", "modality", "model_id", "spoil", "error", "says"),
    [
        ("voice", Modality.VOICE, VOICE_ID, _wrong_sampling_rate, ModelLoadError,
         "expects 8000 Hz audio, but the registry describes this model at 16000 Hz"),
        ("voice", Modality.VOICE, VOICE_ID, _no_sampling_rate, ModelLoadError,
         "states no sampling rate"),
        ("voice", Modality.VOICE, VOICE_ID, _speech_recogniser, ModelLoadError,
         "is a Wav2Vec2ForCTC by its config, not a audio-classification model"),
        ("voice", Modality.VOICE, VOICE_ID, _odd_labels, UnmappedLabelsError,
         "labels with no canonical mapping: boredom"),
        ("face", Modality.FACE, FACE_ID, _image_size_disagrees, ModelLoadError,
         "makes 64x64 images, but the model was built for 32x32"),
        ("face", Modality.FACE, FACE_ID, _no_image_size, ModelLoadError,
         "size must have one of the following"),  # transformers' own refusal
        ("text", Modality.FACE, FACE_ID, lambda folder: None, ModelLoadError,
         "is not a image-classification model"),
    ],
    ids=["sampling-rate", "no-sampling-rate", "wrong-task", "unmappable-labels",
         "image-size", "no-image-size", "text-model-as-face"],
)  # fmt: skip
def test_a_model_whose_config_disagrees_is_refused_with_a_clear_message(
    copy_of: Callable[[str], Path],
    kind: str,
    modality: Modality,
    model_id: str,
    spoil: Callable[[Path], None],
    error: type[Exception],
    says: str,
) -> None:
    folder = copy_of(kind)
    spoil(folder)
    encoder = _as_registry_model(modality, model_id, folder)
    with pytest.raises(error) as caught:
        encoder.load()
    message = str(caught.value)
    assert says in message, message
    assert "\n" not in message
    assert encoder.model is None  # nothing half-loaded is left to run
