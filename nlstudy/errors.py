"""The error every command reports in one line, and the one way to make a message one line."""

from __future__ import annotations

from typing import Any

MAX_LINE = 300  # characters: longer messages are cut with "..."


class UsageError(Exception):
    """A bad key, value, option or path, reported in one line before any expensive work starts."""


def one_line(error: Any, limit: int = MAX_LINE) -> str:
    """`error` (an exception or text) on one line: whitespace runs collapsed, cut to `limit` characters."""
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
