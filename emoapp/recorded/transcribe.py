"""Speech in a recording into the text channel: which recogniser runs
(:func:`choose_recognizer`: ``--asr auto|off|MODEL`` under a profile -> a recogniser spec;
``auto``: the profile's recogniser; under the ``auto`` profile, the default profile's
Whisper when it is on this computer, else the embedded PocketSphinx, with a note saying
so) and transcribing a file's audio track (:func:`transcribe_recording`: each speech
segment becomes a :class:`~emoapp.core.messages.TextEntry` spanning it), for
``emoapp analyze``, calls and batch. The live worker is :mod:`emoapp.live.transcriber`.

Transcripts are held in memory only and handed on; nothing here writes anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from emoapp.capture.media import TruncatedMediaError, iter_audio_chunks
from emoapp.core.messages import CONTEXT_TURNS, AudioChunk, TextEntry, with_context
from emoapp.encoders.asr import (
    AsrSpec,
    SpeechSegmenter,
    profile_recognizer,
    resolve_recognizer,
)
from emoapp.encoders.heard import EMBEDDED_ASR, SpeechRecognizer, heard_entry
from emoapp.encoders.vad import VoiceActivityGate

AUTO = "auto"


@dataclass(frozen=True)
class RecognizerChoice:
    spec: AsrSpec | None
    note: str = ""


def _whisper_is_local(spec: AsrSpec, models_dir: str | None) -> bool:
    if spec.backend != "transformers":
        return True
    if Path(spec.model).expanduser().is_dir():
        return True
    from emoapp.modelstore import local_state

    state = local_state(spec.model, spec.revision, models_dir)
    return state.snapshot is not None and any(
        (state.snapshot / name).exists() for name in ("model.safetensors", "pytorch_model.bin")
    )


def choose_recognizer(
    asr: str, profile: str | None, models_dir: str | None = None, download: bool = False
) -> RecognizerChoice:
    """The recogniser ``--asr`` asks for under ``profile`` (None or ``auto``: the default
    profile's if it is here, else the embedded one)."""
    if asr.strip().lower() != AUTO:
        return RecognizerChoice(resolve_recognizer(asr))
    name = profile or AUTO
    if name != AUTO:
        return RecognizerChoice(profile_recognizer(name))
    wanted = profile_recognizer("default")
    if wanted is None or download or _whisper_is_local(wanted, models_dir):
        return RecognizerChoice(wanted)
    return RecognizerChoice(
        resolve_recognizer(EMBEDDED_ASR),
        f"speech recognition: {wanted.model} is not downloaded; using the built-in "
        f"embedded recogniser ({EMBEDDED_ASR}), which makes many mistakes",
    )


# --- a recording ---------------------------------------------------------------------------


@dataclass
class RecordingTranscript:
    entries: list[TextEntry]
    segments: int
    speech_s: float
    transcribe_s: float
    truncated: TruncatedMediaError | None = None

    @property
    def realtime_factor(self) -> float | None:
        """Seconds of recogniser time per second of speech."""
        return self.transcribe_s / self.speech_s if self.speech_s > 0 else None


def iter_segments(
    chunks: Iterator[AudioChunk], gate: VoiceActivityGate | None = None
) -> Iterator[AudioChunk]:
    segmenter = SpeechSegmenter(gate)
    for chunk in chunks:
        yield from segmenter.push(chunk)
    yield from segmenter.flush()


def transcribe_recording(
    path: str | Path,
    recognizer: SpeechRecognizer,
    gate: VoiceActivityGate | None = None,
    channel: int | None = None,
    sample_rate: int = 16_000,
) -> RecordingTranscript:
    """Every speech segment of ``path``'s audio track, transcribed (in memory)."""
    recognizer.load()
    result = RecordingTranscript([], 0, 0.0, 0.0)
    chunks = iter_audio_chunks(path, sample_rate=sample_rate, chunk_s=0.5, channel=channel)

    def guarded() -> Iterator[AudioChunk]:
        try:
            yield from chunks
        except TruncatedMediaError as error:
            result.truncated = error

    for segment in iter_segments(guarded(), gate):
        heard = recognizer.transcribe(segment.samples, segment.sample_rate, segment.t)
        result.segments += 1
        result.speech_s += segment.duration
        result.transcribe_s += heard.latency_s
        entry = heard_entry(heard)
        if entry is not None:
            before = [e.text for e in result.entries[-CONTEXT_TURNS:]]
            result.entries.extend(with_context([entry], before=before))
    return result
