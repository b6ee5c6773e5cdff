"""Fetch models from the Hugging Face hub once, record what was fetched, check it later.

The models directory is an ordinary Hugging Face hub cache, so transformers loads from it
with ``local_files_only=True`` and no network: ``--models-dir`` / ``EMOAPP_MODELS_DIR``
when set, else ``HF_HUB_CACHE``, else ``HF_HOME/hub``, else ``~/.cache/huggingface/hub``.

:func:`pull` resolves a profile name, a registry id or a hub id to the models to fetch,
and for each one:

1. skips it when a manifest for that revision exists and its files still check out;
2. fails fast, in one line, when the hub cannot be reached or downloads are switched off
   (``HF_HUB_OFFLINE``): models already pulled keep working offline;
3. lists the repository at the pinned revision, keeps the files transformers needs
   (PyTorch weights, safetensors over ``.bin`` when both exist; no TF/Flax/ONNX copies),
   and refuses up front when the disk cannot hold them;
4. fetches ``config.json`` (and the model card) into a temporary folder first and checks
   the model does the registry's task and that its labels map onto the canonical set, so
   a wrong model is refused before gigabytes move;
5. downloads the rest into the cache with Hugging Face's own atomic ``.incomplete`` files,
   and ``config.json`` *last*: a snapshot folder without ``config.json`` is unfinished,
   and everything that asks "is this model here?" (transformers, ``is_available_locally``)
   looks for ``config.json`` first, so an interrupted pull never shadows a good copy;
6. hashes every file, compares it with the hub's own checksums (git blob SHA-1, or the
   LFS SHA-256 for large files), and only then writes the manifest:
   ``<models dir>/models--ORG--NAME/emoapp-manifests/<commit>.json`` with the id, revision,
   each file's size and SHA-256, and when it was pulled.

**Pins the hub does not have.** A registry model is pulled at its pinned commit. When
the hub does not have that commit, the pull stops with one line that says so and offers
``--revision latest``. ``revision="latest"`` (the hub's ``main``) or a commit sha fetches
that instead; the manifest records the commit actually fetched, what was asked for and
the registry's pin, and the commit is recorded in the user's profile file
(:func:`emoapp.registry.record_user_revision`), so that the registry id loads at that
commit from then on, offline.

:func:`verify` re-hashes the files a manifest lists and reports the missing and changed
ones. huggingface_hub is imported only inside the functions that talk to the hub.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import errno
import fnmatch
import hashlib
import json
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emoapp.core.errors import EmoappError, ModelLoadError
from emoapp.core.labelmap import build_label_map
from emoapp.core.messages import Modality
from emoapp.registry import (
    TASK_OF_MODALITY,
    ModelEntry,
    ModelSpec,
    RegistryError,
    find_entry,
    profiles,
    resolve_model,
    resolve_profile,
)

MANIFEST_FOLDER = "emoapp-manifests"
DEFAULT_ENDPOINT = "https://huggingface.co"
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")

# Files a PyTorch classifier does not need: other frameworks' weights, training state.
IGNORED_FILES: tuple[str, ...] = (
    "*.h5",
    "*.msgpack",
    "*.ot",
    "*.onnx",
    "*.onnx_data",
    "*.tflite",
    "*.mlmodel",
    "*.pb",
    "*.gguf",
    "tf_model*",
    "flax_model*",
    "rust_model*",
    "onnx/*",
    "openvino/*",
    "coreml/*",
    "runs/*",
    "checkpoint-*/*",
    "training_args.bin",
    "optimizer.pt",
    "scheduler.pt",
    "rng_state*.pth",
    ".gitattributes",
)
# Where a repository has safetensors weights, its pickled copies are not fetched.
PICKLED_WEIGHTS: tuple[str, ...] = ("pytorch_model*.bin", "*.pt", "*.pth", "*.ckpt")
CONFIG_FILE = "config.json"
MODEL_CARD = "README.md"
_DISK_HEADROOM = 1.05  # ask for 5 % more free space than the files need


class PullError(EmoappError):
    """A model could not be pulled: no network, no disk space, not on the hub..."""


# --- where models live ------------------------------------------------------------------


def models_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The models directory (a Hugging Face hub cache); see the module docstring."""
    if explicit:
        return Path(explicit).expanduser()
    if env := os.environ.get("EMOAPP_MODELS_DIR"):
        return Path(env).expanduser()
    if env := os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(env).expanduser()
    if env := os.environ.get("HF_HOME"):
        return Path(env).expanduser() / "hub"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "huggingface" / "hub"


