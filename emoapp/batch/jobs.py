"""Batch analysis of many recordings: items, the per-item work, the journal and the index.

``emoapp batch`` (:mod:`emoapp.commands.batch`) turns a folder or a CSV manifest into
:class:`BatchItem` s and runs every one through the very code ``emoapp analyze`` runs
(:func:`emoapp.recorded.analyze.prepare_inputs` and :func:`~emoapp.recorded.analyze.analyze`,
with a :class:`~emoapp.recorded.timeline.TimelineWriter`), so that a batch timeline holds
the same bytes as the rows of an ``analyze --out`` timeline of the same file (which
begins with a header record, :mod:`emoapp.recorded.runheader`, for ``--resume``; a batch
keeps what a run was in its journal instead). The engines that spread the
items over processes or machines live in :mod:`emoapp.batch.engines`; what they run
per worker is an :class:`ItemWorker`: it loads the models once (``BatchJob.load``), then
analyses one item after another.

The output folder::

    DIR/timelines/<id>.jsonl   one timeline per input (the analyze schema); written to
                               <id>.jsonl.part and renamed when whole, so a timeline that
                               exists is complete
    DIR/journal.jsonl          one JSON line per finished item, appended as it finishes
                               (what resuming reads; it survives Ctrl-C and kill -9)
    DIR/index.parquet          one row per input (:data:`INDEX_COLUMNS`), rewritten from the
                               journal at the end of a run, also an interrupted one;
                               ``index.csv`` when pyarrow is not installed

The journal first: before an item is handed to a worker, the journal gets a ``started``
record for it, and only the record that comes back with the result says it finished. An
item's latest record is what counts, so a run stopped at any step (before the worker got
the item, after its timeline was renamed into place but before its record was written, or
mid-write, which leaves half a line that readers skip) leaves the item ``started``: the next
run does it again, and an earlier run's ``done`` record can never vouch for a timeline that
a later run, with other settings, put in its place.

Resuming: an item is skipped when its latest journal record says it finished (``done`` or
``truncated``) under the same key: the SHA-256 of the media and of the transcript, and the
fingerprint of every option that shapes the output (:attr:`BatchJob.fingerprint`), and its
timeline is still there. A file whose size and modification time are those the journal
recorded is taken to have the recorded hash (as ``make`` and ``rsync`` do) rather than
being read again; a file that changed is hashed anew. Failed items are tried again.

Nothing here writes anything but timelines (scores, no text), the journal and the index
(paths, sizes, hashes, model ids, outcomes): no media, no transcript text.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime as dt
import hashlib
import io
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from emoapp.core.errors import EmoappError
from emoapp.core.fusion import FusionConfig
from emoapp.core.messages import Modality
from emoapp.encoders.base import Encoder
from emoapp.recorded.analyze import AnalysisConfig

TIMELINES = "timelines"
JOURNAL = "journal.jsonl"
INDEX_PARQUET = "index.parquet"
INDEX_CSV = "index.csv"
PART_SUFFIX = ".part"

VIDEO_SUFFIXES = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp",
     ".ts", ".mts"}
)  # fmt: skip
AUDIO_SUFFIXES = frozenset(
    {".wav", ".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".wma", ".aif",
     ".aiff"}
)  # fmt: skip
MEDIA_SUFFIXES = VIDEO_SUFFIXES | AUDIO_SUFFIXES
"""What a folder walk takes as media (by extension, any case); a file that only looks like
media is still taken, and fails as an item with its one-line error."""
TRANSCRIPT_SUFFIXES = (".srt", ".vtt", ".txt")

DONE = "done"
TRUNCATED = "truncated"
FAILED = "failed"
PENDING = "pending"
STARTED = "started"
"""A journal record written before an item is handed to a worker (never in the index:
an item whose latest record says this is pending)."""
FINISHED = frozenset({DONE, TRUNCATED})
"""Statuses a resumed run does not redo (a truncated file gives the same partial timeline
again; a failed item may have failed for a passing reason, so it is tried again)."""

INDEX_COLUMNS: tuple[tuple[str, str], ...] = (
    ("id", "string"),
    ("path", "string"),
    ("transcript", "string"),
    ("status", "string"),
    ("error", "string"),
    ("this_run", "bool"),
    ("duration_s", "float64"),
    ("analysed_s", "float64"),
    ("rows", "int64"),
    ("elapsed_s", "float64"),
    ("attempts", "int64"),
    *(
        (f"{m.value}_{what}", "string")
        for m in (Modality.FACE, Modality.VOICE, Modality.TEXT)
        for what in ("model", "revision")
    ),
    ("timeline", "string"),
    ("media_sha256", "string"),
    ("config_key", "string"),
    ("finished_at", "string"),
)
"""The index columns and their types. ``status``: done, truncated (analysed up to where
the file breaks off; the timeline holds those rows and ``error`` says where), failed
(``error`` holds the one-line reason; no timeline), pending (not reached: the run was
interrupted). ``this_run``: the item was worked on in this run (false for items finished
by an earlier run and skipped, and for pending ones). ``<modality>_model``/``_revision``:
the models that analysed the item (empty where the input has no such modality).
``duration_s`` is the media's length, ``analysed_s`` the media time the timeline covers."""


