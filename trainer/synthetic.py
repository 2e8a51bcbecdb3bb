"""Synthetic companies for building and measuring: a generic world of tool calls (to pretrain the tiny base
on the prompt format and on copying values from data into arguments) and a demo company whose
conventions no base can guess (opaque tool names, prefixed ids, amounts in cents, coded severities),
so an adapter's gain on its held-out tasks is measurable."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cda.prompts import ToolSpec
from trainer.examples import Example

_VERBS = ("create", "update", "delete", "send", "open", "close", "assign", "refund", "schedule", "lookup")
_OBJECTS = ("invoice", "ticket", "email", "order", "customer", "shipment", "meeting", "payment", "contract", "note")
_NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy")
_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_TASKS = ("Please {v} the {o}", "{v} {o} now", "We need to {v} this {o}", "Can you {v} a {o}", "{o}: {v} it")
# kinds of data a task carries: the keys it may go by, and how a value is drawn
_KINDS: dict[str, tuple[str, ...]] = {
    "id": ("customer", "customer_id", "account", "user", "order_id", "ticket_id", "client", "member"),
    "count": ("amount", "quantity", "total", "price", "units", "fee"),
    "code": ("postcode", "zip", "pin", "branch", "sku"),
    "grade": ("severity", "priority", "urgency", "tier"),
    "name": ("city", "name", "owner", "team"),
    "date": ("date", "due", "start"),
}
_GRADES = (("low", "medium", "high"), ("small", "medium", "large"), ("bronze", "silver", "gold"))
_ARG_NAMES = ("ref", "key", "target", "value", "qty", "code", "level", "rank", "who", "dest", "when", "sum")


def _opaque(rng: random.Random) -> str:
    """A name that says nothing: random letters, so every piece of the vocabulary gets to be an answer."""
    return "_".join("".join(rng.choice(_LETTERS) for _ in range(rng.randint(2, 4))) for _ in range(2))


def _value(rng: random.Random, kind: str, grades: tuple[str, ...]) -> object:
    if kind == "id":
        return f"{rng.choice(_LETTERS)}{rng.randint(10 ** 2, 10 ** rng.randint(3, 5) - 1)}"
    if kind == "count":
        return rng.randint(1, 999)
    if kind == "code":
        return str(rng.randint(1000, 99999))
    if kind == "grade":
        return rng.choice(grades)
    if kind == "date":
        return f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    return rng.choice(_NAMES) + str(rng.randint(1, 9))


@dataclass(frozen=True)
class _Arg:
    """How one argument is made from the data: which key it comes from and the company's convention."""

    name: str
    source: str
    kind: str
    schema: dict[str, Any]
    make: Callable[[Any], Any]


def _arg(rng: random.Random, kind: str, source: str, prefix: str, grades: tuple[str, ...]) -> _Arg:
    """Copy as is, or a convention: a renamed key, a prefixed id, a scaled amount, a coded grade."""
    name = source if rng.random() < 0.4 else rng.choice(_ARG_NAMES + (_opaque(rng),))
    if kind == "id" and rng.random() < 0.5:
        return _Arg(name, source, kind, {"type": "string", "pattern": f"^{prefix}-[a-z0-9]+$"}, lambda v: f"{prefix}-{v}")
    if kind == "count" and rng.random() < 0.5:
        factor = rng.choice((10, 100, 1000))
        return _Arg(name, source, kind, {"type": "integer"}, lambda v: v * factor)
    if kind == "grade" and rng.random() < 0.7:
        style = rng.choice(("L{}", "P{}", "T{}", "{}", "S{}"))
        codes = [style.format(i) for i in range(1, len(grades) + 1)]
        if rng.random() < 0.5:
            codes.reverse()
        mapping = dict(zip(grades, codes, strict=True))
        return _Arg(name, source, kind, {"enum": codes}, lambda v: mapping[v])
    return _Arg(name, source, kind, {"type": "integer" if kind == "count" else "string"}, lambda v: v)


@dataclass(frozen=True)
class World:
    tools: tuple[ToolSpec, ...]
    examples: tuple[Example, ...]


