"""Grounded arguments: where a company's calls always copy an argument from the request, the answer may only
copy it.

The trainer learns, from the company's own training examples, which arguments of which tools are always a value
of the request (its data, its task's words, an earlier step's call or answer), written as it is or behind a fixed
prefix (`ACME-` before a customer id). The rules travel with the adapter (`GROUNDING_FILE`), and wherever that
adapter is asked — the gate, the gateway serving the agents — the call schema is narrowed to the values the
prompt offers: a grounded argument becomes an `enum` of them. Guided decoding then cannot slip a digit of a
long id or invent a ref; the adapter still chooses which value goes where. Notes and earlier jobs are no source:
a note cannot put a value into a grounded argument. An argument a company's examples do not always copy
(amounts in cents, coded grades, free text) has no rule and is asked as before."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.json_schemas import is_valid
from core.prompts import ANSWERS, PromptContext, ToolSpec

GROUNDING_FILE = "cda_grounding.json"  # beside the adapter's weights
MIN_EXAMPLES = 5  # an argument seen fewer times than this gets no rule: too little to tell a copy from chance
MAX_WORDS = 5  # values written in a task are taken as runs of up to this many words (names of up to four)
MAX_TASK_WORDS = 200  # a longer task is asked unnarrowed: its runs of words would cost more than they save
MAX_ENUM = 500  # an argument with more candidate values than this keeps its schema (the grammar stays small)
_EDGE = "\"'.,;:!?()[]{}<>"
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])")

Number = int | float
TASK, STEPS = "task", "steps"  # the sources that are no field of the record ("data.<key>")


@dataclass(frozen=True)
class Rule:
    """One grounded argument: the prefixes its value takes before the copied value, and where it is copied from
    (`task`, `steps`, or `data.<key>` — the record's field, nested keys joined by dots)."""

    prefixes: tuple[str, ...]
    sources: tuple[str, ...]
    absent: tuple[str, ...] = ()  # where it came from when the record held none of its fields (empty: never seen)


@dataclass(frozen=True)
class Grounding:
    """{tool: {argument: Rule}} as sorted tuples (hashable, so an `ActiveAdapter` can hold it)."""

    rules: tuple[tuple[str, tuple[tuple[str, Rule], ...]], ...] = ()

    def of(self, tool: str) -> dict[str, Rule]:
        return dict(next((args for name, args in self.rules if name == tool), ()))

    def to_json(self) -> dict[str, dict[str, dict[str, list[str]]]]:
        return {tool: {arg: {"prefixes": list(r.prefixes), "sources": list(r.sources), "absent": list(r.absent)}
                       for arg, r in args} for tool, args in self.rules}

    @classmethod
    def from_json(cls, value: Any) -> Grounding:
        """Raises ValueError naming what is malformed."""
        if not isinstance(value, dict):
            raise ValueError(f"grounding rules must be an object, not {type(value).__name__}")
        rules = []
        for tool, args in sorted(value.items()):
            if not isinstance(args, dict) or not all(_is_rule(r) for r in args.values()):
                raise ValueError(f"grounding rules of {tool!r} must map arguments to their prefixes and sources")
            rules.append((str(tool), tuple((str(a), Rule(*(tuple(sorted(r[k])) for k in ("prefixes", "sources", "absent"))))
                                           for a, r in sorted(args.items()))))
        return cls(tuple(rules))


def _is_rule(value: Any) -> bool:
    return (isinstance(value, dict) and set(value) == {"prefixes", "sources", "absent"}
            and all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in value.values()))


NO_GROUNDING = Grounding()  # the base's, and an adapter's made without rules: every schema as it is


def save(folder: Path, grounding: Grounding) -> None:
    """The rules beside the adapter's weights, so they travel (registry, store) and are served with it."""
    (folder / GROUNDING_FILE).write_text(json.dumps(grounding.to_json(), sort_keys=True, indent=1) + "\n")


def load(folder: Path) -> Grounding:
    """The rules an adapter folder carries; none for a folder without them (an adapter made before them, or
    placed by hand). Raises ValueError for a file that is not rules."""
    path = folder / GROUNDING_FILE
    if not path.is_file():
        return NO_GROUNDING
    try:
        return Grounding.from_json(json.loads(path.read_text()))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        raise ValueError(f"{path} is not readable JSON: {exc}") from None


