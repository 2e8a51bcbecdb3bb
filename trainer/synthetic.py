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

from core.prompts import ToolSpec
from trainer import values
from trainer.examples import Example

_VERBS = ("create", "update", "delete", "send", "open", "close", "assign", "refund", "schedule", "lookup", "approve",
          "cancel", "renew", "ship", "invoice", "archive")
_OBJECTS = ("invoice", "ticket", "email", "order", "customer", "shipment", "meeting", "payment", "contract", "note",
            "account", "claim", "booking", "delivery", "subscription", "supplier")
_TASKS = ("Please {v} the {o}", "{v} {o} now", "We need to {v} this {o}", "Can you {v} a {o}", "{o}: {v} it",
          "{v} the {o} for this record", "Time to {v} the {o}")
# kinds of data a task carries: the keys it may go by, and the kind of value (`trainer.values`) behind them
_SOURCES: dict[str, tuple[str, ...]] = {
    "digits": ("customer_id", "account", "account_number", "order_id", "ticket_id", "member", "invoice_no", "po_number",
               "client", "user"),
    "prefixed": ("reference", "invoice", "order", "case", "contract", "shipment", "claim", "booking_ref"),
    "alnum": ("sku", "tracking", "code", "serial", "voucher", "booking", "part"),
    "amount": ("amount", "total", "price", "fee", "balance", "net", "tax", "credit"),
    "date": ("date", "due", "due_date", "start", "end", "delivery_date", "valid_until"),
    "name": ("customer", "name", "contact", "company", "city", "owner", "supplier", "street", "depot"),
    "grade": ("severity", "priority", "urgency", "tier"),
}
_GRADES = (("low", "medium", "high"), ("small", "medium", "large"), ("bronze", "silver", "gold"),
           ("minor", "major", "critical", "blocker"))
# argument names a company's tools share (overlapping across tools, as real APIs do)
_ARG_NAMES = ("ref", "key", "target", "value", "qty", "code", "level", "rank", "who", "dest", "when", "sum", "id",
              "amount", "date", "name", "account", "party")
_TEXT_KINDS = ("digits", "prefixed", "alnum", "amount", "date", "name")


def _opaque(rng: random.Random) -> str:
    """A name that says nothing: random letters, so every piece of the vocabulary gets to be an answer."""
    return "_".join("".join(rng.choice(values.LETTERS) for _ in range(rng.randint(2, 4))) for _ in range(2))


@dataclass(frozen=True)
class _Arg:
    """How one argument is made from the data: which key it comes from and the company's convention."""

    name: str
    source: str
    kind: str
    schema: dict[str, Any]
    make: Callable[[Any], Any]


def _cents(value: Any) -> int:
    return int(round(float(value) * 100))


def _arg(rng: random.Random, kind: str, source: str, prefix: str, grades: tuple[str, ...], renamed: float,
         minor_units: float = 0.4, prefixed: float = 0.4) -> _Arg:
    """Copy as is, or a convention: a renamed key, a prefixed id, an amount in cents, a coded grade."""
    name = rng.choice(_ARG_NAMES + (_opaque(rng),)) if rng.random() < renamed else source
    if kind in ("digits", "alnum") and rng.random() < prefixed:
        return _Arg(name, source, kind, {"type": "string", "pattern": f"^{prefix}-[A-Za-z0-9_./-]+$"},
                    lambda v: f"{prefix}-{v}")
    if kind == "amount":
        if rng.random() < minor_units:
            return _Arg(name, source, kind, {"type": "integer"}, _cents)
        return _Arg(name, source, kind, {"type": "number"}, lambda v: v)
    if kind == "grade":
        style = rng.choice(("L{}", "P{}", "T{}", "{}", "S{}"))
        codes = [style.format(i) for i in range(1, len(grades) + 1)]
        if rng.random() < 0.5:
            codes.reverse()
        mapping = dict(zip(grades, codes, strict=True))
        return _Arg(name, source, kind, {"enum": codes}, lambda v: mapping[v])
    return _Arg(name, source, kind, {"type": "string"}, lambda v: v)


@dataclass(frozen=True)
class _Tool:
    spec: ToolSpec
    verb: str
    obj: str
    args: tuple[_Arg, ...]


