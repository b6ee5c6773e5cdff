"""Where embedded model artefacts live, and how they are verified and described.

An artefact folder is ``models/embedded/NAME`` for model id ``embedded/NAME`` (inside an
installed wheel: ``emoapp/_data/models/embedded/NAME``). It holds:

- the weights (any files the encoder reads),
- ``meta.json``: ``{"model_id": ..., "labels": [raw labels in output order], ...}`` plus
  whatever the encoder needs (feature settings, training protocol, measured figures),
- ``checksums.sha256``: one ``<sha256>  <file name>`` line per other file, as written by
  :func:`write_checksums` (and by ``sha256sum``).

:func:`load_meta` refuses a folder whose files do not match their checksums, so a
corrupted or hand-edited artefact never loads silently.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from emoapp.core.errors import ModelLoadError
from emoapp.registry import data_dir

CHECKSUMS = "checksums.sha256"
META = "meta.json"


def is_artefact_dir(path: Path) -> bool:
    """True for a folder that holds an embedded artefact (``meta.json`` and checksums),
    e.g. one written by a training script with ``--out`` for a held-out evaluation."""
    return path.is_dir() and (path / META).is_file() and (path / CHECKSUMS).is_file()


def artefact_dir(model_id: str) -> Path:
    """The folder of ``embedded/NAME`` (it may not exist), or ``model_id`` itself when it
    is a local artefact folder."""
    local = Path(model_id).expanduser()
    if is_artefact_dir(local):
        return local
    prefix, _, name = model_id.partition("/")
    if prefix != "embedded" or not name or "/" in name or name.startswith("."):
        raise ModelLoadError(f"{model_id!r} is not an embedded model id (embedded/NAME)")
    return data_dir("models") / "embedded" / name


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checksums(folder: Path) -> dict[str, str]:
    """Write ``checksums.sha256`` over every file in ``folder`` (sorted); returns it."""
    sums = {
        p.name: sha256_of(p)
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != CHECKSUMS
    }
    (folder / CHECKSUMS).write_text("".join(f"{h}  {n}\n" for n, h in sums.items()))
    return sums


def read_checksums(folder: Path) -> dict[str, str]:
    path = folder / CHECKSUMS
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise ModelLoadError(f"{folder} has no {CHECKSUMS}; the artefact is incomplete") from None
    sums = {}
    for line in lines:
        if line.strip():
            digest, _, name = line.partition("  ")
            sums[name.strip()] = digest.strip()
    return sums


def verify(folder: Path) -> None:
    """Raise :class:`ModelLoadError` unless every listed file exists and matches."""
    if not folder.is_dir():
        raise ModelLoadError(
            f"the embedded model folder {folder} is missing; reinstall emoapp or rebuild it "
            "with the script named in models/registry.toml"
        )
    for name, digest in read_checksums(folder).items():
        path = folder / name
        if not path.is_file():
            raise ModelLoadError(f"{path} is missing from the embedded model")
        if sha256_of(path) != digest:
            raise ModelLoadError(
                f"{path} does not match its recorded checksum; the embedded model is corrupted"
            )


def load_meta(model_id: str, check: bool = True) -> tuple[Path, dict[str, Any]]:
    """The artefact folder and its ``meta.json``, verified against the checksums."""
    folder = artefact_dir(model_id)
    if check:
        verify(folder)
    try:
        meta = json.loads((folder / META).read_text())
    except FileNotFoundError:
        raise ModelLoadError(f"{folder} has no {META}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{folder / META} is not valid JSON: {exc}") from exc
    if not isinstance(meta.get("labels"), list) or not meta["labels"]:
        raise ModelLoadError(f"{folder / META} lists no labels")
    return folder, meta


def write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """Write arrays as an ``.npz`` whose bytes depend only on the arrays (sorted names, a
    fixed time stamp, unlike ``np.savez``), so a rebuilt artefact compares byte for byte."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            buffer = io.BytesIO()
            np.save(buffer, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buffer.getvalue())
