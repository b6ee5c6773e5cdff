"""Readers for labelled emotion datasets, as people have them on disk.

Each reader turns a dataset into :class:`EvalItem` s: one labelled thing to classify,
with the media file(s) and/or text it has, its gold label already mapped onto the
canonical set (through the same alias table the encoders' label maps use), an optional
demographic group, and everything else the dataset says about it in ``meta``.

Formats:

- ``ravdess``: file names ``MM-VV-EE-II-SS-RR-AA.mp4|.wav`` (modality, vocal channel,
  emotion, intensity, statement, repetition, actor). The audio-visual (01), video-only
  (02) and audio-only (03) files of one performance become one item: the picture from
  the AV or video-only file, the sound from the AV or audio-only file. Groups: ``sex``
  (odd actors male, even female) by default, or ``actor``, ``vocal_channel``,
  ``intensity``, ``statement``.
- ``cremad``: file names ``1001_DFA_ANG_XX.wav|.flv|.mp4`` (actor, sentence, emotion,
  level), audio and video of one clip merged by name; ``VideoDemographics.csv`` (ActorID,
  Age, Sex, Race, Ethnicity) gives groups (``Sex`` by default).
- ``meld``: a ``*_sent_emo.csv`` (Utterance, Speaker, Emotion, Dialogue_ID,
  Utterance_ID, ...) with clips ``dia{D}_utt{U}.mp4`` in a sibling folder when present;
  utterances without a clip are evaluated on their text alone. Each item carries the
  earlier utterances of its dialogue (up to five) as text context, and the text domain
  ``conversation``.
- ``goemotions``: the TSV files (text, comma-separated label ids, comment id) with
  ``emotions.txt``; the 27 emotions are mapped to Ekman's six (plus neutral). A
  multi-label row is kept when all its labels map to one canonical label and dropped
  (and counted) otherwise. Items carry the text domain ``comments``.
- ``fer2013``: a FER2013 split as the Kaggle image-folder release has it, a tar
  (``train.tar.gz``, ``test.tar.gz``) of ``<emotion>/<file>.jpg`` 48 x 48 grey faces,
  read without unpacking; each image is one face crop (``emoapp evaluate`` then finds
  landmarks on an upscaled copy instead of detecting faces: ``--face-detector``).
- ``tess``, ``emodb``, ``emovo``, ``turev``: the acted speech corpora in
  ``../shared/data/speech`` (see each folder's SOURCES.md), read by :func:`read_speech_corpus`:
  the label from the file name or folder, a ``speaker`` and, where the corpus says it,
  ``sex``. TESS ``ps`` (pleasant surprise) is surprised; TurEV ``Calm`` is neutral (as
  RAVDESS ``calm``); EmoDB boredom (``L``) has no canonical label and is skipped (counted).
- ``csv``: a generic manifest with ``path`` and/or ``text``, ``label``, and optional
  ``group``, ``start``, ``end``, ``id`` (and ``video``/``audio`` for separate files), and
  ``speaker`` (who speaks: the voice model adapts to each speaker's statistics).
  Paths are relative to the manifest's folder.

Every item whose speaker is known carries it in ``meta["speaker"]`` (RAVDESS: the actor;
CREMA-D: the actor), read by :attr:`EvalItem.speaker`.

:func:`read_dataset` picks the reader (``auto`` looks at the path), applies
``--group-by`` and ``--limit``, and returns an :class:`EvalDataset` that also records
what was dropped or is missing, and why.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import random
import re
import tarfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final

from emoapp.core.errors import EmoappError
from emoapp.core.labelmap import ALIASES, GOEMOTIONS_EKMAN, IGNORE, normalise
from emoapp.core.taxonomy import CANONICAL_LABELS

FORMATS: Final[tuple[str, ...]] = (
    "ravdess",
    "cremad",
    "meld",
    "goemotions",
    "fer2013",
    "tess",
    "emodb",
    "emovo",
    "turev",
    "csv",
)

NO_GROUPS: Final[str] = "none"
"""``--group-by none`` switches groups off."""


class DatasetError(EmoappError):
    """A dataset path that cannot be read as the format asked for (or any format)."""


@dataclass(frozen=True)
class EvalItem:
    """One labelled thing to classify.

    ``video`` is the file whose picture the face model sees and ``audio`` the file whose
    sound the voice model hears (the same file for an audio-visual clip); either may be
    None, and the runner checks which streams a file really has. ``start``/``end`` cut a
    segment (seconds of media time) out of longer files.
    """

    id: str
    label: str
    video: Path | None = None
    audio: Path | None = None
    text: str | None = None
    group: str | None = None
    start: float | None = None
    end: float | None = None
    meta: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    context: tuple[str, ...] = ()
    """For text: what was said before it in the same conversation, oldest first (MELD:
    the earlier utterances of its dialogue)."""
    domain: str | None = None
    """For text: what kind of text the dataset holds (``"conversation"``, ``"comments"``);
    passed to the text model, which applies its prior for that kind."""

    def __post_init__(self) -> None:
        if self.label not in CANONICAL_LABELS:
            raise ValueError(f"item {self.id!r}: {self.label!r} is not a canonical label")

    @property
    def speaker(self) -> str | None:
        """Who speaks in the item (a manifest's ``speaker`` column, a corpus's actor), or
        None when the dataset does not say."""
        for key in ("speaker", "Speaker"):
            value = self.meta.get(key, "").strip()
            if value:
                return value
        return None


@dataclass(frozen=True)
class SkippedRecord:
    """A record of the dataset that gave no item, and why."""

    where: str
    reason: str


@dataclass
class EvalDataset:
    """The items of a dataset, and an account of what was left out."""

    name: str
    format: str
    root: Path
    items: list[EvalItem]
    skipped: list[SkippedRecord] = field(default_factory=list)
    missing: Counter[str] = field(default_factory=Counter)
    """Parts of kept items that are absent (e.g. "video/audio: clip file not found")."""
    notes: list[str] = field(default_factory=list)
    group_by: str | None = None
    group_columns: tuple[str, ...] = ()
    """What ``--group-by`` can choose for this dataset."""
    records: int = 0
    """Items before ``--limit``."""

    def skipped_reasons(self) -> Counter[str]:
        return Counter(s.reason for s in self.skipped)

    def label_counts(self) -> Counter[str]:
        return Counter(item.label for item in self.items)

    def group_counts(self) -> Counter[str]:
        return Counter(item.group for item in self.items if item.group is not None)


# --- labels ---------------------------------------------------------------------------


def canonical_label(raw: str) -> str | None:
    """The canonical label a dataset's label maps to (through the encoders' alias table),
    or None when it maps to nothing (``other``/``unknown``) or is not known at all."""
    target = ALIASES.get(normalise(raw))
    if target is None or target == IGNORE:
        return None
    return target


def _label_or_reason(raw: str) -> tuple[str | None, str]:
    target = ALIASES.get(normalise(raw))
    if target is None:
        return None, f"label {raw.strip()!r} has no canonical mapping"
    if target == IGNORE:
        return None, f"label {raw.strip()!r} maps to no canonical label"
    return target, ""


# --- small helpers --------------------------------------------------------------------

_MEDIA_SUFFIXES: Final[frozenset[str]] = frozenset(
    {".mp4", ".avi", ".mov", ".mkv", ".webm", ".flv", ".wav", ".mp3", ".flac", ".ogg", ".m4a"}
)


def _walk_files(root: Path, limit: int | None = None) -> Iterator[Path]:
    """Every file under ``root`` (sorted per folder; hidden files and folders skipped)."""
    count = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            yield Path(folder) / name
            count += 1
            if limit is not None and count >= limit:
                return


def _read_text(path: Path) -> tuple[str, str | None]:
    """A text file's contents, as UTF-8 if it is, else as Windows-1252 (MELD's CSVs have
    stray cp1252 bytes); the second value names the fallback encoding when one was used."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace"), "cp1252"


