"""Provenance: which capture an input, or anything derived from it, came from, and the
register of withdrawals that decides whether it may still reach anyone.

Every input of a live session comes from one *capture*: the camera (face frames), the
microphone (audio chunks, and the words a speech recogniser hears in them) or the
keyboard (typed text). Heard text is microphone data even though the text encoder reads
it: a text prediction made from heard words has the microphone as its origin. A
:class:`Provenance` says which capture (``origin``, named by the modality that owns the
device: face = camera, voice = microphone, text = keyboard) and when the oldest input
behind a thing was captured (``t``, on the session clock), and, for spans, when the
newest was (``end``).

:class:`Withdrawals` is the register a session keeps: withdrawing an origin at time
``T`` means that nothing captured from it at or before ``T`` may be delivered any more,
whenever its computation finishes. Every delivery point asks :meth:`Withdrawals.admits`
*at delivery*, not only when the work was submitted.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from emoapp.core import clock
from emoapp.core.messages import (
    AudioChunk,
    FusedEstimate,
    Modality,
    ModalityPrediction,
    NoPrediction,
    TextEntry,
    VideoFrame,
)

HEARD_PREFIX = "heard:"
"""A text entry whose ``source`` starts with this was heard (transcribed), not typed."""

CAPTURE_NAME: dict[Modality, str] = {
    Modality.FACE: "camera",
    Modality.VOICE: "microphone",
    Modality.TEXT: "keyboard",
}
"""What a person calls each origin."""


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a thing came from: its capture (``origin``) and when (``t``: its oldest
    input; ``end``: its newest, for spans)."""

    origin: Modality
    t: float
    end: float | None = None

    @property
    def capture(self) -> str:
        """``camera``, ``microphone`` or ``keyboard``."""
        return CAPTURE_NAME[self.origin]


def is_heard(entry: TextEntry) -> bool:
    """True for a text entry a speech recogniser heard (microphone data)."""
    return entry.source.startswith(HEARD_PREFIX)


def origin_of(thing: Any) -> Modality | None:
    """The capture behind an input, a prediction or an explanation (None: unknown).

    A heard text entry, and a text prediction or explanation that records the
    microphone as its origin, come from the microphone."""
    if isinstance(thing, VideoFrame):
        return Modality.FACE
    if isinstance(thing, AudioChunk):
        return Modality.VOICE
    if isinstance(thing, TextEntry):
        return Modality.VOICE if is_heard(thing) else Modality.TEXT
    if isinstance(thing, ModalityPrediction | NoPrediction):
        return thing.origin if thing.origin is not None else thing.modality
    modality = getattr(thing, "modality", None)
    return Modality(modality) if modality is not None else None


def with_origin(output: Any, item: Any) -> Any:
    """``output`` (an encoder's, for ``item``) recording ``item``'s capture when it is
    not the output's own modality's (a text output of heard words: the microphone)."""
    origin = origin_of(item)
    if (
        isinstance(output, ModalityPrediction | NoPrediction)
        and origin is not None
        and origin is not output.modality
        and output.origin is None
    ):
        return dataclasses.replace(output, origin=origin)
    return output


def provenance_of(thing: Any) -> Provenance | None:
    """The provenance of an input, an encoder output or an explanation (None for a
    thing that carries no capture time)."""
    origin = origin_of(thing)
    t = getattr(thing, "t", None)
    if origin is None or not isinstance(t, int | float):
        return None
    end = getattr(thing, "t_end", None)
    if end is None:
        end = getattr(thing, "end", None)
    return Provenance(origin, float(t), float(end) if isinstance(end, int | float) else None)


def estimate_provenance(estimate: FusedEstimate) -> list[Provenance]:
    """The provenance of every prediction a fused estimate was made from."""
    found = (provenance_of(p) for p in estimate.inputs.values())
    return [p for p in found if p is not None]


class Withdrawals:
    """When each origin was last withdrawn (thread-safe; see the module docstring).

    ``admits(p)`` is False for anything captured from an origin at or before that
    origin's latest withdrawal. A later grant needs nothing here: inputs captured after
    the withdrawal are admitted."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._at: dict[Modality, float] = {}

    def withdraw(self, origin: Modality, t: float | None = None) -> float:
        """Withdraw ``origin`` at ``t`` (default: now); returns the time recorded (never
        earlier than a withdrawal recorded before)."""
        at = clock.now() if t is None else float(t)
        with self._lock:
            at = max(at, self._at.get(origin, float("-inf")))
            self._at[origin] = at
        return at

    def withdrawn_at(self, origin: Modality) -> float | None:
        with self._lock:
            return self._at.get(origin)

    def admits(self, provenance: Provenance | None) -> bool:
        """True unless ``provenance`` names an input captured at or before its origin's
        latest withdrawal (None, no known capture: admitted)."""
        if provenance is None:
            return True
        with self._lock:
            at = self._at.get(provenance.origin)
        return at is None or provenance.t > at

    def admits_all(self, provenances: Iterable[Provenance | None]) -> bool:
        return all(self.admits(p) for p in provenances)

    def admits_thing(self, thing: Any) -> bool:
        """:meth:`admits` for an input, output, explanation or fused estimate."""
        if isinstance(thing, FusedEstimate):
            return self.admits_all(estimate_provenance(thing))
        return self.admits(provenance_of(thing))
