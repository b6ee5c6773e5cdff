"""Who spoke when in one audio channel (speaker diarization), with nothing downloaded.

The embedded diarizer (:class:`EmbeddedDiarizer`):

1. **speech**: the Silero voice-activity network (in the ``silero-vad`` wheel; an energy
   threshold when it cannot load) gives a speech probability every 32 ms; speech is
   where it passes the threshold, gaps under :attr:`DiarizerConfig.min_gap_s` bridged,
   bits under :attr:`DiarizerConfig.min_speech_s` dropped;
2. **embeddings**: resemblyzer's pretrained speaker encoder
   (:mod:`emoapp.encoders.speaker_embedding`) embeds 1.6 s windows of every speech
   segment, :attr:`DiarizerConfig.windows_per_s` per second;
3. **clustering**: spectral clustering of the window embeddings, centred on the
   recording's mean (:func:`cluster_embeddings`), with the number of speakers given or
   estimated from the affinity's eigenvalues, and clusters whose voices are too alike
   merged (so one speaker stays one);
4. **turns**: every 0.1 s of speech goes to the speaker whose centroid the windows
   covering it resemble most (a median filter smooths the labels). Where the windows
   covering a moment resemble two speakers about equally (margin under
   :attr:`DiarizerConfig.overlap_margin`, both above :attr:`DiarizerConfig.overlap_floor`)
   and each of them speaks on both sides, the moment is marked **overlap**: it is given
   to neither speaker alone.

When ``pyannote.audio`` is installed and a pyannote diarization pipeline is on this
computer (``EMOAPP_PYANNOTE_PIPELINE`` names its folder or ``config.yaml``),
:func:`make_diarizer` uses :class:`PyannoteDiarizer` instead (``auto``). It is an
optional extra: nothing here requires it, and nothing is downloaded.

Speaker indices are 0-based, in order of first speech. Everything stays in memory.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from emoapp.core.errors import EmoappError, MissingDependencyError, ModelLoadError

RATE = 16_000
STEP_S = 0.1
"""The resolution of the turns."""
PYANNOTE_ENV = "EMOAPP_PYANNOTE_PIPELINE"
FEW_WINDOWS = 20
FEW_WINDOWS_CUT = 0.3
"""Raw cosine distance under which a few windows are one voice (resemblyzer: one
speaker's utterances are mostly more than 0.7 alike)."""


@dataclass(frozen=True, slots=True)
class SpeakerTurn:
    """One stretch of one speaker's speech (seconds)."""

    start: float
    end: float
    speaker: int


@dataclass
class Diarization:
    """Who spoke when: single-speaker turns, and the stretches where several speak at
    once (given to no speaker alone)."""

    turns: list[SpeakerTurn]
    overlaps: list[tuple[float, float]]
    speakers: int
    method: str
    notes: list[str] = field(default_factory=list)

    def segments(self, speaker: int) -> list[tuple[float, float]]:
        return [(t.start, t.end) for t in self.turns if t.speaker == speaker]

    def speech_s(self, speaker: int) -> float:
        return float(sum(t.end - t.start for t in self.turns if t.speaker == speaker))


class Diarizer(Protocol):
    """Anything that says who spoke when in 16 kHz mono audio."""

    name: str

    def diarize(
        self, samples: np.ndarray, speakers: int | None = None, min_speakers: int = 1
    ) -> Diarization: ...


@dataclass(frozen=True)
class DiarizerConfig:
    """Settings of the embedded diarizer (chosen on dev calls: scripts/measure_diarization.py)."""

    vad_threshold: float = 0.3
    min_gap_s: float = 0.3
    min_speech_s: float = 0.25
    windows_per_s: float = 4.0
    keep_neighbours: float = 0.25
    """Share of nearest neighbours each window keeps in the affinity."""
    merge_similarity: float = 0.75
    """Clusters whose raw centroids are more alike than this are one voice (0.75 and
    ``min_cluster_share`` 0.08: the best of a grid on the dev calls of
    ``scripts/measure_diarization.py --seed 1``)."""
    max_speakers: int = 8
    min_cluster_share: float = 0.08
    median_frames: int = 5
    overlap_margin: float = 0.0
    """0: overlap is never marked from embeddings (see the module)."""
    overlap_floor: float = 0.6
    min_turn_s: float = 0.3


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) index pairs of the True runs of a boolean array."""
    if not mask.size:
        return []
    padded = np.concatenate([[False], mask.astype(bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def speech_regions(
    probs: np.ndarray,
    frame_s: float,
    threshold: float = 0.5,
    min_gap_s: float = 0.3,
    min_speech_s: float = 0.25,
) -> list[tuple[float, float]]:
    """Speech (start, end) from per-frame speech probabilities: frames at or above the
    threshold, gaps under ``min_gap_s`` bridged, regions under ``min_speech_s`` dropped."""
    regions: list[list[float]] = []
    for a, b in _runs(np.asarray(probs) >= threshold):
        start, end = a * frame_s, b * frame_s
        if regions and start - regions[-1][1] < min_gap_s:
            regions[-1][1] = end
        else:
            regions.append([start, end])
    return [(round(s, 3), round(e, 3)) for s, e in regions if e - s >= min_speech_s]


def cluster_embeddings(
    embeddings: np.ndarray,
    speakers: int | None = None,
    max_speakers: int = 8,
    min_cluster_share: float = 0.08,
    merge_similarity: float = 0.75,
    keep_neighbours: float = 0.25,
    min_speakers: int = 1,
) -> np.ndarray:
    """Cluster labels (0..k-1) of L2-normalised embeddings, by spectral clustering.

    The recording's mean embedding is taken off first (what every window shares: the
    line, the room, the language), so what is left is what tells the voices apart. The
    affinity is the cosine similarity of the centred embeddings (negative ones 0), each
    row keeping only its ``keep_neighbours`` share of nearest neighbours (symmetrised),
    as in Park et al. 2019 ("Auto-tuning spectral clustering for speaker diarization").
    The count is ``speakers`` or the largest gap between the normalised affinity's
    eigenvalues (at most ``max_speakers``); k-means (scipy, seeded) on the row-normalised
    leading eigenvectors gives the clusters. Without a given count, clusters whose raw
    (not centred) centroids are more alike than ``merge_similarity`` are one voice and
    merge, most alike first (this is how one speaker comes out as one). Clusters holding
    less than ``min_cluster_share`` of the windows join their nearest.

    Under :data:`FEW_WINDOWS` windows (a few seconds of speech) neither the centring nor
    the eigenvalues mean much: average-linkage clustering of the raw embeddings, cut into
    ``speakers`` or at cosine distance :data:`FEW_WINDOWS_CUT`, does the job.

    ``min_speakers`` (count not given): never fewer clusters than this (when there are
    that many windows); a call has two sides."""
    n = len(embeddings)
    if n < 2 or speakers == 1:
        return np.zeros(n, dtype=int)
    if n < FEW_WINDOWS:
        from scipy.cluster.hierarchy import fcluster, linkage

        tree = linkage(embeddings, method="average", metric="cosine")
        if speakers is not None:
            few = fcluster(tree, t=min(speakers, n), criterion="maxclust")
        else:
            few = fcluster(tree, t=FEW_WINDOWS_CUT, criterion="distance")
            if few.max() < min(min_speakers, n):
                few = fcluster(tree, t=min(min_speakers, n), criterion="maxclust")
        return np.unique(np.asarray(few, dtype=int), return_inverse=True)[1]
    centred = _centred(embeddings)
    affinity = np.clip(centred @ centred.T, 0.0, None)
    np.fill_diagonal(affinity, 0.0)
    keep = max(2, int(np.ceil(keep_neighbours * n)))
    if keep < n - 1:
        cut = np.sort(affinity, axis=1)[:, -keep][:, None]
        affinity = np.where(affinity >= cut, affinity, 0.0)
    affinity = np.maximum(affinity, affinity.T)
    degree = affinity.sum(axis=1)
    scale = 1.0 / np.sqrt(np.maximum(degree, 1e-12))
    normalised = affinity * scale[:, None] * scale[None, :]
    values, vectors = np.linalg.eigh(normalised)
    values, vectors = values[::-1], vectors[:, ::-1]
    limit = min(max_speakers, n - 1)
    if speakers is not None:
        k = min(speakers, n)
    else:
        gaps = values[:limit] - values[1 : limit + 1]
        k = int(np.argmax(gaps[1:])) + 2 if limit >= 2 else 1  # at least 2, merged below
    labels = _kmeans(vectors[:, :k], k)
    keep_at_least = 1 if speakers is None else k
    counts = np.bincount(labels, minlength=k)
    big = [c for c in range(k) if counts[c] >= min_cluster_share * n]
    if len(big) < keep_at_least:
        big = [int(c) for c in np.argsort(counts)[::-1][:keep_at_least]]
    if len(big) < k:
        centroids = np.stack([_centroid(centred[labels == c]) for c in big])
        small = ~np.isin(labels, big)
        labels[small] = np.asarray(big)[np.argmax(centred[small] @ centroids.T, axis=1)]
    labels = np.unique(labels, return_inverse=True)[1]
    if speakers is None:
        labels = _merge_alike(embeddings, labels, merge_similarity, min_speakers)
    return labels


def _kmeans(points: np.ndarray, k: int) -> np.ndarray:
    """k-means (scipy's kmeans2, k-means++ starts, fixed seeds) on row-normalised points;
    the best of eight runs by within-cluster distance."""
    from scipy.cluster.vq import kmeans2

    rows = points / np.maximum(np.linalg.norm(points, axis=1, keepdims=True), 1e-12)
    best: tuple[float, np.ndarray] | None = None
    for seed in range(8):
        centres, labels = kmeans2(rows, k, minit="++", seed=seed, iter=50)
        cost = float(((rows - centres[labels]) ** 2).sum())
        if best is None or cost < best[0] - 1e-9:
            best = (cost, labels)
    assert best is not None
    return np.asarray(best[1], dtype=int)


def _merge_alike(
    embeddings: np.ndarray, labels: np.ndarray, similarity: float, keep: int = 1
) -> np.ndarray:
    """Merge the clusters whose raw centroids are more alike than ``similarity``, down to
    no fewer than ``keep``."""
    labels = labels.copy()
    while labels.max() + 1 > max(1, keep):
        ids = np.unique(labels)
        centroids = np.stack([_centroid(embeddings[labels == k]) for k in ids])
        sims = centroids @ centroids.T
        np.fill_diagonal(sims, -np.inf)
        i, j = np.unravel_index(int(np.argmax(sims)), sims.shape)
        if sims[i, j] < similarity:
            break
        labels[labels == ids[j]] = ids[i]
        labels = np.unique(labels, return_inverse=True)[1]
    return labels


def _centred(embeddings: np.ndarray) -> np.ndarray:
    centred = embeddings - embeddings.mean(axis=0)
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    return centred / np.maximum(norms, 1e-9)


def _centroid(vectors: np.ndarray) -> np.ndarray:
    mean = vectors.mean(axis=0)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm > 0 else mean


def _median(labels: np.ndarray, width: int) -> np.ndarray:
    """A majority filter over integer labels (-1 = no speech is left alone)."""
    if width <= 1 or labels.size == 0:
        return labels
    half = width // 2
    out = labels.copy()
    for i in range(labels.size):
        if labels[i] < 0:
            continue
        window = labels[max(0, i - half) : i + half + 1]
        window = window[window >= 0]
        out[i] = int(np.bincount(window).argmax())
    return out


def turns_from_frames(
    labels: np.ndarray, step_s: float = STEP_S, min_turn_s: float = 0.0
) -> tuple[list[SpeakerTurn], list[tuple[float, float]]]:
    """Turns from per-step labels (-1: silence, -2: overlap, k >= 0: speaker k); turns
    shorter than ``min_turn_s`` between two turns of one other speaker join them."""
    labels = labels.copy()
    if min_turn_s > 0:
        spans = _label_runs(labels)
        for i, (a, b, k) in enumerate(spans):
            if k < 0 or (b - a) * step_s >= min_turn_s or i == 0 or i == len(spans) - 1:
                continue
            before, after = spans[i - 1][2], spans[i + 1][2]
            if before == after and before >= 0:
                labels[a:b] = before
    turns: list[SpeakerTurn] = []
    overlaps: list[tuple[float, float]] = []
    for a, b, k in _label_runs(labels):
        start, end = round(a * step_s, 3), round(b * step_s, 3)
        if k >= 0:
            turns.append(SpeakerTurn(start, end, int(k)))
        elif k == -2:
            overlaps.append((start, end))
    return turns, overlaps


def _label_runs(labels: np.ndarray) -> list[tuple[int, int, int]]:
    runs: list[tuple[int, int, int]] = []
    start = 0
    for i in range(1, labels.size + 1):
        if i == labels.size or labels[i] != labels[start]:
            runs.append((start, i, int(labels[start])))
            start = i
    return runs


class EmbeddedDiarizer:
    """Silero speech + resemblyzer embeddings + spectral clustering (see the module)."""

    name = "embedded"

    def __init__(self, config: DiarizerConfig | None = None, device: str = "cpu") -> None:
        self.config = config or DiarizerConfig()
        self.device = device
        self._gate: Any = None
        self._embedder: Any = None

    def load(self) -> None:
        from emoapp.encoders.speaker_embedding import SpeakerEmbedder
        from emoapp.encoders.vad import make_gate

        if self._embedder is None:
            self._embedder = SpeakerEmbedder.load(self.device)
        if self._gate is None:
            self._gate = make_gate("silero", threshold=self.config.vad_threshold)

    @property
    def method(self) -> str:
        gate = getattr(self._gate, "name", "silero")
        return f"embedded ({gate} speech, resemblyzer speaker embedding, spectral clustering)"

    def speech(self, samples: np.ndarray) -> list[tuple[float, float]]:
        """Speech regions of 16 kHz mono audio."""
        self.load()
        config = self.config
        gate = self._gate
        if hasattr(gate, "frame_probs"):
            probs = gate.frame_probs(samples, RATE)
            frame_s = 512 / RATE
            threshold = config.vad_threshold
        else:  # the energy fallback: 32 ms frames above its level
            frame = 512
            n = len(samples) // frame
            frames = np.asarray(samples[: n * frame], dtype=np.float64).reshape(n, frame)
            db = 20.0 * np.log10(np.maximum(np.sqrt((frames**2).mean(axis=1)), 1e-6))
            probs = (db > getattr(gate, "threshold_dbfs", -40.0)).astype(float)
            frame_s, threshold = frame / RATE, 0.5
        return speech_regions(probs, frame_s, threshold, config.min_gap_s, config.min_speech_s)

    def embed_windows(
        self, samples: np.ndarray, regions: Sequence[tuple[float, float]]
    ) -> tuple[np.ndarray, np.ndarray]:
        """(embeddings (n, 256), window spans (n, 2) in seconds) over the speech regions."""
        self.load()
        embeddings: list[np.ndarray] = []
        spans: list[tuple[float, float]] = []
        for start, end in regions:
            a, b = round(start * RATE), round(end * RATE)
            piece = samples[a:b]
            if piece.size < RATE // 10:
                continue
            partials, slices = self._embedder.embed_partials(
                piece, rate=self.config.windows_per_s, min_coverage=0.5
            )
            for vector, part in zip(partials, slices, strict=True):
                spans.append(
                    (start + part.start / RATE, min(end, start + min(part.stop, piece.size) / RATE))
                )
                embeddings.append(vector)
        if not embeddings:
            return np.zeros((0, 256), dtype=np.float32), np.zeros((0, 2))
        return np.stack(embeddings), np.asarray(spans)

    def diarize(
        self, samples: np.ndarray, speakers: int | None = None, min_speakers: int = 1
    ) -> Diarization:
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        if speakers is not None and speakers < 1:
            raise EmoappError("the number of speakers must be at least 1")
        regions = self.speech(samples)
        embeddings, spans = self.embed_windows(samples, regions)
        return self.assign(len(samples) / RATE, regions, embeddings, spans, speakers, min_speakers)

    def assign(
        self,
        duration: float,
        regions: Sequence[tuple[float, float]],
        embeddings: np.ndarray,
        spans: np.ndarray,
        speakers: int | None = None,
        min_speakers: int = 1,
    ) -> Diarization:
        """Turns from speech regions and window embeddings (steps 3 and 4 of the module;
        separate so that settings can be compared on the same embeddings)."""
        config = self.config
        notes: list[str] = []
        if not len(embeddings):
            return Diarization([], [], 0, self.method, ["no speech found"])
        labels = cluster_embeddings(
            embeddings,
            speakers,
            config.max_speakers,
            config.min_cluster_share,
            config.merge_similarity,
            config.keep_neighbours,
            min_speakers,
        )
        k = int(labels.max()) + 1
        if speakers is not None and k < speakers:
            notes.append(f"{speakers} speakers asked for, but only {k} voice(s) told apart")
        centred = _centred(embeddings) if k > 1 else embeddings
        centroids = np.stack([_centroid(centred[labels == c]) for c in range(k)])
        similarity = centred @ centroids.T  # (windows, speakers)
        n_steps = int(np.ceil(duration / STEP_S))
        centres = (np.arange(n_steps) + 0.5) * STEP_S
        in_speech = np.zeros(n_steps, dtype=bool)
        for start, end in regions:
            in_speech[(centres >= start) & (centres < end)] = True
        score = np.zeros((n_steps, k))
        weight = np.zeros(n_steps)
        for (start, end), sims in zip(spans, similarity, strict=True):
            covered = (centres >= start) & (centres < end)
            score[covered] += sims
            weight[covered] += 1
        # Speech no window covers (its region too short to embed) takes the nearest window.
        window_centres = spans.mean(axis=1)
        for i in np.flatnonzero(in_speech & (weight == 0)):
            nearest = int(np.argmin(np.abs(window_centres - centres[i])))
            score[i] = similarity[nearest]
            weight[i] = 1
        mean = score / np.maximum(weight, 1)[:, None]
        frames = np.where(in_speech, np.argmax(mean, axis=1), -1)
        frames = _median(frames, config.median_frames)
        if k > 1 and config.overlap_margin > 0:
            ordered = np.sort(mean, axis=1)
            close = (ordered[:, -1] - ordered[:, -2] < config.overlap_margin) & (
                ordered[:, -2] > config.overlap_floor
            )
            frames = np.where(in_speech & close, -2, frames)
        turns, overlaps = turns_from_frames(frames, STEP_S, config.min_turn_s)
        # Speakers numbered in order of first speech.
        first: dict[int, int] = {}
        for turn in turns:
            first.setdefault(turn.speaker, len(first))
        turns = [SpeakerTurn(t.start, t.end, first[t.speaker]) for t in turns]
        return Diarization(turns, overlaps, len(first), self.method, notes)


class PyannoteDiarizer:
    """A pyannote.audio pipeline that is on this computer (never downloaded)."""

    name = "pyannote"

    def __init__(self, pipeline_path: Path, device: str = "cpu") -> None:
        self.pipeline_path = pipeline_path
        self.device = device
        self._pipeline: Any = None

    @property
    def method(self) -> str:
        return f"pyannote.audio pipeline {self.pipeline_path}"

    def load(self) -> None:
        if self._pipeline is not None:
            return
        try:
            from pyannote.audio import Pipeline
        except ImportError as exc:
            raise MissingDependencyError("pyannote.audio", "pyannote diarization") from exc
        try:
            pipeline = Pipeline.from_pretrained(str(self.pipeline_path))
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelLoadError(f"the pyannote pipeline {self.pipeline_path}: {exc}") from exc
        if pipeline is None:
            raise ModelLoadError(f"the pyannote pipeline {self.pipeline_path} did not load")
        self._pipeline = pipeline

    def diarize(
        self, samples: np.ndarray, speakers: int | None = None, min_speakers: int = 1
    ) -> Diarization:
        import torch

        self.load()
        waveform = torch.from_numpy(np.asarray(samples, dtype=np.float32).reshape(1, -1))
        kwargs: dict[str, int] = (
            {"num_speakers": speakers} if speakers else {"min_speakers": min_speakers}
        )
        annotation = self._pipeline({"waveform": waveform, "sample_rate": RATE}, **kwargs)
        annotation = getattr(annotation, "speaker_diarization", annotation)
        raw = [
            (float(segment.start), float(segment.end), str(label))
            for segment, _, label in annotation.itertracks(yield_label=True)
        ]
        return from_labelled_segments(raw, len(samples) / RATE, self.method)


def from_labelled_segments(
    segments: Sequence[tuple[float, float, str]], duration: float, method: str
) -> Diarization:
    """A :class:`Diarization` from possibly overlapping (start, end, label) segments:
    where two labels overlap, the stretch is overlap and belongs to neither."""
    n_steps = int(np.ceil(duration / STEP_S))
    names = list(dict.fromkeys(label for _, _, label in sorted(segments)))
    active = np.zeros((n_steps, max(1, len(names))), dtype=bool)
    centres = (np.arange(n_steps) + 0.5) * STEP_S
    for start, end, label in segments:
        active[(centres >= start) & (centres < end), names.index(label)] = True
    count = active.sum(axis=1)
    frames = np.where(count == 0, -1, np.where(count > 1, -2, np.argmax(active, axis=1)))
    turns, overlaps = turns_from_frames(frames, STEP_S)
    return Diarization(turns, overlaps, len({t.speaker for t in turns}), method)


def pyannote_pipeline_path() -> Path | None:
    """The local pyannote pipeline ``EMOAPP_PYANNOTE_PIPELINE`` names, when pyannote.audio
    is installed (None otherwise)."""
    value = os.environ.get(PYANNOTE_ENV)
    if not value or importlib.util.find_spec("pyannote") is None:
        return None
    if importlib.util.find_spec("pyannote.audio") is None:
        return None
    path = Path(value).expanduser()
    if path.is_dir():
        path = path / "config.yaml"
    return path if path.is_file() else None


def make_diarizer(kind: str = "auto", device: str = "cpu") -> EmbeddedDiarizer | PyannoteDiarizer:
    """``auto``: pyannote when it and a local pipeline are here, else the embedded one;
    ``embedded``; ``pyannote`` (an error when it is not here)."""
    if kind not in ("auto", "embedded", "pyannote"):
        raise EmoappError(f"unknown diarizer {kind!r}; choose auto, embedded or pyannote")
    path = pyannote_pipeline_path() if kind != "embedded" else None
    if path is not None:
        return PyannoteDiarizer(path, device)
    if kind == "pyannote":
        raise EmoappError(
            f"pyannote diarization needs pyannote.audio installed and {PYANNOTE_ENV} naming a "
            "local pipeline (its folder or config.yaml)"
        )
    return EmbeddedDiarizer(device=device)