def _csv_rows(
    path: Path, delimiter: str = ","
) -> tuple[list[str], list[dict[str, str]], str | None]:
    text, fallback = _read_text(path)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [h.strip() for h in (reader.fieldnames or [])]
    rows = []
    for row in reader:
        rows.append({(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None})
    return header, rows, fallback


def _float_or_none(value: str | None) -> float | None:
    if value is None or not value.strip():
        return None
    return float(value)


# --- RAVDESS --------------------------------------------------------------------------

RAVDESS_NAME: Final[re.Pattern[str]] = re.compile(
    r"^(0[1-3])-(0[12])-(0[1-8])-(0[12])-(0[12])-(0[12])-(\d\d)\.(mp4|wav|flac)$", re.IGNORECASE
)
RAVDESS_EMOTIONS: Final[dict[str, str]] = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fearful",
    "07": "disgust",
    "08": "surprised",
}
_RAVDESS_MODALITY = {"01": "audio-visual", "02": "video-only", "03": "audio-only"}
_RAVDESS_CHANNEL = {"01": "speech", "02": "song"}
_RAVDESS_INTENSITY = {"01": "normal", "02": "strong"}
_RAVDESS_STATEMENT = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
RAVDESS_GROUPS: Final[tuple[str, ...]] = (
    "sex",
    "actor",
    "vocal_channel",
    "intensity",
    "statement",
    "emotion",
)


def read_ravdess(root: Path) -> EvalDataset:
    """Items from a folder holding RAVDESS files (any sub-folder layout)."""
    performances: dict[str, dict[str, Path]] = defaultdict(dict)
    fields_of: dict[str, tuple[str, ...]] = {}
    for path in _walk_files(root):
        match = RAVDESS_NAME.match(path.name)
        if not match:
            continue
        modality, *rest = match.groups()[:7]
        key = "-".join(rest)
        performances[key].setdefault(modality, path)
        fields_of[key] = tuple(rest)
    if not performances:
        raise DatasetError(f"{root}: no RAVDESS files found (names like 03-01-06-01-02-01-12.wav)")
    dataset = EvalDataset("RAVDESS", "ravdess", root, [], group_columns=RAVDESS_GROUPS)
    files = 0
    for key in sorted(performances):
        found = performances[key]
        files += len(found)
        channel, emotion, intensity, statement, repetition, actor = fields_of[key]
        raw_emotion = RAVDESS_EMOTIONS[emotion]
        label = canonical_label(raw_emotion)
        assert label is not None  # every RAVDESS emotion has an alias
        video = found.get("01") or found.get("02")
        audio = found.get("01") or found.get("03")
        meta = {
            "emotion": raw_emotion,
            "vocal_channel": _RAVDESS_CHANNEL[channel],
            "intensity": _RAVDESS_INTENSITY[intensity],
            "statement": _RAVDESS_STATEMENT[statement],
            "repetition": repetition,
            "actor": actor,
            "speaker": f"ravdess-{actor}",
            "sex": "male" if int(actor) % 2 == 1 else "female",
            "files": ",".join(_RAVDESS_MODALITY[m] for m in sorted(found)),
        }
        if video is None:
            dataset.missing["face: no video file (audio-only recording)"] += 1
        if audio is None:
            dataset.missing["voice: no audio file (video-only recording)"] += 1
        dataset.items.append(EvalItem(id=key, label=label, video=video, audio=audio, meta=meta))
    if files != len(dataset.items):
        dataset.notes.append(
            f"{files} files are {len(dataset.items)} performances: the audio-visual, "
            "video-only and audio-only files of one performance are one item"
        )
    if any(item.meta["emotion"] == "calm" for item in dataset.items):
        dataset.notes.append("RAVDESS 'calm' is scored as neutral (as the label maps do)")
    return dataset


