"""Recorded calls, analysed by speaker (``emoapp analyze CALL --speakers auto|channels|N``).

A call is recorded one person per channel, or everyone on one channel. :func:`plan_call`
probes the file and finds its speakers:

- ``channels``: each channel is one speaker (a mono file is one speaker);
- ``N`` (a number): the down-mix is diarized (:mod:`emoapp.encoders.diarize`) into N
  speakers;
- ``auto``: channels when the file has several channels that differ, else diarization
  with the number of speakers estimated (at least :data:`CALL_MIN_SPEAKERS`: a call has
  two sides; ``1`` for a recording of one person).

It names each speaker (``--speaker-names``, else "speaker 1", "speaker 2", ...), measures
each channel's level to find silent channels and speech segments (a diarized speaker's
segments are their turns; stretches where several speak at once are overlap, given to
no one), and routes the transcript's cues to their speaker: WebVTT ``<v Name>`` voice
tags, or a ``Name:`` prefix (as SRT transcripts write it) that matches a speaker's name,
case-insensitively. With no transcript, :func:`transcribe_call` has a speech recogniser
hear each speaker: a channel on its own, a diarized speaker turn by turn. The words stay
in memory; they reach rows and reports only when asked (``include_text``).

:func:`analyze_call` then runs the ordinary analysis (:func:`emoapp.recorded.analyze
.analyze`) once per speaker, on that channel alone (a diarized speaker: the down-mix with
everything outside their turns silenced), with that speaker's cues; every row gets
``"speaker"``. A voice model that adapts to the speaker takes each speaker's statistics
from all of their speech in the call (``voice_stats``, "recording" unless asked
otherwise), so a speaker who holds one emotion throughout keeps it. Faces are not
analysed (a picture is not tied to a channel). Rows come speaker after speaker, each
speaker's in time order. With ``by="utterance"``, the fixed-step rows of each speech
segment are summarised into one row (``t`` = the segment's start, ``end``, the mean fused
distribution and valence over the segment, and each modality's mean and ``share`` of the
segment; with ``include_text``, the ``words`` heard or transcribed in it).

Bad input says what is wrong and analyses what it can: a one-channel file is one
speaker; more names than channels leaves the extra names unused; a silent channel is
skipped; cues whose speaker matches no name, or with no speaker tag when there are
several speakers, are skipped and counted. Only a file with no audio, or with every
channel silent, stops the run.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from emoapp.capture.media import MediaInfo, iter_audio_chunks, probe
from emoapp.capture.transcript import read_transcript
from emoapp.core.errors import EmoappError
from emoapp.core.fusion import FusionConfig
from emoapp.core.messages import Modality, TextEntry
from emoapp.core.taxonomy import CANONICAL_LABELS
from emoapp.encoders.base import Encoder
from emoapp.recorded.analyze import (
    NO_VIDEO_NOTE,
    AnalysisConfig,
    AnalysisInputs,
    AnalysisSummary,
    analyze,
)

RowMode = Literal["step", "utterance"]
SpeakersMode = str
"""``"channels"``, ``"auto"`` or a number of speakers as text (``"2"``)."""

CALL_MIN_SPEAKERS = 2
"""Diarizing a call with the number of speakers not given: at least this many (a
recording of one person: ``--speakers 1``)."""
SAME_CHANNELS_DB = 3.0
"""Channels whose levels differ by less than this (mean over loud frames) carry the same
mix: ``auto`` diarizes them instead of taking one speaker per channel."""
SILENT_DBFS = -50.0
"""A channel whose loudest 20 ms stays below this is silent."""
FRAME_S = 0.02
MIN_GAP_S = 0.3
"""Speech segments closer than this are one segment."""
MIN_SEGMENT_S = 0.2
UTTERANCE_LAG_S = 0.5
"""Rows up to this long after a segment ends still describe it (a voice window's
estimate becomes available when the window ends)."""
FACE_NOT_IN_CALLS = "faces are not analysed in a call (a picture is not tied to a channel)"
_PREFIX = re.compile(r"^\s*([^\W\d][\w .'-]{0,40}?)\s*:\s+(\S.*)$")
_EPS = 1e-9


@dataclass
class CallSpeaker:
    """One person of a call: their channel (None: the whole track), name, cues, speech."""

    name: str
    channel: int | None
    entries: list[TextEntry] = field(default_factory=list)
    segments: list[tuple[float, float]] = field(default_factory=list)
    peak_dbfs: float = -120.0
    diarized: bool = False
    """Found by diarization: their voice is analysed within ``segments`` only."""

    @property
    def silent(self) -> bool:
        return self.peak_dbfs < SILENT_DBFS

    @property
    def talk_s(self) -> float:
        return float(sum(end - start for start, end in self.segments))

    def label(self) -> str:
        return self.name if self.channel is None else f"channel {self.channel + 1} ({self.name})"

    @property
    def heard(self) -> bool:
        """Their text was heard by a recogniser (not read from a transcript)."""
        from emoapp.encoders.heard import is_heard

        return any(is_heard(e) for e in self.entries)


@dataclass
class CallPlan:
    """What :func:`analyze_call` will read, checked before any model loads."""

    media: Path
    info: MediaInfo
    speakers: list[CallSpeaker]
    warnings: list[str] = field(default_factory=list)
    overlaps: list[tuple[float, float]] = field(default_factory=list)
    """Diarized calls: stretches where several speak at once (given to no speaker)."""
    diarization: str | None = None
    """How the speakers were found, for a diarized call (None: one per channel)."""
    transcript: Path | None = None
    heard_by: str | None = None
    """The recogniser that heard the speakers (None: no speech recognition ran)."""
    samples: np.ndarray | None = field(default=None, repr=False)
    """A diarized call's 16 kHz down-mix (kept for transcribing turn by turn)."""

    @property
    def active(self) -> list[CallSpeaker]:
        """The speakers that can be analysed (not silent)."""
        return [s for s in self.speakers if not s.silent]

    @property
    def duration(self) -> float:
        return float(self.info.duration or 0.0)