# --- items ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchItem:
    """One input: an id (its timeline is ``timelines/<id>.jsonl``), the media, and an
    optional transcript."""

    id: str
    path: Path
    transcript: Path | None = None


def _check_id(item_id: str, where: str) -> str:
    parts = PurePosixPath(item_id).parts
    if (
        not item_id.strip()
        or "\\" in item_id
        or "\0" in item_id
        or item_id.startswith("/")
        or any(p in ("", ".", "..") for p in parts)
    ):
        raise EmoappError(f"{where}: id {item_id!r} is not a usable name (no '..', no leading /)")
    return item_id


def _find_transcript(transcripts: Path | None, relative: PurePosixPath) -> Path | None:
    """``transcripts/<relative stem>.srt|.vtt|.txt``, else ``transcripts/<stem>.*``."""
    if transcripts is None:
        return None
    for base in (transcripts / relative.parent, transcripts):
        for suffix in TRANSCRIPT_SUFFIXES:
            candidate = base / f"{relative.stem}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def walk_folder(
    folder: Path, transcripts: Path | None = None, exclude: Iterable[Path] = ()
) -> list[BatchItem]:
    """Media files under ``folder`` (recursively, hidden folders and files left out, in
    sorted order). The id is the path relative to ``folder`` without its extension; two
    files that differ only by extension keep it (``a.mp4``, ``a.wav``)."""
    excluded = [Path(p).resolve() for p in exclude]
    found: list[PurePosixPath] = []
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        dirs[:] = sorted(
            d for d in dirs if not d.startswith(".") and (here / d).resolve() not in excluded
        )
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in MEDIA_SUFFIXES:
                found.append(PurePosixPath((here / name).relative_to(folder).as_posix()))
    stems: dict[str, int] = {}
    for relative in found:
        key = str(relative.with_suffix(""))
        stems[key] = stems.get(key, 0) + 1
    items = []
    for relative in sorted(found):
        stem = str(relative.with_suffix(""))
        item_id = stem if stems[stem] == 1 else str(relative)
        items.append(BatchItem(item_id, folder / relative, _find_transcript(transcripts, relative)))
    return items


def read_manifest(manifest: Path, transcripts: Path | None = None) -> list[BatchItem]:
    """Items from a CSV with a ``path`` column and optional ``transcript`` and ``id``
    columns. Relative paths are relative to the manifest's folder; without an id, the
    file's stem is the id; without a transcript, ``transcripts`` is searched by stem."""
    try:
        text = manifest.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise EmoappError(f"{manifest}: cannot read the manifest: {error}") from error
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip() for c in reader.fieldnames or []]
    if "path" not in columns:
        raise EmoappError(
            f"{manifest}: a manifest needs a 'path' column (optional: transcript, id); "
            f"found {', '.join(columns) or 'no header'}"
        )
    base = manifest.parent
    items: list[BatchItem] = []
    seen: dict[str, int] = {}
    for line, raw in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items()}
        if not row.get("path"):
            if not any(row.values()):
                continue
            raise EmoappError(f"{manifest}:{line}: no path")
        path = Path(row["path"]).expanduser()
        path = path if path.is_absolute() else base / path
        transcript: Path | None = None
        if row.get("transcript"):
            transcript = Path(row["transcript"]).expanduser()
            transcript = transcript if transcript.is_absolute() else base / transcript
        else:
            transcript = _find_transcript(transcripts, PurePosixPath(path.name))
        item_id = _check_id(row.get("id") or path.stem, f"{manifest}:{line}")
        if item_id in seen:
            raise EmoappError(
                f"{manifest}:{line}: id {item_id!r} is also on line {seen[item_id]}; "
                "give each row its own id"
            )
        seen[item_id] = line
        items.append(BatchItem(item_id, path, transcript))
    return items


