"""Durations as the clock commands and endpoints read them (``400d``, ``1d12h30m``)."""

from __future__ import annotations

import pytest

from kms_service.admin.durations import parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("400d", 400 * 86400), ("12h", 43200), ("1d12h30m", 131400), ("2w", 1209600), ("90", 90)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "4y", "d4", "-3d"])
def test_bad_durations_say_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match="400d"):
        parse_duration(text)