def repo_folder(model_id: str, cache: Path) -> Path:
    """The hub cache folder of a model repository: ``models--ORG--NAME``."""
    return cache / ("models--" + model_id.replace("/", "--"))


def snapshot_dir(model_id: str, revision: str, cache: Path) -> Path:
    return repo_folder(model_id, cache) / "snapshots" / revision


def manifest_path(model_id: str, revision: str, cache: Path) -> Path:
    return repo_folder(model_id, cache) / MANIFEST_FOLDER / f"{revision}.json"


def resolved_revision(model_id: str, revision: str | None, cache: Path) -> str | None:
    """The commit a revision names, from the cache alone (a branch or tag is looked up in
    ``refs/``; a commit is itself)."""
    if revision and _COMMIT.match(revision):
        return revision
    ref = repo_folder(model_id, cache) / "refs" / (revision or "main")
    try:
        return ref.read_text().strip() or None
    except OSError:
        return None


# --- manifests --------------------------------------------------------------------------


@dataclass(frozen=True)
class ManifestFile:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """What ``emoapp models pull`` fetched, written only after every file checked out."""

    id: str
    revision: str
    files: tuple[ManifestFile, ...]
    pulled_at: str
    task: str = ""
    endpoint: str = ""
    requested: str = ""
    """What was asked for: ``pin`` (the registry's), ``latest``, a commit, or a branch."""
    registry_revision: str = ""
    """The registry's pin of this model ("" outside the registry)."""

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["files"] = [dataclasses.asdict(f) for f in self.files]
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, origin: str) -> Manifest:
        try:
            data = json.loads(text)
            files = tuple(
                ManifestFile(str(f["path"]), int(f["size"]), str(f["sha256"]))
                for f in data["files"]
            )
            return cls(
                id=str(data["id"]),
                revision=str(data["revision"]),
                files=files,
                pulled_at=str(data.get("pulled_at", "")),
                task=str(data.get("task", "")),
                endpoint=str(data.get("endpoint", "")),
                requested=str(data.get("requested", "")),
                registry_revision=str(data.get("registry_revision", "")),
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise PullError(f"manifest {origin} is damaged ({exc}); pull the model again") from exc


def read_manifest(model_id: str, revision: str, cache: Path) -> Manifest | None:
    path = manifest_path(model_id, revision, cache)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return Manifest.from_json(text, str(path))


def _write_manifest(manifest: Manifest, cache: Path) -> Path:
    path = manifest_path(manifest.id, manifest.revision, cache)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(manifest.to_json())
    os.replace(tmp, path)
    return path


def all_manifests(cache: Path) -> list[Manifest]:
    """Every manifest in the models directory."""
    found = []
    for path in sorted(cache.glob(f"models--*/{MANIFEST_FOLDER}/*.json")):
        found.append(Manifest.from_json(path.read_text(), str(path)))
    return found


def sha256_of(path: Path, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def git_blob_sha1(path: Path) -> str:
    """The git object id of a file (what the hub reports for files not stored in LFS)."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --- what to pull -----------------------------------------------------------------------


@dataclass(frozen=True)
class PullTarget:
    """One hub model to fetch. ``entry`` is None for a hub id outside the registry."""

    id: str
    revision: str | None
    modality: Modality | None = None
    entry: ModelEntry | None = None
    label_overrides: dict[str, str] = field(default_factory=dict)
    requested: str = ""
    """What the person asked for (``latest``, a commit) in place of the revision the
    reference resolved to; empty: that revision."""

    @property
    def is_registry_pin(self) -> bool:
        return (
            self.entry is not None and not self.requested and (self.revision == self.entry.revision)
        )

    @property
    def task(self) -> str | None:
        if self.entry is not None:
            return self.entry.task
        return TASK_OF_MODALITY[self.modality] if self.modality else None

    @property
    def ref(self) -> str:
        return f"{self.id}@{self.revision}" if self.revision else self.id


@dataclass(frozen=True)
class PullPlan:
    targets: list[PullTarget]
    skipped: list[str]
    """Notes on what needs no download (baselines, local directories, switched-off)."""


def _target_of_spec(spec: ModelSpec) -> PullTarget:
    return PullTarget(
        spec.model, spec.revision, spec.modality, spec.entry, dict(spec.label_overrides)
    )


def plan_pull(ref: str | ModelSpec, extra_profiles: Path | None = None) -> PullPlan:
    """The hub models a reference stands for: every hub model of a profile, or one model
    (registry id, or ``org/name[@revision]`` outside the registry)."""
    if isinstance(ref, ModelSpec):
        specs: dict[Modality, ModelSpec | None] = {ref.modality: ref}
        label = ref.model
    else:
        ref = ref.strip()
        if ref in profiles(extra_profiles):
            specs = resolve_profile(ref, extra_file=extra_profiles)
            label = f"profile {ref!r}"
        else:
            entry = find_entry(ref)
            if entry is not None:
                # As loading resolves it: id@revision, else the user's recorded commit,
                # else the registry's pin.
                specs = {entry.modality: resolve_model(entry.modality, ref)}
                label = entry.id
            elif ref.startswith(("baseline/", "embedded/")):
                raise RegistryError(
                    f"unknown built-in model {ref!r}; `emoapp models list` shows them"
                )
            elif Path(ref).expanduser().is_dir():
                return PullPlan([], [f"{ref} is a local directory: nothing to pull"])
            elif _HUB_ID.match(ref.partition("@")[0]):
                model, _, revision = ref.partition("@")
                return PullPlan([PullTarget(model, revision or None)], [])
            else:
                raise RegistryError(
                    f"{ref!r} is not a profile, a registry model or a hub id (org/name); "
                    "`emoapp models list` shows the profiles and models"
                )
    targets, skipped = [], []
    for modality, spec in specs.items():
        if spec is None:
            skipped.append(f"{modality.value}: switched off in {label}")
        elif spec.bundled:
            skipped.append(f"{modality.value}: {spec.model} is built in (no download)")
        elif spec.is_local_dir:
            skipped.append(f"{modality.value}: {spec.model} is a local directory (no download)")
        else:
            targets.append(_target_of_spec(spec))
    return PullPlan(targets, skipped)


# --- checking a model before it is kept ---------------------------------------------------

_TASK_MAPPINGS = {
    "image-classification": "MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES",
    "audio-classification": "MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES",
    "text-classification": "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES",
}


def tasks_of_config(config: dict[str, Any]) -> set[str]:
    """The classification tasks (of ours) a transformers ``config.json`` can do: from its
    ``architectures`` when they name transformers classes, else from its ``model_type``.
    A class transformers does not have (``Wav2Vec2ForSpeechClassification``, written by
    the model's authors) says nothing about the head: the load-time integrity check
    (:mod:`emoapp.encoders.integrity`) refuses the model unless a known head layout takes
    its tensors."""
    import transformers
    from transformers.models.auto import modeling_auto

    architectures = {
        name
        for name in config.get("architectures") or []
        if _is_transformers_class(transformers, name)
    }
    model_type = config.get("model_type")
    tasks = set()
    for task, name in _TASK_MAPPINGS.items():
        mapping: dict[str, str] = getattr(modeling_auto, name)
        if architectures:
            if architectures & set(mapping.values()):
                tasks.add(task)
        elif model_type in mapping:
            tasks.add(task)
    return tasks


def _is_transformers_class(transformers: Any, name: str) -> bool:
    try:
        return getattr(transformers, name, None) is not None
    except (ImportError, RuntimeError):  # a class whose optional backend is missing
        return True


def card_pipeline_tag(card: str) -> str | None:
    """``pipeline_tag`` from a model card's YAML front matter, if it states one."""
    if not card.startswith("---"):
        return None
    front = card[3:].split("\n---", 1)[0]
    found = re.search(r"^pipeline_tag:\s*['\"]?([\w\-]+)", front, re.MULTILINE)
    return found.group(1) if found else None


def check_model(target: PullTarget, config: dict[str, Any], card: str | None) -> str:
    """Refuse a model that is of the wrong task or whose labels have no canonical mapping;
    returns the task it does."""
    tasks = tasks_of_config(config)
    architecture = ", ".join(config.get("architectures") or []) or config.get("model_type", "?")
    wanted = target.task
    if not tasks:
        raise ModelLoadError(
            f"{target.id} ({architecture}) is not an image, audio or text classification "
            "model, so emoapp cannot use it; choose a classification model"
        )
    if wanted is not None and wanted not in tasks:
        raise ModelLoadError(
            f"{target.id} is a {' / '.join(sorted(tasks))} model ({architecture}), not the "
            f"{wanted} model the {target.modality.value if target.modality else ''} "
            "modality needs; check the model id"
        )
    tag = card_pipeline_tag(card or "")
    if wanted is not None and tag is not None and tag in _TASK_MAPPINGS and tag != wanted:
        raise ModelLoadError(
            f"{target.id}'s model card says it does {tag}, not {wanted}; check the model id"
        )
    id2label = config.get("id2label") or {}
    if not id2label:
        raise ModelLoadError(
            f"{target.id} has no id2label in its config.json, so its outputs "
            "cannot be named; choose a model with labelled classes"
        )
    build_label_map(target.id, id2label, target.label_overrides)  # UnmappedLabelsError
    return wanted or sorted(tasks)[0]


# --- pulling ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PullResult:
    id: str
    revision: str
    status: str  # "pulled" or "present"
    snapshot: Path
    manifest: Manifest
    known: tuple[str, ...] = ()
    """Files whose SHA-256 matched the one the registry records from public evidence for
    this commit (``file_sha256``)."""

    @property
    def size(self) -> int:
        return self.manifest.size


def _endpoint(explicit: str | None) -> str:
    return (explicit or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def _offline_mode() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _unreachable(endpoint: str, why: str) -> PullError:
    return PullError(
        f"cannot reach the Hugging Face hub: {why} ({endpoint}); models already pulled keep "
        "working offline"
    )


def check_hub_reachable(endpoint: str, timeout_s: float = 10.0) -> None:
    """Fail fast, with one line, when the hub does not answer (huggingface_hub itself would
    retry a refused connection for half a minute before saying so)."""
    request = urllib.request.Request(endpoint + "/", method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s):
            return
    except urllib.error.HTTPError:
        return  # it answered: reachable
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise _unreachable(endpoint, str(reason)) from exc


def _network_errors() -> tuple[type[BaseException], ...]:
    try:
        import httpx2

        return (httpx2.TransportError,)
    except ImportError:  # older huggingface_hub uses requests
        import requests

        return (requests.ConnectionError, requests.Timeout)


def _select_files(files: Iterable[Any]) -> list[Any]:
    """The repository files a PyTorch classifier needs."""
    files = [f for f in files if not any(fnmatch.fnmatch(f.path, p) for p in IGNORED_FILES)]
    if any(f.path.endswith(".safetensors") for f in files):
        files = [f for f in files if not any(fnmatch.fnmatch(f.path, p) for p in PICKLED_WEIGHTS)]
    return files


def _check_disk(cache: Path, needed: int, model_id: str) -> None:
    probe = cache
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if needed * _DISK_HEADROOM > free:
        raise PullError(
            f"not enough disk space to pull {model_id}: it needs {_mb(needed)}, {cache} has "
            f"{_mb(free)} free; free some space or choose another --models-dir"
        )


def _mb(size: int) -> str:
    return f"{size / 1e6:,.0f} MB" if size >= 1e6 else f"{size / 1e3:,.0f} kB"


def _disk_full(target: PullTarget, cache: Path) -> PullError:
    return PullError(
        f"the disk filled up while pulling {target.id} into {cache}; nothing was recorded. "
        "Free some space (or choose another --models-dir) and pull again"
    )


def pull(
    ref: str | ModelSpec,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    *,
    force: bool = False,
    endpoint: str | None = None,
    extra_profiles: Path | None = None,
    on_skip: Callable[[str], None] | None = None,
    tqdm_class: type | None = None,
    revision: str | None = None,
) -> list[PullResult]:
    """Pull every hub model ``ref`` stands for (a profile name, a registry id, a hub id
    ``org/name[@revision]``, or a resolved spec). Models already pulled are checked, not
    fetched again (``force`` fetches anyway). ``on_skip`` hears about what needs no
    download. ``tqdm_class`` (a ``tqdm.auto.tqdm`` subclass) receives the byte progress,
    for a window's progress bar. ``revision`` (``latest`` or a commit sha; one model
    only) fetches that in place of the pinned revision and records the commit fetched
    (see the module docstring)."""
    plan = plan_pull(ref, extra_profiles)
    if revision is not None:
        plan = PullPlan([_with_revision(plan, ref, revision)], plan.skipped)
    for note in plan.skipped:
        if on_skip is not None:
            on_skip(note)
    results = [
        pull_model(t, cache_dir, progress, force=force, endpoint=endpoint, tqdm_class=tqdm_class)
        for t in plan.targets
    ]
    if revision is not None:
        _record_fetched(plan.targets[0], results[0])
    return results


def _with_revision(plan: PullPlan, ref: str | ModelSpec, revision: str) -> PullTarget:
    """The one target of ``plan``, asked for at ``revision`` (``latest`` or a commit)."""
    wanted = revision.strip().lower()
    if wanted != "latest" and not _COMMIT.match(wanted):
        raise RegistryError(
            f"--revision {revision!r}: give latest (the hub's newest commit) or a full "
            "40-character commit sha"
        )
    if len(plan.targets) != 1 or (isinstance(ref, str) and ref.strip() in profiles()):
        raise RegistryError(
            f"--revision applies to one hub model: `emoapp models pull MODEL --revision {revision}`"
        )
    if isinstance(ref, str) and "@" in ref:
        raise RegistryError(f"{ref}: give the revision either after @ or with --revision")
    target = plan.targets[0]
    return dataclasses.replace(
        target, revision="main" if wanted == "latest" else wanted, requested=wanted
    )


def _record_fetched(target: PullTarget, result: PullResult) -> None:
    """Remember, in the user's profile file, the commit a registry model was fetched at
    in place of its pin (or forget it when that is the pin itself)."""
    if target.entry is None:
        return  # outside the registry: the hub's refs in the cache resolve it offline
    from emoapp.registry import record_user_revision

    record_user_revision(
        target.id, None if result.revision == target.entry.revision else result.revision
    )


def pull_model(
    target: PullTarget,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    *,
    force: bool = False,
    endpoint: str | None = None,
    tqdm_class: type | None = None,
) -> PullResult:
    """Pull one model; see the module docstring for the steps."""
    cache = models_dir(cache_dir)
    if not force and target.requested != "latest":  # "latest" asks the hub what that is
        present = _already_pulled(target, cache)
        if present is not None:
            return present
    endpoint = _endpoint(endpoint)
    if _offline_mode():
        raise PullError(
            "cannot reach the Hugging Face hub: HF_HUB_OFFLINE is set, so downloads are off "
            "(unset it to pull); models already pulled keep working offline"
        )
    check_hub_reachable(endpoint)
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        return _pull(target, cache, progress, force, endpoint, tqdm_class)
    except GatedRepoError as exc:
        raise PullError(
            f"{target.id} is gated on the hub: accept its terms on its page and log in "
            "(`hf auth login`), then pull again"
        ) from exc
    except RepositoryNotFoundError as exc:
        raise PullError(
            f"{target.id} was not found on the hub ({endpoint}); check the id "
            "(`emoapp models list` shows the registry)"
        ) from exc
    except RevisionNotFoundError as exc:
        if target.is_registry_pin and target.revision:
            raise PullError(
                f"the hub does not have {target.id} at the registry's pinned commit "
                f"{target.revision[:12]}; `emoapp models pull {target.id} --revision latest` "
                "fetches its newest commit and records it"
            ) from exc
        raise PullError(
            f"revision {target.revision} of {target.id} is not on the hub; check the revision"
        ) from exc
    except RemoteEntryNotFoundError as exc:
        raise PullError(
            f"a file of {target.id} vanished from the hub during the pull "
            f"({_first_line(exc)}); nothing was recorded, pull again"
        ) from exc
    except LocalEntryNotFoundError as exc:
        raise _unreachable(endpoint, _first_line(exc)) from exc
    except HfHubHTTPError as exc:
        raise PullError(f"the hub refused to send {target.id}: {_first_line(exc)}") from exc
    except _network_errors() as exc:
        raise _unreachable(endpoint, _first_line(exc)) from exc
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise _disk_full(target, cache) from exc
        raise PullError(f"could not write {target.id} into {cache}: {exc}") from exc


def _already_pulled(target: PullTarget, cache: Path) -> PullResult | None:
    revision = resolved_revision(target.id, target.revision, cache)
    if revision is None:
        return None
    manifest = read_manifest(target.id, revision, cache)
    if manifest is None:
        return None
    report = verify_manifest(manifest, cache)
    if not report.ok or report.snapshot is None:
        return None
    known = _matching_known(target, manifest)
    return PullResult(target.id, revision, "present", report.snapshot, manifest, known)


def _pull(
    target: PullTarget,
    cache: Path,
    progress: bool,
    force: bool,
    endpoint: str,
    tqdm_class: type | None,
) -> PullResult:
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download
    from huggingface_hub.hf_api import RepoFile
    from huggingface_hub.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    api = HfApi(endpoint=endpoint)
    revision = target.revision
    if revision is None or not _COMMIT.match(revision):
        info = api.model_info(target.id, revision=revision)
        if not info.sha:
            raise PullError(f"the hub did not say which commit {target.ref} is")
        revision = info.sha
        if not force:
            present = _already_pulled(dataclasses.replace(target, revision=revision), cache)
            if present is not None:
                _write_ref(repo_folder(target.id, cache), target.revision or "main", revision)
                return present
    listing = [
        f
        for f in api.list_repo_tree(target.id, recursive=True, revision=revision)
        if isinstance(f, RepoFile)
    ]
    files = _select_files(listing)
    names = [f.path for f in files]
    if CONFIG_FILE not in names:
        raise ModelLoadError(
            f"{target.ref} has no config.json, so it is not a transformers "
            "model emoapp can load; check the model id"
        )
    _check_disk(cache, sum(int(f.size or 0) for f in files), target.id)

    was_disabled = are_progress_bars_disabled()
    if not progress:
        disable_progress_bars()
    try:
        # 1. config.json and the model card into a scratch folder: refuse a wrong model
        #    before its weights move.
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".emoapp-check-", dir=cache) as scratch:
            config_path = hf_hub_download(
                target.id, CONFIG_FILE, revision=revision, local_dir=scratch, endpoint=endpoint
            )
            card = None
            if MODEL_CARD in names:
                card_path = hf_hub_download(
                    target.id, MODEL_CARD, revision=revision, local_dir=scratch, endpoint=endpoint
                )
                card = Path(card_path).read_text(errors="replace")
            try:
                config = json.loads(Path(config_path).read_text())
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise ModelLoadError(f"{target.ref}'s config.json is not valid JSON") from exc
        task = check_model(target, config, card)
        # 2. everything else, checked against the hub's checksums; then config.json last:
        #    its presence marks a whole snapshot.
        common: dict[str, Any] = dict(
            repo_id=target.id,
            revision=revision,
            cache_dir=str(cache),
            endpoint=endpoint,
            force_download=force,
        )
        if tqdm_class is not None:
            common["tqdm_class"] = tqdm_class
        by_name = {f.path: f for f in files}
        snapshot = snapshot_dir(target.id, revision, cache)
        rest = [n for n in names if n != CONFIG_FILE]
        if rest:
            snapshot = Path(snapshot_download(allow_patterns=rest, **common))
        recorded = [_checked_file(target, snapshot, by_name[n]) for n in rest]
        snapshot = Path(snapshot_download(allow_patterns=[CONFIG_FILE], **common))
        try:
            recorded.append(_checked_file(target, snapshot, by_name[CONFIG_FILE]))
        except PullError:
            (snapshot / CONFIG_FILE).unlink(missing_ok=True)  # never mark a bad copy whole
            raise
    finally:
        if not progress and not was_disabled:
            enable_progress_bars()

    manifest = Manifest(
        id=target.id,
        revision=revision,
        files=tuple(recorded),
        pulled_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        task=task,
        endpoint=endpoint,
        requested=target.requested or ("pin" if target.is_registry_pin else target.revision or ""),
        registry_revision=(target.entry.revision or "") if target.entry is not None else "",
    )
    try:
        known = _matching_known(target, manifest)  # before the manifest marks it pulled
    except PullError:
        (snapshot / CONFIG_FILE).unlink(missing_ok=True)  # never mark a bad copy whole
        raise
    _write_manifest(manifest, cache)
    if target.revision != revision:
        # A branch or tag was asked for: point it at this commit, now that the snapshot is
        # whole, so that loading ``org/name`` offline finds it.
        _write_ref(repo_folder(target.id, cache), target.revision or "main", revision)
    return PullResult(target.id, revision, "pulled", snapshot, manifest, known)


def _write_ref(repo: Path, name: str, commit: str) -> None:
    ref = repo / "refs" / name
    ref.parent.mkdir(parents=True, exist_ok=True)
    tmp = ref.with_name(ref.name + ".emoapp-tmp")
    tmp.write_text(commit)
    os.replace(tmp, ref)


def known_hashes(target: PullTarget, revision: str) -> dict[str, str]:
    """The SHA-256 the registry records for files of ``target`` at ``revision`` (only at
    its own pin: another commit may hold other bytes)."""
    entry = target.entry
    if entry is None or not entry.file_sha256 or revision != entry.revision:
        return {}
    return dict(entry.file_sha256)


def _matching_known(target: PullTarget, manifest: Manifest) -> tuple[str, ...]:
    """The manifest's files whose hash is the registry's recorded one; raises PullError
    for one that differs."""
    known = known_hashes(target, manifest.revision)
    matched = []
    for f in manifest.files:
        expected = known.get(f.path)
        if expected is None:
            continue
        if f.sha256 != expected:
            raise PullError(
                f"{f.path} of {target.id}@{manifest.revision[:12]} has sha256 {f.sha256[:16]}..., "
                f"not the {expected[:16]}... public evidence records for this commit; the "
                "registry's model is not what was downloaded (nothing was recorded)"
            )
        matched.append(f.path)
    return tuple(matched)


def _checked_file(target: PullTarget, snapshot: Path, remote: Any) -> ManifestFile:
    """Hash a downloaded file and compare it with the hub's checksum (the LFS SHA-256, or
    the git blob SHA-1 of a small file)."""
    path = snapshot / remote.path
    if not path.is_file():
        raise PullError(f"{remote.path} of {target.id} did not arrive; pull again")
    size = path.stat().st_size
    sha256 = sha256_of(path)
    lfs = getattr(remote, "lfs", None)
    if lfs is not None and getattr(lfs, "sha256", None):
        matches = sha256 == lfs.sha256
    elif getattr(remote, "blob_id", None):
        matches = git_blob_sha1(path) == remote.blob_id
    else:
        matches = True  # the hub gave no checksum: the size is all there is to check
    if not matches or (remote.size is not None and size != int(remote.size)):
        raise PullError(
            f"{remote.path} of {target.id} does not match the hub's checksum; nothing was "
            "recorded: pull again with --force"
        )
    return ManifestFile(remote.path, size, sha256)


# --- verifying --------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyReport:
    id: str
    revision: str | None
    status: str
    """``ok``, ``damaged`` (files missing or changed), ``unrecorded`` (in the cache but not
    pulled by emoapp: nothing to check against) or ``absent``."""
    snapshot: Path | None = None
    missing: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def describe(self) -> str:
        name = f"{self.id}@{self.revision[:12]}" if self.revision else self.id
        if self.status == "ok":
            return f"{name}: ok"
        if self.status == "absent":
            return f"{name}: not downloaded (`emoapp models pull {self.id}`)"
        if self.status == "unrecorded":
            return (
                f"{name}: in the cache but not pulled by emoapp, so there are no checksums "
                f"to check; `emoapp models pull {self.id}` records them"
            )
        parts = []
        if self.missing:
            parts.append("missing " + ", ".join(self.missing))
        if self.changed:
            parts.append("changed " + ", ".join(self.changed))
        return (
            f"{name}: damaged ({'; '.join(parts)}); repair with "
            f"`emoapp models pull {self.id} --force`"
        )


def verify_manifest(manifest: Manifest, cache: Path) -> VerifyReport:
    """Re-hash the files a manifest lists."""
    snapshot = snapshot_dir(manifest.id, manifest.revision, cache)
    missing, changed = [], []
    for f in manifest.files:
        path = snapshot / f.path
        if not path.is_file():  # also a symlink whose blob is gone
            missing.append(f.path)
        elif path.stat().st_size != f.size or sha256_of(path) != f.sha256:
            changed.append(f.path)
    status = "ok" if not missing and not changed else "damaged"
    return VerifyReport(
        manifest.id, manifest.revision, status, snapshot, tuple(missing), tuple(changed)
    )


def verify(
    ref: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    extra_profiles: Path | None = None,
) -> list[VerifyReport]:
    """Check pulled models: every manifest in the models directory, or the models ``ref``
    (a profile, registry id or hub id) stands for."""
    cache = models_dir(cache_dir)
    if ref is None:
        return [verify_manifest(m, cache) for m in all_manifests(cache)]
    reports = []
    for target in plan_pull(ref, extra_profiles).targets:
        revision = resolved_revision(target.id, target.revision, cache)
        manifest = read_manifest(target.id, revision, cache) if revision else None
        if manifest is not None:
            reports.append(verify_manifest(manifest, cache))
        elif revision and (snapshot_dir(target.id, revision, cache) / CONFIG_FILE).is_file():
            reports.append(
                VerifyReport(
                    target.id, revision, "unrecorded", snapshot_dir(target.id, revision, cache)
                )
            )
        else:
            reports.append(VerifyReport(target.id, target.revision, "absent"))
    return reports


# --- what is here -------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalState:
    """Whether a hub model is in the models directory, and what emoapp recorded of it."""

    present: bool
    """``config.json`` of the wanted revision is in the cache (what loading needs first)."""
    manifest: Manifest | None
    snapshot: Path | None

    @property
    def size(self) -> int | None:
        return self.manifest.size if self.manifest else None


def local_state(
    model_id: str, revision: str | None, cache_dir: str | os.PathLike[str] | None = None
) -> LocalState:
    cache = models_dir(cache_dir)
    commit = resolved_revision(model_id, revision, cache)
    if commit is None:
        return LocalState(False, None, None)
    snapshot = snapshot_dir(model_id, commit, cache)
    try:
        manifest = read_manifest(model_id, commit, cache)
    except PullError:
        manifest = None
    present = (snapshot / CONFIG_FILE).is_file()
    return LocalState(present, manifest, snapshot if present else None)


def local_config(
    spec: ModelSpec, cache_dir: str | os.PathLike[str] | None = None
) -> dict[str, Any] | None:
    """The model's ``config.json`` from local files only (a local directory or the models
    directory), or None when it is not downloaded."""
    if spec.bundled:
        return None
    if spec.is_local_dir:
        path = Path(spec.model).expanduser() / CONFIG_FILE
    else:
        state = local_state(spec.model, spec.revision, cache_dir)
        if state.snapshot is None:
            return None
        path = state.snapshot / CONFIG_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{path} is not valid JSON; pull the model again") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
