"""The curated model registry and profiles (``models/registry.toml``,
``models/profiles.toml``), and how a model reference resolves to something loadable.

A model reference, wherever the user gives one (``--face-model``, a profile, a user
profile file), is one of:

- a registry id (``trpakov/vit-face-expression``, ``baseline/text-lexicon``): loads at the
  pinned revision with the registry's label overrides and reliability prior;
- any other hub id (``org/name``, optionally ``org/name@revision``): loads as given;
- a local directory saved with ``save_pretrained``;
- a local embedded artefact folder (``meta.json`` + ``checksums.sha256``, written by
  ``scripts/train_embedded_*.py``, e.g. a model retrained without some speakers): when
  its ``meta.json`` names an embedded registry model, it takes that entry's reliability
  prior (:func:`embedded_recipe`), so it fuses as the shipped model of its recipe does;
- ``none`` or ``off``: the modality is switched off.

In a user profile file, a relative directory (``./my-face-model``) is taken relative to
that file's folder, so a profile can travel with the models it names.

**Pins.** Each hub model of the registry is pinned to a commit (``revision``), and
``revision_source`` says where that pin was confirmed (or that it could not be). When the
hub no longer has a pinned commit, ``emoapp models pull ID --revision latest`` (or
``--revision SHA``) fetches another and records it in the user's profile file, in a
``[revisions]`` table (registry id -> commit); a registry id named without ``@revision``
then resolves to that commit (see :func:`user_revisions`), so loading works offline.

The registry files sit at the top of a checkout (``models/``) and inside the package of
an installed wheel (``emoapp/_data/models``); :func:`data_dir` finds either.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emoapp.core.errors import EmoappError
from emoapp.core.messages import Modality

OFF_WORDS = frozenset({"none", "off", "no", ""})

BUNDLED_BACKENDS = frozenset({"baseline", "embedded"})
"""Backends whose models ship with emoapp: ``baseline`` (hand-written rules) and
``embedded`` (small models trained by ``scripts/train_embedded_*.py``, artefacts in
``models/embedded/``)."""

TASK_OF_MODALITY: dict[Modality, str] = {
    Modality.FACE: "image-classification",
    Modality.VOICE: "audio-classification",
    Modality.TEXT: "text-classification",
}
"""The Hugging Face task a model must do to serve each modality."""


class RegistryError(EmoappError):
    """An unknown profile or model reference, or a malformed registry or profile file."""


def data_dir(name: str) -> Path:
    """The folder ``models`` or ``resources``, in an installed wheel or in a checkout."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "_data" / name, package.parent / name):
        if candidate.is_dir():
            return candidate
    raise RegistryError(f"emoapp's {name}/ folder is missing from the installation ({package})")


@dataclass(frozen=True)
class ModelEntry:
    """One model of the curated registry."""

    id: str
    modality: Modality
    task: str
    backend: str = "transformers"
    revision: str | None = None
    architecture: str = ""
    size_mb: float = 0.0
    license: str = ""
    training_data: str = ""
    reported: str = ""
    reliability: float = 0.5
    limits: str = ""
    label_overrides: dict[str, str] = field(default_factory=dict)
    observation: dict[str, list[str]] = field(default_factory=dict)
    """Catch-all outputs: canonical output label -> the true labels it stands for (the
    smile detector's "neutral" is really "no smile"); see emoapp.core.observation."""
    revision_source: str = ""
    """Where the pinned ``revision`` was confirmed (``confirmed: ...``), or why it could
    not be (``unconfirmed: ...``)."""
    sampling_rate: int | None = None
    """A voice model: the sampling rate its feature extractor must state (checked at load
    time; the rate itself always comes from the model's own config)."""
    file_sha256: dict[str, str] = field(default_factory=dict)
    """SHA-256 of files at the pinned ``revision``, as public evidence records them
    (``emoapp models pull`` refuses a download at that commit that differs)."""
    why: str = ""
    """Why the entry is, or is not, in the default and cpu profiles."""

    @property
    def baseline(self) -> bool:
        return self.backend == "baseline"

    @property
    def bundled(self) -> bool:
        """Ships with emoapp (a rule baseline or an embedded trained model): no download."""
        return self.backend in BUNDLED_BACKENDS

    @property
    def pin_confirmed(self) -> bool:
        return self.revision_source.startswith("confirmed")


@dataclass(frozen=True)
class ModelSpec:
    """A resolved model reference for one modality: what to load and how."""

    modality: Modality
    model: str
    revision: str | None = None
    backend: str = "transformers"
    label_overrides: dict[str, str] = field(default_factory=dict)
    reliability: float | None = None
    entry: ModelEntry | None = None
    revision_origin: str = ""
    """Where ``revision`` came from: ``registry``, ``user`` (the ``[revisions]`` table of
    the user's profile file) or ``given`` (``id@revision``); empty outside the registry."""
    recipe: str | None = None
    """A local embedded artefact (a folder written by ``scripts/train_embedded_*.py``, e.g.
    a held-out model): the registry id of the embedded model whose recipe built it (its
    ``meta.json`` ``model_id``). The folder then takes that entry's reliability prior, so
    a held-out copy of a shipped model fuses as the shipped one does."""

    @property
    def baseline(self) -> bool:
        return self.backend == "baseline"

    @property
    def bundled(self) -> bool:
        """Ships with emoapp (a rule baseline or an embedded trained model): no download."""
        return self.backend in BUNDLED_BACKENDS

    @property
    def is_local_dir(self) -> bool:
        return self.backend == "transformers" and Path(self.model).expanduser().is_dir()


