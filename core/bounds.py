"""Bounds that objects check when they are made, in one message form naming the owner and the field, so a wrong
number fails where it is given rather than deep in a loop."""

from __future__ import annotations


def at_least(owner: str, floor: float, **values: float) -> None:
    """Refuse any of `values` below `floor`."""
    for name, value in values.items():
        if value < floor:
            raise ValueError(f"{owner}.{name} must be >= {floor}, not {value}")


def above(owner: str, floor: float, **values: float) -> None:
    """Refuse any of `values` at or below `floor`."""
    for name, value in values.items():
        if value <= floor:
            raise ValueError(f"{owner}.{name} must be > {floor}, not {value}")