# --- CREMA-D --------------------------------------------------------------------------

CREMAD_NAME: Final[re.Pattern[str]] = re.compile(
    r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{1,2})\.(wav|mp3|flv|mp4|avi)$", re.IGNORECASE
)
CREMAD_SENTENCES: Final[dict[str, str]] = {
    "IEO": "It's eleven o'clock",
    "TIE": "That is exactly what happened",
    "IOM": "I'm on my way to the meeting",
    "IWW": "I wonder what this is about",
    "TAI": "The airplane is almost full",
    "MTI": "Maybe tomorrow it will be cold",
    "IWL": "I would like a new alarm clock",
    "ITH": "I think I have a doctor's appointment",
    "DFA": "Don't forget a jacket",
    "ITS": "I think I've seen this before",
    "TSI": "The surface is slick",
    "WSI": "We'll stop in a couple of minutes",
}
CREMAD_LEVELS: Final[dict[str, str]] = {
    "LO": "low",
    "MD": "medium",
    "HI": "high",
    "XX": "unspecified",
    "X": "unspecified",
}
_AUDIO_FIRST = (".wav", ".flac", ".mp3")
_VIDEO_FIRST = (".flv", ".mp4", ".avi")
CREMAD_DEMOGRAPHICS: Final[str] = "VideoDemographics.csv"


def _find_file(root: Path, name: str) -> Path | None:
    direct = root / name
    if direct.is_file():
        return direct
    for path in _walk_files(root):
        if path.name.lower() == name.lower():
            return path
    return None


def read_cremad(root: Path) -> EvalDataset:
    """Items from a folder holding CREMA-D files (``AudioWAV/``, ``VideoFlash/``, ...)
    and, when present, ``VideoDemographics.csv``."""
    clips: dict[str, dict[str, Path]] = defaultdict(dict)
    fields_of: dict[str, tuple[str, ...]] = {}
    for path in _walk_files(root):
        match = CREMAD_NAME.match(path.name)
        if match:
            stem = path.stem.upper()
            clips[stem].setdefault(path.suffix.lower(), path)
            fields_of[stem] = tuple(match.groups()[:4])
    if not clips:
        raise DatasetError(f"{root}: no CREMA-D files found (names like 1001_DFA_ANG_XX.wav)")

    demographics: dict[str, dict[str, str]] = {}
    columns: tuple[str, ...] = ("actor", "sentence", "level", "emotion")
    demo_path = _find_file(root, CREMAD_DEMOGRAPHICS)
    dataset = EvalDataset("CREMA-D", "cremad", root, [])
    if demo_path is None:
        dataset.notes.append(f"{CREMAD_DEMOGRAPHICS} not found: no demographic groups")
    else:
        header, rows, _ = _csv_rows(demo_path)
        if "ActorID" not in header:
            raise DatasetError(f"{demo_path}: no ActorID column (columns: {', '.join(header)})")
        for row in rows:
            demographics[row["ActorID"].strip()] = {k: v for k, v in row.items() if k != "ActorID"}
        columns = (*[h for h in header if h != "ActorID"], *columns)
    dataset.group_columns = columns

    for stem in sorted(clips):
        found = clips[stem]
        actor, sentence, emotion, level = fields_of[stem]
        label, reason = _label_or_reason(emotion)
        if label is None:
            dataset.skipped.append(SkippedRecord(stem, reason))
            continue
        audio = next((found[s] for s in _AUDIO_FIRST if s in found), None)
        video = next((found[s] for s in _VIDEO_FIRST if s in found), None)
        if audio is None:
            audio = video  # the Flash videos carry the sound too
        meta = {
            "actor": actor,
            "speaker": f"cremad-{actor}",
            "sentence": CREMAD_SENTENCES.get(sentence.upper(), sentence),
            "emotion": emotion.upper(),
            "level": CREMAD_LEVELS.get(level.upper(), level),
        }
        if actor in demographics:
            meta.update(demographics[actor])
        elif demographics:
            dataset.missing["group: actor not in the demographics file"] += 1
        if video is None:
            dataset.missing["face: no video file"] += 1
        dataset.items.append(EvalItem(id=stem, label=label, video=video, audio=audio, meta=meta))
    return dataset


# --- MELD -----------------------------------------------------------------------------

MELD_COLUMNS: Final[frozenset[str]] = frozenset(
    {"Utterance", "Speaker", "Emotion", "Dialogue_ID", "Utterance_ID"}
)
MELD_CONTEXT_TURNS: Final = 5  # earlier utterances of the dialogue kept as context
_MELD_CLIP = re.compile(r"^dia(\d+)_utt(\d+)\.mp4$", re.IGNORECASE)
_SPLIT_WORDS = ("test", "dev", "train")


def _meld_csv(path: Path) -> tuple[Path, list[str]]:
    if path.is_file():
        return path, []
    found = sorted(p for p in _walk_files(path) if p.name.lower().endswith("_sent_emo.csv"))
    if not found:
        found = sorted(p for p in path.glob("*.csv") if _looks_like_meld(p))
    if not found:
        raise DatasetError(f"{path}: no MELD CSV found (e.g. test_sent_emo.csv)")
    if len(found) == 1:
        return found[0], []
    tests = [p for p in found if "test" in p.name.lower()]
    chosen = tests[0] if tests else found[0]
    others = ", ".join(p.name for p in found if p != chosen)
    return chosen, [f"evaluating {chosen.name}; give the path of another CSV for {others}"]


