"""The error every command reports in one line, and the one way to make a message one line."""

from __future__ import annotations

from typing import Any

MAX_LINE = 300  # characters: longer messages are cut with "..."


class UsageError(Exception):
    """A bad key, value, option or path, reported in one line before any expensive work starts."""


def one_line(error: Any, limit: int | None = MAX_LINE) -> str:
    """`error` (an exception or text) on one line: whitespace runs collapsed, cut to `limit` characters
    (None: not cut, for a message whose length is a list of valid choices)."""
    text = " ".join(str(error).split())
    return text if limit is None or len(text) <= limit else text[: limit - 3] + "..."


def yaml_problem(error: Exception) -> str:
    """A PyYAML error as 'not valid YAML (line L, column C): <problem>' (where it says where)."""
    where = getattr(error, "problem_mark", None)
    at = f" (line {where.line + 1}, column {where.column + 1})" if where is not None else ""
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    return f"not valid YAML{at}: {problem}"