def parse_names(text: str | None) -> list[str]:
    """``"agent, customer"`` -> ["agent", "customer"]; empty or repeated names are an
    error."""
    if text is None:
        return []
    names = [" ".join(part.split()) for part in text.split(",")]
    if any(not name for name in names):
        raise EmoappError(f"--speaker-names {text!r}: a name is empty")
    folded = [name.casefold() for name in names]
    repeated = sorted({n for n in names if folded.count(n.casefold()) > 1})
    if repeated:
        raise EmoappError(f"--speaker-names: {', '.join(repeated)} given twice")
    return names


def parse_speakers(value: str | None) -> SpeakersMode | None:
    """``--speakers``: ``auto``, ``channels`` or a number of speakers (1-8)."""
    if value is None:
        return None
    text = value.strip().lower()
    if text in ("auto", "channels"):
        return text
    if text.isdigit() and 1 <= int(text) <= 8:
        return str(int(text))
    raise EmoappError(f"--speakers {value!r}: give auto, channels or a number of speakers (1-8)")


def channels_differ(levels: Sequence[np.ndarray]) -> bool:
    """Whether channels carry different signals (one speaker each) rather than one mix:
    their levels differ by :data:`SAME_CHANNELS_DB` or more on average over the frames
    where any is louder than silence."""
    if len(levels) < 2:
        return False
    n = min(len(x) for x in levels)
    stack = np.stack([x[:n] for x in levels])
    loud = stack.max(axis=0) > SILENT_DBFS
    if not loud.any():
        return False
    spread = stack[:, loud].max(axis=0) - stack[:, loud].min(axis=0)
    return float(spread.mean()) >= SAME_CHANNELS_DB


