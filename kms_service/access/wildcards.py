"""The ``*`` and ``?`` wildcards of the IAM policy language, compiled once per pattern.

``*`` matches any run of characters (also none), ``?`` exactly one; nothing else is special.
"""

from __future__ import annotations

import re
from functools import lru_cache


@lru_cache(maxsize=4096)
def compile_glob(pattern: str, *, ignore_case: bool = False) -> re.Pattern[str]:
    """A regular expression that matches exactly what ``pattern`` matches, whole string."""
    parts = []
    for char in pattern:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.compile("".join(parts), flags)


def glob_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """Whether ``value`` matches ``pattern`` (``*`` and ``?`` wildcards), whole string."""
    if "*" not in pattern and "?" not in pattern:
        if ignore_case:
            return pattern.lower() == value.lower()
        return pattern == value
    return compile_glob(pattern, ignore_case=ignore_case).fullmatch(value) is not None


def arn_match(pattern: str, arn: str) -> bool:
    """ArnLike: both split into the six ARN parts, each part matched with wildcards.

    The resource part (after the fifth colon) may itself hold colons. ``"*"`` alone
    matches any ARN. Case-sensitive, as AWS compares ARNs.
    """
    if pattern == "*":
        return True
    pattern_parts = pattern.split(":", 5)
    arn_parts = arn.split(":", 5)
    if len(pattern_parts) != 6 or len(arn_parts) != 6:
        return False
    return all(glob_match(p, a) for p, a in zip(pattern_parts, arn_parts, strict=True))
