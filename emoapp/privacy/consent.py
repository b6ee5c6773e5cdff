"""Consent: the versioned text a person reads, what they granted, and the gate that keeps
a camera or microphone shut until they have.

**The text.** ``resources/consent/consent-vN.toml`` (found through
:func:`emoapp.registry.data_dir`, so it works from a checkout and from a wheel) says, per
modality, what is captured, that processing is local, what is kept (nothing, by default)
and how to revoke. The highest version is the current one. A grant records the version
it was given for; when the text gets a new version, earlier grants stop counting and the
person is asked again.

**What needs a grant.** The camera (face) and the microphone (voice): they capture on
their own once opened. Typed text does not: a person types and submits it deliberately,
nothing is captured behind their back, and it is analysed in memory and never written
(an export includes it only when the person ticks "include text"). Whether a modality
needs a grant is part of the consent text (``requires_grant``), so a future version can
change it.

**The store.** :class:`ConsentStore` keeps grants in ``consent.json`` in the config folder
(:func:`emoapp.privacy.paths.consent_path`; ``EMOAPP_CONFIG_DIR`` overrides), writes it
atomically, records every change in the audit log, and notifies listeners (the live
runtime closes a device when its consent is revoked). A damaged file counts as no
grants. Another emoapp process's changes are picked up on the next check.

**The gate.** :class:`ConsentGate` is what hands out consent: a real camera or
microphone source carries the run's gate (``CameraSource(..., consent=gate)``, or
``gate.open(source)`` hands it over) and asks it in its own ``open()``, so a device
opens with a grant or not at all, whoever calls it; a device source given no gate
refuses too (:mod:`emoapp.capture.base`). ``gate.require(modality, source)`` raises
:class:`ConsentRequiredError` when the source is a real device (``source.is_device``)
and consent is missing; replayed files need none.
On the command line, ``--allow-camera`` / ``--allow-mic`` count as consent for that run
only: recorded in the audit log when the device opens, never saved as a grant.

**Consent that expires.** ``--allow-camera-for DURATION`` / ``--allow-mic-for DURATION``
(and the consent dialog's "Allow for 10 minutes", :meth:`ConsentGate.allow_for`) allow a
modality for that long only. :meth:`ConsentGate.expire_due`, asked by the runner (about
ten times a second headless, four times a second in the window), takes the consent back
once its time is up, records a ``consent-expired`` line in the audit log, and returns the
modality, which the caller withdraws through the session's one withdrawal path
(:meth:`emoapp.live.session.LiveSession.withdraw`). The time counts from when the run
starts (:meth:`ConsentGate.start_expiry_clock`) or, for the dialog, from the answer; it
limits the modality whatever feeds it (a file replayed in a device's place included).
"""

from __future__ import annotations

import argparse
import datetime as dt
import enum
import functools
import hashlib
import json
import logging
import os
import re
import threading
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from emoapp.core import clock
from emoapp.core.errors import ConsentRequiredError, EmoappError
from emoapp.core.messages import Modality
from emoapp.privacy import paths
from emoapp.privacy.atomic import atomic_write_text
from emoapp.privacy.audit import AuditLog, iso_utc, utc_now

log = logging.getLogger(__name__)

STORE_FORMAT = 1
FILE_MODE = 0o600
_TEXT_FILE = re.compile(r"^consent-v(\d+)\.toml$")
_SECTION_KEYS = ("title", "captures", "processing", "kept", "revoke")