def discover(
    source: Path, transcripts: Path | None = None, exclude: Iterable[Path] = ()
) -> list[BatchItem]:
    """The items of a folder (walked for media) or a CSV manifest."""
    if source.is_dir():
        items = walk_folder(source, transcripts, exclude)
        if not items:
            raise EmoappError(f"{source}: no media files found (looked for {_suffix_list()})")
        return items
    if source.is_file() and source.suffix.lower() == ".csv":
        items = read_manifest(source, transcripts)
        if not items:
            raise EmoappError(f"{source}: the manifest lists no files")
        return items
    if source.exists():
        raise EmoappError(f"{source}: give a folder of media or a .csv manifest")
    raise EmoappError(f"{source}: no such folder or manifest")


def _suffix_list() -> str:
    return " ".join(sorted(MEDIA_SUFFIXES))


# --- the job -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelRef:
    """The model a modality runs, for the index."""

    model: str
    revision: str | None = None
    backend: str = "transformers"


@dataclass(frozen=True)
class CallOptions:
    """``--speakers``/``--speaker-names``/``--by``/``--report``: every item is a call, by
    speaker."""

    by_channels: bool = False
    names: tuple[str, ...] = ()
    by: Literal["step", "utterance"] = "step"
    speakers: str | None = None
    """``auto``, ``channels`` or a number (wins over ``by_channels``)."""
    asr: Any = None
    """The recogniser (an :class:`~emoapp.encoders.asr.AsrSpec`) that hears calls with no
    transcript; None: no speech recognition."""
    asr_device: str = "auto"
    models_dir: str | None = None
    report: bool = False
    """Write ``DIR/reports/<id>/report.html`` and ``summary.json`` per call."""
    embed_audio: bool = False


REPORTS = "reports"


@dataclass
class _Outcome:
    """What one analysis gave, for the item's record."""

    duration_s: float | None
    analysed_s: float
    models: dict[Modality, str]
    truncated: EmoappError | None


@dataclass
class BatchJob:
    """Everything a worker needs, picklable (it travels to worker processes and Ray
    actors): how to load the encoders, and the settings of every analysis."""

    load: Callable[[], dict[Modality, Encoder]]
    """Loads the encoders (once per worker); a module-level function or a partial of one."""
    out_dir: Path
    analysis: AnalysisConfig
    fusion: FusionConfig
    models: dict[Modality, ModelRef]
    options: dict[str, Any] = field(default_factory=dict)
    """Other settings that shape the output (device, dtype, ...), for the fingerprint."""
    threads: int | None = None
    """torch threads per worker (None: leave torch's choice)."""
    call: CallOptions | None = None
    """Analyse every item as a call by speaker (None: as a plain recording)."""

    @property
    def fingerprint(self) -> str:
        """A hash of every setting that shapes a timeline (not the input files)."""
        from emoapp import __version__

        analysis = dataclasses.asdict(self.analysis)
        for per_item in ("transcript", "text", "resume_after"):
            analysis.pop(per_item, None)
        payload = {
            "emoapp": __version__,
            "analysis": analysis,
            "fusion": _jsonable(dataclasses.asdict(self.fusion)),
            "models": {m.value: dataclasses.asdict(r) for m, r in sorted(self.models.items())},
            "options": self.options,
            "call": dataclasses.asdict(self.call) if self.call is not None else None,
        }
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def timeline_path(self, item_id: str) -> Path:
        return self.out_dir / TIMELINES / f"{item_id}.jsonl"


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(getattr(k, "value", k)): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    if hasattr(value, "tolist"):  # numpy arrays and scalars (fitted fusion tables)
        return value.tolist()
    return value


