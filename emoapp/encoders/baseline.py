"""Baseline encoders: useful estimates with nothing to download.

They run the main job on a fresh machine with no network (the ``baseline`` profile, and
the fallback for any modality whose model is not pulled yet), and every prediction they
make says ``baseline=True`` so the UI and outputs can label it as such.

- :class:`LexiconTextEncoder`: a hand-written English emotion word list
  (:mod:`emoapp.encoders.lexicon_data`, Apache-2.0, written for emoapp and not derived
  from NRC EmoLex) with phrases, emoticons and emoji, intensifiers and negation.
- :class:`ProsodyVoiceEncoder`: pitch, loudness, voicing and speaking-rate features
  (librosa) and fixed rules. It estimates *arousal* (calm vs aroused) far better than it
  tells categories apart, and says so through its mask and low confidence.
- :class:`SmileFaceEncoder`: faces found by YuNet (shipped with emoapp), and OpenCV's
  own Haar smile cascade run on the lower half of each face. It can only tell a smile (happy)
  from no smile (neutral).

What all of them estimate is displayed expression, not what a person feels. numpy is the
only import at module level; librosa and OpenCV load in ``load()``.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final

import numpy as np

from emoapp.core.errors import MissingDependencyError, ModelLoadError
from emoapp.core.messages import (
    AudioChunk,
    EncoderOutput,
    FaceDetection,
    Modality,
    ModalityPrediction,
    NoPrediction,
    TextEntry,
    VideoFrame,
)
from emoapp.core.taxonomy import CANONICAL_LABELS, LABEL_INDEX, NUM_LABELS, valence_arousal
from emoapp.encoders.base import EncoderInfo
from emoapp.encoders.lexicon_data import CLAUSE_BREAKERS as _CLAUSE_BREAKERS
from emoapp.encoders.lexicon_data import INTENSIFIERS as _INTENSIFIERS
from emoapp.encoders.lexicon_data import NEGATORS as _NEGATORS


def _mask(*labels: str) -> np.ndarray:
    mask = np.zeros(NUM_LABELS, dtype=bool)
    for label in labels:
        mask[LABEL_INDEX[label]] = True
    return mask


FACE_MASK: Final = _mask("neutral", "happy")
VOICE_MASK: Final = _mask("neutral", "happy", "sad", "angry")
TEXT_MASK: Final = _mask(*CANONICAL_LABELS)

_MASKS: Final[dict[str, np.ndarray]] = {
    "baseline/face-smile": FACE_MASK,
    "baseline/voice-prosody": VOICE_MASK,
    "baseline/text-lexicon": TEXT_MASK,
}


def baseline_mask(model_id: str) -> np.ndarray:
    """The canonical labels a baseline can express."""
    try:
        return _MASKS[model_id].copy()
    except KeyError:
        raise ModelLoadError(f"unknown baseline model {model_id!r}") from None


class _Baseline:
    """What every baseline encoder shares: identity, info, and one output per item."""

    modality: ClassVar[Modality]
    model_id: ClassVar[str]
    baseline: ClassVar[bool] = True
    mask: ClassVar[np.ndarray]

    def info(self) -> EncoderInfo:
        labels = [label for label, m in zip(CANONICAL_LABELS, self.mask, strict=True) if m]
        return EncoderInfo(
            modality=self.modality,
            model_id=self.model_id,
            device="cpu",
            dtype="",
            baseline=True,
            label_mapping=[(label, label) for label in labels],
            revision=None,
            source="built in (no download)",
        )

    def _prediction(
        self,
        t: float,
        probs: np.ndarray,
        confidence: float,
        latency_s: float,
        valence: float | None = None,
        arousal: float | None = None,
        faces: tuple[FaceDetection, ...] = (),
        detail: dict[str, Any] | None = None,
    ) -> ModalityPrediction:
        probs = np.where(self.mask, probs, 0.0)
        probs = probs / probs.sum()
        if valence is None or arousal is None:
            valence, arousal = valence_arousal(probs)
        return ModalityPrediction(
            modality=self.modality,
            t=t,
            probs=probs,
            mask=self.mask.copy(),
            confidence=float(np.clip(confidence, 0.0, 1.0)),
            model_id=self.model_id,
            latency_s=latency_s,
            valence=float(valence),
            arousal=float(arousal),
            faces=faces,
            baseline=True,
            detail=detail or {},
        )


# --- text -------------------------------------------------------------------------------


@dataclass
class LexiconScore:
    """What the lexicon found in one text."""

    probs: np.ndarray
    confidence: float
    evidence: float
    """Total weight of the emotion words, phrases and emoji found (after modifiers)."""
    matches: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Lexicon:
    words: dict[str, list[tuple[int, float]]]
    phrases: dict[tuple[str, ...], list[tuple[int, float]]]
    longest_phrase: int
    emoticons: dict[str, int]
    emoji: dict[str, int]
    token_re: re.Pattern[str]


def _build_lexicon() -> _Lexicon:
    from emoapp.encoders import lexicon_data as data

    words: dict[str, list[tuple[int, float]]] = {}
    for label, strengths in data.WORDS.items():
        for strength, text in strengths.items():
            for word in text.split():
                words.setdefault(word.lower(), []).append(
                    (LABEL_INDEX[label], data.STRENGTHS[strength])
                )
    phrases = {
        tuple(phrase.split()): [(LABEL_INDEX[label], w) for label, w in entries]
        for phrase, entries in data.PHRASES.items()
    }
    emoticons = {e: LABEL_INDEX[label] for e, label in data.EMOTICONS.items()}
    emoji = {e: LABEL_INDEX[label] for e, label in data.EMOJI.items()}
    emoticon_alt = "|".join(re.escape(e) for e in sorted(emoticons, key=len, reverse=True))
    emoji_class = "".join(re.escape(e) for e in emoji)
    token_re = re.compile(
        rf"(?P<emoticon>(?<![\w)(]){'(?:' + emoticon_alt + ')'}(?!\w))"
        rf"|(?P<word>[^\W\d_]+(?:['\-][^\W\d_]+)*)"
        rf"|(?P<emoji>[{emoji_class}])"
        r"|(?P<punct>[!?.;,:]+)"
    )
    return _Lexicon(words, phrases, max(len(p) for p in phrases), emoticons, emoji, token_re)


_LEXICON: _Lexicon | None = None
_LEXICON_LOCK = threading.Lock()


def _lexicon() -> _Lexicon:
    global _LEXICON
    with _LEXICON_LOCK:
        if _LEXICON is None:
            _LEXICON = _build_lexicon()
        return _LEXICON


def _unstretched(word: str) -> list[str]:
    """Spellings of a stretched word: "sooo" -> "soo", "so"; "happyyy" -> "happyy", "happy"."""
    if not re.search(r"(.)\1\1", word):
        return []
    return [re.sub(r"(.)\1{2,}", r"\1", word), re.sub(r"(.)\1{2,}", r"\1\1", word)]


def _suffix_candidates(word: str) -> list[str]:
    """Base forms to try for a word the lexicon does not list as written."""
    out = _unstretched(word)
    rules = (
        ("iness", "y"),
        ("ily", "y"),
        ("ies", "y"),
        ("ied", "y"),
        ("ier", "y"),
        ("iest", "y"),
        ("ness", ""),
        ("ly", ""),
        ("ing", ""),
        ("ing", "e"),
        ("ed", ""),
        ("ed", "e"),
        ("es", ""),
        ("s", ""),
        ("er", ""),
        ("er", "e"),
        ("est", ""),
        ("est", "e"),
    )
    for suffix, repl in rules:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            stem = word[: -len(suffix)]
            out.append(stem + repl)
            if not repl and len(stem) >= 4 and stem[-1] == stem[-2]:
                out.append(stem[:-1])  # "stopped" -> "stopp" -> "stop"
    return out


_NEGATION_SCOPE = 3
_INTENSIFIER_REACH = 2
_CAPS_BOOST = 1.3
_EXCLAMATION_BOOST = 0.15
_QUESTION_SURPRISE = 0.35
_EMOTICON_WEIGHT = 0.8
_NEUTRAL_PRIOR = 0.8
_SMOOTHING = 0.03
_HAPPY, _SAD, _ANGRY, _NEUTRAL, _SURPRISED = (
    LABEL_INDEX[x] for x in ("happy", "sad", "angry", "neutral", "surprised")
)


class LexiconTextEncoder(_Baseline):
    """Emotion of English text from a hand-written word list.

    Per sentence: phrases are matched before words; an intensifier ("very", "so",
    "extremely"; "slightly" scales down) multiplies the next emotion word within two
    words; a negation ("not", "never", "n't"...) reaches three words, stopped by
    punctuation or "but", and turns a negated joy word into sadness (and some anger) and a
    negated negative word into mostly neutral ("not bad"); ALL-CAPS words count more;
    exclamation marks strengthen the sentence's emotion; a question counts as a little
    surprise (curiosity, as GoEmotions groups it); emoticons and emoji count as strong
    words. The distribution always covers all seven labels; neutral holds a fixed prior
    mass, growing with length, so a text with few emotion words stays mostly neutral,
    and the confidence grows with the evidence found.

    English only; no sarcasm, context or paraphrase. Licence: see lexicon_data.
    """

    modality: ClassVar[Modality] = Modality.TEXT
    model_id: ClassVar[str] = "baseline/text-lexicon"
    mask: ClassVar[np.ndarray] = TEXT_MASK

    def __init__(self) -> None:
        self._lex: _Lexicon | None = None

    def load(self) -> None:
        if self._lex is None:
            self._lex = _lexicon()

    def encode(self, items: Sequence[TextEntry | str]) -> list[EncoderOutput]:
        self.load()
        outputs: list[EncoderOutput] = []
        for item in items:
            started = time.perf_counter()
            text, t = (item.text, item.t) if isinstance(item, TextEntry) else (str(item), 0.0)
            if not text.strip():
                outputs.append(NoPrediction(self.modality, t, "empty text", self.model_id))
                continue
            score = self.score(text)
            outputs.append(
                self._prediction(
                    t,
                    score.probs,
                    score.confidence,
                    time.perf_counter() - started,
                    detail={"evidence": round(score.evidence, 3), "matches": score.matches[:12]},
                )
            )
        return outputs

    def _lookup(self, word: str) -> tuple[str, list[tuple[int, float]]] | None:
        assert self._lex is not None
        if word in self._lex.words:
            return word, self._lex.words[word]
        for candidate in _suffix_candidates(word):
            if candidate in self._lex.words:
                return candidate, self._lex.words[candidate]
        return None

    def score(self, text: str) -> LexiconScore:
        """Score one text (see the class docstring)."""
        self.load()
        lex = self._lex
        assert lex is not None
        text = text.replace("’", "'").replace("‘", "'").replace("\ufe0f", "")
        tokens = [(m.lastgroup, m.group()) for m in lex.token_re.finditer(text)]
        totals = np.zeros(NUM_LABELS)
        sentence = np.zeros(NUM_LABELS)
        exclaims, question = 0, False
        negation, boost, boost_left = 0, 1.0, 0
        matches: list[str] = []
        n_words = 0

        def end_sentence() -> None:
            nonlocal sentence, exclaims, question
            emotional = sentence.copy()
            emotional[_NEUTRAL] = 0.0
            sentence += emotional * _EXCLAMATION_BOOST * min(exclaims, 3)
            if question:
                sentence[_SURPRISED] += _QUESTION_SURPRISE
            totals[:] += sentence
            sentence = np.zeros(NUM_LABELS)
            exclaims, question = 0, False

        def add(entries: list[tuple[int, float]], weight: float, negated: bool) -> None:
            for label, w in entries:
                w *= weight
                if not negated:
                    sentence[label] += w
                elif label == _HAPPY:  # "not happy": sad, a little angry
                    sentence[_SAD] += 0.6 * w
                    sentence[_ANGRY] += 0.25 * w
                elif label != _NEUTRAL:  # "not bad", "not afraid": mostly calm
                    sentence[_NEUTRAL] += 0.5 * w
                    if label != _SURPRISED:
                        sentence[_HAPPY] += 0.2 * w

        words = [(i, value) for i, (kind, value) in enumerate(tokens) if kind == "word"]
        word_pos = {i: k for k, (i, _) in enumerate(words)}
        skip_until = -1
        for i, (kind, value) in enumerate(tokens):
            if i <= skip_until:
                continue
            if kind == "punct":
                exclaims += value.count("!")
                question = question or "?" in value
                negation, boost, boost_left = 0, 1.0, 0
                if any(c in value for c in "!?.;"):
                    end_sentence()
                continue
            if kind == "emoticon":
                sentence[lex.emoticons[value]] += _EMOTICON_WEIGHT
                matches.append(value)
                continue
            if kind == "emoji":
                sentence[lex.emoji[value]] += _EMOTICON_WEIGHT
                matches.append(value)
                continue
            n_words += 1
            word = value.lower()
            for spelling in _unstretched(word):  # "sooo" -> "so", for the word lists below
                if spelling in _INTENSIFIERS or spelling in _NEGATORS:
                    word = spelling
                    break
            caps = _CAPS_BOOST if len(value) >= 3 and value.isupper() else 1.0
            # phrases first: "can't wait" is not a negated "wait"
            k = word_pos[i]
            found_phrase = False
            for length in range(min(lex.longest_phrase, len(words) - k), 1, -1):
                span = words[k : k + length]
                if span[-1][0] - span[0][0] != length - 1:  # interrupted by punctuation
                    continue
                key = tuple(w.lower() for _, w in span)
                if key in lex.phrases:
                    add(
                        lex.phrases[key], boost * caps, negation > 0 and key[0] not in ("not", "no")
                    )
                    matches.append(" ".join(key))
                    skip_until = span[-1][0]
                    n_words += length - 1
                    negation, boost, boost_left = 0, 1.0, 0
                    found_phrase = True
                    break
            if found_phrase:
                continue
            if word in _NEGATORS or word.endswith("n't"):
                negation = _NEGATION_SCOPE
                continue
            if word in _CLAUSE_BREAKERS:
                negation, boost, boost_left = 0, 1.0, 0
                continue
            if word in _INTENSIFIERS and self._emotion_ahead(words, k):
                boost *= _INTENSIFIERS[word]
                boost_left = _INTENSIFIER_REACH
                continue
            hit = self._lookup(word)
            if hit is not None:
                base, entries = hit
                add(entries, boost * caps, negation > 0)
                matches.append(("not " if negation > 0 else "") + base)
                negation, boost, boost_left = 0, 1.0, 0
                continue
            negation = max(0, negation - 1)
            boost_left -= 1
            if boost_left <= 0:
                boost = 1.0
        end_sentence()

        emotions = totals.copy()
        emotions[_NEUTRAL] = 0.0
        evidence = float(emotions.sum())
        scores = totals + _SMOOTHING
        scores[_NEUTRAL] = totals[_NEUTRAL] + _NEUTRAL_PRIOR * (
            1.0 + min(1.0, max(0, n_words - 10) / 40)
        )
        probs = scores / scores.sum()
        confidence = float(probs.max()) * (1.0 - 0.75 * math.exp(-evidence))
        return LexiconScore(probs, confidence, evidence, matches)

    def _emotion_ahead(self, words: list[tuple[int, str]], k: int) -> bool:
        """Whether an emotion word follows word ``k`` within the intensifier's reach."""
        for _, value in words[k + 1 : k + 1 + _INTENSIFIER_REACH]:
            if self._lookup(value.lower()) is not None:
                return True
        return False


