"""Each hub model the default and cpu profiles name (and the ehcalabres model, whose head
needs an adapter) has a tiny replica in its real layout (architecture class, head tensors,
label names as its public config and card state them), loaded through the registry entry
and the encoders users run. Real weights never run here: the hub is unreachable."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from emoapp.bench.tinymodels import (
    EMOBERTA_LABELS,
    make_face_model,
    make_hubert_er_model,
    make_pooled_head_voice_model,
    make_text_model,
)
from emoapp.core.messages import Modality, ModalityPrediction
from emoapp.core.taxonomy import CANONICAL_LABELS
from emoapp.encoders.factory import RuntimeOptions, build_encoder
from emoapp.registry import ModelSpec, builtin_profiles, registry

Maker = Callable[[Path], Path]

REPLICAS: dict[str, tuple[Modality, Maker, str, set[str]]] = {
    # id: (modality, replica, class the load must build, canonical labels it can express)
    "superb/hubert-large-superb-er": (
        Modality.VOICE,
        lambda p: make_hubert_er_model(p, variant="large"),
        "HubertForSequenceClassification",
        {"neutral", "happy", "angry", "sad"},
    ),
    "superb/hubert-base-superb-er": (
        Modality.VOICE,
        lambda p: make_hubert_er_model(p, variant="base"),
        "HubertForSequenceClassification",
        {"neutral", "happy", "angry", "sad"},
    ),
    "ehcalabres/wav2vec2-lg-xlsr-en-speech-emotion-recognition": (
        Modality.VOICE,
        make_pooled_head_voice_model,
        "PooledTanhClassifier",
        set(CANONICAL_LABELS),
    ),
    "tae898/emoberta-large": (
        Modality.TEXT,
        lambda p: make_text_model(p, labels=EMOBERTA_LABELS),
        "RobertaForSequenceClassification",
        set(CANONICAL_LABELS),
    ),
    "j-hartmann/emotion-english-distilroberta-base": (
        Modality.TEXT,
        make_text_model,
        "RobertaForSequenceClassification",
        set(CANONICAL_LABELS),
    ),
    "trpakov/vit-face-expression": (
        Modality.FACE,
        make_face_model,
        "ViTForImageClassification",
        set(CANONICAL_LABELS),
    ),
}


def test_every_hub_model_of_the_default_and_cpu_profiles_has_a_replica() -> None:
    for name in ("default", "cpu"):
        for ref in builtin_profiles()[name].models.values():
            if ref and not registry()[ref].bundled:
                assert ref in REPLICAS, (name, ref)


@pytest.mark.parametrize("model_id", sorted(REPLICAS))
def test_the_replica_loads_whole_through_the_registry_entry(model_id: str, tmp_path: Path) -> None:
    modality, make, built, expressed = REPLICAS[model_id]
    entry = registry()[model_id]
    assert entry.modality is modality
    folder = make(tmp_path / "replica")
    spec = ModelSpec(
        modality,
        str(folder),
        backend=entry.backend,
        label_overrides=dict(entry.label_overrides),
        reliability=entry.reliability,
        entry=entry,
    )
    encoder = build_encoder(spec, RuntimeOptions(device="cpu"))
    encoder.load()
    assert type(encoder.model).__name__ == built
    mask = encoder.label_map.mask
    assert {label for label, m in zip(CANONICAL_LABELS, mask, strict=True) if m} == expressed
    if modality is Modality.VOICE:  # past the voice-activity gate: a tone is no speech
        t = np.arange(16000) / 16000
        [probs] = encoder.classify_rows([(0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)])
    elif modality is Modality.TEXT:
        [out] = encoder.encode(["I am so happy to see you today."])
        assert isinstance(out, ModalityPrediction)
        probs = out.probs
    else:
        return  # faces need a detected face: tests/encoders/test_face.py covers the path
    assert abs(float(probs.sum()) - 1.0) < 1e-6