def read_mono(media: Path, sample_rate: int = 16_000) -> np.ndarray:
    """The whole down-mixed track at ``sample_rate`` (a call: minutes, not hours)."""
    chunks = [c.samples for c in iter_audio_chunks(media, sample_rate=sample_rate, chunk_s=5.0)]
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def frame_levels(
    media: Path, channel: int | None, sample_rate: int = 8000, frame_s: float = FRAME_S
) -> np.ndarray:
    """The level (dBFS) of every ``frame_s`` of a channel (or of the down-mix)."""
    n = max(1, round(frame_s * sample_rate))
    levels: list[np.ndarray] = []
    rest = np.zeros(0, dtype=np.float32)
    for chunk in iter_audio_chunks(media, sample_rate=sample_rate, chunk_s=1.0, channel=channel):
        samples = np.concatenate([rest, chunk.samples])
        whole = len(samples) // n * n
        frames = samples[:whole].reshape(-1, n).astype(np.float64)
        rest = samples[whole:]
        rms = np.sqrt(np.mean(frames**2, axis=1)) if len(frames) else np.zeros(0)
        levels.append(20.0 * np.log10(np.maximum(rms, 1e-6)))
    return np.concatenate(levels) if levels else np.zeros(0)


def speech_segments(
    levels: np.ndarray,
    frame_s: float = FRAME_S,
    min_gap_s: float = MIN_GAP_S,
    min_segment_s: float = MIN_SEGMENT_S,
) -> list[tuple[float, float]]:
    """Speech segments (start, end) in seconds from frame levels: frames louder than a
    threshold set between the channel's noise floor and its peak, gaps shorter than
    ``min_gap_s`` bridged, segments shorter than ``min_segment_s`` dropped."""
    if not len(levels) or float(levels.max()) < SILENT_DBFS:
        return []
    peak = float(levels.max())
    floor = float(np.percentile(levels, 10))
    threshold = max(floor + 12.0, peak - 40.0, -60.0)
    loud = np.flatnonzero(levels > threshold)
    segments: list[list[float]] = []
    for index in loud:
        start, end = index * frame_s, (index + 1) * frame_s
        if segments and start - segments[-1][1] < min_gap_s - _EPS:
            segments[-1][1] = end
        else:
            segments.append([start, end])
    return [(round(s, 3), round(e, 3)) for s, e in segments if e - s >= min_segment_s - _EPS]


def overlap_s(a: Sequence[tuple[float, float]], b: Sequence[tuple[float, float]]) -> float:
    """Seconds during which a segment of ``a`` and one of ``b`` both run."""
    total = 0.0
    i = j = 0
    while i < len(a) and j < len(b):
        low, high = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if high > low:
            total += high - low
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def _speaker_of(entry: TextEntry, names: dict[str, str]) -> tuple[str | None, TextEntry]:
    """(the tag the cue names, the cue without a matched ``Name:`` prefix)."""
    if entry.speaker:
        return entry.speaker, entry
    match = _PREFIX.match(entry.text)
    if match and match.group(1).casefold() in names:
        return match.group(1), dataclasses.replace(
            entry, text=match.group(2), speaker=names[match.group(1).casefold()]
        )
    return None, entry


