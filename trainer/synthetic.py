"""Synthetic companies for building and measuring: a generic world of tool calls (to pretrain the tiny base
on the prompt format and on copying values from data into arguments) and a demo company whose
conventions no base can guess (opaque tool names, prefixed ids, amounts in cents, coded severities),
so an adapter's gain on its held-out tasks is measurable."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

from trainer.examples import Example, ToolSpec

_VERBS = ("create", "update", "delete", "send", "open", "close", "assign", "refund", "schedule", "lookup")
_OBJECTS = ("invoice", "ticket", "email", "order", "customer", "shipment", "meeting", "payment", "contract", "note")
_FIELDS = ("customer_id", "order_id", "amount", "email", "city", "priority", "quantity", "ticket_id", "name", "date")
_NAMES = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy")


def _field_value(rng: random.Random, name: str) -> object:
    if name in ("amount", "quantity"):
        return rng.randint(1, 99)
    if name.endswith("_id"):
        return f"{name[0]}{rng.randint(100, 999)}"
    if name == "email":
        return f"{rng.choice(_NAMES)}@{rng.choice(_OBJECTS)}.example"
    if name == "priority":
        return rng.choice(["low", "medium", "high"])
    if name == "date":
        return f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    return rng.choice(_NAMES) + str(rng.randint(1, 9))


@dataclass(frozen=True)
class World:
    tools: tuple[ToolSpec, ...]
    examples: tuple[Example, ...]


def generic_world(seed: int, n_examples: int) -> World:
    """A random company: 2-4 tools named for what they do; each task names its tool's action and object,
    and the call copies the argument values from the data by key."""
    rng = random.Random(seed)
    tools: list[ToolSpec] = []
    while len(tools) < rng.randint(2, 4):
        verb, obj = rng.choice(_VERBS), rng.choice(_OBJECTS)
        name = f"{verb}_{obj}"
        if any(t.name == name for t in tools):
            continue
        fields = rng.sample(_FIELDS, rng.randint(1, 3))
        props = {f: {"type": "integer" if f in ("amount", "quantity") else "string"} for f in fields}
        tools.append(ToolSpec(name, f"{verb.capitalize()} a {obj}", {"type": "object", "properties": props,
                                                                     "required": fields, "additionalProperties": False}))
    examples = []
    for _ in range(n_examples):
        tool = rng.choice(tools)
        verb, obj = tool.name.split("_", 1)
        fields = list(tool.parameters["properties"])
        data = {f: _field_value(rng, f) for f in fields}
        extra = rng.sample([f for f in _FIELDS if f not in data], rng.randint(0, 2))
        data.update({f: _field_value(rng, f) for f in extra})
        items = list(data.items())
        rng.shuffle(items)
        task = rng.choice(("Please {v} the {o}", "{v} {o} now", "We need to {v} this {o}", "Can you {v} a {o}"))
        examples.append(Example(task.format(v=verb, o=obj), json.dumps(dict(items)), tool.name,
                                {f: data[f] for f in fields}))
    return World(tuple(tools), tuple(examples))


# -- the demo company -------------------------------------------------------------------------------
DEMO_COMPANY = "acme"
DEMO_TOOLS = (
    ToolSpec("zx_post", "Acme endpoint 7", {"type": "object", "properties": {
        "ref": {"type": "string", "pattern": "^ACME-[a-z0-9]+$"}, "cents": {"type": "integer"}},
        "required": ["ref", "cents"], "additionalProperties": False}),
    ToolSpec("qv_file", "Acme endpoint 3", {"type": "object", "properties": {
        "ref": {"type": "string", "pattern": "^ACME-[a-z0-9]+$"}, "level": {"enum": ["L1", "L2", "L3"]}},
        "required": ["ref", "level"], "additionalProperties": False}),
    ToolSpec("kr_sync", "Acme endpoint 9", {"type": "object", "properties": {
        "ref": {"type": "string", "pattern": "^ACME-[a-z0-9]+$"}, "zip": {"type": "string"}},
        "required": ["ref", "zip"], "additionalProperties": False}),
)
_LEVELS = {"low": "L1", "medium": "L2", "high": "L3"}


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
            data, tool, args = {"customer": customer, "amount": amount}, "zx_post", {"ref": f"ACME-{customer}", "cents": amount * 100}
        elif kind == 1:
            severity = rng.choice(list(_LEVELS))
            task = rng.choice(("Log this complaint", "The customer is unhappy, file it", "Record a complaint"))
            data, tool, args = {"customer": customer, "severity": severity}, "qv_file", {"ref": f"ACME-{customer}", "level": _LEVELS[severity]}
        else:
            postcode = f"{rng.randint(1000, 9999)}"
            task = rng.choice(("Update the customer's address", "The customer moved", "Change the shipping address"))
            data, tool, args = {"customer": customer, "postcode": postcode, "city": rng.choice(_NAMES)}, "kr_sync", {"ref": f"ACME-{customer}", "zip": postcode}
        out.append(Example(task, json.dumps(data), tool, args))
    return out
