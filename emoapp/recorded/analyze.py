"""Headless analysis of recorded media: decode, encode, fuse, and emit one row per step.

:func:`analyze` runs the same pipeline as the live app over a file, causally, in media
time:

* video frames are decoded at ``face_fps`` and classified in batches (``face_batch``
  frames per encoder call); each face output becomes available at its frame's time;
* the audio track is decoded in chunks, cut into sliding windows (``window_s`` long,
  every ``hop_s``; by default the voice encoder's own settings) by the voice module's
  :class:`~emoapp.encoders.voice.WindowBuffer`, and classified in batches; each voice
  output becomes available when its window ends (as it would live). A recording shorter
  than one window is classified whole, once;
* transcript cues (and ``--text``) are classified in batches and become available at
  their start time.

The three output streams are merged in time order into a
:class:`~emoapp.core.fusion.Fuser`; at every step ``t = 0, step_s, 2 step_s, ...`` up to
the end of the media, the fuser's estimate at ``t`` (using every output available by
``t``) becomes one timeline row (:mod:`emoapp.recorded.timeline`), handed to ``on_row`` at
once. Nothing is accumulated: memory holds one batch per modality, whatever the file's
length.

A modality the file does not have is left out and said so (a note on every row and one
through ``on_note``). A truncated file is analysed up to the cut and every row up to there
is emitted; the summary's ``truncated`` then holds the
:class:`~emoapp.capture.media.TruncatedMediaError` (``emoapp analyze`` prints the summary,
then the error, and exits non-zero). A file that cannot be opened at all raises
MediaError before any row. A video track with no usable frame (an empty stream) next to
other input is left out the same way, with a note; alone, it is a MediaError.

Resuming (``config.resume_after``, ``emoapp analyze --resume``): rows up to that time are
not emitted again; video is decoded from shortly before it (a seek), audio windows and
transcript cues before that point are not classified, and the fuser is fed from there,
so the rows after it are those an uninterrupted run writes (up to floating-point noise
from different batch compositions, and, with smoothing on, under 1 % of the smoothed
past).
"""

from __future__ import annotations

import dataclasses
import heapq
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from emoapp.capture.media import (
    MediaInfo,
    TruncatedMediaError,
    iter_audio_chunks,
    iter_video_frames,
    probe,
)
from emoapp.capture.transcript import read_transcript
from emoapp.core.errors import EmoappError, MediaError
from emoapp.core.fusion import Fuser, FusionConfig
from emoapp.core.messages import (
    AudioChunk,
    EncoderOutput,
    Modality,
    ModalityPrediction,
    NoPrediction,
    TextEntry,
    VideoFrame,
)
from emoapp.core.provenance import with_origin
from emoapp.encoders.adaptation import adapts_to_speaker
from emoapp.encoders.base import Encoder
from emoapp.recorded.timeline import MODALITIES, row_from_estimate

NO_AUDIO_NOTE = "the file has no audio track"
NO_VIDEO_NOTE = "the file has no video"
NOT_FINITE_NOTE = "the encoder's probabilities were not numbers (NaN or inf); not fused"

VoiceStats = Literal["auto", "running", "recording"]
VOICE_STATS: tuple[str, ...] = ("auto", "running", "recording")
AUTO_VOICE_STATS = "running"
"""What ``voice_stats="auto"`` means for one recording (a call's speakers: "recording")."""

RowCallback = Callable[[dict[str, Any]], None]
ProgressCallback = Callable[[float, float | None], None]
"""Called after each row with (t of the row, end of the analysis in seconds or None)."""
NoteCallback = Callable[[str], None]

_EPS = 1e-9