def route_transcript(
    entries: Sequence[TextEntry], speakers: Sequence[CallSpeaker], source: str
) -> list[str]:
    """Give each cue to its speaker (in place); returns warnings for cues that could not
    be placed."""
    warnings: list[str] = []
    by_name = {s.name.casefold(): s for s in speakers}
    names = {s.name.casefold(): s.name for s in speakers}
    unmatched: Counter[str] = Counter()
    untagged = 0
    placed = 0
    for entry in entries:
        tag, entry = _speaker_of(entry, names)
        if tag is None:
            if len(speakers) == 1:
                speakers[0].entries.append(entry)
                placed += 1
            else:
                untagged += 1
            continue
        speaker = by_name.get(tag.casefold())
        if speaker is None:
            unmatched[tag] += 1
            continue
        speaker.entries.append(dataclasses.replace(entry, speaker=speaker.name))
        placed += 1
    given = ", ".join(s.name for s in speakers)
    if unmatched and not placed:
        tags = ", ".join(sorted(unmatched))
        hint = ",".join(sorted(unmatched))
        warnings.append(
            f"{source}: its speakers ({tags}) match no speaker name ({given}); its text is not "
            f"analysed (name the channels with --speaker-names {hint})"
        )
    elif unmatched:
        tags = ", ".join(f"{tag} ({n})" for tag, n in sorted(unmatched.items()))
        warnings.append(
            f"{source}: {sum(unmatched.values())} cue(s) by speakers that match no name "
            f"({given}) skipped: {tags}"
        )
    if untagged:
        warnings.append(
            f"{source}: {untagged} cue(s) have no speaker tag (<v Name> or 'Name: ...'); "
            "skipped, since the call has several speakers"
        )
    return warnings


def plan_call(
    media: str | Path,
    transcript: str | Path | None = None,
    names: Sequence[str] = (),
    by_channels: bool = True,
    speakers: SpeakersMode | None = None,
    diarizer: Any = None,
) -> CallPlan:
    """Probe a call recording, find and name its speakers, find silent channels and
    speech segments, and route the transcript (see the module docstring). ``speakers``
    (``auto``, ``channels`` or a number) wins over ``by_channels``; ``diarizer`` is the
    one to use (default: :func:`emoapp.encoders.diarize.make_diarizer`)."""
    media = Path(media)
    info = probe(media)
    if not info.has_audio:
        raise EmoappError(f"{media}: has no audio track; a call is analysed by its voices")
    warnings: list[str] = []
    channels = info.channels or 1
    mode = speakers if speakers is not None else ("channels" if by_channels else None)
    plan = CallPlan(media=media, info=info, speakers=[], warnings=warnings)
    if mode == "auto":
        levels = [frame_levels(media, c) for c in range(channels)] if channels > 1 else []
        if channels > 1 and channels_differ(levels):
            mode = "channels"
            warnings.append(f"{media.name}: {channels} channels that differ: one speaker each")
        else:
            why = "one audio channel" if channels == 1 else f"{channels} channels carrying one mix"
            warnings.append(f"{media.name} has {why}: who spoke when is found by diarization")
    if mode is not None and mode not in ("channels",):
        _diarize_into(plan, names, None if mode == "auto" else int(mode), diarizer)
    else:
        _channels_into(plan, names, by_channels=mode == "channels")
    if transcript is not None:
        plan.transcript = Path(transcript)
        read = read_transcript(transcript)
        warnings.extend(read.warnings)
        end = info.duration
        entries = [e for e in read.entries if end is None or e.t <= end + _EPS]
        if len(entries) < len(read.entries):
            warnings.append(
                f"{transcript}: {len(read.entries) - len(entries)} cue(s) start after the "
                "end of the call; skipped"
            )
        warnings.extend(route_transcript(entries, plan.speakers, str(transcript)))
        for speaker in plan.speakers:
            if speaker.silent and speaker.entries:
                warnings.append(
                    f"{speaker.label()}: {len(speaker.entries)} cue(s) of a silent channel "
                    "not analysed"
                )
    if not any(not s.silent for s in plan.speakers):
        if plan.diarization is not None:
            raise EmoappError(f"{media}: no speech found; nothing to analyse")
        raise EmoappError(f"{media}: every channel is silent; nothing to analyse")
    return plan


