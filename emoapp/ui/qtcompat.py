"""A guard against a reference-counting bug in some PySide6 releases.

With PySide6 6.12.0 on Python 3.11, calls into Qt take references away from the
``None``, ``True`` and ``False`` singletons: ``SignalInstance.emit()`` returns ``True``
without owning a reference to it, and methods returning nothing (``setText``,
``update``, every ``QPainter`` call, ``QTimer.start``...) do the same with ``None``. A
window that paints and emits signals thousands of times a second brings a count to zero
within minutes, and the interpreter aborts ("Fatal Python error: none_dealloc").
PySide6 6.11 does not have the bug; Python 3.12 and later are immune, because these
singletons are immortal there (PEP 683).

:func:`guard_singleton_refcounts` checks whether the installed PySide6 leaks (a few
hundred test calls) and, only then and only on Python < 3.12, gives the three singletons
a very large reference count: what Python 3.12 does for them anyway. The singletons are
statically allocated and are never freed, so nothing else changes.
"""

from __future__ import annotations

import ctypes
import sys

from PySide6.QtCore import QObject, Signal

_PROBE_CALLS = 200
_GUARD = 1 << 40  # references: far more than any process makes calls
_guarded = False


class _Probe(QObject):
    ping = Signal()


def qt_calls_leak_references() -> bool:
    """True when calls into Qt take references away from None or True."""
    probe = _Probe()
    emit, rename = probe.ping.emit, probe.setObjectName
    none_before, true_before = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(_PROBE_CALLS):
        emit()
        rename("probe")
    none_lost = none_before - sys.getrefcount(None)
    true_lost = true_before - sys.getrefcount(True)
    return max(none_lost, true_lost) >= _PROBE_CALLS // 2


def guard_singleton_refcounts() -> bool:
    """Protect None, True and False from the leak when this PySide6 has it; returns
    whether the guard is in place."""
    global _guarded
    if _guarded or sys.version_info >= (3, 12):
        return _guarded
    if qt_calls_leak_references():
        for singleton in (None, True, False):
            # ob_refcnt is the first field of every CPython object header.
            ctypes.c_ssize_t.from_address(id(singleton)).value += _GUARD
        _guarded = True
    return _guarded