def item_key(media_sha256: str, transcript_sha256: str | None, fingerprint: str) -> str:
    """The identity of one item's result: same input bytes, same settings."""
    text = f"{media_sha256}\n{transcript_sha256 or '-'}\n{fingerprint}"
    return hashlib.sha256(text.encode()).hexdigest()


def sha256_file(path: Path, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def file_state(path: Path | None) -> list[int] | None:
    """[size, mtime in ns] of a file, or None when there is no file."""
    if path is None:
        return None
    try:
        stat = path.stat()
    except OSError:
        return None
    return [stat.st_size, stat.st_mtime_ns]


def one_line(error: BaseException) -> str:
    """An error as one line (its first), with its type when it is not one of emoapp's."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if isinstance(error, EmoappError):
        return text or type(error).__name__
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


# --- the per-item work ---------------------------------------------------------------------

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
"""Thread-pool sizes the numeric libraries read once, when they load; a worker's share of
the cores goes here (unless set already), as Ray does for its actors."""


class ItemWorker:
    """Loads the models once, then analyses items one by one (in a worker process, a Ray
    actor, or the calling process)."""

    def __init__(self, job: BatchJob) -> None:
        self.job = job
        if job.threads:
            for name in THREAD_VARIABLES:
                os.environ.setdefault(name, str(job.threads))
        # The per-modality "not downloaded; using the baseline" notes were said once by the
        # command; N workers need not repeat them.
        with contextlib.redirect_stderr(io.StringIO()):
            self.encoders = job.load()
        if job.threads:
            if "torch" in sys.modules:
                sys.modules["torch"].set_num_threads(job.threads)
            if "cv2" in sys.modules:
                sys.modules["cv2"].setNumThreads(job.threads)

    def run(self, item: BatchItem, attempt: int = 1) -> dict[str, Any]:
        """Analyse one item into its timeline; returns its journal record. Never raises
        for a bad item: the error becomes the record's one-line ``error``."""
        from emoapp.recorded.timeline import TimelineWriter

        job = self.job
        started = time.perf_counter()
        final = job.timeline_path(item.id)
        part = final.with_name(final.name + PART_SUFFIX)
        record = base_record(item, job)
        record["attempts"] = attempt
        try:
            record["worker"] = f"{host_name()}:{os.getpid()}"
            record["media_state"] = file_state(item.path)
            record["transcript_state"] = file_state(item.transcript)
            media_sha = sha256_file(item.path)
            transcript_sha = sha256_file(item.transcript) if item.transcript else None
            record["media_sha256"] = media_sha
            record["transcript_sha256"] = transcript_sha
            record["config_key"] = item_key(media_sha, transcript_sha, job.fingerprint)
            final.parent.mkdir(parents=True, exist_ok=True)
            writer = TimelineWriter(part, format="jsonl")
            try:
                outcome = self._analyse(item, writer.write)
            finally:
                writer.close()
            if writer.rows_written == 0:
                part.touch()
            os.replace(part, final)
        except (EmoappError, OSError) as error:
            return self._failed(record, error, part, final, started)
        except Exception as error:  # noqa: BLE001 - one item's failure must not stop the batch
            return self._failed(record, error, part, final, started)
        truncated = outcome.truncated
        record["status"] = TRUNCATED if truncated is not None else DONE
        record["error"] = one_line(truncated) if truncated is not None else None
        record["duration_s"] = outcome.duration_s
        record["analysed_s"] = round(outcome.analysed_s, 3)
        record["rows"] = writer.rows_written
        for modality, model_id in outcome.models.items():
            ref = job.models.get(modality)
            record[f"{modality.value}_model"] = model_id
            record[f"{modality.value}_revision"] = ref.revision if ref is not None else None
        record["timeline"] = str(final.relative_to(job.out_dir).as_posix())
        record["elapsed_s"] = round(time.perf_counter() - started, 3)
        record["finished_at"] = _now()
        return record

    def _analyse(self, item: BatchItem, on_row: Callable[[dict[str, Any]], None]) -> _Outcome:
        """One item through ``emoapp analyze``'s code: :func:`analyze` or, for calls
        (``--speakers``, ``--by utterance``), :func:`~emoapp.calls.analysis.analyze_call`."""
        job = self.job
        if job.call is None:
            from emoapp.recorded.analyze import analyze, prepare_inputs

            config = dataclasses.replace(job.analysis, transcript=item.transcript)
            inputs = prepare_inputs(item.path, config)
            summary = analyze(
                item.path, self.encoders, job.fusion, config, on_row=on_row, inputs=inputs
            )
            duration = inputs.info.duration if inputs.info is not None else None
            return _Outcome(duration, summary.end_t, summary.models, summary.truncated)
        from emoapp.calls.analysis import analyze_call, plan_call, transcribe_call

        call = job.call
        plan = plan_call(
            item.path,
            item.transcript,
            call.names,
            by_channels=call.by_channels,
            speakers=call.speakers,
        )
        if item.transcript is None and call.asr is not None:
            transcribe_call(plan, self._recognizer(call))
        result = analyze_call(
            plan, self.encoders, job.fusion, job.analysis, on_row=on_row, by=call.by
        )
        if call.report:
            from emoapp.reports.call_report import write_call_report

            used = {m.value: e.model_id for m, e in self.encoders.items()}
            if plan.heard_by:
                used["speech recognition"] = plan.heard_by
            write_call_report(
                result, job.out_dir / REPORTS / item.id, used, embed_audio=call.embed_audio
            )
        summaries = list(result.summaries.values())
        models = {m: i for s in summaries for m, i in s.models.items()}
        end = max((s.end_t for s in summaries), default=0.0)
        truncated = next((s.truncated for s in summaries if s.truncated is not None), None)
        return _Outcome(plan.info.duration, end, models, truncated)

    def _recognizer(self, call: CallOptions) -> Any:
        """The worker's speech recogniser, loaded on first use."""
        if getattr(self, "_asr", None) is None:
            from emoapp.encoders.asr import build_recognizer

            recognizer = build_recognizer(call.asr, call.asr_device, "auto", call.models_dir)
            recognizer.load()
            self._asr = recognizer
        return self._asr

    @staticmethod
    def _failed(
        record: dict[str, Any], error: BaseException, part: Path, final: Path, started: float
    ) -> dict[str, Any]:
        for stale in (part, final):  # no timeline stands for a failed item
            with contextlib.suppress(OSError):
                stale.unlink()
        record["status"] = FAILED
        record["error"] = one_line(error)
        record["elapsed_s"] = round(time.perf_counter() - started, 3)
        record["finished_at"] = _now()
        return record


def host_name() -> str:
    """This computer's name, on any system (``os.uname`` is POSIX only)."""
    return platform.node() or "unknown-host"


def started_record(item: BatchItem, attempt: int) -> dict[str, Any]:
    """The journal record written just before ``item`` is handed to a worker."""
    return {
        "id": item.id,
        "path": str(item.path),
        "status": STARTED,
        "attempts": attempt,
        "started_at": _now(),
    }


def base_record(item: BatchItem, job: BatchJob | None = None) -> dict[str, Any]:
    """An index row for an item with nothing known yet (status pending)."""
    record: dict[str, Any] = dict.fromkeys(name for name, _ in INDEX_COLUMNS)
    record.update(
        id=item.id,
        path=str(item.path),
        transcript=str(item.transcript) if item.transcript else None,
        status=PENDING,
        this_run=False,
        attempts=0,
    )
    return record


def died_record(item: BatchItem, job: BatchJob, attempts: int, why: str) -> dict[str, Any]:
    """The record of an item whose worker died on it on every attempt."""
    record = base_record(item, job)
    record.update(
        status=FAILED,
        error=f"the worker analysing it died ({why}) on {attempts} attempts",
        attempts=attempts,
        media_state=file_state(item.path),
        finished_at=_now(),
    )
    return record


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


# --- the journal and resuming --------------------------------------------------------------


def read_journal(out_dir: Path) -> dict[str, dict[str, Any]]:
    """The latest record per item id (a damaged line, as a kill mid-write leaves, is
    skipped); a ``started`` record counts: the item is not finished."""
    path = out_dir / JOURNAL
    latest: dict[str, dict[str, Any]] = {}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return latest
    except OSError as error:
        raise EmoappError(f"{path}: cannot read: {error.strerror or error}") from error
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and isinstance(record.get("id"), str):
            latest[record["id"]] = record
    return latest


class Journal:
    """Appends one record per finished item, one write per line."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / JOURNAL
        self._newline = False
        with contextlib.suppress(OSError), open(self.path, "rb") as file:
            if file.seek(0, os.SEEK_END) > 0:
                file.seek(-1, os.SEEK_END)
                # A run killed mid-write left half a line: the next record starts anew.
                self._newline = file.read(1) != b"\n"

    def append(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)
        if self._newline:
            line, self._newline = "\n" + line, False
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode("utf-8"))
        finally:
            os.close(fd)


def already_done(item: BatchItem, job: BatchJob, record: Mapping[str, Any] | None) -> bool:
    """True when ``record`` (the journal's) says the item finished under the key it would
    have now, and its timeline is there."""
    if record is None or record.get("status") not in FINISHED:
        return False
    if record.get("path") != str(item.path):
        return False
    if (record.get("transcript") or None) != (str(item.transcript) if item.transcript else None):
        return False
    if not job.timeline_path(item.id).is_file():
        return False
    media_sha = _hash_unless_unchanged(item.path, record, "media")
    if media_sha is None:
        return False
    transcript_sha = None
    if item.transcript is not None:
        transcript_sha = _hash_unless_unchanged(item.transcript, record, "transcript")
        if transcript_sha is None:
            return False
    return item_key(media_sha, transcript_sha, job.fingerprint) == record.get("config_key")


def _hash_unless_unchanged(path: Path, record: Mapping[str, Any], kind: str) -> str | None:
    state = file_state(path)
    if state is None:
        return None
    recorded = record.get(f"{kind}_sha256")
    if recorded and record.get(f"{kind}_state") == state:
        return str(recorded)
    try:
        return sha256_file(path)
    except OSError:
        return None


# --- the index -----------------------------------------------------------------------------


def index_rows(
    items: list[BatchItem], records: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """One row per item, in item order, with the index columns only."""
    names = [name for name, _ in INDEX_COLUMNS]
    rows = []
    for item in items:
        record = records.get(item.id) or base_record(item)
        rows.append({name: record.get(name) for name in names})
    return rows


def write_index(out_dir: Path, rows: list[dict[str, Any]]) -> Path:
    """``index.parquet`` (pyarrow) or ``index.csv`` (without it), written whole and then
    renamed into place."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ModuleNotFoundError:
        return _write_index_csv(out_dir / INDEX_CSV, rows)
    types = {
        "string": pa.string(),
        "bool": pa.bool_(),
        "float64": pa.float64(),
        "int64": pa.int64(),
    }
    schema = pa.schema([(name, types[kind]) for name, kind in INDEX_COLUMNS])
    table = pa.Table.from_pylist(rows, schema=schema)
    target = out_dir / INDEX_PARQUET
    temporary = target.with_name(target.name + PART_SUFFIX)
    pq.write_table(table, temporary)
    os.replace(temporary, target)
    return target


def _write_index_csv(target: Path, rows: list[dict[str, Any]]) -> Path:
    temporary = target.with_name(target.name + PART_SUFFIX)
    with open(temporary, "w", encoding="utf-8", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=[name for name, _ in INDEX_COLUMNS])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
    os.replace(temporary, target)
    return target


def read_index(out_dir: Path) -> list[dict[str, Any]]:
    """The index rows back (parquet when there, else CSV with empty cells as None)."""
    parquet = out_dir / INDEX_PARQUET
    if parquet.is_file():
        import pyarrow.parquet as pq

        rows: list[dict[str, Any]] = pq.read_table(parquet).to_pylist()
        return rows
    with open(out_dir / INDEX_CSV, encoding="utf-8", newline="") as file:
        return [
            {k: (v if v != "" else None) for k, v in row.items()} for row in csv.DictReader(file)
        ]
