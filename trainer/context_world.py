"""Jobs whose right call depends on context: a company note (memory) or the result of an earlier job of the
session. The base is pretrained on them (`trainer.pretrain`, its context stage) so that a note can decide an
argument neither the task nor the data gives ("Default currency: CHF", "For Vorn Akela, priority is P1"), and
a follow-up ("refund the invoice we just created") takes its id from the earlier result. Every value is
made up, so it can only be copied from the context, never remembered; distractor notes and earlier results
teach which one applies. Its own random streams: the generic world (`trainer.synthetic`) is unchanged."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, replace
from typing import Any

from core.prompts import ToolSpec, render_earlier
from trainer import values
from trainer.examples import Example
from trainer.synthetic import _SOURCES, _TEXT_KINDS, Company, _Tool, make_company

# arguments that only a note decides (a company's standing preference): name -> how its values look
NOTE_ARGS: dict[str, str] = {"currency": "currency", "depot": "name", "carrier": "name", "region": "code",
                             "language": "code", "channel": "name", "warehouse": "name", "team": "name",
                             "priority": "code", "cost_center": "digits", "account_manager": "name"}
_NOTE_FORMS = ("Default {arg}: {value}", "Always use {value} as {arg}", "Our {arg} is {value}",
               "{arg} should be {value} unless told otherwise", "We prefer {value} for {arg}",
               "Set {arg} to {value} on every {obj}", "Use {arg} {value} for all {obj}s")
_FOR_FORMS = ("For {who}, {arg} is {value}", "{who} always gets {arg} {value}", "When the customer is {who}, set {arg} to {value}")
_PLAIN_NOTES = ("Be polite in every email", "Weekends are closed", "Ask before deleting anything",
                "Keep answers short", "Our fiscal year starts in April", "Escalate anything about fraud")
_FOLLOW_UPS = ("we just created", "from the last step", "from before", "we just made", "from the previous job",
               "just opened")
_WHO_KEYS = ("customer", "contact", "company", "name")
MODES = ("plain", "note", "new_note", "for_note", "earlier")
_WEIGHTS = (0.2, 0.15, 0.2, 0.15, 0.3)


@dataclass(frozen=True)
class Situation:
    """One job in context: the tools as the prompt lists them, and the example (with its notes and earlier
    results). `mode` says what decides the contested argument; `decisive` is the note or earlier line that
    does (None for `plain`)."""

    tools: tuple[ToolSpec, ...]
    example: Example
    mode: str
    decisive: str | None


def note_value(rng: random.Random, kind: str) -> Any:
    """A made-up value for a note-only argument."""
    if kind == "currency":
        return "".join(rng.choice(values.LETTERS) for _ in range(3)).upper()
    if kind == "code":
        return f"{rng.choice(values.LETTERS).upper()}{rng.randint(1, 99)}"
    if kind == "digits":
        return values.draw(rng, "digits", rng.randint(3, 6))
    return values.draw(rng, "name", rng.randint(1, 2))


def _note(rng: random.Random, arg: str, value: Any, obj: str) -> str:
    return rng.choice(_NOTE_FORMS).format(arg=arg, value=value, obj=obj)


def distractor_notes(rng: random.Random, taken: set[str], obj: str, n: int) -> list[str]:
    out = []
    for _ in range(n):
        roll = rng.random()
        if roll < 0.2:
            out.append(rng.choice(_PLAIN_NOTES))
            continue
        arg = rng.choice([a for a in NOTE_ARGS if a not in taken] or list(NOTE_ARGS))
        value = note_value(rng, NOTE_ARGS[arg])
        if roll < 0.4:
            who = values.draw(rng, "name", rng.randint(1, 3))
            out.append(rng.choice(_FOR_FORMS).format(who=who, arg=arg, value=value))
        else:
            out.append(_note(rng, arg, value, rng.choice(_SOURCES["name"])))
    return out


def _with_arg(tool: _Tool, name: str) -> ToolSpec:
    """The tool's spec with one more required string argument (a note-only one)."""
    params = tool.spec.parameters
    return ToolSpec(tool.spec.name, tool.spec.description, {
        **params, "properties": {**params["properties"], name: {"type": "string"}},
        "required": [*params["required"], name]})


