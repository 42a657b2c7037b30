"""One lookup for every name -> thing registry, with an error that lists the valid names and guesses the
one meant (`did_you_mean`)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import TypeVar

T = TypeVar("T")
CLOSE = 0.75  # difflib's similarity ratio from which a valid name is offered as the one meant ('gird' -> 'grid')


def did_you_mean(value: object, valid: Iterable[object]) -> str:
    """'; did you mean 'X'?' for the valid name closest to `value` (difflib's ratio, at least CLOSE), else '': also
    '' when two names are equally close ('7-block' is as near '1-block' as '5-block': no guess). Appended to a
    message that lists the valid choices; `value` and every choice are compared as text."""
    names = {str(v): v for v in valid}
    scores = sorted(((difflib.SequenceMatcher(None, str(value), name).ratio(), name) for name in names), reverse=True)
    if not scores or scores[0][0] < CLOSE or scores[0][1] == str(value) or (len(scores) > 1 and scores[1][0] == scores[0][0]):
        return ""
    return f"; did you mean {names[scores[0][1]]!r}?"


def lookup(registry: Mapping[object, T], name: object, what: str) -> T:
    """registry[name], or a ValueError naming `what`, the bad value, the valid choices and the closest one."""
    try:
        return registry[name]
    except (KeyError, TypeError):
        choices = ", ".join(repr(k) for k in registry)
        raise ValueError(f"unknown {what} {name!r}; valid choices: {choices}{did_you_mean(name, registry)}") from None
