"""One lookup for every name -> thing registry, with an error that lists the valid names."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

T = TypeVar("T")


def lookup(registry: Mapping[object, T], name: object, what: str) -> T:
    """registry[name], or a ValueError naming `what`, the bad value and the valid choices."""
    try:
        return registry[name]
    except (KeyError, TypeError):
        choices = ", ".join(repr(k) for k in registry)
        raise ValueError(f"unknown {what} {name!r}; valid choices: {choices}") from None