def situation(company: Company, rng: random.Random, mode: str | None = None) -> Situation:
    """One job of `company` in a context drawn by `mode` (random when None)."""
    mode = mode or rng.choices(MODES, _WEIGHTS)[0]
    tool = rng.choice(company.tools)
    drawn = {a.source: company.value(rng, a.kind) for a in tool.args}
    data: dict[str, Any] = dict(drawn)
    names = {a.name for a in tool.args}
    for kind in rng.sample(list(_SOURCES), rng.randint(0, 2)):
        key = rng.choice(_SOURCES[kind])
        if key not in names:
            data.setdefault(key, company.value(rng, kind))
    task = rng.choice(("Please {v} the {o}", "{v} the {o} now", "We need to {v} this {o}", "{v} the {o}")).format(
        v=tool.verb, o=tool.obj)
    arguments = {a.name: a.make(drawn[a.source]) for a in tool.args}
    specs = {t.spec.name: t.spec for t in company.tools}
    copied = [a for a in tool.args if a.kind in _TEXT_KINDS]
    notes: list[str] = []
    earlier: list[str] = []
    decisive: str | None = None
    if mode in ("note", "earlier") and not copied:
        mode = "new_note"
    if mode == "note":  # a note states the value of an argument the data leaves out
        arg = rng.choice(copied)
        data.pop(arg.source, None)
        decisive = _note(rng, arg.name, arguments[arg.name], tool.obj)
        notes.append(decisive)
    elif mode in ("new_note", "for_note"):  # the tool takes an argument only the company's notes decide
        free = [n for n in NOTE_ARGS if n not in names]
        name = rng.choice(free)
        value = note_value(rng, NOTE_ARGS[name])
        specs[tool.spec.name] = _with_arg(tool, name)
        arguments[name] = value
        if mode == "new_note":
            decisive = _note(rng, name, value, tool.obj)
        else:  # the note names the customer the data is about; the same argument for others is a distractor
            who_key = next((k for k in _WHO_KEYS if k not in data and k not in names), None)
            if who_key is None:
                return situation(company, rng, "new_note")
            who = values.draw(rng, "name", rng.randint(1, 3))
            data[who_key] = who
            decisive = rng.choice(_FOR_FORMS).format(who=who, arg=name, value=value)
            for _ in range(rng.randint(1, 2)):
                other = values.draw(rng, "name", rng.randint(1, 3))
                notes.append(rng.choice(_FOR_FORMS).format(who=other, arg=name, value=note_value(rng, NOTE_ARGS[name])))
        notes.append(decisive)
    elif mode == "earlier":  # a follow-up: the value is in what an earlier job of the session answered
        arg = rng.choice(copied)
        data.pop(arg.source, None)
        result = {arg.source: drawn[arg.source]}
        for kind in rng.sample(_TEXT_KINDS, rng.randint(1, 2)):
            key = rng.choice(_SOURCES[kind])
            if key != arg.source:
                result.setdefault(key, company.value(rng, kind))
        result["status"] = rng.choice(("created", "ok", "done", "open"))
        items = list(result.items())
        rng.shuffle(items)
        previous = rng.choice(company.tools).spec.name
        decisive = render_earlier(previous, dict(items))
        for _ in range(rng.randint(0, 2)):  # older jobs: the newest result is the one a follow-up means
            older = {rng.choice(_SOURCES[k]): company.value(rng, k) for k in rng.sample(_TEXT_KINDS, 2)}
            if rng.random() < 0.4:
                older[arg.source] = company.value(rng, arg.kind)
            earlier.append(render_earlier(rng.choice(company.tools).spec.name, older))
        earlier.append(decisive)
        task = f"{task} {rng.choice(_FOLLOW_UPS)}"
    taken = set(names) | set(arguments)
    extra = distractor_notes(rng, taken, tool.obj, rng.randint(0 if notes else 1, 3))
    notes = notes + extra
    rng.shuffle(notes)
    if mode != "earlier" and rng.random() < 0.3:  # an unrelated earlier job now and then
        earlier.append(render_earlier(rng.choice(company.tools).spec.name,
                                      {rng.choice(_SOURCES["prefixed"]): company.value(rng, "prefixed"), "status": "ok"}))
    items = list(data.items())
    rng.shuffle(items)
    example = Example(task, json.dumps(dict(items)), tool.spec.name, arguments, tuple(notes), tuple(earlier))
    return Situation(tuple(specs[t.spec.name] for t in company.tools), example, mode, decisive)


def context_situations(seed: int | str, n: int) -> list[Situation]:
    """`n` jobs in context of one random company of the context world (seeds apart from the generic world's)."""
    company = make_company(f"ctx{seed}", f"ctx:{seed}")
    rng = random.Random(f"ctx-jobs:{seed}")
    return [situation(company, rng) for _ in range(n)]


def without_context(s: Situation) -> Example:
    """The same job with no notes and no earlier results: what a model without memory or session sees."""
    return replace(s.example, notes=(), earlier=())


