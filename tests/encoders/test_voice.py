"""The voice encoder, its voice-activity gates and its windowing, on synthesised speech
(espeak-ng) with a tiny Wav2Vec2."""

from __future__ import annotations

import shutil
import subprocess
import threading

import numpy as np
import pytest

from emoapp.core.errors import MissingDependencyError
from emoapp.core.messages import AudioChunk, Modality, ModalityPrediction, NoPrediction
from emoapp.encoders import vad as vad_module
from emoapp.encoders.base import EncoderConfig
from emoapp.encoders.vad import (
    EnergyVAD,
    SileroVAD,
    VoiceActivityGate,
    make_gate,
    rms_dbfs,
)
from emoapp.encoders.voice import (
    VoiceConfig,
    VoiceEncoder,
    WindowBuffer,
    sliding_windows,
    to_mono_float32,
    window_count,
)

SR = 16_000


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models run faster on one thread, and do not stall on a busy CI machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> tuple[np.ndarray, int]:
    """About four seconds of synthesised English speech at its native rate (22.05 kHz)."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.skip("espeak-ng is not installed")
    import soundfile as sf

    wav = tmp_path_factory.mktemp("speech") / "speech.wav"
    subprocess.run(
        [
            espeak,
            "-w",
            str(wav),
            "Hello there, I am so happy to see you today. What a wonderful morning it is.",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    samples, sr = sf.read(wav, dtype="float32", always_2d=False)
    assert samples.ndim == 1 and len(samples) > 2 * sr
    return samples, sr


@pytest.fixture(scope="module")
def speech16k(speech) -> np.ndarray:
    import librosa

    samples, sr = speech
    return librosa.resample(samples, orig_sr=sr, target_sr=SR).astype(np.float32)


@pytest.fixture(scope="module")
def encoder(tiny_models) -> VoiceEncoder:
    enc = VoiceEncoder(EncoderConfig(str(tiny_models["voice"]), device="cpu"))
    enc.load()
    return enc


def _noise(seconds: float = 2.0, level: float = 0.003, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * SR)) * level).astype(np.float32)


def _assert_valid_prediction(out, encoder) -> None:
    assert isinstance(out, ModalityPrediction), getattr(out, "reason", out)
    assert out.modality is Modality.VOICE
    mask = encoder.label_map.mask
    assert np.array_equal(out.mask, mask)
    assert out.probs.sum() == pytest.approx(1.0)
    assert np.all(out.probs[~mask] == 0)
    assert out.valence is None and out.arousal is None
    assert 0 < out.confidence <= 1


# --- the encoder ----------------------------------------------------------------------


def test_speech_window_gives_a_prediction(encoder, speech16k):
    assert isinstance(encoder.gate, SileroVAD)
    [out] = encoder.encode([AudioChunk(3.0, speech16k[: 2 * SR], SR)])
    _assert_valid_prediction(out, encoder)
    assert out.t == 3.0
    d = out.detail
    assert d["window_end"] == pytest.approx(5.0)
    assert d["vad"] == "silero"
    assert d["speech_fraction"] > 0.5
    assert d["speech_s"] >= encoder.voice.min_speech_s
    assert -40 < d["rms_dbfs"] < 0
    assert d["vad_s"] > 0
    assert d["resampled"] is False


def test_silence_and_low_noise_give_no_prediction(encoder):
    silence, noise = encoder.encode(
        [AudioChunk(1.0, np.zeros(2 * SR, np.float32), SR), AudioChunk(2.0, _noise(), SR)]
    )
    assert isinstance(silence, NoPrediction) and silence.reason == "silence"
    assert silence.t == 1.0
    assert isinstance(noise, NoPrediction)
    assert noise.reason.startswith("no speech (voice activity ")
    assert noise.t == 2.0


@pytest.mark.parametrize("layout", ["frames-by-channels", "channels-by-frames"])
def test_44k1_stereo_is_downmixed_and_resampled(encoder, speech, layout):
    import librosa

    samples, sr = speech
    y = librosa.resample(samples, orig_sr=sr, target_sr=44_100)[: 2 * 44_100]
    stereo = np.stack([y, 0.5 * y], axis=1 if layout == "frames-by-channels" else 0)
    [out] = encoder.encode([AudioChunk(0.5, stereo.astype(np.float32), 44_100)])
    _assert_valid_prediction(out, encoder)
    assert out.detail["channels"] == 2
    assert out.detail["sample_rate"] == 44_100
    assert out.detail["resampled"] is True
    assert out.detail["window_end"] == pytest.approx(2.5)


def test_native_rate_matches_16k_closely(encoder, speech, speech16k):
    samples, sr = speech
    native, resampled = encoder.encode(
        [AudioChunk(0.0, samples[: 2 * sr], sr), AudioChunk(0.0, speech16k[: 2 * SR], SR)]
    )
    np.testing.assert_allclose(native.probs, resampled.probs, atol=0.02)


def test_a_few_nan_samples_are_zeroed_and_reported(encoder, speech16k):
    window = speech16k[: 2 * SR].copy()
    window[100:200] = np.nan
    window[5000] = np.inf
    [out] = encoder.encode([AudioChunk(0.0, window, SR)])
    _assert_valid_prediction(out, encoder)
    assert out.detail["non_finite_samples"] == 101
    assert np.all(np.isfinite(out.probs))


def test_all_nan_window_is_refused(encoder):
    [out] = encoder.encode([AudioChunk(0.0, np.full(2 * SR, np.nan, np.float32), SR)])
    assert isinstance(out, NoPrediction)
    assert "NaN" in out.reason


def test_int16_pcm_is_scaled(encoder, speech16k):
    pcm = (speech16k[: 2 * SR] * 32767).astype(np.int16)
    [out] = encoder.encode([AudioChunk(0.0, pcm, SR)])
    _assert_valid_prediction(out, encoder)
    assert out.detail["rms_dbfs"] == pytest.approx(rms_dbfs(speech16k[: 2 * SR]), abs=0.1)


@pytest.mark.parametrize(
    ("samples", "reason"),
    [
        (np.zeros(0, np.float32), "empty"),
        (np.full(800, 0.1, np.float32), "too short"),
        (np.zeros((2, 3, 4), np.float32), "1-D or 2-D"),
        (np.array(["a", "b"]), "cannot be used"),
    ],
)
def test_unusable_windows_say_why(encoder, samples, reason):
    [out] = encoder.encode([AudioChunk(4.0, samples, SR)])
    assert isinstance(out, NoPrediction)
    assert reason in out.reason
    assert out.t == 4.0


def test_windows_of_a_batch_share_one_forward_pass_and_keep_their_order(
    encoder, speech16k, monkeypatch
):
    calls = []
    forward = encoder.model.forward
    monkeypatch.setattr(
        encoder.model,
        "forward",
        lambda **kw: calls.append(tuple(kw["input_values"].shape)) or forward(**kw),
    )
    chunks = list(sliding_windows(speech16k, SR, t0=10.0, window_s=1.0, hop_s=0.5))
    items = [*chunks[:3], AudioChunk(99.0, np.zeros(SR, np.float32), SR), chunks[3]]
    outs = encoder.encode(items)
    assert [o.t for o in outs] == [10.0, 10.5, 11.0, 99.0, 11.5]
    assert isinstance(outs[3], NoPrediction)
    assert len(calls) == 1 and calls[0][0] == sum(isinstance(o, ModalityPrediction) for o in outs)


def test_energy_gate(tiny_models, speech16k):
    enc = VoiceEncoder(
        EncoderConfig(str(tiny_models["voice"]), device="cpu"), VoiceConfig(vad="energy")
    )
    speech_out, noise_out = enc.encode(
        [AudioChunk(0.0, speech16k[: 2 * SR], SR), AudioChunk(2.0, _noise(), SR)]
    )
    assert isinstance(enc.gate, EnergyVAD)
    _assert_valid_prediction(speech_out, enc)
    assert speech_out.detail["vad"] == "energy"
    assert isinstance(noise_out, NoPrediction)
    assert noise_out.reason.startswith("no speech")


def test_gate_off_classifies_anything_but_silence(tiny_models):
    enc = VoiceEncoder(
        EncoderConfig(str(tiny_models["voice"]), device="cpu"), VoiceConfig(vad="off")
    )
    noise_out, silence_out = enc.encode(
        [AudioChunk(0.0, _noise(), SR), AudioChunk(2.0, np.zeros(2 * SR, np.float32), SR)]
    )
    assert enc.gate is None
    _assert_valid_prediction(noise_out, enc)
    assert noise_out.detail["vad"] == "off"
    assert isinstance(silence_out, NoPrediction) and silence_out.reason == "silence"


def test_min_speech_is_configurable(tiny_models, speech16k):
    # Half a second of speech in a two-second window.
    window = np.zeros(2 * SR, np.float32)
    window[: SR // 2] = speech16k[SR // 2 : SR]
    config = EncoderConfig(str(tiny_models["voice"]), device="cpu")
    strict = VoiceEncoder(config, VoiceConfig(vad="energy", min_speech_s=1.0))
    lenient = VoiceEncoder(config, VoiceConfig(vad="energy", min_speech_s=0.1))
    [refused] = strict.encode([AudioChunk(0.0, window, SR)])
    [accepted] = lenient.encode([AudioChunk(0.0, window, SR)])
    assert isinstance(refused, NoPrediction) and refused.reason.startswith("no speech")
    assert isinstance(accepted, ModalityPrediction)


@pytest.mark.parametrize(
    "kwargs", [{"window_s": 0}, {"hop_s": -1}, {"min_speech_s": -0.1}, {"vad": "webrtc"}]
)
def test_voice_config_rejects_nonsense(kwargs):
    with pytest.raises(ValueError):
        VoiceConfig(**kwargs)


# --- voice-activity gates -------------------------------------------------------------


def test_rms_dbfs():
    t = np.arange(SR) / SR
    assert rms_dbfs(np.sin(2 * np.pi * 440 * t)) == pytest.approx(-3.01, abs=0.01)
    assert rms_dbfs(np.zeros(100)) == -120.0
    assert rms_dbfs(np.zeros(0)) == -120.0


def test_silero_gate_measures_speech_and_noise(speech16k):
    gate = SileroVAD()
    assert isinstance(gate, VoiceActivityGate)
    speech_act = gate.measure(speech16k[: 2 * SR], SR)
    noise_act = gate.measure(_noise(), SR)
    assert speech_act.method == "silero"
    assert speech_act.speech_fraction > 0.5 and speech_act.speech_prob > 0.5
    assert speech_act.speech_s == pytest.approx(2.0 * speech_act.speech_fraction)
    assert noise_act.speech_fraction < 0.1
    # Batched windows agree with one-by-one, and a state reset makes calls repeatable.
    batch = gate.measure_many([speech16k[: 2 * SR], _noise(), speech16k[SR : 2 * SR]], SR)
    assert batch[0].speech_fraction == pytest.approx(speech_act.speech_fraction)
    assert batch[1].speech_fraction == pytest.approx(noise_act.speech_fraction)
    assert gate.measure(speech16k[: 2 * SR], SR).speech_prob == pytest.approx(
        speech_act.speech_prob, abs=1e-5
    )


def test_silero_gate_resamples_other_rates(speech):
    samples, sr = speech
    act = SileroVAD().measure(samples[: 2 * sr], sr)
    assert act.speech_fraction > 0.5
    assert act.speech_s == pytest.approx(2.0 * act.speech_fraction, rel=0.02)


def test_silero_gate_is_safe_to_share_between_threads(speech16k):
    gate = SileroVAD()
    windows = [speech16k[: 2 * SR], _noise(seed=1), speech16k[SR : 3 * SR], _noise(seed=2)]
    expected = [gate.measure(w, SR).speech_prob for w in windows]
    results: dict[int, list[float]] = {}

    def worker(k: int) -> None:
        results[k] = [gate.measure(w, SR).speech_prob for w in windows]

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got in results.values():
        assert got == pytest.approx(expected, abs=1e-5)


def test_loading_silero_keeps_the_torch_thread_count():
    import torch

    before = torch.get_num_threads()
    SileroVAD()
    assert torch.get_num_threads() == before


def test_energy_gate_thresholds():
    gate = EnergyVAD(threshold_dbfs=-40.0)
    loud = gate.measure(np.full(SR, 0.1, np.float32), SR)  # -20 dBFS
    quiet = gate.measure(np.full(SR, 0.001, np.float32), SR)  # -60 dBFS
    half = np.concatenate([np.full(SR // 2, 0.1), np.zeros(SR // 2)]).astype(np.float32)
    assert loud.speech_fraction == 1.0 and loud.speech_prob > 0.99
    assert quiet.speech_fraction == 0.0 and quiet.speech_prob < 0.01
    assert gate.measure(half, SR).speech_s == pytest.approx(0.5, abs=0.04)
    assert gate.measure(np.zeros(0, np.float32), SR).speech_fraction == 0.0


def test_silero_unavailable_falls_back_to_energy_and_says_so_once(monkeypatch, capsys):
    def unavailable():
        raise MissingDependencyError("silero-vad", "the Silero voice-activity detector")

    monkeypatch.setattr(vad_module, "_load_silero", unavailable)
    monkeypatch.setattr(vad_module, "_fallback_announced", False)
    first = make_gate("silero")
    second = make_gate("silero")
    assert isinstance(first, EnergyVAD) and isinstance(second, EnergyVAD)
    err = capsys.readouterr().err
    assert err.count("emoapp:") == 1
    assert "silero-vad" in err and "energy threshold" in err


def test_make_gate_kinds():
    assert make_gate("off") is None
    assert isinstance(make_gate("energy", energy_dbfs=-30), EnergyVAD)
    with pytest.raises(ValueError):
        make_gate("webrtc")  # type: ignore[arg-type]


# --- windowing ------------------------------------------------------------------------


def test_to_mono_float32_layouts():
    mono = np.linspace(-1, 1, 1000, dtype=np.float32)
    for array, channels in [
        (mono, 1),
        (np.stack([mono, mono], axis=1), 2),
        (np.stack([mono, mono, mono], axis=0), 3),
        (mono[:, None], 1),
    ]:
        out, ch = to_mono_float32(array)
        assert ch == channels and out.dtype == np.float32
        np.testing.assert_allclose(out, mono, atol=1e-6)
    out, _ = to_mono_float32(np.array([-32768, 0, 16384], dtype=np.int16))
    np.testing.assert_allclose(out, [-1.0, 0.0, 0.5])


def test_sliding_windows_count_and_timing():
    samples = np.zeros(5 * SR, np.float32)
    windows = list(sliding_windows(samples, SR, t0=100.0, window_s=2.0, hop_s=0.5))
    assert len(windows) == 7 == window_count(5.0, 2.0, 0.5)
    assert [w.t for w in windows] == pytest.approx([100.0 + 0.5 * k for k in range(7)])
    assert all(len(w.samples) == 2 * SR and w.sample_rate == SR for w in windows)
    assert windows[-1].end == pytest.approx(105.0)
    # A recording shorter than a window is one (short) window; an empty one is none.
    [short] = sliding_windows(np.zeros(SR // 2, np.float32), SR, t0=1.0)
    assert short.t == 1.0 and short.duration == pytest.approx(0.5)
    assert window_count(0.5) == 1
    assert list(sliding_windows(np.zeros(0, np.float32), SR)) == []
    # Stereo input comes out mono.
    [w] = sliding_windows(np.zeros((SR, 2), np.float32), SR, window_s=1.0)
    assert w.samples.shape == (SR,)


def _ramp(n: int, start: int = 0) -> np.ndarray:
    """Samples whose value encodes their index, exactly representable in float32."""
    return ((np.arange(start, start + n) % 65536) / 65536.0).astype(np.float32)


def test_window_buffer_emits_windows_at_the_right_times_for_odd_chunks():
    sr = 1000  # small rate: exact arithmetic, quick
    buffer = WindowBuffer(window_s=2.0, hop_s=0.5)
    rng = np.random.default_rng(3)
    total = 0
    t0 = 50.0
    windows: list[AudioChunk] = []
    while total < 9_000:
        n = int(rng.integers(1, 1_700))
        windows += buffer.push(AudioChunk(t0 + total / sr, _ramp(n, total), sr, "mic"))
        total += n
        assert buffer.buffered_samples < 2 * sr
        assert buffer.capacity == 2 * sr
    expected = window_count(total / sr, 2.0, 0.5)
    assert len(windows) == expected
    for k, w in enumerate(windows):
        assert w.t == pytest.approx(t0 + 0.5 * k, abs=1e-9)
        assert w.sample_rate == sr and w.source == "mic"
        np.testing.assert_array_equal(w.samples, _ramp(2 * sr, 500 * k))
    # Emitted windows are copies: later pushes do not change them.
    first = windows[0].samples.copy()
    buffer.push(AudioChunk(t0 + total / sr, np.ones(3_000, np.float32), sr))
    np.testing.assert_array_equal(windows[0].samples, first)


def test_window_buffer_with_hop_longer_than_window():
    sr = 1000
    buffer = WindowBuffer(window_s=1.0, hop_s=1.5)
    windows = []
    for i in range(0, 6_000, 700):
        windows += buffer.push(AudioChunk(i / sr, _ramp(700, i), sr))
    assert [w.t for w in windows] == pytest.approx([0.0, 1.5, 3.0, 4.5])
    for k, w in enumerate(windows):
        np.testing.assert_array_equal(w.samples, _ramp(1000, 1500 * k))


def test_window_buffer_restarts_after_a_gap_or_a_new_rate():
    sr = 1000
    buffer = WindowBuffer(window_s=1.0, hop_s=0.5)
    assert buffer.push(AudioChunk(0.0, np.zeros(800, np.float32), sr)) == []
    # A chunk that starts 5 s later: the 0.8 s held before it are dropped.
    [w] = buffer.push(AudioChunk(5.8, np.zeros(1000, np.float32), sr))
    assert w.t == pytest.approx(5.8)
    assert buffer.buffered_samples == 500
    # A new sample rate also starts afresh.
    assert buffer.push(AudioChunk(6.8, np.zeros(1000, np.float32), 2000)) == []
    assert buffer.sample_rate == 2000 and buffer.capacity == 2000
    buffer.reset()
    assert buffer.buffered_samples == 0


def test_window_buffer_small_jitter_keeps_the_stream():
    sr = 1000
    buffer = WindowBuffer(window_s=1.0, hop_s=0.5)
    buffer.push(AudioChunk(0.0, _ramp(600), sr))
    # This chunk claims to start 10 ms late: within tolerance, the stream continues and
    # times follow the newest chunk's clock.
    [w] = buffer.push(AudioChunk(0.61, _ramp(600, 600), sr))
    np.testing.assert_array_equal(w.samples, _ramp(1000))
    assert w.t == pytest.approx(0.01)


def test_window_buffer_downmixes_stereo_chunks():
    sr = 1000
    buffer = WindowBuffer(window_s=1.0, hop_s=1.0)
    [w] = buffer.push(AudioChunk(0.0, np.ones((1000, 2), np.float32), sr))
    assert w.samples.shape == (1000,)


def test_window_buffer_from_config():
    buffer = WindowBuffer.from_config(VoiceConfig(window_s=1.5, hop_s=0.25))
    assert (buffer.window_s, buffer.hop_s) == (1.5, 0.25)


def test_silero_batched_pass_matches_its_per_frame_loop(samples):
    """The gate runs Silero over a whole window at once; it must give the per-frame
    streaming model's answers (it falls back to the loop if they ever differ)."""
    from emoapp.capture.media import read_audio
    from emoapp.encoders.vad import SileroVAD

    gate = SileroVAD()
    assert gate._sequence is not None
    audio = read_audio(samples / "speech.wav").samples.astype(np.float32)
    windows = np.stack([audio[16000:48000], audio[40000:72000]])
    np.testing.assert_allclose(gate._frame_probs(windows), gate._loop_probs(windows), atol=1e-4)
