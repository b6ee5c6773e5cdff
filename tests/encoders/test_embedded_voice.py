"""The embedded voice model: the shipped artefact, its gate and windows, its features, and
its adaptation to the speaker (offline per speaker, live running estimate, calibration)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emoapp.core.errors import ModelLoadError
from emoapp.core.messages import AudioChunk, Modality, ModalityPrediction, NoPrediction
from emoapp.core.taxonomy import CANONICAL_LABELS, NUM_LABELS
from emoapp.encoders.adaptation import AdaptationError, SpeakerStats
from emoapp.encoders.embedded.artefacts import (
    artefact_dir,
    read_checksums,
    sha256_of,
    write_checksums,
    write_npz,
)
from emoapp.encoders.embedded.voice import (
    DEFAULT_FEATURES,
    WEIGHTS,
    EmbeddedVoiceEncoder,
    feature_names,
    softmax_classifier,
    window_features,
)
from emoapp.encoders.factory import build_encoder
from emoapp.encoders.novelty import knn_distance, temperature_of
from emoapp.encoders.voice import VoiceConfig
from emoapp.registry import resolve_model

MODEL = "embedded/voice-multicorpus"
RAVDESS = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ravdess"
ANGRY = RAVDESS / "Actor_01" / "03-01-05-02-01-01-01.flac"
SR = 16_000


def make_encoder(ref: str = MODEL, vad: str = "energy") -> EmbeddedVoiceEncoder:
    spec = resolve_model(Modality.VOICE, ref)
    assert spec is not None and spec.backend == "embedded"
    return EmbeddedVoiceEncoder(spec, VoiceConfig(vad=vad))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def encoder() -> EmbeddedVoiceEncoder:
    enc = make_encoder()
    enc.load()
    return enc


def vowel(seconds: float = 2.0, sr: int = SR, f0: float = 140.0) -> np.ndarray:
    """A voiced, speech-like signal: harmonics of a gliding pitch, syllable-rate bursts."""
    t = np.arange(int(seconds * sr)) / sr
    pitch = f0 * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / sr
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 3.5 * t) ** 2
    breath = 0.002 * np.random.default_rng(1).standard_normal(t.size)  # no empty bands
    return (0.2 * voice * envelope + breath).astype(np.float32)


def test_shipped_artefact_matches_its_checksums_and_loads(encoder):
    folder = artefact_dir(MODEL)
    sums = read_checksums(folder)
    assert set(sums) == {"meta.json", WEIGHTS}
    for name, digest in sums.items():
        assert sha256_of(folder / name) == digest
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["labels"] == encoder.meta["labels"] == list(CANONICAL_LABELS)
    n = len(feature_names(meta["features"]))
    assert meta["feature_names"][:n] == feature_names(meta["features"])
    assert meta["training"]["held_out_ravdess_actors"] == []  # the shipped model saw everyone
    assert set(meta["training"]["data"]) == {"ravdess", "tess", "emodb", "emovo", "turev"}
    assert encoder.adaptive and encoder.adaptation is not None
    assert encoder.adaptation.size == len(meta["feature_names"])
    assert 0 < encoder.temperature == meta["temperature"]
    info = encoder.info()
    assert info.model_id == MODEL and not info.baseline
    assert encoder.label_map is not None
    assert encoder.label_map.mask.all()  # the seven canonical labels


def test_the_factory_builds_it_for_the_embedded_profile():
    spec = resolve_model(Modality.VOICE, MODEL)
    assert spec is not None
    assert isinstance(build_encoder(spec, modality_config=VoiceConfig()), EmbeddedVoiceEncoder)


def test_a_corrupted_copy_is_refused(tmp_path):
    copy = tmp_path / "voice"
    shutil.copytree(artefact_dir(MODEL), copy)
    make_encoder(str(copy)).load()  # an intact copy loads from a local folder
    data = bytearray((copy / WEIGHTS).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (copy / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="checksum"):
        make_encoder(str(copy)).load()


def test_weights_that_do_not_fit_the_features_are_refused(tmp_path):
    copy = tmp_path / "voice"
    shutil.copytree(artefact_dir(MODEL), copy)
    write_npz(copy / WEIGHTS, {"mean": np.zeros(3), "scale": np.ones(3)})
    write_checksums(copy)
    with pytest.raises(ModelLoadError, match="lacks"):
        make_encoder(str(copy)).load()


def test_silence_and_noise_give_no_prediction(encoder):
    silent = AudioChunk(1.0, np.zeros(2 * SR, dtype=np.float32), SR)
    rng = np.random.default_rng(0)
    hiss = AudioChunk(3.0, (0.003 * rng.standard_normal(2 * SR)).astype(np.float32), SR)
    out = encoder.encode([silent, hiss, "not audio"])  # type: ignore[list-item]
    assert all(isinstance(o, NoPrediction) for o in out)
    assert out[0].reason == "silence" and out[0].t == 1.0  # type: ignore[union-attr]
    assert out[1].reason.startswith("no speech")  # type: ignore[union-attr]
    assert "AudioChunk" in out[2].reason  # type: ignore[union-attr]


def test_any_rate_and_channel_layout_gives_a_valid_prediction(encoder):
    import librosa

    sound = vowel()
    mono = librosa.resample(sound, orig_sr=SR, target_sr=44_100)
    stereo = (np.stack([mono, mono], axis=1) * 32767).astype(np.int16)  # (n, 2) int16
    out = encoder.encode([AudioChunk(5.0, stereo, 44_100), AudioChunk(5.0, sound, SR)])
    for o in out:
        assert isinstance(o, ModalityPrediction)
        assert o.t == 5.0 and o.t_end == pytest.approx(7.0)
        assert o.probs.shape == (NUM_LABELS,) and o.probs.sum() == pytest.approx(1.0)
        assert np.all(o.probs >= 0) and o.confidence == pytest.approx(o.probs.max())
        assert o.model_id == MODEL and o.valence is not None
    assert out[0].detail["resampled"] and out[0].detail["channels"] == 2
    # The same sound at another rate and layout gets the same answer (the round trip
    # through 44.1 kHz and int16 moves the probabilities a little, not the top label).
    assert np.argmax(out[0].probs) == np.argmax(out[1].probs)


@pytest.mark.skipif(not ANGRY.is_file(), reason="../shared/data/ravdess is not here")
def test_a_real_ravdess_recording_gets_valid_predictions():
    import soundfile as sf

    from emoapp.encoders.voice import sliding_windows

    enc = make_encoder(vad="silero")  # the gate the app uses
    audio, sr = sf.read(ANGRY, dtype="float32")
    windows = list(sliding_windows(audio, sr))
    out = enc.encode(windows)
    predictions = [o for o in out if isinstance(o, ModalityPrediction)]
    assert predictions, [getattr(o, "reason", "") for o in out]
    for o, w in zip(out, windows, strict=True):
        if isinstance(o, ModalityPrediction):
            assert o.t_end == pytest.approx(w.t + 2.0)
            assert o.probs.sum() == pytest.approx(1.0)
            assert o.probs[o.mask].sum() == pytest.approx(1.0)
        else:
            assert o.reason.startswith("no speech") or o.reason == "silence"


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 6),
    st.integers(0, 2**32 - 1),
    st.floats(0.1, 100.0),
)
def test_classifier_outputs_are_distributions(n, seed, spread):
    rng = np.random.default_rng(seed)
    d, h, k = 5, 4, 8
    weights = {
        "mean": rng.normal(size=d),
        "scale": rng.uniform(0.1, 3.0, size=d),
        "hidden_w": rng.normal(size=(d, h)),
        "hidden_b": rng.normal(size=h),
        "out_w": spread * rng.normal(size=(h, k)),
        "out_b": rng.normal(size=k),
    }
    x = spread * rng.normal(size=(n, d))
    for w in (weights, {k_: v for k_, v in weights.items() if not k_.startswith("hidden")}):
        if "hidden_w" not in w:
            w = {**w, "out_w": spread * rng.normal(size=(d, k))}
        p = softmax_classifier(x, w)
        assert p.shape == (n, k)
        assert np.all(np.isfinite(p)) and np.all(p >= 0)
        assert np.allclose(p.sum(axis=1), 1.0)


@settings(max_examples=15, deadline=None)
@given(st.floats(0.02, 4.0), st.floats(90.0, 260.0))
def test_features_do_not_depend_on_the_recording_level(gain, f0):
    every = {**DEFAULT_FEATURES, "mel_means": True}  # band levels too, relative ones
    x = vowel(1.0, f0=f0)
    a = window_features(x, every)
    b = window_features(x * np.float32(gain), every)
    assert a.shape == (len(feature_names(every)),)
    assert np.all(np.isfinite(a))
    # Equal up to float32 rounding (which can move a borderline frame in or out).
    np.testing.assert_allclose(a, b, rtol=1e-2, atol=0.05)


def test_the_weights_file_is_byte_for_byte_reproducible(tmp_path):
    arrays = {"b": np.arange(3.0), "a": np.eye(2)}
    write_npz(tmp_path / "one.npz", arrays)
    write_npz(tmp_path / "two.npz", dict(reversed(arrays.items())))
    assert (tmp_path / "one.npz").read_bytes() == (tmp_path / "two.npz").read_bytes()
    with np.load(tmp_path / "one.npz") as data:
        np.testing.assert_array_equal(data["a"], np.eye(2))


def test_offline_adaptation_uses_the_speakers_statistics(encoder):
    """encode_speaker: every window of the speaker's recordings is classified with
    statistics from all of them; the live state is left alone."""
    a = AudioChunk(0.0, vowel(2.0, f0=120.0), SR)
    b = AudioChunk(2.0, vowel(2.0, f0=220.0), SR)
    encoder.reset_adaptation()
    outs = encoder.encode_speaker([[a], [b]])
    assert [len(o) for o in outs] == [1, 1]
    assert all(isinstance(o[0], ModalityPrediction) for o in outs)
    vectors = np.stack([encoder.vector(c.samples) for c in (a, b)])
    stats = SpeakerStats.of(vectors)
    label_map = encoder.label_map
    assert label_map is not None
    for o, v in zip(outs, vectors, strict=True):
        expected = label_map.apply(encoder.classify(v[None, :], stats)[0])
        np.testing.assert_allclose(o[0].probs, expected, atol=1e-9)
    assert encoder.current_stats() is None  # offline work leaves the live state alone


def test_live_running_estimate_calibration_and_reset(encoder):
    encoder.reset_adaptation()
    chunk = AudioChunk(0.0, vowel(2.0), SR)
    first = encoder.encode([chunk])[0]
    assert isinstance(first, ModalityPrediction)
    stats = encoder.current_stats()
    assert stats is not None and stats.weight == 1.0  # the window joined the estimate
    encoder.encode([chunk, chunk])
    assert encoder.current_stats().weight == 3.0  # type: ignore[union-attr]
    cal = encoder.calibration_stats(np.concatenate([vowel(2.0), vowel(2.0, f0=180.0)]))
    assert cal.weight >= 1 and cal.source == "calibration"
    encoder.set_calibration(cal)
    assert encoder.adaptation is not None
    w = encoder.adaptation.calibration_weight
    assert encoder.current_stats().weight == pytest.approx(3.0 + w * cal.weight)  # type: ignore[union-attr]
    encoder.reset_adaptation()  # consent withdrawn: everything forgotten
    assert encoder.current_stats() is None
    with pytest.raises(AdaptationError, match="do not fit"):
        encoder.set_calibration(SpeakerStats.of(np.zeros((2, 3))))
    with pytest.raises(AdaptationError, match="no speech"):
        encoder.calibration_stats(np.zeros(SR, dtype=np.float32))


def test_the_shipped_model_has_a_speaker_dependent_temperature(encoder):
    meta = json.loads((artefact_dir(MODEL) / "meta.json").read_text())
    novelty = encoder.novelty_temperature
    assert novelty is not None and meta["confidence"]["kind"] == "speaker-novelty"
    assert novelty.t_familiar <= novelty.t_novel  # conservative = the novel end
    assert novelty.speakers.shape == (meta["training"]["speakers"], encoder.adaptation.size)  # type: ignore[union-attr]
    assert encoder.temperature_for(None) == novelty.t_novel
    # the live session's first windows: little speech, (nearly) the conservative end
    encoder.reset_adaptation()
    encoder.encode([AudioChunk(0.0, vowel(2.0), SR)] * 2)
    few = encoder.current_stats()
    assert few is not None and few.weight == 2.0
    t = encoder.temperature_for(few)
    assert novelty.t_familiar <= t <= novelty.t_novel
    assert t > (novelty.t_familiar + novelty.t_novel) / 2
    encoder.reset_adaptation()


def _copy_with_meta(tmp_path: Path, edit) -> Path:
    copy = tmp_path / "voice"
    shutil.copytree(artefact_dir(MODEL), copy)
    meta = json.loads((copy / "meta.json").read_text())
    edit(meta)
    (copy / "meta.json").write_text(json.dumps(meta))
    write_checksums(copy)
    return copy


def test_an_artefact_without_the_speaker_temperature_keeps_its_single_one(tmp_path):
    copy = _copy_with_meta(tmp_path, lambda m: m.pop("confidence"))
    old = make_encoder(str(copy))
    old.load()
    assert old.novelty_temperature is None
    stats = SpeakerStats.of(np.ones((3, old.adaptation.size)))  # type: ignore[union-attr]
    assert old.temperature_for(None) == old.temperature_for(stats) == old.meta["temperature"]


def test_a_bad_speaker_temperature_is_refused_in_one_line(tmp_path):
    copy = _copy_with_meta(tmp_path, lambda m: m["confidence"].update(t_novel=-1.0))
    with pytest.raises(ModelLoadError, match="t_novel must be positive"):
        make_encoder(str(copy)).load()
    copy2 = _copy_with_meta(tmp_path / "b", lambda m: m["confidence"].update(kind="domain"))
    with pytest.raises(ModelLoadError, match="unknown kind"):
        make_encoder(str(copy2)).load()
    copy3 = tmp_path / "c" / "voice"
    shutil.copytree(artefact_dir(MODEL), copy3)
    with np.load(copy3 / WEIGHTS) as data:
        arrays = {k: data[k] for k in data.files if k != "novelty_speakers"}
    write_npz(copy3 / WEIGHTS, arrays)
    write_checksums(copy3)
    with pytest.raises(ModelLoadError, match="lack novelty_speakers"):
        make_encoder(str(copy3)).load()


def test_a_calibration_reading_is_judged_against_the_training_speakers_neutral_speech(encoder):
    """The shipped model stores its training speakers' neutral means: a stored calibration
    (a neutral reading) is judged against them, by its share of the live statistics;
    statistics without a reading get the temperature they always had."""
    meta = json.loads((artefact_dir(MODEL) / "meta.json").read_text())
    novelty = encoder.novelty_temperature
    assert novelty is not None and novelty.judges_readings
    assert novelty.neutral_speakers.shape == (
        meta["confidence"]["neutral_speakers"],
        encoder.adaptation.size,
    )
    encoder.reset_adaptation()
    cal = encoder.calibration_stats(np.concatenate([vowel(2.0), vowel(2.0, f0=180.0)]))
    assert cal.reading == cal.weight
    encoder.set_calibration(cal)
    w = encoder.adaptation.calibration_weight
    only = encoder.current_stats()
    assert only is not None and only.reading == pytest.approx(w * cal.weight)
    assert novelty.reading_share(only) == 1.0
    mean = only.total / only.weight
    assert novelty.novelty(only) == pytest.approx(novelty.neutral_novelty_of_mean(mean))
    encoder.encode([AudioChunk(0.0, vowel(2.0, f0=120.0), SR)] * 3)
    both = encoder.current_stats()
    assert both is not None and both.reading == only.reading and both.weight > only.weight
    share = only.reading / both.weight
    assert novelty.reading_share(both) == pytest.approx(share)
    running = SpeakerStats(both.total, both.weight, 0.0, "running", {}, both.total_sq)
    assert running.reading == 0.0
    old = dataclasses.replace(novelty, neutral_speakers=None)
    assert encoder.temperature_for(running) == old.temperature(running)
    encoder.reset_adaptation()


def test_an_artefact_without_the_neutral_means_judges_a_reading_as_before(tmp_path, encoder):
    copy = tmp_path / "voice"
    shutil.copytree(artefact_dir(MODEL), copy)
    with np.load(copy / WEIGHTS) as data:
        arrays = {k: data[k] for k in data.files if k != "novelty_neutral_speakers"}
    write_npz(copy / WEIGHTS, arrays)
    meta = json.loads((copy / "meta.json").read_text())
    for key in ("neutral_distance_scale", "neutral_speakers"):
        meta["confidence"].pop(key, None)
    (copy / "meta.json").write_text(json.dumps(meta))
    write_checksums(copy)
    before = make_encoder(str(copy))
    before.load()
    novelty = before.novelty_temperature
    assert novelty is not None and not novelty.judges_readings
    rng = np.random.default_rng(0)
    size = before.adaptation.size  # type: ignore[union-attr]
    reading = SpeakerStats.of(rng.normal(size=(40, size)) + encoder.adaptation.reference)
    reading.reading = reading.weight
    z = (reading.mean - novelty.offset) / novelty.scale
    nov = float(knn_distance(z, novelty.speakers, 3)[0] / novelty.distance_scale)
    assert novelty.novelty(reading) == nov
    assert before.temperature_for(reading) == float(
        temperature_of(
            nov,
            reading.weight,
            novelty.t_familiar,
            novelty.t_novel,
            novelty.midpoint,
            novelty.slope,
            novelty.min_windows,
        )
    )
    # the classifier is the same: without a reading both give the same probabilities
    speech = SpeakerStats.of(rng.normal(size=(40, size)) + encoder.adaptation.reference)
    x = rng.normal(size=(3, size)) + encoder.adaptation.reference
    np.testing.assert_array_equal(before.classify(x, speech), encoder.classify(x, speech))
