"""The no-download baseline encoders on real inputs: the astronaut photo (skimage) for the
smile detector, espeak-ng speech for the prosody rules, sentences for the lexicon."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from emoapp.core.messages import (
    AudioChunk,
    Modality,
    ModalityPrediction,
    NoPrediction,
    TextEntry,
    VideoFrame,
)
from emoapp.core.taxonomy import CANONICAL_LABELS, LABEL_INDEX
from emoapp.encoders.base import Encoder
from emoapp.encoders.baseline import (
    FACE_MASK,
    VOICE_MASK,
    LexiconTextEncoder,
    ProsodyVoiceEncoder,
    SmileFaceEncoder,
    baseline_mask,
)
from emoapp.encoders.factory import build_encoder, is_available_locally
from emoapp.registry import registry, resolve_profile

HAPPY, NEUTRAL, SAD = LABEL_INDEX["happy"], LABEL_INDEX["neutral"], LABEL_INDEX["sad"]


def _check_prediction(out: object, modality: Modality, model_id: str) -> ModalityPrediction:
    assert isinstance(out, ModalityPrediction), out
    assert out.modality is modality and out.model_id == model_id and out.baseline
    assert abs(out.probs.sum() - 1.0) < 1e-9
    assert not out.probs[~out.mask].any()
    assert 0.0 <= out.confidence <= 1.0
    assert out.valence is not None and out.arousal is not None
    return out


def test_the_baseline_profile_builds_all_three_with_nothing_to_download() -> None:
    specs = resolve_profile("baseline")
    encoders = {}
    for modality, spec in specs.items():
        assert spec is not None and spec.baseline and is_available_locally(spec)
        encoder = build_encoder(spec)
        assert isinstance(encoder, Encoder)
        assert encoder.modality is modality and encoder.baseline
        assert encoder.model_id == spec.model
        encoders[modality] = encoder
    assert isinstance(encoders[Modality.FACE], SmileFaceEncoder)
    assert isinstance(encoders[Modality.VOICE], ProsodyVoiceEncoder)
    assert isinstance(encoders[Modality.TEXT], LexiconTextEncoder)
    info = encoders[Modality.FACE].info()
    assert info.baseline and info.label_mapping == [("neutral", "neutral"), ("happy", "happy")]
    for model_id, entry in registry().items():
        if entry.baseline:
            assert baseline_mask(model_id).any()


# --- text -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lexicon() -> LexiconTextEncoder:
    encoder = LexiconTextEncoder()
    encoder.load()
    return encoder


def _text(encoder: LexiconTextEncoder, text: str) -> ModalityPrediction:
    [out] = encoder.encode([TextEntry(t=3.0, text=text)])
    pred = _check_prediction(out, Modality.TEXT, "baseline/text-lexicon")
    assert pred.t == 3.0 and pred.mask.all()
    return pred


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("I am so happy to see you today!", "happy"),
        ("Thank you, this is wonderful news :)", "happy"),
        ("I feel sad and lonely tonight 😢", "sad"),
        ("Why would you do that? I am furious.", "angry"),
        ("I am worried about tomorrow and I feel afraid.", "fearful"),
        ("That is disgusting, eww.", "disgusted"),
        ("Wow, I did not expect that at all!", "surprised"),
        ("The meeting is at three o'clock in room four.", "neutral"),
        ("I can't wait for the weekend!", "happy"),
        ("sooo happyyy", "happy"),
    ],
)
def test_the_lexicon_reads_plain_sentences(
    lexicon: LexiconTextEncoder, text: str, label: str
) -> None:
    assert _text(lexicon, text).label == label


def test_negation_turns_joy_to_sadness_and_calms_negative_words(
    lexicon: LexiconTextEncoder,
) -> None:
    happy = _text(lexicon, "I am happy about this.")
    not_happy = _text(lexicon, "I am not happy about this.")
    assert happy.label == "happy"
    assert not_happy.probs[HAPPY] < 0.1 < not_happy.probs[SAD]
    assert not_happy.label != "happy"

    afraid = _text(lexicon, "I am afraid.")
    not_afraid = _text(lexicon, "I am not afraid.")
    assert not_afraid.probs[LABEL_INDEX["fearful"]] < afraid.probs[LABEL_INDEX["fearful"]]
    assert not_afraid.label == "neutral"
    # the negation stops at "but"
    assert _text(lexicon, "It was not easy but I am happy.").label == "happy"


def test_intensifiers_and_evidence_raise_confidence(lexicon: LexiconTextEncoder) -> None:
    plain = _text(lexicon, "I am happy.")
    very = _text(lexicon, "I am extremely happy.")
    slightly = _text(lexicon, "I am slightly happy.")
    assert slightly.probs[HAPPY] < plain.probs[HAPPY] < very.probs[HAPPY]
    assert plain.confidence < very.confidence
    shouted = _text(lexicon, "I am HAPPY!!!")
    assert shouted.probs[HAPPY] > plain.probs[HAPPY]
    # few emotion words in a long text: neutral keeps most of the mass, confidence is low
    none = _text(lexicon, "We walked to the station and took the train to the city centre.")
    assert none.label == "neutral" and none.confidence < plain.confidence


def test_empty_text_gives_no_prediction(lexicon: LexiconTextEncoder) -> None:
    outs = lexicon.encode(["", "   \n", TextEntry(t=1.0, text="")])
    assert all(isinstance(o, NoPrediction) and o.reason == "empty text" for o in outs)
    assert outs[2].t == 1.0


def test_the_lexicon_licence_is_surfaced() -> None:
    entry = registry()["baseline/text-lexicon"]
    assert "Apache-2.0" in entry.license and "EmoLex" in entry.license
    from emoapp.encoders import lexicon_data

    assert "not derived" in (lexicon_data.__doc__ or "").replace("NOT", "not")
    words = {w for s in lexicon_data.WORDS.values() for text in s.values() for w in text.split()}
    assert len(words) > 500
    assert {label for label in lexicon_data.WORDS} == set(CANONICAL_LABELS)


# --- face -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smile() -> SmileFaceEncoder:
    encoder = SmileFaceEncoder(None)
    encoder.load()
    return encoder


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def _mouth_hidden(image: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The same photo with the mouth painted over in the face's mean colour."""
    x, y, w, h = box
    out = image.copy()
    out[y + int(h * 0.62) : y + int(h * 0.92), x + int(w * 0.25) : x + int(w * 0.75)] = (
        image[y + h // 2 : y + h, x : x + w].reshape(-1, 3).mean(axis=0).astype(np.uint8)
    )
    return out


def test_the_smiling_astronaut_reads_happy_and_without_her_smile_neutral(
    smile: SmileFaceEncoder, astronaut: np.ndarray
) -> None:
    [out] = smile.encode([VideoFrame(t=2.5, image=astronaut)])
    pred = _check_prediction(out, Modality.FACE, "baseline/face-smile")
    assert pred.t == 2.5
    assert (pred.mask == FACE_MASK).all() and pred.label == "happy"
    assert len(pred.faces) == 1
    x, y, w, _ = pred.faces[0].box
    assert 150 < x < 210 and 40 < y < 100 and 70 < w < 130  # her face, not elsewhere

    [hidden] = smile.encode([_mouth_hidden(astronaut, pred.faces[0].box)])
    hidden_pred = _check_prediction(hidden, Modality.FACE, "baseline/face-smile")
    assert hidden_pred.label == "neutral"
    assert hidden_pred.probs[HAPPY] < pred.probs[HAPPY] - 0.4


def test_every_face_is_reported_and_the_largest_is_primary(
    smile: SmileFaceEncoder, astronaut: np.ndarray
) -> None:
    import cv2

    small = cv2.resize(astronaut, None, fx=0.6, fy=0.6)
    canvas = np.full((512, 512 + small.shape[1], 3), 128, dtype=np.uint8)
    canvas[:, :512] = _mouth_hidden(astronaut, (178, 67, 93, 93))
    canvas[: small.shape[0], 512:] = small
    [out] = smile.encode([canvas])
    pred = _check_prediction(out, Modality.FACE, "baseline/face-smile")
    assert len(pred.faces) == 2
    big, little = pred.faces
    assert big.area > little.area and big.box[0] < 512 <= little.box[0]
    assert (pred.probs == big.probs).all()  # the big face (mouth hidden) decides
    assert big.label == "neutral" and little.label == "happy"


def test_no_face_and_bad_frames_give_no_prediction(smile: SmileFaceEncoder) -> None:
    from skimage import data

    outs = smile.encode(
        [data.coffee(), np.zeros((0, 10, 3), np.uint8), np.zeros((4, 4, 5), np.uint8)]
    )
    assert [type(o) for o in outs] == [NoPrediction] * 3
    assert outs[0].reason == "no face found"


def test_the_face_config_is_duck_typed(astronaut: np.ndarray) -> None:
    class Config:
        margin = 0.2
        min_face = 200  # bigger than her face

    encoder = SmileFaceEncoder(Config())
    [out] = encoder.encode([astronaut])
    assert isinstance(out, NoPrediction)


# --- voice ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prosody() -> ProsodyVoiceEncoder:
    encoder = ProsodyVoiceEncoder(None)
    encoder.load()
    return encoder


def _windows(samples: np.ndarray, sr: int, window_s: float = 2.0) -> list[AudioChunk]:
    size = int(window_s * sr)
    return [
        AudioChunk(i / sr, samples[i : i + size], sr)
        for i in range(0, max(1, len(samples) - size + 1), size)
    ]


def _read(path: Path) -> tuple[np.ndarray, int]:
    import soundfile

    samples, sr = soundfile.read(path, dtype="float32")
    return samples, sr


def test_prosody_on_recorded_speech_and_silence(
    prosody: ProsodyVoiceEncoder, samples: Path
) -> None:
    speech, sr = _read(samples / "speech.wav")
    outs = prosody.encode(_windows(speech, sr))
    assert len(outs) == 3
    for out in outs:
        pred = _check_prediction(out, Modality.VOICE, "baseline/voice-prosody")
        assert (pred.mask == VOICE_MASK).all()
        assert pred.confidence <= 0.4
        assert pred.detail["voiced_s"] > 0.25 and 60 < pred.detail["f0_median_hz"] < 400

    silence = np.zeros(2 * sr, dtype=np.float32)
    hiss = (0.003 * np.random.default_rng(0).standard_normal(2 * sr)).astype(np.float32)
    quiet, noisy = prosody.encode([AudioChunk(9.0, silence, sr), AudioChunk(10.0, hiss, sr)])
    assert isinstance(quiet, NoPrediction) and quiet.reason == "silence" and quiet.t == 9.0
    assert isinstance(noisy, NoPrediction)
    assert noisy.reason in ("silence", "no speech")
    [short] = prosody.encode([AudioChunk(0.0, speech[:100], sr)])
    assert isinstance(short, NoPrediction) and "short" in short.reason


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")
def test_aroused_speech_scores_higher_arousal_than_calm_speech(
    prosody: ProsodyVoiceEncoder, tmp_path: Path
) -> None:
    sentence = "I think the meeting went fine and we will talk again next week."
    calm, aroused = tmp_path / "calm.wav", tmp_path / "aroused.wav"
    subprocess.run(
        ["espeak-ng", "-w", str(calm), "-s", "110", "-p", "25", "-a", "40", sentence], check=True
    )
    subprocess.run(
        ["espeak-ng", "-w", str(aroused), "-s", "230", "-p", "85", "-a", "180", sentence],
        check=True,
    )

    def mean_arousal(path: Path) -> float:
        samples, sr = _read(path)  # 22.05 kHz: resampled inside
        preds = [
            o for o in prosody.encode(_windows(samples, sr)) if isinstance(o, ModalityPrediction)
        ]
        assert preds
        return float(np.mean([p.arousal for p in preds]))

    assert mean_arousal(aroused) > mean_arousal(calm) + 0.3


def test_stereo_and_integer_audio_are_accepted(prosody: ProsodyVoiceEncoder, samples: Path) -> None:
    speech, sr = _read(samples / "speech.wav")
    window = speech[sr : 3 * sr]
    stereo = np.stack([window, window], axis=1)
    pcm = (window * 32767).astype(np.int16)
    a, b, c = prosody.encode(
        [AudioChunk(0, window, sr), AudioChunk(0, stereo, sr), AudioChunk(0, pcm, sr)]
    )
    assert isinstance(a, ModalityPrediction)
    assert isinstance(b, ModalityPrediction) and isinstance(c, ModalityPrediction)
    assert abs(a.arousal - b.arousal) < 1e-6
    # 16-bit quantisation can move an onset or two; pitch and loudness stay the same
    assert c.detail["f0_median_hz"] == a.detail["f0_median_hz"]
    assert abs(c.detail["loudness_dbfs"] - a.detail["loudness_dbfs"]) < 0.1
    assert abs(a.arousal - c.arousal) < 0.1
