"""The kinds of value a company's data carries — ids, codes, amounts, dates, names — drawn at every length
and format companies use. One module for all three uses, so they agree on what "a value" is: the base is
pretrained on them (`trainer.synthetic.generic_world`), the copy benchmark (`BENCH A0`) measures them, and
the benchmark companies are made of them. Letters come from random syllables rather than a word list, so a
model can only get them right by copying, never by remembering."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

_CONSONANTS = "bcdfghjklmnprstvwxz"
_VOWELS = "aeiou"
LETTERS = "abcdefghijklmnopqrstuvwxyz"
_SEPARATORS = ("-", "_", "/", ".", "")


def word(rng: random.Random, syllables: int | None = None) -> str:
    """A pronounceable made-up word (2-4 syllables): splits into a few tokens, like a real surname."""
    count = syllables or rng.randint(1, 4)
    return "".join(rng.choice(_CONSONANTS) + rng.choice(_VOWELS) + (rng.choice(_CONSONANTS) if rng.random() < 0.3 else "")
                   for _ in range(count))


def digits(rng: random.Random, length: int) -> str:
    """A digit run of exactly `length` digits, leading zeros allowed (account numbers keep them)."""
    return "".join(rng.choice("0123456789") for _ in range(length))


def prefix(rng: random.Random) -> str:
    """A company's id prefix: 2-5 capitals, sometimes with a digit (INV, ORD, X9, CUST)."""
    letters = "".join(rng.choice(LETTERS.upper()) for _ in range(rng.randint(2, 4)))
    return letters + (str(rng.randint(0, 9)) if rng.random() < 0.15 else "")


def prefixed_id(rng: random.Random, length: int) -> str:
    """PREFIX, a separator and `length` digits, sometimes with a year segment: INV-00451234, ord_88231, PO/2026/0042."""
    head = prefix(rng) if rng.random() < 0.7 else prefix(rng).lower()
    sep = rng.choice(_SEPARATORS)
    if rng.random() < 0.2:
        return f"{head}{sep}{rng.randint(2019, 2030)}{sep or '-'}{digits(rng, length)}"
    return f"{head}{sep}{digits(rng, length)}"


def alnum(rng: random.Random, length: int) -> str:
    """Mixed letters and digits (a reference, a SKU, a tracking code): a7f3k9, 9XK2-77QB."""
    pool = LETTERS + "0123456789" if rng.random() < 0.6 else LETTERS.upper() + "0123456789"
    text = "".join(rng.choice(pool) for _ in range(length))
    if length >= 8 and rng.random() < 0.3:
        cut = rng.randint(3, length - 3)
        text = f"{text[:cut]}-{text[cut:]}"
    return text


def amount(rng: random.Random, length: int) -> float | int:
    """A money amount with `length` digits before the point, usually with cents: 7.5, 1234.56, 980."""
    whole = rng.randint(10 ** (length - 1) if length > 1 else 0, 10 ** length - 1)
    if rng.random() < 0.2:
        return whole
    return round(whole + rng.randint(1, 99) / 100, 2)


def date(rng: random.Random) -> str:
    """An ISO date: 2026-03-14."""
    return f"{rng.randint(2019, 2031)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def name(rng: random.Random, words: int) -> str:
    """A name of `words` capitalised made-up words: a person, a company, a place (Vemaro Tuksel Ladi)."""
    return " ".join(word(rng).capitalize() for _ in range(words))


@dataclass(frozen=True)
class Kind:
    """One kind of value with the lengths it comes in; `draw(rng, length)` makes one."""

    name: str
    lengths: tuple[int, ...]
    draw: Callable[[random.Random, int], object]


KINDS: dict[str, Kind] = {k.name: k for k in (
    Kind("digits", tuple(range(2, 13)), digits),
    Kind("prefixed", tuple(range(2, 11)), prefixed_id),
    Kind("alnum", tuple(range(4, 15)), alnum),
    Kind("amount", tuple(range(1, 8)), amount),
    Kind("date", (10,), lambda rng, _n: date(rng)),
    Kind("name", (1, 2, 3, 4), name),
)}


def draw(rng: random.Random, kind: str, length: int | None = None) -> object:
    """A value of `kind`, of `length` when given, else of a length drawn from the kind's range."""
    spec = KINDS[kind]
    return spec.draw(rng, length if length is not None else rng.choice(spec.lengths))