# --- voice ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProsodyFeatures:
    """Prosodic features of one window."""

    duration_s: float
    level_dbfs: float
    """Overall RMS level of the window."""
    voiced_s: float
    """Time pYIN found voiced and loud enough to be speech."""
    f0_median_hz: float
    f0_range_st: float
    """Pitch range (10th to 90th percentile of voiced frames), in semitones."""
    loudness_dbfs: float
    """Mean level of the voiced frames."""
    loudness_spread_db: float
    """Standard deviation of the level over the active frames (dynamics)."""
    onset_rate: float
    """Onsets per second of active signal: a proxy for speaking rate."""

    @property
    def voiced_fraction(self) -> float:
        return self.voiced_s / self.duration_s if self.duration_s else 0.0


_SR = 16_000
_FRAME = 1024
_HOP = 320  # 20 ms
_FMIN, _FMAX = 65.0, 500.0
_PYIN: dict[str, Any] = {
    "fmin": _FMIN,
    "fmax": _FMAX,
    "sr": _SR,
    "frame_length": _FRAME,
    "hop_length": _HOP,
    "resolution": 0.25,
    "n_thresholds": 30,
}  # coarser than librosa's default: 3x faster
_SILENCE_DBFS = -55.0
_ACTIVE_BELOW_PEAK_DB = 30.0
_ACTIVE_FLOOR_DBFS = -50.0
_MIN_WINDOW_S = 0.1


