"""Prove that a run keeps nothing: compare the files under some folders before and after.

:class:`FileWatcher` snapshots every file and folder under the given roots (a temporary
HOME, config, cache and temp folder, the working folder) when the ``with`` block starts
and again when it ends, and reports what was created, modified or deleted outside the
allowed places (the consent file and audit log, and the run's explicit outputs; see
:func:`emoapp.privacy.paths.is_allowed_write`). A folder that leads to an allowed file
may be created (emoapp creates its config folder on first use).

:func:`isolated_user_dirs` makes a fresh set of such folders and the environment that
points a process (or, with ``monkeypatch``, the test process) at them, so a test sees
every file a run writes in the places a user's files would go.

Limits: it sees the roots it is given, nothing else (a write to the install folder or to
``/var`` is invisible); contents are compared by size, modification time and inode, so a
rewrite that keeps all three equal would pass (real writes change the time).

:class:`WriteRecorder` covers the rest from inside the process: a :func:`sys.addaudithook`
hook records every path Python code opens for writing, creates, renames or removes,
anywhere on the file system, in any thread, while the recorder is active. Writes by
native code that bypasses Python's file functions (FFmpeg, Qt) and by other processes
are not seen; the snapshot of the roots sees their results.
"""

from __future__ import annotations

import fnmatch
import os
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from emoapp.privacy import paths


@dataclass(frozen=True)
class FileState:
    is_dir: bool
    size: int
    mtime_ns: int
    inode: int


def snapshot(
    roots: Iterable[str | os.PathLike[str]], ignore: Iterable[str] = ()
) -> dict[Path, FileState]:
    """Every file and folder under ``roots`` (symlinks are not followed). ``ignore``:
    glob patterns matched against each name (e.g. ``__pycache__``)."""
    patterns = tuple(ignore)
    found: dict[Path, FileState] = {}
    for root in roots:
        base = Path(root).resolve()
        if not base.exists():
            continue
        for folder, dirnames, filenames in os.walk(base, followlinks=False):
            dirnames[:] = [d for d in dirnames if not _ignored(d, patterns)]
            for name in [*dirnames, *filenames]:
                if _ignored(name, patterns):
                    continue
                path = Path(folder) / name
                try:
                    st = path.lstat()
                except FileNotFoundError:
                    continue  # removed while we looked
                is_dir = name in dirnames
                found[path] = FileState(
                    is_dir, 0 if is_dir else st.st_size, 0 if is_dir else st.st_mtime_ns, st.st_ino
                )
    return found


def _ignored(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in patterns)


@dataclass
class FileChanges:
    """What changed between two snapshots."""

    created: list[Path] = field(default_factory=list)
    modified: list[Path] = field(default_factory=list)
    deleted: list[Path] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.created or self.modified or self.deleted)

    @property
    def all(self) -> list[Path]:
        return sorted({*self.created, *self.modified, *self.deleted})

    def describe(self) -> str:
        parts = []
        for what, items in (
            ("created", self.created),
            ("modified", self.modified),
            ("deleted", self.deleted),
        ):
            parts += [f"{what}: {path}" for path in items]
        return "\n".join(parts) or "no changes"


def compare(before: Mapping[Path, FileState], after: Mapping[Path, FileState]) -> FileChanges:
    changes = FileChanges()
    for path, state in sorted(after.items()):
        old = before.get(path)
        if old is None:
            changes.created.append(path)
        elif old != state:
            changes.modified.append(path)
    changes.deleted = sorted(path for path in before if path not in after)
    return changes


class FileWatcher:
    """``with FileWatcher(roots, allowed=[out]) as watch: ...`` then ``watch.unexpected``.

    ``allowed``: explicit outputs of the run, on top of the consent file and audit log
    (read from the environment when the block ends, so ``EMOAPP_CONFIG_DIR`` and
    ``XDG_CONFIG_HOME`` apply). ``check=True`` raises AssertionError on leaving the block
    when anything unexpected changed.
    """

    def __init__(
        self,
        roots: Iterable[str | os.PathLike[str]],
        allowed: Iterable[str | os.PathLike[str]] = (),
        ignore: Iterable[str] = (),
        check: bool = False,
    ) -> None:
        self.roots = [Path(r) for r in roots]
        self.allowed = [Path(p) for p in allowed]
        self.ignore = tuple(ignore)
        self.check = check
        self.before: dict[Path, FileState] = {}
        self.changes = FileChanges()
        self.unexpected = FileChanges()

    def __enter__(self) -> FileWatcher:
        self.before = snapshot(self.roots, self.ignore)
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.changes = compare(self.before, snapshot(self.roots, self.ignore))
        self.unexpected = FileChanges(
            created=[p for p in self.changes.created if not self._allowed(p)],
            modified=[p for p in self.changes.modified if not self._allowed(p)],
            deleted=[p for p in self.changes.deleted if not self._allowed(p)],
        )
        if self.check and exc_type is None:
            self.assert_clean()

    def assert_clean(self) -> None:
        if self.unexpected:
            raise AssertionError(
                "files changed outside the allowed locations:\n" + self.unexpected.describe()
            )

    def _allowed(self, path: Path) -> bool:
        if paths.is_allowed_write(path, self.allowed):
            return True
        targets = [paths.consent_path(), paths.audit_path(), *self.allowed]
        resolved = path.resolve()
        return path.is_dir() and any(resolved in t.resolve().parents for t in targets)


# --- writes seen from inside the process -----------------------------------------------------

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_PATH_EVENTS = {"os.mkdir": "mkdir", "os.remove": "remove", "os.rmdir": "rmdir"}


