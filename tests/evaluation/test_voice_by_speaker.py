"""emoapp evaluate with a voice model that adapts to the speaker: a speaker's items are
encoded together, adapted with that speaker's statistics, and cached per speaker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emoapp.core.messages import Modality
from emoapp.encoders.adaptation import SpeakerStats
from emoapp.encoders.embedded.voice import EmbeddedVoiceEncoder
from emoapp.encoders.voice import VoiceConfig, sliding_windows
from emoapp.evaluation.datasets import EvalItem
from emoapp.evaluation.predict import PredictionCache, Predictor
from emoapp.registry import resolve_model

ACTOR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ravdess" / "Actor_02"
FILES = sorted(ACTOR.glob("03-01-0[15]-01-01-*.flac")) if ACTOR.is_dir() else []


@pytest.mark.skipif(len(FILES) < 3, reason="../shared/data/ravdess is not here")
def test_items_of_one_speaker_are_adapted_together(tmp_path):
    import soundfile as sf

    spec = resolve_model(Modality.VOICE, "embedded/voice-multicorpus")
    assert spec is not None
    encoder = EmbeddedVoiceEncoder(spec, VoiceConfig(vad="energy"))
    encoder.load()  # as emoapp evaluate hands it over
    items = [
        EvalItem(id=f.stem, label="neutral", audio=f, meta={"speaker": "A"}) for f in FILES[:3]
    ]
    with PredictionCache(tmp_path / "cache.jsonl") as cache:
        run = Predictor({Modality.VOICE: encoder}, cache).run(items)
    got = run.predictions[Modality.VOICE]
    assert all(got[i.id].status == "ok" for i in items)
    # The same as describing every window, pooling the speaker's statistics, classifying.
    label_map = encoder.label_map
    assert label_map is not None
    vectors, owners = [], []
    for i in items:
        audio, sr = sf.read(i.audio, dtype="float32")
        for d in encoder._describe(list(sliding_windows(audio, sr))):
            if d.vector is not None:
                vectors.append(d.vector)
                owners.append(i.id)
    stats = SpeakerStats.of(np.stack(vectors))
    for i in items:
        rows = [v for v, o in zip(vectors, owners, strict=True) if o == i.id]
        expected = np.stack([label_map.apply(p) for p in encoder.classify(np.stack(rows), stats)])
        np.testing.assert_allclose(got[i.id].units, expected, atol=1e-6)
    # A second run comes from the cache; one more item of the speaker recomputes them all.
    with PredictionCache(tmp_path / "cache.jsonl") as cache:
        again = Predictor({Modality.VOICE: encoder}, cache).run(items)
        assert again.coverage[Modality.VOICE].cached == 3
        more = [*items, EvalItem(id="x", label="angry", audio=FILES[3], meta={"speaker": "A"})]
        grown = Predictor({Modality.VOICE: encoder}, cache).run(more)
        assert grown.coverage[Modality.VOICE].cached == 0
