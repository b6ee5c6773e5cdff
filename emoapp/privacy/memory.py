"""The timeline the window keeps for an export: in memory only, bounded, and forgotten on
"Revoke all and stop".

The window's plot keeps only the last minute of probabilities, which is not a timeline
one can export. :class:`TimelineMemory` keeps the session's fused estimates as timeline
rows (:func:`emoapp.core.rows.row_from_estimate`, the format of ``emoapp analyze``
and ``emoapp live --out``), at most ``row_rate_hz`` a second and ``max_rows`` in all (the
oldest go first): by default five a second for the last hour. A row is about 2 kB of
JSON; it is kept deflated against a dictionary made of the first row's *shape* (its keys,
every value blanked: no scores, labels or notes), which makes it about 0.45 kB, so the
hour is at most about 8 MB and a live window's memory grows about 0.13 MiB a minute until
it is full (tracemalloc over a 2-minute window run measured the plain JSON at 0.6 MiB a
minute). Nothing
here touches the disk; an export (:func:`emoapp.privacy.export.export_timeline`) is the
only way these rows reach a file.

Rows hold scores only. Two things ride beside them, kept apart and added to a copy of the
rows only when the export asks (the "include typed text" / "include media references"
boxes of the export dialog):

- the typed text behind each text prediction, matched exactly: the window records the
  interval in which it handed the text to the session (:meth:`add_text`), and the
  session stamps the entry inside that interval (submissions run one at a time, so the
  intervals never overlap);
- which source each modality's prediction came from (:meth:`set_media`): a replayed
  file's path, or a device's name.

Heard text (words the speech recogniser heard) is microphone data: it is kept with the
microphone as its origin, and :meth:`TimelineMemory.forget_origin` (called when the
microphone is withdrawn: revoked, expired or switched off) forgets it, and refuses any
that arrives later from before the withdrawal, so an export with "include text" can
no longer contain it.

Thread-safe: one lock around everything (the window feeds it from its UI thread, but a
caller may do so from any thread).
"""

from __future__ import annotations

import json
import threading
import zlib
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from emoapp.core import clock
from emoapp.core.messages import EncoderOutput, FusedEstimate, Modality
from emoapp.core.provenance import Provenance, Withdrawals, origin_of

DEFAULT_MAX_ROWS = 18_000
DEFAULT_ROW_RATE_HZ = 5.0
DEFAULT_MAX_TEXTS = 2_000
_NOTE_STATES = ("failed", "degraded")


@dataclass(frozen=True, slots=True)
class _KeptRow:
    t: float
    """The estimate's time on the session clock."""
    row: bytes
    """The row as compact JSON, deflated with the memory's dictionary (:func:`_pack`)."""
    text_t: float | None = None
    """When the text prediction used in this row was stamped (to find its typed text)."""
    media: dict[str, str] = field(default_factory=dict)
    """modality -> the source its prediction came from, for "include media references"."""


@dataclass(frozen=True)
class _TypedText:
    start: float
    end: float
    text: str
    origin: Modality = Modality.TEXT
    """The capture it came from: the keyboard (typed) or the microphone (heard)."""