@dataclass(frozen=True)
class Offered:
    """The values a prompt offers to copy, by source: strings (numbers written as text too) and numbers."""

    strings: dict[str, frozenset[str]]
    numbers: dict[str, frozenset[Number]]
    complete: bool = True  # False: the task was too long to offer its words, so nothing may be narrowed


def offered(context: PromptContext) -> Offered:
    """Every value the request holds, by where it is: its data's leaves (by field), runs of words of its task,
    and the strings and numbers of the unit's earlier steps (a later call copies from an earlier answer)."""
    strings: dict[str, set[str]] = {}
    numbers: dict[str, set[Number]] = {}
    if len(context.task.split()) > MAX_TASK_WORDS:
        return Offered({}, {}, complete=False)
    try:
        _leaves(json.loads(context.payload_json), "data", strings, numbers)
    except (ValueError, RecursionError):  # not JSON, or a number past the interpreter's digit limit
        pass
    _words(context.task, strings, numbers)
    for step in context.steps:
        for literal in _STRING.findall(step):
            try:
                _leaves(json.loads(f'"{literal}"'), STEPS, strings, numbers)
            except ValueError:
                continue
        for literal in _NUMBER.findall(step):  # "0042" is a string's digits, not a JSON number: offered as text
            _leaves(literal, STEPS, strings, numbers)
    return Offered({k: frozenset(v) for k, v in strings.items()}, {k: frozenset(v) for k, v in numbers.items()})


def _leaves(value: Any, source: str, strings: dict[str, set[str]], numbers: dict[str, set[Number]]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _leaves(item, f"{source}.{key}", strings, numbers)
    elif isinstance(value, list):
        for item in value:
            _leaves(item, source, strings, numbers)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int | float):
        numbers.setdefault(source, set()).add(value)
        strings.setdefault(source, set()).add(json.dumps(value))
    elif isinstance(value, str):
        strings.setdefault(source, set()).add(value)
        number = _as_number(value)
        if number is not None:
            numbers.setdefault(source, set()).add(number)


def _as_number(text: str) -> Number | None:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _words(text: str, strings: dict[str, set[str]], numbers: dict[str, set[Number]]) -> None:
    words = text.split()
    for i in range(len(words)):
        for j in range(i + 1, min(i + MAX_WORDS, len(words)) + 1):
            run = " ".join(words[i:j])
            for form in {run, run.strip(_EDGE)}:
                if form:
                    _leaves(form, TASK, strings, numbers)


def _groundable(schema: Any) -> bool:
    """An argument a rule may narrow: a string or number with no fixed set of values of its own."""
    return (isinstance(schema, dict) and "enum" not in schema and "const" not in schema
            and schema.get("type") in ("string", "number", "integer"))


def _copies(value: Any, offer: Offered) -> set[tuple[str, str]]:
    """(prefix, source) pairs behind which `value` is a copy of an offered value ("" for a plain copy)."""
    if isinstance(value, bool) or value is None:
        return set()
    if isinstance(value, int | float):
        return {("", source) for source, found in offer.numbers.items() if value in found}
    if isinstance(value, str):
        return {(value[:i], source) for source, found in offer.strings.items()
                for i in range(len(value)) if value[i:] in found}
    return set()


