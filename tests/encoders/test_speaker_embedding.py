"""The speaker embedding rebuilt from resemblyzer's wheel: same numbers as resemblyzer's
own encoder (where that package imports), and embeddings that tell two voices apart."""

from __future__ import annotations

import numpy as np
import pytest

from emoapp.encoders.speaker_embedding import (
    PARTIAL_FRAMES,
    SpeakerEmbedder,
    partial_slices,
)

pytest.importorskip("librosa")


def _tone(f0: float, seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(16_000 * seconds)) / 16_000
    wav = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 8))
    wav = wav * (1 + 0.3 * np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(t.size)
    return (0.1 * wav / np.max(np.abs(wav))).astype(np.float32)


def test_embedding_is_unit_length_and_deterministic():
    emb = SpeakerEmbedder.load()
    a = emb.embed(_tone(120))
    assert a.shape == (256,)
    assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(a, emb.embed(_tone(120)), atol=1e-6)


def test_partials_cover_the_utterance():
    wav_slices, mel_slices = partial_slices(16_000 * 5)
    assert all(s.stop - s.start == PARTIAL_FRAMES for s in mel_slices)
    assert wav_slices[0].start == 0 and wav_slices[-1].stop >= 16_000 * 4
    assert len(partial_slices(100)[0]) == 1  # a short clip still gets one partial


def test_matches_resemblyzer_where_it_imports():
    try:
        from resemblyzer import VoiceEncoder
        from resemblyzer.audio import normalize_volume
    except ImportError as exc:  # its __init__ needs webrtcvad and pkg_resources
        pytest.skip(f"resemblyzer does not import here: {exc}")
    ref = VoiceEncoder("cpu", verbose=False)
    wav = _tone(180, seed=3)
    expected = ref.embed_utterance(normalize_volume(wav, -30, increase_only=True))
    np.testing.assert_allclose(SpeakerEmbedder.load().embed(wav), expected, atol=1e-4)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="no audio"):
        SpeakerEmbedder.load().embed(np.zeros(0, dtype=np.float32))
