"""One lookup for every name -> thing registry, with an error that lists the valid names and guesses the
one meant (`did_you_mean`); and the record of one choice (`Choice`: its name, what it builds, a one-line help) that
the registries of the simpler axes hold (model.backbone.init / norm, data.dataset, model.optim.name / schedule;
the pairwise functions have their own, richer record, nlstudy.blocks.pairwise.Pairwise)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

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


@dataclass(frozen=True)
class Choice(Generic[T]):
    """One choice of an axis: `name` (the config value, in nlstudy.choices), `build` (what the choice makes: a
    function or class the caller calls), `help` (one line: what it is)."""

    name: str
    build: T
    help: str


def records(*choices: Choice[T]) -> dict[str, Choice[T]]:
    """name -> record, in the given order (the order an error lists them in); a name given twice is a ValueError."""
    registry: dict[str, Choice[T]] = {}
    for choice in choices:
        if choice.name in registry:
            raise ValueError(f"the choice {choice.name!r} is recorded twice")
        registry[choice.name] = choice
    return registry