def _looks_like_meld(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8", errors="replace") as fh:
            header = {h.strip() for h in next(csv.reader(fh), [])}
    except OSError:
        return False
    return header >= MELD_COLUMNS


def _meld_clip_folder(csv_path: Path, clips: Path | None) -> tuple[Path | None, str]:
    """The folder of this CSV's clips: ``clips`` if given, else a sibling folder (or one
    level below one) holding ``dia*_utt*.mp4`` files, chosen by the split in the CSV's
    name (test/dev/train) when there are several."""
    if clips is not None:
        if not clips.is_dir():
            raise DatasetError(f"clip folder {clips} does not exist")
        return clips, ""
    base = csv_path.parent
    children = _subfolders(base)
    grandchildren = [g for c in children for g in _subfolders(c)]
    candidates = [
        folder
        for folder in [base, *children, *grandchildren]
        if any(_MELD_CLIP.match(p.name) for p in _limited(folder.glob("dia*_utt*.mp4"), 50))
    ]
    if not candidates:
        return None, "no clip folder found next to the CSV"
    if len(candidates) == 1:
        return candidates[0], ""
    split = next((w for w in _SPLIT_WORDS if w in csv_path.stem.lower()), None)
    matching = [c for c in candidates if split and split in str(c.relative_to(base)).lower()]
    if len(matching) >= 1:
        return matching[0], ""
    names = ", ".join(str(c) for c in candidates)
    raise DatasetError(
        f"several MELD clip folders next to {csv_path.name} ({names}); choose one with --clips"
    )


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _limited(paths: Iterable[Path], n: int) -> list[Path]:
    out = []
    for p in paths:
        out.append(p)
        if len(out) >= n:
            break
    return out


def read_meld(path: Path, clips: Path | None = None) -> EvalDataset:
    """Items from a MELD CSV (or a folder holding one), with their clips when present."""
    csv_path, notes = _meld_csv(path)
    header, rows, fallback = _csv_rows(csv_path)
    missing_columns = MELD_COLUMNS - set(header)
    if missing_columns:
        raise DatasetError(
            f"{csv_path}: not a MELD CSV (missing columns {', '.join(sorted(missing_columns))})"
        )
    dataset = EvalDataset(
        f"MELD ({csv_path.name})",
        "meld",
        csv_path,
        [],
        notes=notes,
        group_columns=tuple(h for h in header if h not in ("Utterance", "Sr No.")),
    )
    if fallback:
        dataset.notes.append(f"{csv_path.name} is not UTF-8; read as {fallback}")
    folder, why = _meld_clip_folder(csv_path, clips)
    clip_index: dict[tuple[int, int], Path] = {}
    if folder is not None:
        for p in folder.glob("*.mp4"):
            match = _MELD_CLIP.match(p.name)
            if match:
                clip_index[(int(match.group(1)), int(match.group(2)))] = p
        dataset.notes.append(f"clips from {folder}")
    else:
        dataset.notes.append(f"text only: {why}")
    # Every utterance of each dialogue (labelled or not) by Utterance_ID, for context.
    spoken: dict[int, dict[int, str]] = {}
    for row in rows:
        try:
            d, u = int(row["Dialogue_ID"]), int(row["Utterance_ID"])
        except ValueError:
            continue
        spoken.setdefault(d, {}).setdefault(u, " ".join((row.get("Utterance") or "").split()))
    seen: set[str] = set()
    for n, row in enumerate(rows, start=2):
        where = f"{csv_path.name} line {n}"
        label, reason = _label_or_reason(row.get("Emotion", ""))
        if label is None:
            dataset.skipped.append(SkippedRecord(where, reason))
            continue
        try:
            dialogue, utterance = int(row["Dialogue_ID"]), int(row["Utterance_ID"])
        except ValueError:
            dataset.skipped.append(SkippedRecord(where, "Dialogue_ID/Utterance_ID not a number"))
            continue
        item_id = f"dia{dialogue}_utt{utterance}"
        if item_id in seen:
            dataset.skipped.append(SkippedRecord(where, "duplicate Dialogue_ID/Utterance_ID"))
            continue
        seen.add(item_id)
        clip = clip_index.get((dialogue, utterance))
        if clip is None:
            dataset.missing["face, voice: clip file not found"] += 1
        text = row.get("Utterance") or None
        if text is None:
            dataset.missing["text: empty utterance"] += 1
        meta = {k: v for k, v in row.items() if k not in ("Utterance",)}
        # StartTime/EndTime are times in the episode; a clip holds just its utterance, so
        # they stay metadata rather than cut points.
        before = spoken.get(dialogue, {})
        context = tuple(before[u] for u in sorted(before) if u < utterance and before[u])
        dataset.items.append(
            EvalItem(
                id=item_id,
                label=label,
                video=clip,
                audio=clip,
                text=text,
                meta=meta,
                context=context[-MELD_CONTEXT_TURNS:],
                domain="conversation",
            )
        )
    return dataset


# --- GoEmotions -----------------------------------------------------------------------

_GOEMOTIONS_IDS = re.compile(r"^\d+(,\d+)*$")


def _goemotions_files(path: Path) -> tuple[Path, Path, list[str]]:
    notes: list[str] = []
    if path.is_file():
        tsv = path
        folder = path.parent
    else:
        folder = path
        tsvs = sorted(path.glob("*.tsv"))
        if not tsvs:
            raise DatasetError(f"{path}: no GoEmotions .tsv file found")
        tests = [p for p in tsvs if p.stem.lower() == "test"]
        tsv = tests[0] if tests else tsvs[0]
        if len(tsvs) > 1:
            others = ", ".join(p.name for p in tsvs if p != tsv)
            notes.append(f"evaluating {tsv.name}; give the path of another file for {others}")
    for candidate in (folder / "emotions.txt", folder.parent / "emotions.txt"):
        if candidate.is_file():
            return tsv, candidate, notes
    raise DatasetError(f"{folder}: emotions.txt (the label names in id order) is missing")


def read_goemotions(path: Path) -> EvalDataset:
    """Items from a GoEmotions TSV (or a folder with ``test.tsv`` and ``emotions.txt``)."""
    tsv, names_path, notes = _goemotions_files(path)
    names = [n.strip() for n in names_path.read_text(encoding="utf-8").splitlines() if n.strip()]
    dataset = EvalDataset(f"GoEmotions ({tsv.name})", "goemotions", tsv, [], notes=notes)
    ekman_file = names_path.parent / "ekman_mapping.json"
    if ekman_file.is_file():
        published = json.loads(ekman_file.read_text(encoding="utf-8"))
        if {k: sorted(v) for k, v in published.items()} != {
            k: sorted(v) for k, v in GOEMOTIONS_EKMAN.items()
        }:
            dataset.notes.append(
                f"{ekman_file.name} differs from emoapp's Ekman mapping; emoapp's is used"
            )
    dataset.notes.append(
        "GoEmotions labels are mapped to Ekman's six emotions plus neutral (the published "
        "mapping); a comment whose labels map to more than one canonical label is dropped"
    )
    text, _ = _read_text(tsv)
    seen: Counter[str] = Counter()
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{tsv.name} line {n}"
        parts = line.split("\t")
        if len(parts) < 2 or not _GOEMOTIONS_IDS.match(parts[1].strip()):
            dataset.skipped.append(SkippedRecord(where, "not a GoEmotions row (text, label ids)"))
            continue
        ids = [int(i) for i in parts[1].strip().split(",")]
        if any(i >= len(names) for i in ids):
            dataset.skipped.append(SkippedRecord(where, "label id not in emotions.txt"))
            continue
        raw = [names[i] for i in ids]
        mapped = sorted({canonical_label(r) or "?" for r in raw})
        if "?" in mapped:
            dataset.skipped.append(SkippedRecord(where, "label with no canonical mapping"))
            continue
        if len(mapped) > 1:
            dataset.skipped.append(
                SkippedRecord(where, "labels map to more than one canonical label")
            )
            continue
        comment = parts[2].strip() if len(parts) > 2 and parts[2].strip() else f"line{n}"
        seen[comment] += 1
        item_id = comment if seen[comment] == 1 else f"{comment}#{seen[comment]}"
        dataset.items.append(
            EvalItem(
                id=item_id,
                label=mapped[0],
                text=parts[0],
                meta={"labels": ",".join(raw), "multi_label": str(len(raw) > 1).lower()},
                domain="comments",
            )
        )
    if not dataset.items and not dataset.skipped:
        raise DatasetError(f"{tsv}: no rows")
    return dataset


# --- acted speech corpora (TESS, EmoDB, EMOVO, TurEV-DB) -------------------------------

TESS_NAME: Final[re.Pattern[str]] = re.compile(
    r"^([A-Z]{2,3})_(.+)_(angry|disgust|fear|happy|neutral|ps|sad)\.(wav|flac)$", re.IGNORECASE
)
EMODB_NAME: Final[re.Pattern[str]] = re.compile(r"^(\d\d)([ab]\d\d)([WLEAFTN])([a-z])\.(wav|flac)$")
EMOVO_NAME: Final[re.Pattern[str]] = re.compile(
    r"^(dis|gio|neu|pau|rab|sor|tri)-([fm]\d)-([a-z]\d)\.(wav|flac)$", re.IGNORECASE
)
TUREV_NAME: Final[re.Pattern[str]] = re.compile(
    r"^(\d{4})_(kz|sk|mt|hl)_(.+)\.(wav|flac)$", re.IGNORECASE
)
TESS_EMOTIONS: Final[dict[str, str]] = {
    "angry": "angry",
    "disgust": "disgusted",
    "fear": "fearful",
    "happy": "happy",
    "neutral": "neutral",
    "ps": "surprised",  # pleasant surprise
    "sad": "sad",
}
EMODB_EMOTIONS: Final[dict[str, str | None]] = {
    "W": "angry",  # Wut
    "L": None,  # Langeweile (boredom): no canonical label, skipped
    "E": "disgusted",  # Ekel
    "A": "fearful",  # Angst
    "F": "happy",  # Freude
    "T": "sad",  # Trauer
    "N": "neutral",
}
EMODB_SEX: Final[dict[str, str]] = {
    "03": "male",
    "08": "female",
    "09": "female",
    "10": "male",
    "11": "male",
    "12": "male",
    "13": "female",
    "14": "female",
    "15": "male",
    "16": "female",
}
EMOVO_EMOTIONS: Final[dict[str, str]] = {
    "dis": "disgusted",
    "gio": "happy",  # gioia
    "neu": "neutral",
    "pau": "fearful",  # paura
    "rab": "angry",  # rabbia
    "sor": "surprised",  # sorpresa
    "tri": "sad",  # tristezza
}
TUREV_EMOTIONS: Final[dict[str, str]] = {
    "kz": "angry",  # kizgin
    "sk": "neutral",  # sakin (calm), scored as neutral like RAVDESS calm
    "mt": "happy",  # mutlu
    "hl": "sad",  # huzunlu
}
TESS_SUSPECT: Final[frozenset[str]] = frozenset({"OAF_back_angry", "YAF_beg_sad"})
"""Files SOURCES.md flags as modified by the uploader (5 s, clipped): skipped."""
SPEECH_CORPORA: Final[tuple[str, ...]] = ("tess", "emodb", "emovo", "turev")
SPEECH_GROUPS: Final[tuple[str, ...]] = ("sex", "speaker", "emotion")


def _speech_item(
    corpus: str, path: Path, emotion: str, label: str, speaker: str, sex: str | None
) -> EvalItem:
    meta = {"emotion": emotion, "speaker": f"{corpus}-{speaker}", "corpus": corpus}
    if sex:
        meta["sex"] = sex
    return EvalItem(id=f"{corpus}/{path.stem}", label=label, audio=path, meta=meta)


def read_speech_corpus(root: Path, corpus: str) -> EvalDataset:
    """Items of one of the acted speech corpora (``tess``, ``emodb``, ``emovo``,
    ``turev``) from a folder holding its files (any sub-folder layout).

    Speakers: TESS ``OAF``/``YAF`` (both female; the ``OA_`` typo of one file is OAF),
    EmoDB the two-digit speaker (sex from the corpus documentation), EMOVO ``f1``..``m3``,
    TurEV the four-digit speaker (sex not documented: no group).
    """
    if corpus not in SPEECH_CORPORA:
        raise DatasetError(f"unknown speech corpus {corpus!r}")
    names = {"tess": "TESS", "emodb": "EmoDB", "emovo": "EMOVO", "turev": "TurEV-DB"}
    dataset = EvalDataset(names[corpus], corpus, root, [], group_columns=SPEECH_GROUPS)
    for path in _walk_files(root):
        if path.suffix.lower() not in (".wav", ".flac"):
            continue
        where = str(path.relative_to(root)) if path.is_relative_to(root) else path.name
        if corpus == "tess":
            m = TESS_NAME.match(path.name)
            if not m:
                continue
            if path.stem in TESS_SUSPECT:
                dataset.skipped.append(SkippedRecord(where, "flagged as modified in SOURCES.md"))
                continue
            speaker = "OAF" if m.group(1).upper().startswith("OA") else m.group(1).upper()
            emotion = m.group(3).lower()
            item = _speech_item(corpus, path, emotion, TESS_EMOTIONS[emotion], speaker, "female")
        elif corpus == "emodb":
            m = EMODB_NAME.match(path.name)
            if not m:
                continue
            label = EMODB_EMOTIONS[m.group(3)]
            if label is None:
                dataset.skipped.append(SkippedRecord(where, "EmoDB boredom has no canonical label"))
                continue
            speaker = m.group(1)
            item = _speech_item(corpus, path, m.group(3), label, speaker, EMODB_SEX.get(speaker))
        elif corpus == "emovo":
            m = EMOVO_NAME.match(path.name)
            if not m:
                continue
            emotion, speaker = m.group(1).lower(), m.group(2).lower()
            sex = "female" if speaker.startswith("f") else "male"
            item = _speech_item(corpus, path, emotion, EMOVO_EMOTIONS[emotion], speaker, sex)
        else:
            m = TUREV_NAME.match(path.name)
            if not m:
                continue
            code = m.group(2).lower()
            item = _speech_item(corpus, path, code, TUREV_EMOTIONS[code], m.group(1), None)
        dataset.items.append(item)
    if not dataset.items:
        raise DatasetError(f"{root}: no {names[corpus]} files found")
    if corpus == "turev":
        dataset.notes.append("TurEV-DB 'Calm' is scored as neutral (as RAVDESS 'calm')")
    if corpus == "tess":
        dataset.notes.append("TESS 'ps' (pleasant surprise) is scored as surprised")
    return dataset


def _read_corpus(path: Path, corpus: str) -> EvalDataset:
    return read_speech_corpus(path, corpus)


def _speech_corpus_of(path: Path) -> str | None:
    """Which speech corpus a folder holds, from the names of its first files."""
    patterns = {"tess": TESS_NAME, "emodb": EMODB_NAME, "emovo": EMOVO_NAME, "turev": TUREV_NAME}
    counts: Counter[str] = Counter()
    for file in _walk_files(path, limit=2_000):
        for corpus, pattern in patterns.items():
            if pattern.match(file.name):
                counts[corpus] += 1
    return counts.most_common(1)[0][0] if counts else None


# --- generic CSV manifest -------------------------------------------------------------

_MANIFEST_MEDIA = ("path", "video", "audio")


def read_csv_manifest(path: Path) -> EvalDataset:
    """Items from a CSV (or TSV) manifest: ``path`` and/or ``text``, ``label``, optional
    ``group``, ``start``, ``end``, ``id``, ``video``, ``audio``."""
    if not path.is_file():
        raise DatasetError(f"{path}: a CSV manifest must be a file")
    header, rows, fallback = _csv_rows(path, "\t" if path.suffix.lower() == ".tsv" else ",")
    lower = {h.lower(): h for h in header}
    if "label" not in lower:
        raise DatasetError(
            f"{path}: the manifest needs a 'label' column (has: {', '.join(header)})"
        )
    if not any(c in lower for c in (*_MANIFEST_MEDIA, "text")):
        raise DatasetError(f"{path}: the manifest needs a 'path' and/or a 'text' column")
    reserved = {"label", "text", "start", "end", "id", *_MANIFEST_MEDIA}
    dataset = EvalDataset(
        path.stem,
        "csv",
        path,
        [],
        group_columns=tuple(h for h in header if h.lower() not in reserved),
    )
    if fallback:
        dataset.notes.append(f"{path.name} is not UTF-8; read as {fallback}")
    base = path.parent
    seen: Counter[str] = Counter()
    for n, row in enumerate(rows, start=2):
        where = f"{path.name} line {n}"
        get = {k.lower(): v for k, v in row.items()}
        label, reason = _label_or_reason(get.get("label", ""))
        if label is None:
            dataset.skipped.append(SkippedRecord(where, reason))
            continue
        try:
            start, end = _float_or_none(get.get("start")), _float_or_none(get.get("end"))
        except ValueError:
            dataset.skipped.append(SkippedRecord(where, "start/end is not a number of seconds"))
            continue
        if start is not None and end is not None and end <= start:
            dataset.skipped.append(SkippedRecord(where, "end is not after start"))
            continue
        media: dict[str, Path | None] = {}
        for column in _MANIFEST_MEDIA:
            value = get.get(column)
            if not value:
                continue
            file = Path(value).expanduser()
            file = file if file.is_absolute() else base / file
            if file.is_file():
                media[column] = file
            else:
                media[column] = None
                dataset.missing[f"{column}: file not found"] += 1
        video = media.get("video") or media.get("path")
        audio = media.get("audio") or media.get("path")
        text = get.get("text") or None
        if video is None and audio is None and text is None:
            dataset.skipped.append(SkippedRecord(where, "no media file found and no text"))
            continue
        item_id = get.get("id") or (
            f"{(video or audio).name}@{start or 0:g}" if (video or audio) else f"line{n}"  # type: ignore[union-attr]
        )
        seen[item_id] += 1
        if seen[item_id] > 1:
            item_id = f"{item_id}#{seen[item_id]}"
        meta = {k: v for k, v in row.items() if k.lower() not in reserved}
        if "group" in get:
            meta["group"] = get["group"]
        dataset.items.append(
            EvalItem(
                id=item_id,
                label=label,
                video=video,
                audio=audio,
                text=text,
                start=start,
                end=end,
                meta=meta,
            )
        )
    if "group" in lower:
        dataset.group_columns = ("group", *dataset.group_columns)
    return dataset


# --- FER2013 (a tar of <emotion>/<file>.jpg) -------------------------------------------

TAR_SUFFIXES: Final[tuple[str, ...]] = (".tar.gz", ".tgz", ".tar")


def _is_tar(path: Path) -> bool:
    return path.is_file() and path.name.lower().endswith(TAR_SUFFIXES)


def archive_member(path: Path) -> tuple[Path, str] | None:
    """For a path inside a tar archive (``.../train.tar.gz/angry/x.jpg``, as the FER2013
    reader makes them): the archive and the member's name; None for an ordinary path."""
    for parent in path.parents:
        if _is_tar(parent):
            return parent, path.relative_to(parent).as_posix()
    return None


@functools.lru_cache(maxsize=2)
def _archive_files(archive: Path) -> dict[str, bytes]:
    """Every regular file of a tar archive, by name without a leading ``./`` (FER2013's
    splits are 9 and 14 MB: read once, kept for the run)."""
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(archive) as tar:
            for member in tar:
                if not member.isfile():
                    continue
                handle = tar.extractfile(member)
                if handle is not None:
                    out[_member_name(member.name)] = handle.read()
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise DatasetError(f"{archive}: cannot read the archive: {exc}") from exc
    return out


def _member_name(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name


def read_archive_file(path: Path) -> bytes | None:
    """The bytes of a file inside a tar archive (:func:`archive_member`); None when
    ``path`` is not inside one. Raises DatasetError when the member is not there."""
    found = archive_member(path)
    if found is None:
        return None
    archive, name = found
    data = _archive_files(archive).get(name)
    if data is None:
        raise DatasetError(f"{archive}: has no member {name}")
    return data


def read_fer2013(path: Path) -> EvalDataset:
    """FER2013 as the Kaggle image-folder release has it: a tar (``train.tar.gz`` or
    ``test.tar.gz``) of ``<emotion>/<file>.jpg``, 48 x 48 grey faces, read without
    unpacking. Each image is one item; its id is the member's path (two train file names
    occur in two classes), ``split`` is the archive's name and ``class`` the folder."""
    if not _is_tar(path):
        raise DatasetError(f"{path}: a FER2013 split is a .tar.gz file of <emotion>/<file>.jpg")
    files = _archive_files(path)
    split = path.name.lower()
    for suffix in TAR_SUFFIXES:
        if split.endswith(suffix):
            split = split[: -len(suffix)]
            break
    dataset = EvalDataset(f"fer2013-{split}", "fer2013", path, [], group_columns=("class",))
    for name in sorted(files):
        folder, _, file = name.rpartition("/")
        if not folder or "/" in folder or not file.lower().endswith((".jpg", ".jpeg", ".png")):
            dataset.skipped.append(SkippedRecord(name, "not <emotion>/<file>.jpg"))
            continue
        label, reason = _label_or_reason(folder)
        if label is None:
            dataset.skipped.append(SkippedRecord(name, reason))
            continue
        dataset.items.append(
            EvalItem(
                id=name,
                label=label,
                video=path / name,
                meta={"class": folder, "split": split},
            )
        )
    dataset.notes.append(
        f"FER2013 {split} split: 48x48 grey face crops; each image is treated as one face"
    )
    return dataset


# --- choosing the reader --------------------------------------------------------------


def detect_format(path: Path) -> str:
    """Which reader fits ``path``; raises DatasetError when none does."""
    if not path.exists():
        raise DatasetError(f"{path} does not exist")
    if path.is_file():
        suffix = path.suffix.lower()
        if _is_tar(path):
            return "fer2013"
        if suffix not in (".csv", ".tsv"):
            raise DatasetError(f"{path}: expected a folder, a .csv or a .tsv file")
        first = _read_text(path)[0].split("\n", 1)[0]
        fields = first.split("\t")
        if suffix == ".tsv" and len(fields) >= 2 and _GOEMOTIONS_IDS.match(fields[1].strip()):
            return "goemotions"
        header = {
            h.strip()
            for h in next(csv.reader([first], delimiter="\t" if suffix == ".tsv" else ","))
        }
        if header >= MELD_COLUMNS:
            return "meld"
        if "label" in {h.lower() for h in header}:
            return "csv"
        raise DatasetError(f"{path}: cannot tell the dataset format; pass --format")
    if (path / "emotions.txt").is_file() and any(path.glob("*.tsv")):
        return "goemotions"
    ravdess = cremad = 0
    for file in _walk_files(path, limit=20_000):
        if file.name.lower().endswith("_sent_emo.csv"):
            return "meld"
        if file.suffix.lower() in _MEDIA_SUFFIXES:
            ravdess += bool(RAVDESS_NAME.match(file.name))
            cremad += bool(CREMAD_NAME.match(file.name))
    if ravdess or cremad:
        return "ravdess" if ravdess >= cremad else "cremad"
    speech = _speech_corpus_of(path)
    if speech is not None:
        return speech
    if any(_looks_like_meld(p) for p in path.glob("*.csv")):
        return "meld"
    raise DatasetError(
        f"{path}: cannot tell the dataset format (no RAVDESS, CREMA-D, MELD or GoEmotions "
        "files found); pass --format, or give a CSV manifest"
    )


_DEFAULT_GROUP: Final[dict[str, str | None]] = {
    "ravdess": "sex",
    "cremad": "Sex",
    "meld": None,
    "goemotions": None,
    "fer2013": None,
    "csv": "group",
    "tess": "sex",
    "emodb": "sex",
    "emovo": "sex",
    "turev": None,
}


def _apply_groups(dataset: EvalDataset, group_by: str | None) -> None:
    wanted = group_by if group_by is not None else _DEFAULT_GROUP[dataset.format]
    if wanted is None or wanted.lower() == NO_GROUPS:
        dataset.group_by = None
        return
    available = {c.lower(): c for c in dataset.group_columns}
    column = available.get(wanted.lower())
    if column is None:
        if group_by is None:  # the default column is not there (e.g. no demographics)
            dataset.group_by = None
            return
        choices = ", ".join(dataset.group_columns) or "none"
        raise DatasetError(f"--group-by {group_by}: no such column; choose one of: {choices}")
    dataset.group_by = column
    items = []
    for item in dataset.items:
        value = item.meta.get(column, "").strip()
        items.append(replace(item, group=value or None))
    dataset.items = items


def parse_where(text: str) -> tuple[str, tuple[str, ...]]:
    """``COL=V1,V2,A-B`` -> (column, values); ``A-B`` with whole numbers is a range
    (``actor=15-18`` is actors 15, 16, 17 and 18). Raises ValueError."""
    column, sep, rest = text.partition("=")
    column = column.strip()
    if not sep or not column:
        raise ValueError(f"{text!r} is not COLUMN=VALUE[,VALUE...]")
    values: list[str] = []
    for part in rest.split(","):
        part = part.strip()
        if not part:
            continue
        lo, dash, hi = part.partition("-")
        if dash and lo.strip().isdigit() and hi.strip().isdigit():
            first, last = int(lo), int(hi)
            if first > last:
                raise ValueError(f"{part!r} is an empty range")
            values.extend(str(v) for v in range(first, last + 1))
        else:
            values.append(part)
    if not values:
        raise ValueError(f"{text!r} names no value")
    return column, tuple(values)


def _same_value(have: str, wanted: str) -> bool:
    have, wanted = have.strip(), wanted.strip()
    if have.isdigit() and wanted.isdigit():
        return int(have) == int(wanted)  # actor "05" is actor 5
    return have.casefold() == wanted.casefold()


def filter_items(dataset: EvalDataset, where: Sequence[tuple[str, Sequence[str]]]) -> None:
    """Keep the items whose column (a ``--group-by`` column, e.g. RAVDESS ``actor``) has
    one of the values, for every condition; e.g. only some speakers for a held-out test."""
    for column, values in where:
        available = {c.lower(): c for c in dataset.group_columns}
        name = available.get(column.lower())
        if name is None:
            choices = ", ".join(dataset.group_columns) or "none"
            raise DatasetError(f"--where {column}: no such column; choose one of: {choices}")
        before = len(dataset.items)
        dataset.items = [
            item
            for item in dataset.items
            if any(_same_value(item.meta.get(name, ""), v) for v in values)
        ]
        dataset.notes.append(
            f"--where {name}={','.join(values)}: {len(dataset.items)} of {before} items"
        )


def read_dataset(
    path: Path,
    format: str = "auto",
    group_by: str | None = None,
    limit: int | None = None,
    seed: int = 0,
    clips: Path | None = None,
    where: Sequence[tuple[str, Sequence[str]]] = (),
) -> EvalDataset:
    """Read a dataset in ``format`` (``auto``: guess from the path), choose its groups,
    keep the items that match ``where`` (:func:`filter_items`), and keep a seeded random
    sample of ``limit`` items (in their original order)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetError(f"{path} does not exist")
    fmt = detect_format(path) if format == "auto" else format
    readers: dict[str, Callable[[Path], EvalDataset]] = {
        "ravdess": read_ravdess,
        "cremad": read_cremad,
        "meld": lambda p: read_meld(p, clips),
        "goemotions": read_goemotions,
        "fer2013": read_fer2013,
        "csv": read_csv_manifest,
        **{c: functools.partial(_read_corpus, corpus=c) for c in SPEECH_CORPORA},
    }
    if fmt not in readers:
        raise DatasetError(f"unknown dataset format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt in ("ravdess", "cremad", *SPEECH_CORPORA) and not path.is_dir():
        raise DatasetError(f"{path}: a {fmt} dataset is a folder")
    dataset = readers[fmt](path)
    _apply_groups(dataset, group_by)
    filter_items(dataset, where)
    dataset.records = len(dataset.items)
    if limit is not None and 0 <= limit < len(dataset.items):
        keep = sorted(random.Random(seed).sample(range(len(dataset.items)), limit))
        dataset.items = [dataset.items[i] for i in keep]
        dataset.notes.append(
            f"--limit {limit}: a random sample (seed {seed}) of {limit} of {dataset.records} items"
        )
    if not dataset.items:
        reasons = dataset.skipped_reasons().most_common(1)
        why = f" (most common reason: {reasons[0][0]})" if reasons else ""
        raise DatasetError(f"{path}: no usable items{why}")
    return dataset
