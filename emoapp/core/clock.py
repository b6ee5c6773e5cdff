"""One monotonic clock for every timestamp in a live session.

Live sources stamp messages with :func:`now`; replayed and analysed media use media time
(seconds from the start of the file) instead. Both are plain floats in seconds, so fusion
never needs to know which it is looking at."""

from __future__ import annotations

import time


def now() -> float:
    """Seconds on the process-wide monotonic clock."""
    return time.monotonic()