@dataclass(frozen=True)
class Profile:
    """One model reference per modality (None: the modality is off)."""

    name: str
    description: str
    models: dict[Modality, str | None]
    fusion: dict[str, Any] = field(default_factory=dict)
    origin: str = "built-in"
    """Where the profile was defined: ``built-in`` or the path of a user profile file."""


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise RegistryError(f"{path} does not exist") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{path} is not valid TOML: {exc}") from exc


_ENTRY_FIELDS = frozenset(ModelEntry.__dataclass_fields__) - {"id"}


@functools.cache
def registry() -> dict[str, ModelEntry]:
    """Every model of the curated registry, by id."""
    path = data_dir("models") / "registry.toml"
    raw = _read_toml(path).get("models", {})
    entries = {}
    for model_id, fields in raw.items():
        fields = dict(fields)
        unknown = set(fields) - _ENTRY_FIELDS
        if unknown:
            raise RegistryError(f"model {model_id!r} in {path}: unknown keys {sorted(unknown)}")
        try:
            fields["modality"] = Modality(fields["modality"])
        except (KeyError, ValueError) as exc:
            raise RegistryError(
                f"model {model_id!r} in {path}: modality must be face, voice or text"
            ) from exc
        entry = ModelEntry(id=model_id, **fields)
        if not entry.bundled and not entry.revision_source:
            raise RegistryError(
                f"model {model_id!r} in {path}: a hub model needs revision_source (where its "
                "pin was confirmed, or 'unconfirmed: why')"
            )
        entries[model_id] = entry
    return entries


def find_entry(ref: str) -> ModelEntry | None:
    """The registry entry a reference (``id`` or ``id@revision``) names, if any."""
    return registry().get(ref.strip().partition("@")[0])


def _profile_ref(value: Any, base: Path | None, where: str) -> str | None:
    """A profile's model reference, with a relative directory made relative to ``base``
    (the folder of the user profile file that names it)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise RegistryError(f"{where}: a model reference must be a string, not {value!r}")
    if base is not None and value.startswith(("./", "../", ".\\", "..\\")):
        return str((base / value).resolve())
    return value


def _parse_profiles(
    raw: dict[str, Any], origin: str, base: Path | None = None
) -> dict[str, Profile]:
    profiles = {}
    for name, fields in raw.get("profiles", {}).items():
        if not isinstance(fields, dict):
            raise RegistryError(f"profile {name!r} in {origin} must be a table")
        unknown = set(fields) - {"description", "fusion"} - {m.value for m in Modality}
        if unknown:
            raise RegistryError(f"profile {name!r} in {origin}: unknown keys {sorted(unknown)}")
        models = {
            m: _profile_ref(fields.get(m.value), base, f"profile {name!r} in {origin}")
            for m in Modality
        }
        profiles[name] = Profile(
            name=name,
            description=fields.get("description", ""),
            models=models,
            fusion=dict(fields.get("fusion", {})),
            origin=origin,
        )
    return profiles


@functools.cache
def builtin_profiles() -> dict[str, Profile]:
    path = data_dir("models") / "profiles.toml"
    return {
        name: dataclasses.replace(profile, origin="built-in")
        for name, profile in _parse_profiles(_read_toml(path), str(path)).items()
    }


def user_profiles_path() -> Path:
    """Where a user's own profiles live (``EMOAPP_PROFILES`` overrides)."""
    if env := os.environ.get("EMOAPP_PROFILES"):
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "emoapp" / "profiles.toml"


REVISIONS_TABLE = "revisions"
_REVISIONS_COMMENT = (
    "# Written by `emoapp models pull --revision`: the commit fetched in place of the\n"
    "# registry's pin, per registry model (delete a line to go back to the pin).\n"
)


def user_revisions() -> dict[str, str]:
    """The ``[revisions]`` table of the user's profile file: registry id -> the commit
    to load in place of the registry's pin."""
    path = user_profiles_path()
    if not path.is_file():
        return {}
    table = _read_toml(path).get(REVISIONS_TABLE, {})
    if not isinstance(table, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in table.items()
    ):
        raise RegistryError(f"{path}: [{REVISIONS_TABLE}] must map model ids to commits")
    return dict(table)