def _channels_into(plan: CallPlan, names: Sequence[str], by_channels: bool) -> None:
    media, warnings = plan.media, plan.warnings
    channels = plan.info.channels or 1
    if by_channels and channels == 1:
        warnings.append(f"{media.name} has one audio channel: analysed as one speaker")
    slots: list[int | None] = list(range(channels)) if by_channels and channels > 1 else [None]
    if len(names) > len(slots):
        unused = ", ".join(names[len(slots) :])
        warnings.append(f"{len(names)} speaker names for {len(slots)} channel(s): {unused} unused")
    plan.speakers = [
        CallSpeaker(names[i] if i < len(names) else f"speaker {i + 1}", slot)
        for i, slot in enumerate(slots)
    ]
    for speaker in plan.speakers:
        levels = frame_levels(media, speaker.channel)
        speaker.peak_dbfs = float(levels.max()) if len(levels) else -120.0
        speaker.segments = speech_segments(levels)
        if speaker.silent:
            warnings.append(
                f"{speaker.label()} is silent (peak {speaker.peak_dbfs:.0f} dBFS); not analysed"
            )


def _diarize_into(plan: CallPlan, names: Sequence[str], count: int | None, diarizer: Any) -> None:
    """Who spoke when in the down-mix: one :class:`CallSpeaker` per voice found."""
    from emoapp.encoders.diarize import make_diarizer

    if count is None and names:
        count = len(names)  # naming the speakers says how many there are
    samples = read_mono(plan.media)
    levels = frame_levels(plan.media, None)
    peak = float(levels.max()) if len(levels) else -120.0
    if peak < SILENT_DBFS:
        raise EmoappError(f"{plan.media}: is silent (peak {peak:.0f} dBFS); nothing to analyse")
    diarizer = diarizer if diarizer is not None else make_diarizer()
    # Not told how many: a call has two sides, more when the voices say so.
    result = diarizer.diarize(samples, count, min_speakers=CALL_MIN_SPEAKERS)
    plan.samples = samples
    plan.diarization = result.method
    plan.overlaps = list(result.overlaps)
    plan.warnings.extend(result.notes)
    found = result.speakers
    plan.warnings.append(
        f"diarization found {found} speaker(s)"
        + ("" if count is None else f" ({count} asked for)")
        + (f" and {len(result.overlaps)} overlap(s)" if result.overlaps else "")
    )
    if len(names) > found:
        unused = ", ".join(names[found:])
        plan.warnings.append(
            f"{len(names)} speaker names for {found} speaker(s) found: {unused} unused"
        )
    plan.speakers = [
        CallSpeaker(
            names[i] if i < len(names) else f"speaker {i + 1}",
            None,
            segments=result.segments(i),
            peak_dbfs=peak,
            diarized=True,
        )
        for i in range(found)
    ]


def transcribe_call(
    plan: CallPlan,
    recognizer: Any,
    gate: Any = None,
    progress: Callable[[str], None] | None = None,
) -> str | None:
    """Hear every active speaker that has no transcript text: a channel on its own
    (voice-activity segments of it), a diarized speaker turn by turn. Their entries carry
    the speaker's name; returns a one-line note (None: nothing to hear)."""
    import time

    from emoapp.encoders.heard import heard_entry
    from emoapp.recorded.transcribe import transcribe_recording

    todo = [s for s in plan.active if not s.entries]
    if not todo:
        return None
    started = time.perf_counter()
    speech = 0.0
    heard = 0
    for speaker in todo:
        if speaker.diarized and plan.samples is not None:
            rate = 16_000
            entries = []
            for start, end in speaker.segments:
                piece = plan.samples[round(start * rate) : round(end * rate)]
                speech += end - start
                entry = heard_entry(recognizer.transcribe(piece, rate, start))
                if entry is not None:
                    entries.append(entry)
        else:
            result = transcribe_recording(plan.media, recognizer, gate, channel=speaker.channel)
            speech += result.speech_s
            entries = result.entries
            if result.truncated is not None:
                plan.warnings.append(f"speech recognition: {result.truncated}")
        speaker.entries = [dataclasses.replace(e, speaker=speaker.name) for e in entries]
        heard += len(entries)
        if progress is not None:
            progress(f"{speaker.label()}: heard {len(entries)} utterance(s)")
    plan.heard_by = recognizer.model_id
    spent = time.perf_counter() - started
    return (
        f"heard {heard} utterance(s) in {speech:.1f} s of speech of {len(todo)} speaker(s) "
        f"with {recognizer.model_id}" + (f", {spent / speech:.2f}x real time" if speech > 0 else "")
    )