def _dbfs(x: np.ndarray | float) -> Any:
    return 20.0 * np.log10(np.maximum(x, 1e-10))


def _squash(x: float) -> float:
    return float(np.clip(x, -1.5, 1.5))


class ProsodyVoiceEncoder(_Baseline):
    """Arousal from the voice's prosody, mapped onto a few labels by fixed rules.

    Per window: silence (overall level below -55 dBFS) gives ``NoPrediction("silence")``,
    and less than ``min_speech_s`` of voiced, loud-enough frames (pYIN voicing and an
    energy gate) gives ``NoPrediction("no speech")``. Otherwise it measures pitch (pYIN
    median and 10-90 % range), loudness and its spread, and an onset rate (a proxy for
    speaking rate), and combines them into an arousal score: louder, wider-ranging,
    higher and faster speech is more aroused. Valence gets only a weak nudge (a wider,
    higher pitch reads slightly positive; loud flat speech slightly negative).

    This is honest about what prosody alone can say: arousal much more than categories.
    The distribution covers only neutral, happy, sad and angry: low arousal goes to sad,
    middling to neutral, high arousal to happy or angry split by the weak valence cue,
    so it cannot tell joy from anger reliably. Confidence stays low (at most 0.4). The
    features depend on the speaker and the microphone gain.
    """

    modality: ClassVar[Modality] = Modality.VOICE
    model_id: ClassVar[str] = "baseline/voice-prosody"
    mask: ClassVar[np.ndarray] = VOICE_MASK

    def __init__(self, voice_config: Any = None) -> None:
        self.min_speech_s = float(getattr(voice_config, "min_speech_s", 0.25))
        self._librosa: Any = None

    def load(self) -> None:
        if self._librosa is not None:
            return
        try:
            import librosa
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise MissingDependencyError("librosa", "the prosody voice baseline") from exc
        # pYIN is compiled by numba on first use: pay that here, not on the first window.
        tone = 0.3 * np.sin(2 * np.pi * 150 * np.arange(_SR // 4) / _SR).astype(np.float32)
        librosa.pyin(tone, **_PYIN)
        self._librosa = librosa

    def encode(self, items: Sequence[AudioChunk]) -> list[EncoderOutput]:
        self.load()
        outputs: list[EncoderOutput] = []
        for item in items:
            started = time.perf_counter()
            t = float(getattr(item, "t", 0.0))
            try:
                samples = self._mono_16k(item)
            except ValueError as exc:
                outputs.append(NoPrediction(self.modality, t, str(exc), self.model_id))
                continue
            features_or_reason = self.features(samples)
            if isinstance(features_or_reason, str):
                outputs.append(
                    NoPrediction(
                        self.modality,
                        t,
                        features_or_reason,
                        self.model_id,
                        time.perf_counter() - started,
                    )
                )
                continue
            outputs.append(self._predict(t, features_or_reason, time.perf_counter() - started))
        return outputs

    def _mono_16k(self, chunk: Any) -> np.ndarray:
        samples = np.asarray(getattr(chunk, "samples", chunk))
        sr = int(getattr(chunk, "sample_rate", _SR))
        if samples.ndim == 2:  # (n, channels) or (channels, n): average the short axis
            samples = samples.mean(axis=int(np.argmin(samples.shape)))
        if samples.ndim != 1:
            raise ValueError(f"audio has shape {samples.shape}; expected mono samples")
        if samples.dtype.kind in "iu":
            samples = samples / float(np.iinfo(samples.dtype).max)
        samples = np.nan_to_num(samples.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        if sr <= 0 or len(samples) < _MIN_WINDOW_S * sr:
            raise ValueError("window too short")
        if sr != _SR:
            samples = self._librosa.resample(samples, orig_sr=sr, target_sr=_SR)
        return samples

    def features(self, samples: np.ndarray) -> ProsodyFeatures | str:
        """Features of one 16 kHz mono window, or the reason there are none."""
        librosa = self._librosa
        duration = len(samples) / _SR
        level = float(_dbfs(np.sqrt(np.mean(samples.astype(np.float64) ** 2))))
        if level < _SILENCE_DBFS:
            return "silence"
        rms = librosa.feature.rms(y=samples, frame_length=_FRAME, hop_length=_HOP)[0]
        frame_db = _dbfs(rms)
        active = frame_db > max(_ACTIVE_FLOOR_DBFS, float(frame_db.max()) - _ACTIVE_BELOW_PEAK_DB)
        f0, voiced_flag, _ = librosa.pyin(samples, **_PYIN)
        n = min(len(f0), len(active))
        voiced = voiced_flag[:n] & active[:n] & np.isfinite(f0[:n])
        voiced_s = float(voiced.sum()) * _HOP / _SR
        if voiced_s < max(self.min_speech_s, 2 * _HOP / _SR):
            return "no speech"
        pitch = f0[:n][voiced]
        p10, p50, p90 = np.percentile(pitch, [10, 50, 90])
        onsets = librosa.onset.onset_detect(y=samples, sr=_SR, hop_length=_HOP, units="time")
        active_s = max(float(active.sum()) * _HOP / _SR, 0.25)
        return ProsodyFeatures(
            duration_s=duration,
            level_dbfs=level,
            voiced_s=voiced_s,
            f0_median_hz=float(p50),
            f0_range_st=float(12 * np.log2(p90 / p10)),
            loudness_dbfs=float(frame_db[:n][voiced].mean()),
            loudness_spread_db=float(frame_db[active].std()),
            onset_rate=len(onsets) / active_s,
        )

    @staticmethod
    def arousal_valence(f: ProsodyFeatures) -> tuple[float, float]:
        """The rules: features -> (arousal, valence), both in [0, 1]."""
        # Typical conversational speech, recorded at a usual level, sits near 0 on each.
        z_loud = _squash((f.loudness_dbfs + 20.0) / 8.0)
        z_range = _squash((f.f0_range_st - 6.0) / 3.0)
        z_rate = _squash((f.onset_rate - 5.0) / 2.0)
        reference = 120.0 if f.f0_median_hz < 165.0 else 210.0  # rough low / high voice
        z_pitch = _squash(12 * math.log2(f.f0_median_hz / reference) / 4.0)
        z_dyn = _squash((f.loudness_spread_db - 6.0) / 3.0)
        arousal_z = 0.35 * z_loud + 0.25 * z_range + 0.2 * z_rate + 0.1 * z_pitch + 0.1 * z_dyn
        valence_z = 0.5 * z_range + 0.3 * z_pitch - 0.4 * max(0.0, z_loud - 0.5)
        arousal = 0.5 + 0.5 * math.tanh(1.5 * arousal_z)
        valence = 0.5 + 0.15 * math.tanh(valence_z)
        return arousal, valence

    def _predict(self, t: float, f: ProsodyFeatures, latency_s: float) -> ModalityPrediction:
        arousal, valence = self.arousal_valence(f)
        w_sad = math.exp(-(((arousal - 0.15) / 0.15) ** 2)) * (1.0 + 2.0 * max(0.0, 0.5 - valence))
        w_neutral = math.exp(-(((arousal - 0.45) / 0.15) ** 2))
        w_high = math.exp(-(((arousal - 0.85) / 0.2) ** 2))
        happy_share = 1.0 / (1.0 + math.exp(-(valence - 0.5) / 0.05))
        probs = np.zeros(NUM_LABELS)
        probs[LABEL_INDEX["neutral"]] = w_neutral
        probs[LABEL_INDEX["sad"]] = w_sad
        probs[LABEL_INDEX["happy"]] = w_high * happy_share
        probs[LABEL_INDEX["angry"]] = w_high * (1.0 - happy_share)
        probs = np.where(self.mask, probs + 0.05, 0.0)
        speech = min(1.0, f.voiced_s / 1.0)
        confidence = 0.4 * speech * (0.5 + abs(arousal - 0.5))
        detail = {
            "f0_median_hz": round(f.f0_median_hz, 1),
            "f0_range_st": round(f.f0_range_st, 2),
            "loudness_dbfs": round(f.loudness_dbfs, 1),
            "onset_rate": round(f.onset_rate, 2),
            "voiced_s": round(f.voiced_s, 2),
        }
        return self._prediction(t, probs, confidence, latency_s, valence, arousal, detail=detail)


# --- face -------------------------------------------------------------------------------

_SMILE_CASCADE = "haarcascade_smile.xml"
_MOUTH_SIZE = (160, 80)  # the lower half of every face is scaled to this before the search
_SMILE_MIDPOINT = 2.5  # smile cascade level weight at which p(happy) = 0.5
_SMILE_SLOPE = 0.5
_DETECT_MAX_SIDE = 640


def _to_gray(image: Any) -> np.ndarray:
    """A uint8 grayscale copy of an RGB / RGBA / gray image (any numeric dtype)."""
    image = np.asarray(image.image if isinstance(image, VideoFrame) else image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ValueError(f"frame has shape {image.shape}; expected H x W x 3")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError("empty frame")
    if image.dtype != np.uint8:
        image = np.nan_to_num(image.astype(np.float64))
        if image.max(initial=0.0) <= 1.0:
            image = image * 255.0
        image = np.clip(image, 0, 255).astype(np.uint8)
    if image.ndim == 3:
        rgb = image[:, :, :3].astype(np.float32)
        image = (rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)).astype(np.uint8)
    return image


class SmileFaceEncoder(_Baseline):
    """Smile or no smile, from OpenCV's smile cascade: nothing to download.

    Faces are found by the detector every profile uses
    (:func:`~emoapp.encoders.face.make_detector`: YuNet, shipped with emoapp; the Haar
    frontal-face cascade only when YuNet cannot load). Every face found is
    reported as a :class:`~emoapp.core.messages.FaceDetection`; the largest is the
    primary face that gives the prediction. In the lower half of each face, scaled to a
    fixed size, the
    Haar smile cascade is run with no neighbour threshold and its strongest detection's
    level weight becomes p(happy) through a logistic curve; the rest is neutral. It can
    express only neutral and happy, and cannot see any other expression. Frontal faces
    only; side views and tilted heads are missed.
    """

    modality: ClassVar[Modality] = Modality.FACE
    model_id: ClassVar[str] = "baseline/face-smile"
    mask: ClassVar[np.ndarray] = FACE_MASK

    def __init__(self, face_config: Any = None) -> None:
        self.min_face = int(getattr(face_config, "min_face", 40))
        self.max_faces = int(getattr(face_config, "max_faces", 8))
        self._cv2: Any = None
        self._detector: Any = None
        self._smiles: Any = None
        self._lock = threading.Lock()  # OpenCV cascades are not documented as re-entrant

    def load(self) -> None:
        if self._cv2 is not None:
            return
        try:
            import cv2
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise MissingDependencyError(
                "opencv-python-headless", "the smile face baseline"
            ) from exc
        from emoapp.encoders.face import FaceConfig, make_detector

        path = f"{cv2.data.haarcascades}{_SMILE_CASCADE}"  # type: ignore[attr-defined]
        smiles = cv2.CascadeClassifier(path)
        if smiles.empty():
            raise ModelLoadError(
                f"OpenCV's cascade {path} is missing; reinstall opencv-python-headless"
            )
        # YuNet, as every profile (the Haar cascade only when YuNet cannot load)
        self._detector = make_detector(
            FaceConfig(min_face=self.min_face, detector_max_side=_DETECT_MAX_SIDE)
        )
        self._smiles = smiles
        self._cv2 = cv2

    def encode(self, items: Sequence[VideoFrame | np.ndarray]) -> list[EncoderOutput]:
        self.load()
        outputs: list[EncoderOutput] = []
        for item in items:
            started = time.perf_counter()
            t = float(item.t) if isinstance(item, VideoFrame) else 0.0
            try:
                gray = _to_gray(item)
            except ValueError as exc:
                outputs.append(NoPrediction(self.modality, t, str(exc), self.model_id))
                continue
            boxes = self.detect_faces(gray)
            if not boxes:
                outputs.append(
                    NoPrediction(
                        self.modality,
                        t,
                        "no face found",
                        self.model_id,
                        time.perf_counter() - started,
                    )
                )
                continue
            faces = []
            strengths = []
            for box in boxes:
                strength = self.smile_strength(gray, box)
                p_happy = 1.0 / (1.0 + math.exp(-(strength - _SMILE_MIDPOINT) / _SMILE_SLOPE))
                probs = np.zeros(NUM_LABELS)
                probs[LABEL_INDEX["happy"]] = p_happy
                probs[LABEL_INDEX["neutral"]] = 1.0 - p_happy
                faces.append(FaceDetection(box, probs))
                strengths.append(strength)
            primary = faces[0]
            p_happy = float(primary.probs[LABEL_INDEX["happy"]])
            size = min(1.0, primary.box[2] / 80.0)
            confidence = (0.25 + 0.5 * abs(2.0 * p_happy - 1.0)) * size
            outputs.append(
                self._prediction(
                    t,
                    primary.probs,
                    confidence,
                    time.perf_counter() - started,
                    faces=tuple(faces),
                    detail={"smile_strength": round(strengths[0], 3), "faces": len(faces)},
                )
            )
        return outputs

    def detect_faces(self, gray: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Face boxes (x, y, w, h) in pixels of ``gray``, largest first."""
        rgb = np.repeat(gray[:, :, None], 3, axis=2)
        boxes = list(self._detector.detect(rgb))
        boxes.sort(key=lambda b: b[2] * b[3], reverse=True)
        return boxes[: self.max_faces]

    def smile_strength(self, gray: np.ndarray, box: tuple[int, int, int, int]) -> float:
        """The smile cascade's strongest level weight in the lower half of a face (0 when
        it finds nothing)."""
        cv2 = self._cv2
        x, y, w, h = box
        mouth = gray[y + h // 2 : y + h, x : x + w]
        if mouth.size == 0:
            return 0.0
        mouth = cv2.equalizeHist(cv2.resize(mouth, _MOUTH_SIZE, interpolation=cv2.INTER_AREA))
        with self._lock:
            _, _, weights = self._smiles.detectMultiScale3(
                mouth,
                scaleFactor=1.1,
                minNeighbors=0,
                minSize=(_MOUTH_SIZE[0] // 4, _MOUTH_SIZE[1] // 4),
                outputRejectLevels=True,
            )
        weights = np.asarray(weights, dtype=np.float64).ravel()
        return float(weights.max()) if weights.size else 0.0
