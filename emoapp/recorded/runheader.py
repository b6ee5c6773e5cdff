"""The header record of a timeline file: what run wrote it, so that ``--resume`` can
refuse to continue it with another clip, other models or other options.

``emoapp analyze --out FILE`` writes, before its first row, one header record::

    {"header": {
        "format": "emoapp-timeline", "version": 1, "written_by": "emoapp analyze",
        "media": {"size": 1234567, "mtime_ns": ...,
                  "sha256_head": "...", "sha256_tail": "..."},   # null without media
        "transcript": {...same fingerprint...} | null,
        "text": {"chars": 17} | null,             # typed --text: its length, never the text
        "models": {"face": {"model": "...", "revision": "..." | null, "backend": "...",
                            "checksum": "sha256:..." | "git:<commit>" | null,
                            "device": "cpu", "dtype": "float32"},
                   "voice": ..., "text": ...},    # null: the modality did not run
        "options": {"step_s": 0.5, "face_fps": 2.0, "window_s": null, "hop_s": null,
                    "vad": null, "fusion": {...the whole fusion configuration...}},
        "runtime": {"emoapp": "0.1.0", "device": "auto", "dtype": "auto"}
    }}

``runtime`` holds the emoapp version and the device and precision asked for
(``--device``, ``--dtype``); each model's ``device`` and ``dtype`` are what they resolved
to once loaded (``auto`` picks float16 on CUDA, or bfloat16/int8 on a CPU whose
measurement says so), so rows computed in different precisions, on different devices or
by another emoapp never mix in one file. A model's ``checksum``
(:func:`model_checksum`) names the very weights: the SHA-256 of an embedded model's
``checksums.sha256`` or of a local model folder's files, the SHA-256 of the manifest
``emoapp models pull`` recorded (every file's hash), or else the hub commit loaded; null
for the rule baselines, which are emoapp's own code (the version covers them).

In a JSON-lines file it is the first line (it has no ``"t"``: a row always has one); a
CSV file keeps its header record in a sidecar, ``FILE.csv.header.json``. Rows on stdout
get none (they cannot be resumed). The media fingerprint is the file's size and
modification time and the SHA-256 of its first and last MiB: cheap on a long recording,
and it tells another file, or the same file edited, from the one analysed. Its name and
path are not recorded (a renamed file is the same recording, and a timeline holds no
more about the person's files than it needs); nor is any content.

Readers of timeline files skip the header record (:func:`is_header`;
:func:`emoapp.recorded.timeline.read_timeline` does).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from emoapp.core.errors import EmoappError

HEADER_KEY = "header"
FORMAT = "emoapp-timeline"
VERSION = 1
SIDECAR_SUFFIX = ".header.json"
_MIB = 1 << 20
_NOT_COMPARED = frozenset({("written_by",)})


def is_header(record: Any) -> bool:
    """Whether a parsed JSON line is a header record (not a row)."""
    return isinstance(record, dict) and HEADER_KEY in record and "t" not in record


def sidecar_path(target: str | Path) -> Path:
    """Where a CSV timeline keeps its header record."""
    return Path(f"{target}{SIDECAR_SUFFIX}")


def fingerprint(path: str | Path) -> dict[str, Any]:
    """Size, modification time and SHA-256 of the first and last MiB of a file."""
    path = Path(path)
    try:
        st = path.stat()
        with path.open("rb") as fh:
            head = hashlib.sha256(fh.read(_MIB)).hexdigest()
            fh.seek(max(0, st.st_size - _MIB))
            tail = hashlib.sha256(fh.read(_MIB)).hexdigest()
    except OSError as error:
        raise EmoappError(f"{path}: cannot read: {error.strerror or error}") from error
    return {
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "sha256_head": head,
        "sha256_tail": tail,
    }


def _jsonable(value: Any) -> Any:
    """``value`` as plain JSON (dataclasses, enums, tuples and numpy values included)."""

    def default(obj: Any) -> Any:
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            return dataclasses.asdict(obj)
        if hasattr(obj, "tolist"):
            return obj.tolist()
        return str(obj)

    return json.loads(json.dumps(value, default=default, sort_keys=True))


def model_checksum(
    model: str,
    backend: str,
    revision: str | None = None,
    models_dir: str | os.PathLike[str] | None = None,
) -> str | None:
    """A name for the exact weights of a model (see the module docstring): ``sha256:...``
    of an embedded model's checksum file, of a local folder's files, or of the manifest
    ``emoapp models pull`` wrote; ``git:<commit>`` for a hub snapshot without one; None
    for a rule baseline, or a model not on this computer."""
    if backend == "baseline":
        return None
    if backend == "embedded":
        from emoapp.encoders.embedded.artefacts import CHECKSUMS, artefact_dir

        try:
            listed = artefact_dir(model) / CHECKSUMS
            return "sha256:" + hashlib.sha256(listed.read_bytes()).hexdigest()
        except (OSError, EmoappError):
            return None
    local = Path(model).expanduser()
    if local.is_dir():
        return "sha256:" + _folder_digest(local)
    from emoapp import modelstore

    cache = modelstore.models_dir(models_dir)
    commit = modelstore.resolved_revision(model, revision, cache)
    if commit is None:
        return None
    manifest = modelstore.read_manifest(model, commit, cache)
    if manifest is None:
        return f"git:{commit}"
    listed_files = "".join(f"{f.sha256}  {f.path}\n" for f in sorted(manifest.files, key=_path))
    return "sha256:" + hashlib.sha256(listed_files.encode()).hexdigest()


def _path(file: Any) -> str:
    return str(file.path)


def _folder_digest(folder: Path) -> str:
    """SHA-256 over ``<sha256>  <relative path>`` lines of every file in ``folder``
    (hidden ones left out), sorted."""
    lines = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            digest = hashlib.sha256()
            with path.open("rb") as fh:
                for block in iter(lambda: fh.read(_MIB), b""):
                    digest.update(block)
            lines.append(f"{digest.hexdigest()}  {relative.as_posix()}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def build_header(
    *,
    media: str | Path | None,
    transcript: str | Path | None,
    text: str | None,
    models: Mapping[str, Mapping[str, Any] | None],
    options: Mapping[str, Any],
    runtime: Mapping[str, Any] | None = None,
    written_by: str = "emoapp analyze",
) -> dict[str, Any]:
    """The header record of a run (see the module docstring). ``runtime``: the device
    and precision asked for (the emoapp version is added here)."""
    from emoapp import __version__

    return {
        HEADER_KEY: {
            "format": FORMAT,
            "version": VERSION,
            "written_by": written_by,
            "media": fingerprint(media) if media is not None else None,
            "transcript": fingerprint(transcript) if transcript is not None else None,
            "text": {"chars": len(text)} if text is not None else None,
            "models": _jsonable(dict(models)),
            "options": _jsonable(dict(options)),
            "runtime": _jsonable({"emoapp": __version__, **dict(runtime or {})}),
        }
    }


def write_sidecar(target: str | Path, header: Mapping[str, Any]) -> Path:
    """Write a CSV timeline's header record next to it (atomically)."""
    path = sidecar_path(target)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(header, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as error:
        raise EmoappError(f"{path}: cannot write: {error.strerror or error}") from error
    return path


def read_header(target: str | Path) -> dict[str, Any] | None:
    """The header record of a timeline file (its first JSON line, or a CSV's sidecar);
    None when it has none."""
    target = Path(target)
    if target.suffix.lower() == ".csv":
        sidecar = sidecar_path(target)
        if not sidecar.is_file():
            return None
        try:
            record = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise EmoappError(f"{sidecar}: not a timeline header ({error})") from error
        return record if is_header(record) else None
    try:
        with target.open("rb") as fh:
            first = fh.readline()
    except OSError:
        return None
    try:
        record = json.loads(first.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    return record if is_header(record) else None


def _flatten(value: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    if isinstance(value, dict) and value:
        flat: dict[tuple[str, ...], Any] = {}
        for key, inner in value.items():
            flat.update(_flatten(inner, (*prefix, str(key))))
        return flat
    return {prefix: value}


def _shown(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."


def differences(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """What differs between two header records, one ``key: stored vs current`` each."""
    old = _flatten(stored.get(HEADER_KEY, {}))
    new = _flatten(current.get(HEADER_KEY, {}))
    found = []
    for key in sorted(set(old) | set(new)):
        if key in _NOT_COMPARED or old.get(key) == new.get(key):
            continue
        was, now = _shown(old.get(key)), _shown(new.get(key))
        found.append(f"{'.'.join(key)}: {was} in the file, {now} now")
    return found


def check_resume(target: str | Path, current: Mapping[str, Any]) -> None:
    """Refuse (EmoappError, one line) to continue ``target`` unless its header record
    says it was written by the run ``current`` describes."""
    stored = read_header(target)
    if stored is None:
        raise EmoappError(
            f"--resume: {target} has no header record (written by an older emoapp, or not by "
            "`emoapp analyze`), so it cannot be checked to be the same input and settings; "
            "run again without --resume to start it over"
        )
    found = differences(stored, current)
    if found:
        raise EmoappError(
            f"--resume: {target} was written by another run ({'; '.join(found)}); run again "
            "without --resume to start it over, or give another --out"
        )