# --- rows ----------------------------------------------------------------------------------


def with_speaker(row: dict[str, Any], speaker: str) -> dict[str, Any]:
    """``row`` with ``"speaker"`` right after ``"t"``."""
    return {"t": row["t"], "speaker": speaker, **{k: v for k, v in row.items() if k != "t"}}


def _mean(values: Sequence[float | None]) -> float | None:
    kept = [float(v) for v in values if v is not None]
    return round(float(np.mean(kept)), 6) if kept else None


def _mean_probs(dists: Sequence[dict[str, float | None]]) -> dict[str, float]:
    labels = [label for label in CANONICAL_LABELS if any(label in d for d in dists)]
    return {
        label: round(float(np.mean([d.get(label) or 0.0 for d in dists])), 6) for label in labels
    }


def _top(probs: dict[str, float]) -> tuple[str | None, float | None]:
    if not probs:
        return None, None
    label = max(probs, key=lambda k: probs[k])
    return label, probs[label]


def words_by_segment(
    entries: Sequence[TextEntry], segments: Sequence[tuple[float, float]]
) -> list[str]:
    """The words of each segment: every entry goes to the segment it overlaps most (the
    nearest one when it overlaps none), in time order."""
    out: list[list[str]] = [[] for _ in segments]
    if not segments:
        return []
    for entry in sorted(entries, key=lambda e: e.t):
        end = entry.end if entry.end is not None else entry.t
        best = max(
            range(len(segments)),
            key=lambda i: (
                min(end, segments[i][1]) - max(entry.t, segments[i][0]),
                -abs(entry.t - segments[i][0]),
            ),
        )
        out[best].append(entry.text)
    return [" ".join(words) for words in out]


def utterance_row(
    rows: Sequence[dict[str, Any]],
    start: float,
    end: float,
    speaker: str,
    words: str | None = None,
) -> dict[str, Any]:
    """One row for the speech segment [start, end] of ``speaker`` from its fixed-step
    rows (those from ``start`` to ``UTTERANCE_LAG_S`` after ``end``); ``words`` (given
    only when text may be written) become its ``"words"``."""
    inside = [r for r in rows if start - _EPS <= r["t"] <= end + UTTERANCE_LAG_S + _EPS]
    fused_rows = [r["fused"] for r in inside if r.get("fused")]
    row: dict[str, Any] = {"t": round(start, 6), "end": round(end, 6), "speaker": speaker}
    if fused_rows:
        probs = _mean_probs([f["probs"] for f in fused_rows])
        label, confidence = _top(probs)
        row["fused"] = {
            "label": label,
            "confidence": confidence,
            "probs": probs,
            "valence": _mean([f.get("valence") for f in fused_rows]),
            "arousal": _mean([f.get("arousal") for f in fused_rows]),
            "rule": fused_rows[0].get("rule", "weighted"),
            "disagreement": _mean([f.get("disagreement") for f in fused_rows]),
            "disagree": any(bool(f.get("disagree")) for f in fused_rows),
        }
    else:
        row["fused"] = None
        row["abstained"] = "no estimate during this segment"
    modalities: dict[str, Any] = {}
    notes: dict[str, str] = {}
    for modality in ("face", "voice", "text"):
        entries = [r["modalities"][modality] for r in inside if r["modalities"].get(modality)]
        if not entries:
            modalities[modality] = None
            said = Counter(r["notes"][modality] for r in inside if modality in r.get("notes", {}))
            if said:
                notes[modality] = said.most_common(1)[0][0]
            continue
        probs = _mean_probs([e["probs"] for e in entries])
        label, _ = _top(probs)
        modalities[modality] = {
            "label": label,
            "confidence": _mean([e.get("confidence") for e in entries]),
            "probs": probs,
            "model": entries[0].get("model", ""),
            "baseline": bool(entries[0].get("baseline", False)),
            "share": round(len(entries) / len(inside), 6),
        }
    row["modalities"] = modalities
    row["notes"] = notes
    row["rows"] = len(inside)
    if words is not None:
        row["words"] = words
    return row


