"""Every place emoapp may write to, named in one module.

emoapp writes nothing by default except two small files in its config folder, both of
which hold choices and events, never content:

- ``consent.json``: which modalities the person granted, for which consent text version,
  and when (:mod:`emoapp.privacy.consent`);
- ``audit.jsonl``: consent changes and exports, what and when, never content, capped at
  about 1 MB (:mod:`emoapp.privacy.audit`).

The config folder is ``EMOAPP_CONFIG_DIR`` when set, else ``$XDG_CONFIG_HOME/emoapp``,
else ``~/.config/emoapp`` (the same folder on every platform: emoapp does not depend on
platformdirs). Everything else is written only when the person asks for it:

- the window's settings (``QSettings``, organisation and application "emoapp"): Qt picks
  the place: ``$XDG_CONFIG_HOME/emoapp/emoapp.conf`` on Linux, a plist
  (``~/Library/Preferences/com.emoapp.emoapp.plist``) on macOS, the registry
  (``HKEY_CURRENT_USER\\Software\\emoapp\\emoapp``) on Windows; choices only;
- the models folder (:func:`emoapp.modelstore.models_dir`), written only by
  ``emoapp models pull`` or a command run with ``--download``;
- the CPU precision record (:func:`emoapp.encoders.precision.record_path`), written only
  by ``emoapp bench``;
- the files named by ``--out`` or chosen in the export dialog;
- the timeline of ``emoapp analyze RECORDING`` run on a terminal without ``--out``: a new
  folder in the system's temporary folder, private to the user
  (:func:`terminal_timeline_path`), named on the terminal.

:func:`stored_locations` lists these for the README's privacy section and for a "what is
stored" view; :func:`is_allowed_write` tells a test whether a path is one of them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

CONSENT_FILE = "consent.json"
AUDIT_FILE = "audit.jsonl"
QSETTINGS_FILE = "emoapp.conf"
"""The file name Qt gives the window's settings on Linux (inside the config folder when
``XDG_CONFIG_HOME`` is the default; Qt follows ``XDG_CONFIG_HOME`` too)."""


def config_dir() -> Path:
    """emoapp's config folder (see the module docstring). Not created here."""
    if env := os.environ.get("EMOAPP_CONFIG_DIR"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "emoapp"


def consent_path() -> Path:
    """Where the consent grants are kept."""
    return config_dir() / CONSENT_FILE


def audit_path() -> Path:
    """Where the audit log is kept."""
    return config_dir() / AUDIT_FILE


def qsettings_path_linux() -> Path:
    """Where Qt keeps the window's settings on Linux (Qt decides; this is its rule:
    ``$XDG_CONFIG_HOME/ORGANISATION/APPLICATION.conf``)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "emoapp" / QSETTINGS_FILE


def terminal_timeline_path(media: str | os.PathLike[str]) -> Path:
    """A new private folder (mode 0700) in the system's temporary folder, and the
    timeline file inside it that ``emoapp analyze`` writes when run on a terminal without
    ``--out``: ``<tmp>/emoapp-XXXX/<recording's name>.timeline.jsonl``."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="emoapp-"))
    return folder / f"{Path(media).stem}.timeline.jsonl"


def ensure_config_dir() -> Path:
    """Create the config folder (private to the user when emoapp creates it)."""
    folder = config_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


@dataclass(frozen=True)
class StoredLocation:
    """One place emoapp may write, and what it keeps there."""

    name: str
    path: Path | None
    """None when the place is not a file path (the Windows registry) or is chosen each time."""
    holds: str
    written_when: str
    content: bool
    """True when the place can hold captured content (text, media): only explicit exports."""
    remove: str


def stored_locations(qsettings_file: str | os.PathLike[str] | None = None) -> list[StoredLocation]:
    """Every place emoapp may write, for the README and a "what is stored" view.

    ``qsettings_file`` is what ``QSettings.fileName()`` says (the window passes it); without
    it the Linux location is named.
    """
    from emoapp.encoders.precision import record_path as precision_record_path
    from emoapp.modelstore import models_dir

    if qsettings_file is not None:
        settings_path: Path | None = Path(qsettings_file)
        settings_note = ""
    else:
        settings_path = qsettings_path_linux()
        settings_note = (
            " (Linux; macOS: ~/Library/Preferences/com.emoapp.emoapp.plist; Windows: registry "
            "HKEY_CURRENT_USER\\Software\\emoapp\\emoapp; Qt decides)"
        )
    return [
        StoredLocation(
            name="consent",
            path=consent_path(),
            holds="per modality: granted or not, consent text version, time (UTC)",
            written_when="you grant or revoke consent",
            content=False,
            remove="revoke in the window, or delete the file",
        ),
        StoredLocation(
            name="audit log",
            path=audit_path(),
            holds="consent changes and exports: what, when, which fields, row count; "
            "never content; about 1 MB at most (oldest lines dropped)",
            written_when="consent changes, an export (the export dialog, or `emoapp live "
            "--out FILE`), a device opened with --allow-camera/--allow-mic",
            content=False,
            remove="delete the file",
        ),
        StoredLocation(
            name="voice calibration",
            path=config_dir() / "voice-calibration.json",
            holds='"calibrate to me": averaged voice features of your neutral reading '
            "(numbers the voice model adapts with; no sound, no words), which model, how "
            "many seconds, when",
            written_when="only when you record a voice calibration with microphone consent",
            content=False,
            remove="delete it in the window or with `emoapp voice-calibration delete`; "
            "revoking microphone consent deletes it",
        ),
        StoredLocation(
            name="window settings",
            path=settings_path,
            holds="choices only: profile, the camera and microphone picked (a device, or "
            "the path of a file replayed in its place), fusion settings, privacy preview "
            "mode, which modalities were on, window layout" + settings_note,
            written_when="you change a setting in the window",
            content=False,
            remove="delete the file (or the registry key)",
        ),
        StoredLocation(
            name="models",
            path=models_dir(),
            holds="model weights and emoapp's checksum manifests (a Hugging Face hub cache)",
            written_when="only `emoapp models pull`, or a command run with --download",
            content=False,
            remove="delete the model folders (models--ORG--NAME)",
        ),
        StoredLocation(
            name="precision measurements",
            path=precision_record_path(),
            holds="per CPU model, torch version and model: forward times and agreement of "
            "float32, bfloat16 and int8 (what --dtype auto reads); no content",
            written_when="only `emoapp bench` (its precision part, or --profile cpu)",
            content=False,
            remove="delete the file (--dtype auto then runs float32 on the CPU)",
        ),
        StoredLocation(
            name="exports",
            path=None,
            holds="timeline rows: scores only; typed text or media references only when "
            "you tick them in the export dialog",
            written_when="only an explicit --out FILE or an export you start",
            content=True,
            remove="delete the file you chose",
        ),
        StoredLocation(
            name="terminal timelines",
            path=None,
            holds="timeline rows (scores only) of `emoapp analyze RECORDING` run on a "
            "terminal without --out, in a private emoapp-XXXX folder of the system's "
            "temporary folder; the path is printed",
            written_when="only `emoapp analyze RECORDING` on a terminal without --out "
            "(also the first `./run` on a machine with no display)",
            content=False,
            remove="delete the folder printed (the system clears its temporary folder too)",
        ),
    ]


def format_stored_locations(locations: Iterable[StoredLocation] | None = None) -> str:
    """The locations as a plain-text list (for ``emoapp`` to print, or the README)."""
    lines = []
    for location in stored_locations() if locations is None else locations:
        where = str(location.path) if location.path is not None else "the path you choose"
        lines.append(f"- {location.name}: {where}")
        lines.append(f"    holds: {location.holds}")
        lines.append(f"    written: {location.written_when}")
        lines.append(f"    remove: {location.remove}")
    return "\n".join(lines)


def is_allowed_write(
    path: str | os.PathLike[str],
    explicit_outputs: Iterable[str | os.PathLike[str]] = (),
) -> bool:
    """True when ``path`` is the consent file, the audit log (or its temporary twin while
    it is replaced), or one of ``explicit_outputs`` (or a temporary file next to one)."""
    target = Path(path).resolve()
    allowed = [consent_path(), audit_path(), *(Path(p) for p in explicit_outputs)]
    for item in allowed:
        item = item.resolve()
        if target == item:
            return True
        # Atomic writes stage a temporary file next to the target first.
        if target.parent == item.parent and target.name.startswith(f".{item.name}."):
            return True
    return False