@dataclass
class AnalysisConfig:
    """How a recording is analysed. Times in seconds."""

    step_s: float = 0.5
    """One timeline row every ``step_s`` seconds of media time."""
    face_fps: float = 2.0
    """Video frames classified per second of media."""
    window_s: float | None = None
    """Voice window length; None: the voice encoder's own setting (2 s by default)."""
    hop_s: float | None = None
    """Time between voice windows; None: the voice encoder's own setting (0.5 s)."""
    transcript: Path | None = None
    """An SRT, WebVTT or plain-text transcript of the recording."""
    text: str | None = None
    """A text to analyse at t=0 (with media, or alone)."""
    face_batch: int = 8
    voice_batch: int = 8
    text_batch: int = 16
    sample_rate: int = 16_000
    """Rate audio is decoded at (the voice encoder resamples further if it must)."""
    channel: int | None = None
    """Analyse this audio channel alone (0-based; one speaker of a call) instead of the
    down-mixed track (:mod:`emoapp.calls.analysis`)."""
    voice_spans: tuple[tuple[float, float], ...] | None = None
    """Only these stretches of the audio reach the voice model; the rest is silenced (one
    diarized speaker of a mono call, :mod:`emoapp.calls.analysis`). None: all of it."""
    resume_after: float | None = None
    """Media time of the last row an earlier, interrupted run wrote: rows up to it are not
    emitted again. Decoding and encoding restart early enough before it (each modality's
    fusion ``max_age``, plus five smoothing time constants) that the rows after it are
    those an uninterrupted run makes (see :func:`analyze`)."""
    explain: bool = False
    """Explain every prediction (:mod:`emoapp.encoders.explain`): face saliency grids,
    per-word attributions, voice moments, in each row's modality entries."""
    include_text: bool = False
    """Let the words of text explanations into the rows (text is content: off by
    default, when each word is only its position and weight)."""
    voice_stats: VoiceStats = "auto"
    """Where a voice model that adapts to the speaker (``encode_speaker``) takes the
    speaker's statistics from: ``"running"``, a causal running estimate over the speech so
    far (what a live run does); ``"recording"``, all of the recording's speech (a call:
    that speaker's channel, or a diarized speaker's turns), by a pre-pass over the voice
    windows whose features are kept and reused, so no window's features are computed
    twice (:func:`recording_adapted_voice`); ``"auto"``: :data:`AUTO_VOICE_STATS` for one
    recording, ``"recording"`` per speaker of a call. Other voice models ignore it."""

    def __post_init__(self) -> None:
        for name in ("step_s", "face_fps"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        for name in ("window_s", "hop_s"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive")
        if min(self.face_batch, self.voice_batch, self.text_batch, self.sample_rate) < 1:
            raise ValueError("batch sizes and sample_rate must be at least 1")
        if self.resume_after is not None and not self.resume_after >= 0:
            raise ValueError("resume_after must be a time at or after 0")
        if self.voice_stats not in VOICE_STATS:
            raise ValueError(f"voice_stats must be one of {', '.join(VOICE_STATS)}")


@dataclass
class AnalysisInputs:
    """What a run will read: the media description, the text entries, and what is missing.

    Built by :func:`prepare_inputs` before any model is loaded, so that bad input fails
    fast and only the models the input needs are loaded.
    """

    media: Path | None
    info: MediaInfo | None
    entries: list[TextEntry]
    notes: dict[Modality, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def modalities(self) -> set[Modality]:
        """The modalities this input has."""
        present: set[Modality] = set()
        if self.info is not None and self.info.has_video:
            present.add(Modality.FACE)
        if self.info is not None and self.info.has_audio:
            present.add(Modality.VOICE)
        if self.entries:
            present.add(Modality.TEXT)
        return present


MAX_TEXT_ONLY_S = 24 * 3600.0
"""Without a recording (or one that does not say how long it is), transcript cues
starting later than this are skipped: the timeline runs to the last cue, one row per
step, and a cue at 99999:00:00 would otherwise mean hundreds of millions of rows."""


def _valid_text(text: str) -> str:
    """``text`` with anything that is not encodable Unicode (lone surrogates, as Python
    makes of command-line bytes that are not UTF-8) replaced by U+FFFD."""
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def _within_timeline(
    entries: list[TextEntry], info: MediaInfo | None, warnings: list[str]
) -> list[TextEntry]:
    """Drop cues that start after the recording ends (or, with no known end, after
    :data:`MAX_TEXT_ONLY_S`), saying so."""
    if info is not None and info.duration is not None:
        end, where = info.duration, f"the end of {info.path.name} ({info.duration:.1f} s)"
    else:
        end, where = MAX_TEXT_ONLY_S, f"{MAX_TEXT_ONLY_S / 3600:.0f} h"
    kept = [e for e in entries if e.t <= end + _EPS]
    if len(kept) < len(entries):
        late = min(e.t for e in entries if e.t > end + _EPS)
        warnings.append(
            f"{len(entries) - len(kept)} transcript cue(s) start after {where}, the first at "
            f"{late:.1f} s; skipped"
        )
    return kept


def prepare_inputs(media: str | Path | None, config: AnalysisConfig) -> AnalysisInputs:
    """Probe the media and read the transcript; raises MediaError on bad input."""
    info = probe(media) if media is not None else None
    entries: list[TextEntry] = []
    warnings: list[str] = []
    if config.text is not None and config.text.strip():
        entries.append(TextEntry(t=0.0, text=_valid_text(config.text), source="--text"))
    if config.transcript is not None:
        transcript = read_transcript(config.transcript)
        warnings.extend(transcript.warnings)
        entries.extend(_within_timeline(transcript.entries, info, warnings))
    entries.sort(key=lambda e: e.t)
    if info is None and not entries:
        raise EmoappError("nothing to analyse: give a media file, a transcript, or a text")
    notes: dict[Modality, str] = {}
    if info is not None and not info.has_audio:
        notes[Modality.VOICE] = NO_AUDIO_NOTE
    if info is not None and not info.has_video:
        notes[Modality.FACE] = NO_VIDEO_NOTE
    return AnalysisInputs(
        media=Path(media) if media is not None else None,
        info=info,
        entries=entries,
        notes=notes,
        warnings=warnings,
    )


# --- the summary ---------------------------------------------------------------------------


@dataclass
class ModalityCounts:
    """How often a modality's encoder had something to say, and why not when it had not."""

    predictions: int = 0
    no_predictions: int = 0
    reasons: Counter[str] = field(default_factory=Counter)


@dataclass
class AnalysisSummary:
    """What a run did: rows written, per-modality outcomes, fused labels, time taken."""

    rows: int
    media: MediaInfo | None
    end_t: float
    elapsed_s: float
    models: dict[Modality, str]
    counts: dict[Modality, ModalityCounts]
    labels: Counter[str]
    """Fused label per row; ``abstained`` counts rows where the fuser abstained."""
    notes: list[str]
    truncated: TruncatedMediaError | None = None

    @property
    def realtime_factor(self) -> float | None:
        """Media seconds analysed per second of wall time."""
        if self.elapsed_s <= 0 or self.end_t <= 0:
            return None
        return self.end_t / self.elapsed_s

    def format_table(self) -> str:
        """A short plain-text table for the end of a run."""
        name = self.media.path.name if self.media is not None else "text"
        speed = self.realtime_factor
        lines = [
            f"analysed {name}: {self.end_t:.1f} s in {self.elapsed_s:.1f} s"
            + (f" ({speed:.1f}x real time)" if speed else "")
            + f", {self.rows} row{'' if self.rows == 1 else 's'}"
        ]
        header = ("modality", "predictions", "none", "why none (most common)", "model")
        table = [header]
        for modality in MODALITIES:
            if modality not in self.models:
                continue
            counts = self.counts.get(modality, ModalityCounts())
            reason = counts.reasons.most_common(1)
            table.append(
                (
                    modality.value,
                    str(counts.predictions),
                    str(counts.no_predictions),
                    f"{reason[0][0]} ({reason[0][1]})" if reason else "",
                    self.models[modality],
                )
            )
        widths = [max(len(r[i]) for r in table) for i in range(len(header))]
        for r in table:
            lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        histogram = ", ".join(f"{label} {n}" for label, n in self.labels.most_common())
        lines.append(f"fused labels: {histogram or 'none'}")
        return "\n".join(lines)


# --- the output streams --------------------------------------------------------------------

Timed = tuple[float, int, EncoderOutput]
"""(time the output becomes available, stream rank for ties, the output)."""


class _Truncation:
    """Where a stream's media stopped early (shared between the streams and the run)."""

    def __init__(self) -> None:
        self.error: TruncatedMediaError | None = None

    def record(self, error: TruncatedMediaError) -> None:
        if self.error is None or error.decoded_until < self.error.decoded_until:
            self.error = error


def _batched_encode(
    encoder: Encoder, items: Sequence[Any], times: Sequence[float], rank: int
) -> Iterator[Timed]:
    outputs = encoder.encode(list(items))
    if len(outputs) != len(items):
        raise EmoappError(
            f"{encoder.modality.value} encoder {encoder.model_id!r} returned "
            f"{len(outputs)} outputs for {len(items)} inputs"
        )
    for available, output, item in zip(times, outputs, items, strict=True):
        yield (available, rank, with_origin(output, item))  # heard text: the microphone


def _face_stream(
    path: Path,
    encoder: Encoder,
    config: AnalysisConfig,
    truncation: _Truncation,
    start: float = 0.0,
    on_unusable: Callable[[MediaError], None] | None = None,
) -> Iterator[Timed]:
    """Face outputs from ``start`` on. A video track that yields no frame at all (a stream
    with no frames, or none decodable) goes to ``on_unusable`` when given, so that the
    other modalities can go on; without it, the MediaError stands."""
    batch: list[VideoFrame] = []
    frames = iter_video_frames(path, fps=config.face_fps, start=start)
    seen = 0
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            break
        except TruncatedMediaError as error:
            truncation.record(error)
            break
        except MediaError as error:
            if seen or on_unusable is None:
                raise
            on_unusable(error)
            return
        seen += 1
        batch.append(frame)
        if len(batch) >= config.face_batch:
            yield from _batched_encode(encoder, batch, [f.t for f in batch], 0)
            batch = []
    if batch:
        yield from _batched_encode(encoder, batch, [f.t for f in batch], 0)


def _voice_window_settings(encoder: Encoder, config: AnalysisConfig) -> tuple[float, float]:
    voice = getattr(encoder, "voice", None)
    window_s = config.window_s or float(getattr(voice, "window_s", 2.0))
    hop_s = config.hop_s or float(getattr(voice, "hop_s", 0.5))
    return window_s, hop_s


def _voice_windows(
    path: Path,
    encoder: Encoder,
    config: AnalysisConfig,
    truncation: _Truncation,
    start: float = 0.0,
) -> Iterator[list[AudioChunk]]:
    """The voice windows that end at or after ``start``, in batches of ``voice_batch``
    (the audio before ``start`` is decoded, which is cheap, so that the windows fall where
    they would from 0)."""
    from emoapp.encoders.voice import WindowBuffer

    window_s, hop_s = _voice_window_settings(encoder, config)
    buffer = WindowBuffer(window_s, hop_s)
    pending: list[AudioChunk] = []
    head: list[AudioChunk] | None = []  # the audio so far, until the first whole window
    chunks = iter_audio_chunks(
        path, sample_rate=config.sample_rate, chunk_s=min(0.5, hop_s), channel=config.channel
    )
    while True:
        try:
            chunk = next(chunks)
        except StopIteration:
            break
        except TruncatedMediaError as error:
            truncation.record(error)
            break
        if config.voice_spans is not None:
            chunk = _only_spans(chunk, config.voice_spans)
        windows = buffer.push(chunk)
        if head is not None:
            head = None if windows else [*head, chunk]
        pending.extend(w for w in windows if w.end >= start - _EPS)
        if len(pending) >= config.voice_batch:
            yield pending
            pending = []
    if head:  # shorter than one window: classify what there is, once
        samples = np.concatenate([c.samples for c in head])
        pending.append(AudioChunk(head[0].t, samples, head[0].sample_rate, head[0].source))
    if pending:
        yield pending


def _voice_stream(
    path: Path,
    encoder: Encoder,
    config: AnalysisConfig,
    truncation: _Truncation,
    start: float = 0.0,
) -> Iterator[Timed]:
    """Voice outputs of the windows that end at or after ``start``."""
    for batch in _voice_windows(path, encoder, config, truncation, start):
        yield from _batched_encode(encoder, batch, [w.end for w in batch], 1)


def _window_key(t: float) -> int:
    return round(t * 1_000_000)


class RecordingAdaptedVoice:
    """A voice model's outputs for one recording, adapted with statistics from all of that
    recording's speech, computed before the run and handed out as the run asks for each
    window (see :func:`recording_adapted_voice`). Everything else is the model's."""

    def __init__(self, inner: Any, outputs: dict[int, EncoderOutput], windows: int) -> None:
        self.inner = inner
        self._outputs = outputs
        self.windows = windows
        """How many voice windows the statistics were taken over (speech or not)."""

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def encode(self, items: Sequence[AudioChunk]) -> list[EncoderOutput]:
        out: list[EncoderOutput] = []
        for item in items:
            found = self._outputs.pop(_window_key(item.t), None)
            if found is None:  # not a window of the pre-pass: cannot happen, but be safe
                found = self.inner.encode([item])[0]
            out.append(found)
        return out


def recording_adapted_voice(
    path: Path, encoder: Any, config: AnalysisConfig
) -> RecordingAdaptedVoice:
    """A pre-pass over the voice windows of ``path`` (the same windows, channel and spans
    as the run): the adaptive ``encoder`` describes every window once
    (``encode_speaker``), estimates the speaker's statistics from all of them (shrunk
    toward the population: a speaker who holds one emotion throughout keeps most of it)
    and classifies each window with them. Only feature vectors and outputs are kept, never
    the audio; the run then decodes the audio again (cheap) and takes each window's output
    from here, so no window's features are computed twice."""
    truncation = _Truncation()  # the run itself records a truncation
    windows = 0

    def batches() -> Iterator[list[AudioChunk]]:
        nonlocal windows
        for batch in _voice_windows(path, encoder, config, truncation, 0.0):
            windows += len(batch)
            yield batch

    outputs: dict[int, EncoderOutput] = {}
    for group in encoder.encode_speaker(batches()):
        for output in group:
            outputs[_window_key(output.t)] = output
    return RecordingAdaptedVoice(encoder, outputs, windows)


def _only_spans(chunk: AudioChunk, spans: Sequence[tuple[float, float]]) -> AudioChunk:
    """``chunk`` with every sample outside ``spans`` set to 0."""
    times = chunk.t + np.arange(len(chunk.samples)) / chunk.sample_rate
    keep = np.zeros(len(times), dtype=bool)
    for start, end in spans:
        keep |= (times >= start) & (times < end)
    samples = np.where(keep, chunk.samples, 0).astype(chunk.samples.dtype)
    return dataclasses.replace(chunk, samples=samples)


def _text_stream(entries: list[TextEntry], encoder: Encoder, batch: int) -> Iterator[Timed]:
    for start in range(0, len(entries), batch):
        part = entries[start : start + batch]
        yield from _batched_encode(encoder, part, [e.t for e in part], 2)


def _restart_points(
    resume_after: float | None, fusion: FusionConfig, config: AnalysisConfig
) -> dict[Modality, float]:
    """Per modality, the media time from which outputs are needed to continue a timeline
    after ``resume_after``: an output older than the modality's ``max_age`` no longer
    counts in any later row, and five smoothing time constants leave under 1 % of the
    smoothed past. The face start is put on the ``face_fps`` grid, so that the same
    frames are chosen as from 0."""
    if resume_after is None:
        return dict.fromkeys(Modality, 0.0)
    points: dict[Modality, float] = {}
    for modality in Modality:
        back = fusion.max_age.get(modality, 0.0) + 5.0 * fusion.smoothing_s
        points[modality] = max(0.0, resume_after - back)
    face = points[Modality.FACE]
    points[Modality.FACE] = max(0.0, (int(face * config.face_fps) - 1) / config.face_fps)
    return points


def _finite(prediction: ModalityPrediction) -> bool:
    """One NaN in one prediction would make every fused estimate NaN while it counts."""
    return bool(np.all(np.isfinite(prediction.probs))) and np.isfinite(prediction.confidence)


def _explaining(used: dict[Modality, Encoder], note: NoteCallback) -> dict[Modality, Encoder]:
    """The encoders, each wrapped to explain its predictions where it offers a method."""
    from emoapp.encoders.explain import ExplainingEncoder, explainer_for

    out: dict[Modality, Encoder] = {}
    for modality, encoder in used.items():
        explainer = explainer_for(getattr(encoder, "inner", encoder))
        if explainer is None:
            note(f"{modality.value}: {encoder.model_id} offers no explanation")
            out[modality] = encoder
        else:
            out[modality] = ExplainingEncoder(encoder, explainer)
    return out


# --- the run -------------------------------------------------------------------------------


def analyze(
    media_path: str | Path | None,
    encoders: dict[Modality, Encoder],
    fusion: FusionConfig | None = None,
    config: AnalysisConfig | None = None,
    on_row: RowCallback | None = None,
    progress: ProgressCallback | None = None,
    on_note: NoteCallback | None = None,
    inputs: AnalysisInputs | None = None,
) -> AnalysisSummary:
    """Analyse a recording (and/or text) and hand one timeline row per step to ``on_row``.

    ``encoders`` holds the loaded encoders to use; a modality without one is not analysed.
    ``inputs`` may be passed when :func:`prepare_inputs` already ran. ``on_note`` receives
    one-line notes for the person (missing tracks, transcript repairs). Raises MediaError
    for bad input; a truncated file is analysed up to the cut and reported in the
    summary's ``truncated``.
    """
    started = time.perf_counter()
    config = config or AnalysisConfig()
    inputs = inputs or prepare_inputs(media_path, config)
    fusion = fusion or FusionConfig()
    fuser = Fuser(fusion)
    notes: list[str] = []

    def note(message: str) -> None:
        notes.append(message)
        if on_note is not None:
            on_note(message)

    for warning in inputs.warnings:
        note(warning)
    available = inputs.modalities
    used = {m: e for m, e in encoders.items() if m in available}
    if Modality.FACE in used and Modality.VOICE not in available and inputs.info is not None:
        note(f"{inputs.info.path.name}: no audio track; analysing faces only")
    if Modality.VOICE in used and Modality.FACE not in available and inputs.info is not None:
        note(f"{inputs.info.path.name}: audio only; no faces to analyse")
    if not used:
        raise EmoappError(
            "nothing to analyse: no loaded model matches what the input has ("
            + (", ".join(sorted(m.value for m in available)) or "nothing")
            + ")"
        )

    voice = used.get(Modality.VOICE)
    if voice is not None and hasattr(voice, "reset_adaptation"):
        # An adaptive voice model adapts to this recording's speech only (a running
        # estimate from its start), never to the previous file's.
        voice.reset_adaptation(calibration=False)
    stats = AUTO_VOICE_STATS if config.voice_stats == "auto" else config.voice_stats
    if (
        voice is not None
        and stats == "recording"
        and inputs.media is not None
        and adapts_to_speaker(voice)
    ):
        # Said before the pre-pass: no row (and no progress) comes until it is done.
        note(
            "voice: adapting to the speaker with statistics from the whole recording "
            "(a first pass over its speech; --voice-stats running adapts as it goes)"
        )
        used[Modality.VOICE] = recording_adapted_voice(inputs.media, voice, config)

    if config.explain:
        used = _explaining(used, note)

    resume_after = config.resume_after
    starts = _restart_points(resume_after, fusion, config)
    row_notes = dict(inputs.notes)

    def video_unusable(error: MediaError) -> None:
        reason = str(error).removeprefix(f"{inputs.media}: ")
        row_notes[Modality.FACE] = f"the video track cannot be used: {reason}"
        note(f"{error}; analysing the other modalities")

    others = (Modality.VOICE in used and inputs.media is not None) or Modality.TEXT in used
    truncation = _Truncation()
    streams: list[Iterable[Timed]] = []
    if Modality.FACE in used and inputs.media is not None:
        streams.append(
            _face_stream(
                inputs.media,
                used[Modality.FACE],
                config,
                truncation,
                starts[Modality.FACE],
                video_unusable if others else None,
            )
        )
    if Modality.VOICE in used and inputs.media is not None:
        streams.append(
            _voice_stream(
                inputs.media, used[Modality.VOICE], config, truncation, starts[Modality.VOICE]
            )
        )
    if Modality.TEXT in used:
        entries = [e for e in inputs.entries if e.t >= starts[Modality.TEXT] - _EPS]
        streams.append(_text_stream(entries, used[Modality.TEXT], config.text_batch))

    duration = inputs.info.duration if inputs.info is not None else None
    counts = {m: ModalityCounts() for m in used}
    labels: Counter[str] = Counter()
    latest: dict[Modality, EncoderOutput] = {}
    rows = 0
    step = config.step_s

    def emit(t: float, end: float | None) -> None:
        nonlocal rows
        estimate = fuser.estimate(t)  # also when not written: smoothing follows every step
        if resume_after is not None and t <= resume_after + _EPS:
            return
        row = row_from_estimate(estimate, latest, row_notes, include_text=config.include_text)
        if on_row is not None:
            on_row(row)
        rows += 1
        labels[estimate.label if estimate.label is not None else "abstained"] += 1
        if progress is not None:
            progress(t, end)

    k = 0
    last_available = 0.0
    for available_t, _, output in heapq.merge(*streams, key=lambda item: item[:2]):
        while k * step < available_t - _EPS:
            emit(k * step, duration)
            k += 1
        last_available = max(last_available, available_t)
        if isinstance(output, ModalityPrediction) and not _finite(output):
            output = NoPrediction(
                output.modality, output.t, NOT_FINITE_NOTE, output.model_id, output.latency_s
            )
        latest[output.modality] = output
        modality_counts = counts[output.modality]
        if isinstance(output, ModalityPrediction):
            modality_counts.predictions += 1
            fuser.update(output)
        else:
            modality_counts.no_predictions += 1
            modality_counts.reasons[output.reason] += 1

    if truncation.error is not None:
        end_t = max(last_available, truncation.error.decoded_until)
    else:
        end_t = max(last_available, duration or 0.0)
    while k * step <= end_t + _EPS:
        emit(k * step, end_t)
        k += 1

    summary = AnalysisSummary(
        rows=rows,
        media=inputs.info,
        end_t=end_t,
        elapsed_s=time.perf_counter() - started,
        models={m: e.model_id for m, e in used.items()},
        counts=counts,
        labels=labels,
        notes=notes,
        truncated=truncation.error,
    )
    return summary