@dataclass(frozen=True)
class World:
    tools: tuple[ToolSpec, ...]
    examples: tuple[Example, ...]


@dataclass(frozen=True)
class Company:
    """A synthetic company: its tools, the conventions by which each argument comes from the data, and the
    lengths its values come in. `examples(n, seed)` draws its jobs; the same seed draws the same ones."""

    name: str
    tools: tuple[_Tool, ...]
    grades: tuple[str, ...]
    lengths: dict[str, tuple[int, ...]]
    in_task: float  # how often one value is written in the task rather than the data

    @property
    def specs(self) -> tuple[ToolSpec, ...]:
        return tuple(t.spec for t in self.tools)

    def value(self, rng: random.Random, kind: str) -> object:
        if kind == "grade":
            return rng.choice(self.grades)
        return values.draw(rng, kind, rng.choice(self.lengths.get(kind, values.KINDS[kind].lengths)))

    def examples(self, n: int, seed: int | str) -> list[Example]:
        rng = random.Random(f"{self.name}:{seed}")
        out = []
        for _ in range(n):
            tool = rng.choice(self.tools)
            drawn = {a.source: self.value(rng, a.kind) for a in tool.args}
            data = dict(drawn)
            names = {a.name for a in tool.args}
            for kind in rng.sample(list(_SOURCES), rng.randint(0, 3)):  # distractors, often of the same kinds
                key = rng.choice(_SOURCES[kind])
                if key not in names:  # a key named like an argument it does not feed would be a riddle, not data
                    data.setdefault(key, self.value(rng, kind))
            task = rng.choice(_TASKS).format(v=tool.verb, o=tool.obj)
            written = [a for a in tool.args if a.kind in _TEXT_KINDS]
            if written and rng.random() < self.in_task:  # "... for INV-0042": the value is in the task only
                arg = rng.choice(written)
                task = f"{task} {rng.choice(('for', 'with', 're:', '-'))} {drawn[arg.source]}"
                del data[arg.source]
            items = list(data.items())
            rng.shuffle(items)
            out.append(Example(task, json.dumps(dict(items)), tool.spec.name,
                               {a.name: a.make(drawn[a.source]) for a in tool.args}))
        return out


def make_company(name: str, seed: int | str, tools: tuple[int, int] = (2, 4), args: tuple[int, int] = (1, 4),
                 lengths: dict[str, tuple[int, ...]] | None = None, renamed: float = 0.6, opaque: float = 0.5,
                 in_task: float = 0.15, minor_units: float = 0.4, prefixed: float = 0.4, described: float = 0.7) -> Company:
    """A random company with conventions of its own: tools named for what they do or not at all (`opaque`),
    whose arguments copy, rename, prefix, scale or code values from the task's data. Argument names are drawn
    from one small pool, so a company's tools share names, as real APIs do."""
    rng = random.Random(f"company:{seed}")
    prefix = DEMO_PREFIX
    while prefix == DEMO_PREFIX:  # acme's convention stays acme's
        prefix = values.prefix(rng)
    grades = rng.choice(_GRADES)
    made: list[_Tool] = []
    wanted = rng.randint(*tools)
    while len(made) < wanted:
        verb, obj = rng.choice(_VERBS), rng.choice(_OBJECTS)
        tool_name = f"{verb}_{obj}" if rng.random() >= opaque else _opaque(rng)
        if tool_name in _DEMO_NAMES or any(t.spec.name == tool_name or (t.verb, t.obj) == (verb, obj) for t in made):
            continue
        chosen: list[_Arg] = []
        for kind in rng.sample(list(_SOURCES), rng.randint(*args)):
            arg = _arg(rng, kind, rng.choice(_SOURCES[kind]), prefix, grades, renamed, minor_units, prefixed)
            if all(a.name != arg.name and a.source != arg.source for a in chosen):
                chosen.append(arg)
        description = f"{verb.capitalize()} a {obj}" if rng.random() < described else f"Endpoint {rng.randint(1, 99)}"
        spec = ToolSpec(tool_name, description, {"type": "object", "properties": {a.name: a.schema for a in chosen},
                                               "required": [a.name for a in chosen], "additionalProperties": False})
        made.append(_Tool(spec, verb, obj, tuple(chosen)))
    return Company(name, tuple(made), grades, lengths or {}, in_task)