# --- the run -------------------------------------------------------------------------------


def _note(on_note: Callable[[str], None] | None, who: str, message: str) -> None:
    """Pass an analysis note on, naming the speaker; "audio only" is what a call is."""
    if on_note is not None and not message.endswith("audio only; no faces to analyse"):
        on_note(f"{who}: {message}")


@dataclass
class CallResult:
    """Per speaker: the analysis summary and the fixed-step rows (for utterances and the
    report)."""

    plan: CallPlan
    summaries: dict[str, AnalysisSummary]
    rows: dict[str, list[dict[str, Any]]]
    rows_written: int = 0
    utterances: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """Per speaker, one row per speech segment (``words`` only with ``include_text``)."""
    include_text: bool = False


def analyze_call(
    plan: CallPlan,
    encoders: dict[Modality, Encoder],
    fusion: FusionConfig | None = None,
    config: AnalysisConfig | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    by: RowMode = "step",
    on_note: Callable[[str], None] | None = None,
    progress: Callable[[float, float | None], None] | None = None,
) -> CallResult:
    """Analyse each speaker of ``plan`` on their own channel (see the module)."""
    config = config or AnalysisConfig()
    if config.resume_after is not None:
        raise EmoappError("--resume does not work with a call analysed by speaker")
    include_text = config.include_text
    # Each speaker's voice statistics come from all of their speech in the call (their
    # channel, or their diarized turns), unless asked otherwise: a caller who is angry
    # throughout stays angry (the shrinkage in emoapp.encoders.adaptation).
    voice_stats = "recording" if config.voice_stats == "auto" else config.voice_stats
    voice_text: dict[Modality, Encoder] = {
        m: e for m, e in encoders.items() if m in (Modality.VOICE, Modality.TEXT)
    }
    result = CallResult(plan=plan, summaries={}, rows={}, include_text=include_text)
    face_note = FACE_NOT_IN_CALLS if plan.info.has_video else NO_VIDEO_NOTE
    info = dataclasses.replace(plan.info, has_video=False)
    for speaker in plan.active:
        kept: list[dict[str, Any]] = []
        result.rows[speaker.name] = kept

        def step_row(row: dict[str, Any], name: str = speaker.name, kept: list = kept) -> None:
            tagged = with_speaker(row, name)
            kept.append(tagged)
            if by == "step" and on_row is not None:
                on_row(tagged)
                result.rows_written += 1

        inputs = AnalysisInputs(
            media=plan.media,
            info=info,
            entries=sorted(speaker.entries, key=lambda e: e.t),
            notes={Modality.FACE: face_note},
        )
        who = speaker.label()

        def speaker_note(message: str, who: str = who) -> None:
            _note(on_note, who, message)

        result.summaries[speaker.name] = analyze(
            plan.media,
            voice_text,
            fusion,
            dataclasses.replace(
                config,
                channel=speaker.channel,
                transcript=None,
                text=None,
                include_text=False,  # words go into utterance rows, not explanations
                voice_spans=tuple(speaker.segments) if speaker.diarized else None,
                voice_stats=voice_stats,
            ),
            on_row=step_row,
            progress=progress,
            on_note=speaker_note,
            inputs=inputs,
        )
        words = words_by_segment(speaker.entries, speaker.segments)
        utterances = [
            utterance_row(kept, start, end, speaker.name, said if include_text else None)
            for (start, end), said in zip(speaker.segments, words, strict=True)
        ]
        result.utterances[speaker.name] = utterances
        if by == "utterance" and on_row is not None:
            for row in utterances:
                on_row(row)
                result.rows_written += 1
    return result