class TimelineMemory:
    """Rows of the session's fused timeline, in memory (see the module docstring)."""

    def __init__(
        self,
        max_rows: int = DEFAULT_MAX_ROWS,
        row_rate_hz: float = DEFAULT_ROW_RATE_HZ,
        origin: float | None = None,
        max_texts: int = DEFAULT_MAX_TEXTS,
    ) -> None:
        if max_rows < 1 or row_rate_hz <= 0 or max_texts < 1:
            raise ValueError("max_rows, row_rate_hz and max_texts must be positive")
        self.max_rows = int(max_rows)
        self.row_rate_hz = float(row_rate_hz)
        self.origin = clock.now() if origin is None else float(origin)
        """Rows count seconds from here (the window sets it when its session starts)."""
        self._lock = threading.Lock()
        self._rows: deque[_KeptRow] = deque(maxlen=self.max_rows)
        self._texts: deque[_TypedText] = deque(maxlen=int(max_texts))
        self._outputs: dict[Modality, EncoderOutput] = {}
        self._notes: dict[Modality, str] = {}
        self._media: dict[Modality, str] = {}
        self._next_row_t = float("-inf")
        self._withdrawals = Withdrawals()
        self._zdict: bytes | None = None
        """The first row's shape (:func:`row_shape`): the deflate dictionary of every row."""
        self.row_listeners: list[Callable[[dict[str, Any]], None]] = []
        """Called with each row kept (scores only, as built; never the typed text), on
        the thread that added the estimate: the window's stream of estimates listens
        here, so it sends the very rows an export writes."""
        self.dropped = 0
        """Rows forgotten because the memory was full (the oldest go first)."""

    # -- feeding -------------------------------------------------------------------------

    def add_output(self, output: EncoderOutput) -> None:
        """An encoder output (its notes, e.g. "no face", go into the next row)."""
        with self._lock:
            self._outputs[output.modality] = output

    def note_status(self, modality: Modality, state: str, message: str) -> None:
        """A modality's state: a failed or degraded one's message becomes a row note."""
        with self._lock:
            if state in _NOTE_STATES and message:
                self._notes[modality] = message
            else:
                self._notes.pop(modality, None)

    def set_media(self, modality: Modality, reference: str | None) -> None:
        """Where ``modality``'s input comes from now (a file path, or a device's name)."""
        with self._lock:
            if reference:
                self._media[modality] = reference
            else:
                self._media.pop(modality, None)

    def add_text(
        self, start: float, end: float, text: str, origin: Modality = Modality.TEXT
    ) -> bool:
        """Text handed to the session between ``start`` and ``end`` (session clock):
        typed (``origin`` the keyboard, :attr:`Modality.TEXT`) or heard (the microphone,
        :attr:`Modality.VOICE`). False, and not kept, when its capture was withdrawn
        after it was captured."""
        origin = Modality(origin)
        with self._lock:
            if not self._withdrawals.admits(Provenance(origin, float(start))):
                return False
            self._texts.append(_TypedText(float(start), float(end), text, origin))
            return True

    def forget_origin(self, origin: Modality, at: float) -> int:
        """Capture ``origin`` was withdrawn at ``at``: forget the text it gave (heard
        text, for the microphone) and the latest outputs made from it, and refuse what
        arrives later from before ``at``. Returns how many texts were forgotten."""
        origin = Modality(origin)
        with self._lock:
            at = self._withdrawals.withdraw(origin, at)
            before = len(self._texts)
            kept = [x for x in self._texts if not (x.origin is origin and x.start <= at)]
            self._texts = deque(kept, maxlen=self._texts.maxlen)
            self._outputs = {
                m: out for m, out in self._outputs.items() if origin_of(out) is not origin
            }
            return before - len(kept)

    def texts(self) -> list[tuple[str, Modality]]:
        """The texts held (text, origin), oldest first (for privacy checks and tests)."""
        with self._lock:
            return [(x.text, x.origin) for x in self._texts]

    def add_estimate(self, estimate: FusedEstimate) -> bool:
        """Keep a row for ``estimate`` unless one was kept less than 1/rate ago. True
        when kept."""
        from emoapp.core.rows import row_from_estimate

        with self._lock:
            if estimate.t < self._next_row_t:
                return False
            gap = 1.0 / self.row_rate_hz
            # A steady schedule; after a pause, start afresh rather than catch up.
            if self._next_row_t == float("-inf"):
                self._next_row_t = estimate.t + gap
            else:
                self._next_row_t = max(self._next_row_t + gap, estimate.t + 0.5 * gap)
            row = row_from_estimate(
                estimate, dict(self._outputs), dict(self._notes), origin=self.origin
            )
            text = estimate.inputs.get(Modality.TEXT)
            media = {m.value: self._media[m] for m in estimate.inputs if m in self._media}
            if self._rows and self._rows[-1].media == media:
                media = self._rows[-1].media  # one dict for a run of rows from the same sources
            if len(self._rows) == self._rows.maxlen:
                self.dropped += 1
            if self._zdict is None:
                self._zdict = row_shape(row)
            self._rows.append(
                _KeptRow(
                    estimate.t,
                    _pack(row, self._zdict),
                    text.t if text is not None else None,
                    media,
                )
            )
        for listener in list(self.row_listeners):
            listener(row)
        return True

    # -- reading and forgetting ----------------------------------------------------------

    def __len__(self) -> int:
        with self._lock:
            return len(self._rows)

    def span_s(self) -> float:
        """Seconds between the first and the last row kept (0 with fewer than two)."""
        with self._lock:
            return self._rows[-1].t - self._rows[0].t if len(self._rows) > 1 else 0.0

    def rows(self, include_text: bool = False, include_media: bool = False) -> list[dict[str, Any]]:
        """Copies of the rows kept, oldest first: scores only, plus the typed text
        (``modalities.text.text``) and the media references (``modalities.<m>.media``)
        only when asked."""
        with self._lock:
            kept = list(self._rows)
            texts = list(self._texts) if include_text else []
            zdict = self._zdict or b""
        rows = []
        for item in kept:
            row = _unpack(item.row, zdict)
            modalities: Mapping[str, Any] = row.get("modalities") or {}
            if include_text and item.text_t is not None and modalities.get("text"):
                typed = _text_at(texts, item.text_t)
                if typed is not None:
                    modalities["text"]["text"] = typed
            if include_media:
                for name, reference in item.media.items():
                    if modalities.get(name):
                        modalities[name]["media"] = reference
            rows.append(row)
        return rows

    def clear(self) -> None:
        """Forget every row, typed text and note (the current sources stay known)."""
        with self._lock:
            self._rows.clear()
            self._texts.clear()
            self._outputs.clear()
            self._notes.clear()
            self._next_row_t = float("-inf")
            self._zdict = None


def _text_at(texts: list[_TypedText], t: float) -> str | None:
    """The text whose hand-over interval holds ``t`` (the newest, should two touch)."""
    for typed in reversed(texts):
        if typed.start <= t <= typed.end:
            return typed.text
    return None


def row_shape(row: Mapping[str, Any]) -> bytes:
    """``row``'s keys and nesting with every value blanked (strings empty, numbers 0,
    lists cut to their first item): what every row repeats, and nothing of what this
    one says. Compact JSON, as bytes."""

    def blank(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k): blank(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [blank(v) for v in value[:1]]
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, int | float):
            return 0
        return ""

    return json.dumps(blank(row), separators=(",", ":")).encode()


def _pack(row: Mapping[str, Any], zdict: bytes) -> bytes:
    """``row`` as compact JSON, raw-deflated with ``zdict`` as the preset dictionary."""
    data = json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode()
    packer = zlib.compressobj(6, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, zdict=zdict)
    return packer.compress(data) + packer.flush()


def _unpack(packed: bytes, zdict: bytes) -> Any:
    """The row :func:`_pack` packed with the same ``zdict``."""
    unpacker = zlib.decompressobj(-15, zdict=zdict)
    return json.loads(unpacker.decompress(packed) + unpacker.flush())