DEVICE_NAME: dict[Modality, str] = {Modality.FACE: "camera", Modality.VOICE: "microphone"}
"""What a person calls the device behind a modality."""
ALLOW_FLAG: dict[Modality, str] = {Modality.FACE: "--allow-camera", Modality.VOICE: "--allow-mic"}
"""The command-line flag that grants a device for one run."""
ALLOW_FOR_FLAG: dict[Modality, str] = {
    Modality.FACE: "--allow-camera-for",
    Modality.VOICE: "--allow-mic-for",
}
"""The command-line flag that grants a device for part of one run."""

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(hours?|h|minutes?|min|m|seconds?|sec|s)?\s*")
_UNIT_S = {"h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(text: str) -> float:
    """Seconds from ``4s``, ``90``, ``10m``, ``1h30m``, ``2.5 min`` (a bare number is
    seconds). Raises ConsentError for anything else, or a duration that is not positive."""
    raw = str(text).strip().lower()
    pos, total = 0, 0.0
    while pos < len(raw):
        match = _DURATION_PART.match(raw, pos)
        if match is None:
            break
        unit = (match.group(2) or "s")[0]
        total += float(match.group(1)) * _UNIT_S[unit]
        pos = match.end()
    if not raw or pos != len(raw):
        raise ConsentError(f"{text!r} is not a duration: use e.g. 30s, 10m or 1h30m")
    if not total > 0 or total == float("inf"):
        raise ConsentError(f"a consent duration must be positive, not {text!r}")
    return total


def format_duration(seconds: float) -> str:
    """``4s``, ``10m``, ``1h30m``: the inverse of :func:`parse_duration`, for messages."""
    if seconds < 60 or seconds % 60:
        return f"{seconds:g}s"
    minutes = int(seconds // 60)
    hours, minutes = divmod(minutes, 60)
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes or not hours else "")


_ALIASES = {
    "face": Modality.FACE,
    "camera": Modality.FACE,
    "video": Modality.FACE,
    "voice": Modality.VOICE,
    "microphone": Modality.VOICE,
    "mic": Modality.VOICE,
    "audio": Modality.VOICE,
    "text": Modality.TEXT,
}


class ConsentError(EmoappError):
    """The consent text is missing or malformed, or a consent change cannot be made."""


def parse_modality(name: str | Modality) -> Modality:
    """A modality from its name or its device's name (``camera``, ``mic``, ``voice``...)."""
    if isinstance(name, Modality):
        return name
    try:
        return _ALIASES[str(name).strip().lower()]
    except KeyError:
        raise ConsentError(
            f"unknown modality {name!r}: use camera (face), microphone (voice) or text"
        ) from None


# --- the text --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsentSection:
    """What the consent text says about one modality."""

    modality: Modality
    title: str
    captures: str
    processing: str
    kept: str
    revoke: str
    requires_grant: bool


@dataclass(frozen=True)
class ConsentText:
    """One version of the consent text."""

    version: str
    date: str
    title: str
    intro: str
    local: str
    kept: str
    sections: dict[Modality, ConsentSection]
    source: Path
    sha256: str

    def requires_grant(self, modality: Modality) -> bool:
        return self.sections[parse_modality(modality)].requires_grant

    @property
    def granted_modalities(self) -> tuple[Modality, ...]:
        """The modalities that need a grant, in order."""
        return tuple(m for m in Modality if self.sections[m].requires_grant)

    def as_markdown(self, modalities: Iterable[Modality | str] | None = None) -> str:
        """The text for a person to read (all modalities, or the ones named)."""
        chosen = (
            [parse_modality(m) for m in modalities] if modalities is not None else list(Modality)
        )
        parts = [f"# {self.title}", "", self.intro, "", self.local, "", self.kept]
        for modality in chosen:
            section = self.sections[modality]
            parts += [
                "",
                f"## {section.title}",
                "",
                f"- **What is captured:** {section.captures}",
                f"- **Where it is processed:** {section.processing}",
                f"- **What is kept:** {section.kept}",
                f"- **How to revoke:** {section.revoke}",
            ]
            if not section.requires_grant:
                parts.append("- Needs no separate grant.")
        parts += ["", f"Consent text version {self.version} ({self.date})."]
        return "\n".join(parts) + "\n"


def consent_folder() -> Path:
    """Where the consent texts live (``resources/consent``)."""
    from emoapp.registry import data_dir

    return data_dir("resources") / "consent"


def available_versions(folder: Path | None = None) -> list[str]:
    """The versions of the consent text, oldest first."""
    folder = folder or consent_folder()
    numbers = sorted(
        int(match.group(1))
        for path in (folder.iterdir() if folder.is_dir() else ())
        if (match := _TEXT_FILE.match(path.name))
    )
    return [str(n) for n in numbers]


def load_consent_text(version: str | None = None, folder: Path | None = None) -> ConsentText:
    """A version of the consent text (the current one, the highest, by default)."""
    folder = folder or consent_folder()
    versions = available_versions(folder)
    if not versions:
        raise ConsentError(f"no consent text (consent-vN.toml) in {folder}")
    chosen = versions[-1] if version is None else str(version)
    if chosen not in versions:
        raise ConsentError(f"consent text version {chosen} does not exist in {folder}")
    return _read_text(folder / f"consent-v{chosen}.toml")


@functools.cache
def _read_text(path: Path) -> ConsentText:
    try:
        data = path.read_bytes()
        raw = tomllib.loads(data.decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConsentError(f"consent text {path} is unreadable: {exc}") from exc
    expected = _TEXT_FILE.match(path.name)
    version = str(raw.get("version", ""))
    if expected is None or version != expected.group(1):
        raise ConsentError(f"consent text {path}: version {version!r} does not match its name")
    try:
        sections = {}
        for modality in Modality:
            fields = raw["modalities"][modality.value]
            sections[modality] = ConsentSection(
                modality=modality,
                **{key: _clean(fields[key]) for key in _SECTION_KEYS},
                requires_grant=bool(fields["requires_grant"]),
            )
        return ConsentText(
            version=version,
            date=str(raw["date"]),
            title=_clean(raw["title"]),
            intro=_clean(raw["intro"]),
            local=_clean(raw["local"]),
            kept=_clean(raw["kept"]),
            sections=sections,
            source=path,
            sha256=_content_hash(raw),
        )
    except (KeyError, TypeError) as exc:
        raise ConsentError(f"consent text {path} lacks {exc}") from exc


def _content_hash(raw: dict[str, Any]) -> str:
    """SHA-256 of what the text says (comments and line breaks do not count)."""
    canonical = json.dumps(raw, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(" ".join(canonical.split()).encode("utf-8")).hexdigest()


def _clean(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"a string, not {value!r}")
    return " ".join(value.split())


# --- the store -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConsentRecord:
    """The latest consent decision for one modality."""

    modality: Modality
    granted: bool
    version: str
    time: str
    """ISO 8601, UTC."""


class ConsentStatus(enum.StrEnum):
    """Where a modality's consent stands (for the gate's message and the window)."""

    NOT_NEEDED = "not needed"
    GRANTED = "granted"
    NEVER_ASKED = "not granted"
    REVOKED = "revoked"
    OUTDATED = "granted for an earlier consent text"


@dataclass(frozen=True)
class ConsentChange:
    """What listeners hear: a modality's consent was granted or revoked."""

    modality: Modality
    granted: bool
    version: str
    time: str
    via: str


ConsentListener = Callable[[ConsentChange], None]


class ConsentStore:
    """Per-modality grants kept in ``consent.json`` (see the module docstring).

    Thread-safe: reads take a short lock; changes are serialised, and listeners are
    called after the change, outside the state lock, on the thread that made it (or that
    noticed another process's change). A listener may call back into the store.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str] | None = None,
        *,
        text: ConsentText | None = None,
        audit: AuditLog | None = None,
        now: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        self.folder = Path(folder) if folder is not None else paths.config_dir()
        self.path = self.folder / paths.CONSENT_FILE
        self.text = text or load_consent_text()
        self.audit = audit if audit is not None else AuditLog(self.folder / paths.AUDIT_FILE)
        self._now = now
        self._lock = threading.Lock()
        self._change_lock = threading.RLock()
        self._listeners: list[ConsentListener] = []
        self._records: dict[Modality, ConsentRecord] = {}
        self._file_stamp: tuple[int, int, int] | None = None
        self.problem: str | None = None
        """Why the stored file could not be read (then nothing counts as granted)."""
        with self._lock:
            self._load()

    # -- reading ------------------------------------------------------------------------

    def record(self, modality: Modality | str) -> ConsentRecord | None:
        modality = parse_modality(modality)
        self._refresh()
        with self._lock:
            return self._records.get(modality)

    def records(self) -> dict[Modality, ConsentRecord]:
        self._refresh()
        with self._lock:
            return dict(self._records)

    def status(self, modality: Modality | str) -> ConsentStatus:
        modality = parse_modality(modality)
        if not self.text.requires_grant(modality):
            return ConsentStatus.NOT_NEEDED
        record = self.record(modality)
        if record is None:
            return ConsentStatus.NEVER_ASKED
        if not record.granted:
            return ConsentStatus.REVOKED
        if record.version != self.text.version:
            return ConsentStatus.OUTDATED
        return ConsentStatus.GRANTED

    def is_granted(self, modality: Modality | str) -> bool:
        """True when the modality needs no grant, or was granted for the current text."""
        return self.status(modality) in (ConsentStatus.NOT_NEEDED, ConsentStatus.GRANTED)

    # -- changing -----------------------------------------------------------------------

    def grant(self, modality: Modality | str, via: str = "window") -> bool:
        """Grant a modality for the current consent text. False when nothing changed.

        The grant is saved before it counts: a grant that cannot be saved raises
        ConsentError and does not count."""
        modality = self._needs_grant(modality)
        with self._change_lock:
            if self.status(modality) is ConsentStatus.GRANTED:
                return False
            record = ConsentRecord(modality, True, self.text.version, iso_utc(self._now()))
            try:
                others = self._persist(record)
            except OSError as error:
                raise ConsentError(
                    f"{DEVICE_NAME[modality]} consent not saved to {self.path}: "
                    f"{error.strerror or error}; pass {ALLOW_FLAG[modality]} to allow it "
                    "for one run"
                ) from error
            self.audit.consent_granted(modality, record.version, via)
            self._notify(ConsentChange(modality, True, record.version, record.time, via))
            for change in others:
                self._notify(change)
        return True

    def revoke(self, modality: Modality | str, via: str = "window") -> bool:
        """Revoke a modality. Takes effect at once (listeners are told before the file is
        written); a file that cannot be written then raises ConsentError, and the
        revocation still holds for this process. False when it was not granted."""
        modality = self._needs_grant(modality)
        with self._change_lock:
            self._refresh()
            with self._lock:
                current = self._records.get(modality)
                if current is None or not current.granted:
                    return False
                record = ConsentRecord(modality, False, self.text.version, iso_utc(self._now()))
                self._records = {**self._records, modality: record}
            self._notify(ConsentChange(modality, False, record.version, record.time, via))
            self.audit.consent_revoked(modality, record.version, via)
            try:
                others = self._persist(record)
            except OSError as error:
                raise ConsentError(
                    f"{DEVICE_NAME[modality]} consent revoked for now, but not saved to "
                    f"{self.path}: {error.strerror or error}"
                ) from error
            for change in others:
                self._notify(change)
        return True

    def revoke_all(self, via: str = "window") -> list[Modality]:
        """Revoke every granted modality; the ones that changed."""
        with self._change_lock:
            return [m for m in self.text.granted_modalities if self.revoke(m, via)]

    # -- listeners ----------------------------------------------------------------------

    def add_listener(self, listener: ConsentListener) -> Callable[[], None]:
        """Call ``listener`` on every change; returns a function that unsubscribes it."""
        with self._lock:
            self._listeners.append(listener)

        def remove() -> None:
            self.remove_listener(listener)

        return remove

    def remove_listener(self, listener: ConsentListener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def _notify(self, change: ConsentChange) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(change)
            except Exception:  # one broken listener must not keep a revocation from the rest
                log.exception("consent listener %r failed on %s", listener, change)

    # -- the file -----------------------------------------------------------------------

    def reload(self) -> list[ConsentChange]:
        """Read the file again (another process may have changed it); listeners hear
        about every modality whose grant changed."""
        with self._change_lock:
            with self._lock:
                before = dict(self._records)
                self._load()
                changes = self._differences(before, self._records)
            for change in changes:
                self._notify(change)
            return changes

    def _persist(self, record: ConsentRecord) -> list[ConsentChange]:
        """Write ``record`` over what the file holds now, so that another process's
        changes to other modalities are kept rather than overwritten, and adopt the
        result. Returns those other changes, for the listeners. Caller holds
        ``_change_lock``; raises OSError when the file cannot be written."""
        with self._lock:
            before = dict(self._records)
            current, _ = self._read_file()
            merged = {**current, record.modality: record}
            self._save(merged)
            self._records = merged
            before[record.modality] = record
            return self._differences(before, merged)

    def _differences(
        self, before: dict[Modality, ConsentRecord], after: dict[Modality, ConsentRecord]
    ) -> list[ConsentChange]:
        changes = []
        for modality in self.text.granted_modalities:
            old, new = before.get(modality), after.get(modality)
            if self._effective(old) != self._effective(new):
                changes.append(
                    ConsentChange(
                        modality,
                        self._effective(new),
                        new.version if new else self.text.version,
                        new.time if new else iso_utc(self._now()),
                        "another emoapp process" if new else "consent file removed",
                    )
                )
        return changes

    def _effective(self, record: ConsentRecord | None) -> bool:
        return record is not None and record.granted and record.version == self.text.version

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        except OSError:
            return (0, 0, 0)
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _refresh(self) -> None:
        """Reload when the file changed under us (a cheap stat per check). Never waits:
        while another thread is making a change (and its listeners run, perhaps joining
        the thread that asks), the check answers from memory."""
        if self._stamp() == self._file_stamp:
            return
        if self._change_lock.acquire(blocking=False):
            try:
                self.reload()
            finally:
                self._change_lock.release()

    def _read_file(self) -> tuple[dict[Modality, ConsentRecord], str | None]:
        """The records the file holds, and why it could not be read (then none)."""
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}, None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            return {}, f"consent file {self.path} is unreadable ({exc}); consent is asked again"
        try:
            return _parse_records(raw), None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            return {}, f"consent file {self.path} is malformed ({exc}); consent is asked again"

    def _load(self) -> None:
        """Read the file into ``_records`` (caller holds ``_lock``)."""
        self._file_stamp = self._stamp()
        self._records, self.problem = self._read_file()
        if self.problem:
            log.warning("%s", self.problem)

    def _save(self, records: dict[Modality, ConsentRecord]) -> None:
        """Write ``records`` atomically (caller holds ``_lock``)."""
        data = {
            "format": STORE_FORMAT,
            "modalities": {
                m.value: {"granted": r.granted, "version": r.version, "time": r.time}
                for m, r in sorted(records.items())
            },
        }
        if not self.folder.exists():
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(data, indent=2) + "\n", mode=FILE_MODE)
        self._file_stamp = self._stamp()

    def _needs_grant(self, modality: Modality | str) -> Modality:
        modality = parse_modality(modality)
        if not self.text.requires_grant(modality):
            raise ConsentError(f"{modality.value} needs no consent: it is typed deliberately")
        return modality


def _parse_records(raw: Any) -> dict[Modality, ConsentRecord]:
    if raw.get("format") != STORE_FORMAT:
        raise ValueError(f"unknown format {raw.get('format')!r}")
    records = {}
    for name, fields in raw["modalities"].items():
        try:
            modality = Modality(name)
        except ValueError:
            continue  # a modality a later emoapp knows: not ours to judge
        granted = fields["granted"]
        if not isinstance(granted, bool):
            raise TypeError(f"{name}.granted must be true or false")
        records[modality] = ConsentRecord(
            modality, granted, str(fields["version"]), str(fields["time"])
        )
    return records


# --- the gate --------------------------------------------------------------------------------


class DeviceSource(Protocol):
    """What the gate needs of a source (see :class:`emoapp.capture.base.Source`)."""

    is_device: bool

    def open(self) -> None: ...


@dataclass(frozen=True)
class _AnyDevice:
    is_device: bool = True


_ANY_DEVICE = _AnyDevice()


class ConsentGate:
    """Lets a device source open only with consent (see the module docstring).

    ``allowed_for_run``: modalities allowed by a command-line flag for this run only.
    ``expire_after``: of those, the ones allowed for a time only (seconds, counted from
    :meth:`start_expiry_clock`, first called here); ``now``: the clock they count on.
    """

    def __init__(
        self,
        store: ConsentStore,
        allowed_for_run: Iterable[Modality | str] = (),
        expire_after: Mapping[Modality, float] | None = None,
        now: Callable[[], float] = clock.now,
    ) -> None:
        self.store = store
        limits = {parse_modality(m): float(s) for m, s in (expire_after or {}).items()}
        for seconds in limits.values():
            if not seconds > 0:
                raise ConsentError("a consent duration must be positive")
        self._allowed_for_run = frozenset(parse_modality(m) for m in allowed_for_run) | set(limits)
        self._recorded: set[Modality] = set()
        self._lock = threading.Lock()
        self._now = now
        self._limits: dict[Modality, tuple[float, str]] = {
            m: (seconds, f"{ALLOW_FOR_FLAG[m]} {format_duration(seconds)}")
            for m, seconds in limits.items()
        }
        self._deadlines: dict[Modality, float] = {}
        self.start_expiry_clock()

    # -- consent for a time ------------------------------------------------------------

    def start_expiry_clock(self) -> None:
        """Count the command line's durations from now (the run starts)."""
        now = self._now()
        with self._lock:
            self._deadlines = {
                m: now + seconds
                for m, (seconds, _) in self._limits.items()
                if m in self._allowed_for_run
            }

    def allow_for(self, modality: Modality | str, seconds: float, via: str = "window") -> None:
        """Allow ``modality`` for ``seconds`` from now, for this run only (the consent
        dialog's "Allow for 10 minutes"): recorded in the audit log now, never saved."""
        modality = parse_modality(modality)
        if not seconds > 0:
            raise ConsentError("a consent duration must be positive")
        how = f"{via}, for {format_duration(seconds)}"
        with self._lock:
            self._allowed_for_run = self._allowed_for_run | {modality}
            self._limits[modality] = (float(seconds), how)
            self._deadlines[modality] = self._now() + float(seconds)
            self._recorded.add(modality)
        self.store.audit.consent_for_run(modality, self.store.text.version, how)

    def expires_in(self, modality: Modality | str) -> float | None:
        """Seconds until ``modality``'s consent for a time runs out (None: no limit)."""
        modality = parse_modality(modality)
        with self._lock:
            deadline = self._deadlines.get(modality)
        return None if deadline is None else max(0.0, deadline - self._now())

    def expire_due(self) -> list[Modality]:
        """Take back every consent whose time is up, each recorded in the audit log as
        expired; returns those modalities, for the caller to withdraw now."""
        now = self._now()
        expired: list[tuple[Modality, str]] = []
        with self._lock:
            for m, deadline in list(self._deadlines.items()):
                if deadline <= now:
                    del self._deadlines[m]
                    self._allowed_for_run = self._allowed_for_run - {m}
                    expired.append((m, self._limits.get(m, (0.0, "a duration"))[1]))
        for m, via in expired:
            self.store.audit.consent_expired(m, self.store.text.version, via)
        return [m for m, _ in expired]

    # -- consent for the run -----------------------------------------------------------

    @property
    def allowed_for_run(self) -> frozenset[Modality]:
        """The modalities a command-line flag allows for this run (until withdrawn)."""
        return self._allowed_for_run

    def withdraw_for_run(self, modality: Modality | str, via: str = "window") -> bool:
        """Take back a flag's consent for the rest of the run (the window's "Revoke"),
        recorded in the audit log. False when the flag was not given."""
        modality = parse_modality(modality)
        with self._lock:
            if modality not in self._allowed_for_run:
                return False
            self._allowed_for_run = self._allowed_for_run - {modality}
            self._deadlines.pop(modality, None)
        self.store.audit.consent_revoked(modality, self.store.text.version, via)
        return True

    def is_allowed(self, modality: Modality | str) -> bool:
        """Whether a device of this modality may open now."""
        modality = parse_modality(modality)
        return modality in self._allowed_for_run or self.store.is_granted(modality)

    def refusal(self, modality: Modality | str) -> str | None:
        """None when a device of ``modality`` may open now (a flag's use is recorded, as
        when a device opens: call this only right before opening one); otherwise the
        one-line reason it may not."""
        try:
            self.require(modality, _ANY_DEVICE)
        except ConsentRequiredError as refused:
            return str(refused)
        return None

    def require(self, modality: Modality | str, source: object) -> None:
        """Raise ConsentRequiredError unless ``source`` may open.

        A source that is not a device (a replayed file) always may; one that does not
        say counts as a device."""
        modality = parse_modality(modality)
        if not getattr(source, "is_device", True):
            return
        if modality in self._allowed_for_run:
            self._record_run_consent(modality)
            return
        status = self.store.status(modality)
        if status in (ConsentStatus.GRANTED, ConsentStatus.NOT_NEEDED):
            return
        device = DEVICE_NAME.get(modality, modality.value)
        flag = ALLOW_FLAG.get(modality)
        how = "grant it in the window" + (f" or pass {flag}" if flag else "")
        if status is ConsentStatus.OUTDATED:
            why = f"the consent text changed (now version {self.store.text.version})"
            how = how.replace("grant it", "grant it again")
        elif status is ConsentStatus.REVOKED:
            why = "consent was revoked"
        else:
            why = "no consent given"
        raise ConsentRequiredError(modality, f"{device} not opened: {why}; {how}")

    def bind(self, source: Any) -> Any:
        """Hand this gate to a device source that asks for consent itself (it has a
        ``consent`` attribute); returns the source."""
        if getattr(source, "is_device", True) and hasattr(source, "consent"):
            source.consent = self
        return source

    def open(self, source: Any, modality: Modality | str | None = None) -> None:
        """Check consent, then open ``source`` (its ``modality`` unless one is given).
        A device source that asks for consent itself is handed this gate and asks it."""
        self.require(modality if modality is not None else source.modality, source)
        self.bind(source)
        source.open()

    def _record_run_consent(self, modality: Modality) -> None:
        with self._lock:
            if modality in self._recorded:
                return  # a device retried after a failure is the same consent
            self._recorded.add(modality)
        limit = self._limits.get(modality)
        self.store.audit.consent_for_run(
            modality,
            self.store.text.version,
            limit[1] if limit is not None else ALLOW_FLAG.get(modality, "flag"),
        )


# --- command-line helpers --------------------------------------------------------------------


def add_consent_options(parser: argparse.ArgumentParser) -> None:
    """``--allow-camera`` and ``--allow-mic``: consent for this run only."""
    group = parser.add_argument_group(
        "consent (a camera or microphone opens only with consent; replayed files need none)"
    )
    group.add_argument(
        "--allow-camera",
        action="store_true",
        help="consent to opening the camera for this run only (not saved; recorded in the "
        "audit log). Frames are analysed on this computer and never written.",
    )
    group.add_argument(
        "--allow-mic",
        action="store_true",
        help="consent to opening the microphone for this run only (not saved; recorded in "
        "the audit log). Sound is analysed on this computer and never written.",
    )
    group.add_argument(
        "--allow-camera-for",
        metavar="DURATION",
        help="as --allow-camera, for DURATION only (e.g. 30s, 10m, 1h30m), counted from the "
        "start of the run: then the face modality is withdrawn (camera closed, what it "
        "gave dropped; a video file in its place stops too) and the expiry is audited",
    )
    group.add_argument(
        "--allow-mic-for",
        metavar="DURATION",
        help="as --allow-mic, for DURATION only: then the voice modality is withdrawn "
        "(microphone closed, heard words and what was made from them dropped; an audio "
        "file in its place stops too) and the expiry is audited",
    )


def durations_from_args(args: argparse.Namespace) -> dict[Modality, float]:
    """``--allow-camera-for`` / ``--allow-mic-for``, in seconds (ConsentError if bad)."""
    limits = {}
    for modality, attr in ((Modality.FACE, "allow_camera_for"), (Modality.VOICE, "allow_mic_for")):
        value = getattr(args, attr, None)
        if value is not None:
            try:
                limits[modality] = parse_duration(value)
            except ConsentError as error:
                raise ConsentError(f"{ALLOW_FOR_FLAG[modality]}: {error}") from None
    return limits


def consent_from_args(args: argparse.Namespace, store: ConsentStore | None = None) -> ConsentGate:
    """The gate for a command: the saved grants plus this run's ``--allow-*`` flags
    (``--allow-*-for``: for a time)."""
    allowed = [
        modality
        for modality, attr in ((Modality.FACE, "allow_camera"), (Modality.VOICE, "allow_mic"))
        if getattr(args, attr, False)
    ]
    limits = durations_from_args(args)
    return ConsentGate(store if store is not None else ConsentStore(), allowed, limits)