@dataclass(frozen=True)
class WriteEvent:
    """One file-system change made by Python code."""

    action: str
    """``open`` (for writing), ``mkdir``, ``rename``, ``remove`` or ``rmdir``."""
    path: Path
    thread: str
    where: str = ""
    """The function that did it: ``file:line function``."""


class WriteRecorder:
    """Record every write-like file operation of this process while active (see the module
    docstring). ``with WriteRecorder() as writes: ...`` then ``writes.events``."""

    _hook_installed = False
    _active: ClassVar[list[WriteRecorder]] = []
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        self.events: list[WriteEvent] = []

    def __enter__(self) -> WriteRecorder:
        with WriteRecorder._lock:
            if not WriteRecorder._hook_installed:
                # Audit hooks cannot be removed; this one does nothing while none is active.
                sys.addaudithook(_write_hook)
                WriteRecorder._hook_installed = True
            WriteRecorder._active.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        with WriteRecorder._lock:
            if self in WriteRecorder._active:
                WriteRecorder._active.remove(self)

    def paths(self, actions: Iterable[str] = ("open", "mkdir", "rename")) -> list[Path]:
        """The paths written or created (by default; removals are left out), in order."""
        wanted = set(actions)
        seen: dict[Path, None] = {}
        for event in self.events:
            if event.action in wanted:
                seen.setdefault(event.path, None)
        return list(seen)

    def outside(
        self, allowed: Iterable[str | os.PathLike[str]] = (), ignore: Iterable[str] = ("/dev/*",)
    ) -> list[Path]:
        """Paths written or created that are neither allowed (see :func:`paths.is_allowed_write`,
        plus folders leading to an allowed path) nor matched by an ``ignore`` glob."""
        allowed_paths = [Path(p) for p in allowed]
        targets = [paths.consent_path(), paths.audit_path(), *allowed_paths]
        patterns = tuple(ignore)
        found = []
        for path in self.paths():
            if any(fnmatch.fnmatch(str(path), pattern) for pattern in patterns):
                continue
            if paths.is_allowed_write(path, allowed_paths):
                continue
            if any(path.resolve() in t.resolve().parents for t in targets):
                continue
            found.append(path)
        return found


def _as_path(value: object) -> Path | None:
    if isinstance(value, str | bytes | os.PathLike):
        name = os.fsdecode(value)
        return Path(os.path.abspath(name))
    return None  # a file descriptor: opened elsewhere


def _write_hook(event: str, args: tuple[object, ...]) -> None:
    if not WriteRecorder._active:
        return
    action: str | None = None
    target: object = None
    if event == "open" and len(args) >= 3:
        path, mode, flags = args[0], args[1], args[2]
        if isinstance(mode, str):
            writing = any(c in mode for c in "wax+")
        else:
            writing = isinstance(flags, int) and bool(flags & _WRITE_FLAGS)
        if writing:
            action, target = "open", path
    elif event == "os.rename" and len(args) >= 2:
        action, target = "rename", args[1]
    elif event in _PATH_EVENTS and args:
        action, target = _PATH_EVENTS[event], args[0]
    if action is None:
        return
    path = _as_path(target)
    if path is None:
        return
    record = WriteEvent(action, path, threading.current_thread().name, _caller())
    for recorder in list(WriteRecorder._active):
        recorder.events.append(record)


def _caller() -> str:
    frame = sys._getframe(1)
    while frame is not None and (
        frame.f_code.co_filename == __file__ or frame.f_code.co_filename.startswith("<frozen ")
    ):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return ""
    return f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}"


@dataclass(frozen=True)
class IsolatedDirs:
    """Fresh folders standing in for a user's home, config, cache, data and temp."""

    home: Path
    config: Path
    cache: Path
    data: Path
    state: Path
    tmp: Path
    work: Path

    @property
    def roots(self) -> list[Path]:
        """Every folder, to watch (they all sit under ``home``'s parent)."""
        return [self.home, self.config, self.cache, self.data, self.state, self.tmp, self.work]

    @property
    def env(self) -> dict[str, str]:
        """The environment variables that point a process at these folders."""
        return {
            "HOME": str(self.home),
            "XDG_CONFIG_HOME": str(self.config),
            "XDG_CACHE_HOME": str(self.cache),
            "XDG_DATA_HOME": str(self.data),
            "XDG_STATE_HOME": str(self.state),
            "TMPDIR": str(self.tmp),
            "TMP": str(self.tmp),
            "TEMP": str(self.tmp),
        }

    UNSET: ClassVar[tuple[str, ...]] = (
        "EMOAPP_CONFIG_DIR",
        "EMOAPP_MODELS_DIR",
        "EMOAPP_PROFILES",
        "HF_HOME",
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "TRANSFORMERS_CACHE",
        "TORCH_HOME",
        "TORCHINDUCTOR_CACHE_DIR",
        "TRITON_CACHE_DIR",
        "NUMBA_CACHE_DIR",
        "XDG_RUNTIME_DIR",
    )
    """Variables that would send writes elsewhere; a run in these folders has them unset."""

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: os.environ) pointed at these folders."""
        env = {
            k: v for k, v in (os.environ if base is None else base).items() if k not in self.UNSET
        }
        env.update(self.env)
        return env


def isolated_user_dirs(base: str | os.PathLike[str]) -> IsolatedDirs:
    """Create home, config, cache, data, state, tmp and work folders under ``base``."""
    root = Path(base).resolve()
    dirs = IsolatedDirs(
        home=root / "home",
        config=root / "config",
        cache=root / "cache",
        data=root / "data",
        state=root / "state",
        tmp=root / "tmp",
        work=root / "work",
    )
    for folder in dirs.roots:
        folder.mkdir(parents=True, exist_ok=True)
    return dirs
