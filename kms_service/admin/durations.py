"""Durations as people type them: ``400d``, ``12h``, ``1d12h30m``, ``2w``, ``90s`` or plain
seconds."""

from __future__ import annotations

import math
import re

_UNITS = {"w": 7 * 86400.0, "d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)([wdhms])")
_WHOLE = re.compile(r"^(?:\d+(?:\.\d+)?[wdhms])+$")


def parse_duration(text: str) -> float:
    """Seconds in ``text``, zero or more. Raises ``ValueError`` with the accepted forms, or
    saying that the clock only moves forward for a negative duration."""
    cleaned = text.strip().lower().replace(" ", "")
    if cleaned.startswith("-"):
        raise ValueError(
            f"{text!r} is negative: the clock only moves forward (use e.g. 400d, 12h; "
            "`mock-kms clock reset` sets it back to real time)"
        )
    try:
        seconds = float(cleaned)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            raise ValueError(f"not a duration: {text!r} (use e.g. 400d, 12h or seconds)")
        return seconds
    if not _WHOLE.match(cleaned):
        raise ValueError(
            f"not a duration: {text!r} (use e.g. 400d, 12h, 1d12h, 30m, 90s, 2w or seconds)"
        )
    return sum(float(number) * _UNITS[unit] for number, unit in _PART.findall(cleaned))