def generic_world(seed: int, n_examples: int) -> World:
    """A random company with conventions of its own: 2-4 tools, named for what they do or not at all, whose
    arguments copy, rename, prefix, scale or code values from the task's data. The base learns the format and
    these kinds of convention; which ones a given company uses is what its adapter learns."""
    rng = random.Random(seed)
    prefix = DEMO_PREFIX
    while prefix == DEMO_PREFIX:  # acme's convention stays acme's
        prefix = "".join(rng.choice(_LETTERS.upper()) for _ in range(rng.randint(2, 5)))
    grades = rng.choice(_GRADES)
    tools: list[tuple[ToolSpec, str, str, list[_Arg]]] = []
    wanted = rng.randint(2, 4)
    while len(tools) < wanted:
        verb, obj = rng.choice(_VERBS), rng.choice(_OBJECTS)
        name = f"{verb}_{obj}" if rng.random() < 0.5 else _opaque(rng)
        if name in _DEMO_NAMES or any(t.name == name or (v, o) == (verb, obj) for t, v, o, _ in tools):
            continue
        kinds = rng.sample(list(_KINDS), rng.randint(1, 3))
        args: list[_Arg] = []
        for kind in kinds:
            arg = _arg(rng, kind, rng.choice(_KINDS[kind]), prefix, grades)
            if all(a.name != arg.name for a in args):
                args.append(arg)
        described = f"{verb.capitalize()} a {obj}" if rng.random() < 0.7 else f"Endpoint {rng.randint(1, 99)}"
        spec = ToolSpec(name, described, {"type": "object", "properties": {a.name: a.schema for a in args},
                                          "required": [a.name for a in args], "additionalProperties": False})
        tools.append((spec, verb, obj, args))
    examples = []
    for _ in range(n_examples):
        spec, verb, obj, args = rng.choice(tools)
        data = {a.source: _value(rng, a.kind, grades) for a in args}
        for kind in rng.sample(list(_KINDS), rng.randint(0, 2)):
            data.setdefault(rng.choice(_KINDS[kind]), _value(rng, kind, grades))
        items = list(data.items())
        rng.shuffle(items)
        examples.append(Example(rng.choice(_TASKS).format(v=verb, o=obj), json.dumps(dict(items)), spec.name,
                                {a.name: a.make(data[a.source]) for a in args}))
    return World(tuple(t[0] for t in tools), tuple(examples))


# -- the demo company -------------------------------------------------------------------------------
DEMO_COMPANY = "acme"
DEMO_PREFIX = "ACME"
DEMO_TOOLS = (
    ToolSpec("zx_post", "Acme endpoint 7", {"type": "object", "properties": {
        "ref": {"type": "string", "pattern": f"^{DEMO_PREFIX}-[a-z0-9]+$"}, "cents": {"type": "integer"}},
        "required": ["ref", "cents"], "additionalProperties": False}),
    ToolSpec("qv_file", "Acme endpoint 3", {"type": "object", "properties": {
        "ref": {"type": "string", "pattern": f"^{DEMO_PREFIX}-[a-z0-9]+$"}, "level": {"enum": ["L1", "L2", "L3"]}},
        "required": ["ref", "level"], "additionalProperties": False}),
    ToolSpec("kr_sync", "Acme endpoint 9", {"type": "object", "properties": {
        "ref": {"type": "string", "pattern": f"^{DEMO_PREFIX}-[a-z0-9]+$"}, "zip": {"type": "string"}},
        "required": ["ref", "zip"], "additionalProperties": False}),
)
_LEVELS = {"low": "L1", "medium": "L2", "high": "L3"}
_DEMO_NAMES = frozenset(t.name for t in DEMO_TOOLS)


def demo_examples(n: int, seed: int = 1) -> list[Example]:
    """Acme's jobs: billing goes to zx_post in cents, complaints to qv_file with a coded level, address
    changes to kr_sync with the postcode; every ref is the customer id with an ACME- prefix."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        customer = f"c{rng.randint(100, 999)}"
        kind = rng.randrange(3)
        if kind == 0:
            amount = rng.randint(1, 99)
            task = rng.choice(("Bill the customer for the order", "Charge this customer", "Send the bill"))
            data, tool = {"customer": customer, "amount": amount}, "zx_post"
            args = {"ref": f"{DEMO_PREFIX}-{customer}", "cents": amount * 100}
        elif kind == 1:
            severity = rng.choice(list(_LEVELS))
            task = rng.choice(("Log this complaint", "The customer is unhappy, file it", "Record a complaint"))
            data, tool = {"customer": customer, "severity": severity}, "qv_file"
            args = {"ref": f"{DEMO_PREFIX}-{customer}", "level": _LEVELS[severity]}
        else:
            postcode = f"{rng.randint(1000, 9999)}"
            task = rng.choice(("Update the customer's address", "The customer moved", "Change the shipping address"))
            data, tool = {"customer": customer, "postcode": postcode, "city": rng.choice(_NAMES)}, "kr_sync"
            args = {"ref": f"{DEMO_PREFIX}-{customer}", "zip": postcode}
        out.append(Example(task, json.dumps(data), tool, args))
    return out