def generic_world(seed: int, n_examples: int) -> World:
    """A random company of the pretraining world (2-4 tools, values of every kind and length): the base learns
    the format, copying, and these kinds of convention; which ones a given company uses is its adapter's part."""
    company = make_company(f"world{seed}", seed)
    return World(company.specs, tuple(company.examples(n_examples, seed)))


# -- benchmark companies ---------------------------------------------------------------------------
# Companies no base was pretrained on (their own seeds, outside the pretraining world's), with conventions of
# their own: long ids, amounts with cents, dates, names of several words, 6-8 tools sharing argument names, and
# endpoints whose names and descriptions say nothing (which one does what is theirs to know, as with acme).
# `BENCH A1` trains an adapter for each through the path a user takes and measures it on held-out tasks.
BENCH_COMPANIES: dict[str, dict[str, Any]] = {
    "nordwind": {"tools": (6, 6), "args": (2, 4), "renamed": 0.7, "opaque": 1.0, "in_task": 0.2, "minor_units": 0.0,
                 "prefixed": 0.7, "described": 0.0,
                 "lengths": {"digits": (6, 7, 8, 9, 10), "prefixed": (6, 7, 8), "alnum": (10, 11, 12, 13, 14),
                             "amount": (3, 4, 5), "name": (2, 3)}},
    "zephyr": {"seed": "bench:zephyr:1", "tools": (8, 8), "args": (2, 3), "renamed": 0.7, "opaque": 1.0, "in_task": 0.2, "minor_units": 0.0,
               "prefixed": 0.7, "described": 0.0,
               "lengths": {"digits": (8, 9, 10, 11, 12), "prefixed": (8, 9, 10), "alnum": (8, 9, 10),
                           "amount": (4, 5, 6, 7), "name": (3, 4)}},
}


def bench_company(name: str) -> Company:
    """One of `BENCH_COMPANIES`, the same on every machine."""
    params = dict(BENCH_COMPANIES[name])
    return make_company(name, params.pop("seed", f"bench:{name}"), **params)


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
_NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy")  # acme's cities
_LEVELS = {"low": "L1", "medium": "L2", "high": "L3"}
_DEMO_NAMES = frozenset(t.name for t in DEMO_TOOLS)


def demo_call(data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Acme's right call for one record, by what the record holds: a bill (amount) goes to zx_post in cents, a
    complaint (severity) to qv_file with a coded level, an address change (postcode) to kr_sync; every ref is
    the customer id with the ACME- prefix."""
    ref = f"{DEMO_PREFIX}-{data['customer']}"
    if "amount" in data:
        return "zx_post", {"ref": ref, "cents": int(round(float(data["amount"]) * 100))}
    if "severity" in data:
        return "qv_file", {"ref": ref, "level": _LEVELS[str(data["severity"])]}
    return "kr_sync", {"ref": ref, "zip": str(data["postcode"])}


def demo_examples(n: int, seed: int = 1) -> list[Example]:
    """Acme's jobs (`demo_call` says which call each record needs)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        customer = f"c{rng.randint(100, 999)}"
        kind = rng.randrange(3)
        if kind == 0:
            amount = rng.randint(1, 99)
            task = rng.choice(("Bill the customer for the order", "Charge this customer", "Send the bill"))
            data: dict[str, Any] = {"customer": customer, "amount": amount}
        elif kind == 1:
            severity = rng.choice(list(_LEVELS))
            task = rng.choice(("Log this complaint", "The customer is unhappy, file it", "Record a complaint"))
            data = {"customer": customer, "severity": severity}
        else:
            postcode = f"{rng.randint(1000, 9999)}"
            task = rng.choice(("Update the customer's address", "The customer moved", "Change the shipping address"))
            data = {"customer": customer, "postcode": postcode, "city": rng.choice(_NAMES)}
        tool, args = demo_call(data)
        out.append(Example(task, json.dumps(data), tool, args))
    return out