def record_user_revision(model_id: str, commit: str | None) -> Path:
    """Record in the user's profile file that registry model ``model_id`` loads at
    ``commit`` (None removes the record: back to the registry's pin). The rest of the
    file is kept as written; the ``[revisions]`` table is rewritten at its end."""
    path = user_profiles_path()
    before = _read_toml(path) if path.is_file() else {}
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    revisions = user_revisions()  # refuses a table that is not ids -> commits
    if commit is None:
        revisions.pop(model_id, None)
    else:
        revisions[model_id] = commit
    ours = set(_REVISIONS_COMMENT.splitlines())
    kept: list[str] = []
    skipping = False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            skipping = stripped == f"[{REVISIONS_TABLE}]"
        if not skipping and stripped not in ours:
            kept.append(line)
    while kept and not kept[-1].strip():
        kept.pop()
    body = "\n".join(kept) + ("\n" if kept else "")
    if revisions:
        lines = "".join(f'"{k}" = "{v}"\n' for k, v in sorted(revisions.items()))
        body += ("\n" if kept else "") + _REVISIONS_COMMENT + f"[{REVISIONS_TABLE}]\n" + lines
    try:
        after = tomllib.loads(body)
    except tomllib.TOMLDecodeError:
        after = {}
    if {k: v for k, v in after.items() if k != REVISIONS_TABLE} != {
        k: v for k, v in before.items() if k != REVISIONS_TABLE
    }:
        raise RegistryError(
            f"{path}: cannot record the revision of {model_id} without changing the rest "
            f'of the file; add it by hand under [{REVISIONS_TABLE}]: "{model_id}" = "{commit}"'
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".emoapp-tmp")
    tmp.write_text(body, encoding="utf-8")
    os.replace(tmp, path)
    return path


def profiles(extra_file: Path | None = None) -> dict[str, Profile]:
    """Built-in profiles, then the user's profile file, then ``extra_file``; later files
    override earlier profiles of the same name."""
    merged = dict(builtin_profiles())
    for path in (user_profiles_path(), extra_file):
        if path is not None and path.is_file():
            merged.update(_parse_profiles(_read_toml(path), str(path), path.resolve().parent))
    if extra_file is not None and not extra_file.is_file():
        raise RegistryError(f"profile file {extra_file} does not exist")
    return merged


def embedded_recipe(folder: Path, modality: Modality) -> ModelEntry | None:
    """The registry's embedded entry whose recipe built the artefact in ``folder``: the
    ``model_id`` its ``meta.json`` names, when that is an embedded model of ``modality``
    (None otherwise, or when the file cannot be read: loading it then says why)."""
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    model_id = meta.get("model_id") if isinstance(meta, dict) else None
    entry = registry().get(model_id) if isinstance(model_id, str) else None
    if entry is None or entry.backend != "embedded" or entry.modality != modality:
        return None
    return entry


def resolve_model(modality: Modality, ref: str) -> ModelSpec | None:
    """Resolve a model reference for ``modality`` (None when it says the modality is off)."""
    ref = ref.strip()
    if ref.lower() in OFF_WORDS:
        return None
    entries = registry()
    model, _, revision = ref.partition("@")
    entry = entries.get(model)
    if entry is not None:
        if entry.modality != modality:
            raise RegistryError(
                f"{model!r} is a {entry.modality.value} model, not a {modality.value} model"
            )
        if revision:
            origin = "given"
        elif entry.bundled:
            origin = ""
        elif mine := user_revisions().get(entry.id):
            revision, origin = mine, "user"
        else:
            revision, origin = entry.revision or "", "registry"
        return ModelSpec(
            modality=modality,
            model=entry.id,
            revision=revision or entry.revision,
            backend=entry.backend,
            label_overrides=dict(entry.label_overrides),
            reliability=entry.reliability,
            entry=entry,
            revision_origin=origin,
        )
    for prefix in ("baseline/", "embedded/"):
        if model.startswith(prefix):
            kind = prefix.rstrip("/")
            known = ", ".join(k for k, e in entries.items() if e.backend == kind)
            raise RegistryError(f"unknown {kind} model {model!r}; known: {known}")
    path = Path(model).expanduser()
    if path.exists() and not path.is_dir():
        raise RegistryError(f"model {model!r} is a file; give a model directory or a hub id")
    if path.is_dir() and (path / "meta.json").is_file() and (path / "checksums.sha256").is_file():
        # A local embedded artefact (e.g. a held-out model written by a training script).
        recipe = embedded_recipe(path, modality)
        return ModelSpec(
            modality=modality,
            model=str(path),
            backend="embedded",
            reliability=None if recipe is None else recipe.reliability,
            recipe=None if recipe is None else recipe.id,
        )
    return ModelSpec(
        modality=modality, model=str(path) if path.is_dir() else model, revision=revision or None
    )


def resolve_profile(
    name: str,
    overrides: dict[Modality, str | None] | None = None,
    extra_file: Path | None = None,
) -> dict[Modality, ModelSpec | None]:
    """The model spec of each modality under profile ``name``, with per-modality
    overrides (a reference string, or None to keep the profile's)."""
    available = profiles(extra_file)
    if name not in available:
        raise RegistryError(
            f"unknown profile {name!r}; choose one of {', '.join(sorted(available))}"
        )
    profile = available[name]
    specs: dict[Modality, ModelSpec | None] = {}
    for modality in Modality:
        ref = (overrides or {}).get(modality)
        if ref is None:
            ref = profile.models.get(modality) or "none"
        specs[modality] = resolve_model(modality, ref)
    return specs