def learn(examples: Iterable[tuple[PromptContext, str, Mapping[str, Any]]], tools: Iterable[ToolSpec],
          min_examples: int = MIN_EXAMPLES) -> Grounding:
    """The rules a company's examples (context, tool, arguments) bear out: an argument gets one only when every
    example that passes it copies it from its request, behind a prefix all of them share; its sources are every
    place (field, task, steps) some example copied it from, and where it came from in the examples whose record
    held none of those fields (a value written in the task instead)."""
    schemas = {t.name: t.parameters.get("properties", {}) for t in tools}
    prefixes: dict[tuple[str, str], set[str] | None] = {}
    seen: dict[tuple[str, str], list[tuple[set[tuple[str, str]], frozenset[str]]]] = {}
    counts: dict[tuple[str, str], int] = {}
    for context, tool, arguments in examples:
        if tool in ANSWERS or tool not in schemas:
            continue
        offer: Offered | None = None
        for arg, value in arguments.items():
            key = (tool, arg)
            if not _groundable(schemas[tool].get(arg)) or prefixes.get(key, set()) is None:
                continue
            offer = offer or offered(context)
            if not offer.complete:
                break
            found = _copies(value, offer)
            kept = {p for p, _ in found} & (prefixes[key] or set()) if key in prefixes else {p for p, _ in found}
            prefixes[key] = kept or None  # None: this argument is not always a copy
            seen.setdefault(key, []).append((found, frozenset(s for s in offer.strings if s not in (TASK, STEPS))))
            counts[key] = counts.get(key, 0) + 1
    rules: dict[str, dict[str, dict[str, list[str]]]] = {}
    for key, kept in prefixes.items():
        if kept and counts[key] >= min_examples:
            sources = {s for found, _ in seen[key] for p, s in found if p in kept}
            fields = sources - {TASK, STEPS}
            absent = {s for found, present in seen[key] if not present & fields for p, s in found if p in kept}
            rules.setdefault(key[0], {})[key[1]] = {"prefixes": sorted(kept), "sources": sorted(sources),
                                                    "absent": sorted(absent)}
    return Grounding.from_json(rules)


def narrow(schema: dict[str, Any], context: PromptContext | None, grounding: Grounding) -> dict[str, Any]:
    """`schema` (a `call_schema`) with each grounded argument reduced to the values this prompt offers from the
    argument's sources, behind its prefixes, that its own schema accepts. A record that holds none of the fields
    an argument was copied from offers all of its fields instead (a renamed field); an argument the prompt offers
    nothing valid for keeps its schema."""
    if not grounding.rules or context is None or not isinstance(schema.get("anyOf"), list):
        return schema
    offer = offered(context)
    if not offer.complete:
        return schema
    branches = [_narrow_branch(branch, grounding, offer) for branch in schema["anyOf"]]
    return {**schema, "anyOf": branches}


def _narrow_branch(branch: Any, grounding: Grounding, offer: Offered) -> Any:
    try:
        tool = branch["properties"]["tool"]["const"]
        arguments = branch["properties"]["arguments"]
        props = arguments["properties"]
    except (KeyError, TypeError):
        return branch
    rules = grounding.of(str(tool))
    narrowed = {}
    for arg, schema in props.items():
        rule = rules.get(arg)
        allowed = _allowed(schema, rule, offer) if rule is not None and _groundable(schema) else []
        narrowed[arg] = {"enum": allowed} if allowed else schema
    return {**branch, "properties": {**branch["properties"], "arguments": {**arguments, "properties": narrowed}}}


def _sources(rule: Rule, offer: Offered) -> list[str]:
    """The rule's sources this prompt has; where the record holds none of its fields, where the examples took it
    from then (the task), or, never seen, the task and every field of the record (a renamed field)."""
    fields = [s for s in offer.strings if s not in (TASK, STEPS)]
    if any(s in rule.sources for s in fields) or not any(s not in (TASK, STEPS) for s in rule.sources):
        return [s for s in rule.sources if s in offer.strings]
    if rule.absent:
        return [s for s in rule.absent if s in offer.strings]
    return [s for s in rule.sources if s in (TASK, STEPS)] + fields


def _allowed(schema: dict[str, Any], rule: Rule, offer: Offered) -> list[Any]:
    sources = _sources(rule, offer)
    if schema.get("type") == "string":
        values: set[Any] = {p + v for s in sources for v in offer.strings.get(s, ()) for p in rule.prefixes}
    else:
        values = {n for s in sources for n in offer.numbers.get(s, ())} if "" in rule.prefixes else set()
    if len(values) > MAX_ENUM * 4:  # checked before each value meets the schema: a bound on the work, too
        return []
    allowed = sorted((v for v in values if is_valid(schema, v)), key=json.dumps)
    return allowed if len(allowed) <= MAX_ENUM else []
