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


@dataclass(frozen=True)
class Grounding:
    """{tool: {argument: the prefixes its value may take before a copied value}} as sorted tuples (hashable)."""

    rules: tuple[tuple[str, tuple[tuple[str, tuple[str, ...]], ...]], ...] = ()

    def of(self, tool: str) -> dict[str, tuple[str, ...]]:
        return dict(next((args for name, args in self.rules if name == tool), ()))

    def to_json(self) -> dict[str, dict[str, list[str]]]:
        return {tool: {arg: list(prefixes) for arg, prefixes in args} for tool, args in self.rules}

    @classmethod
    def from_json(cls, value: Any) -> Grounding:
        """Raises ValueError naming what is malformed."""
        if not isinstance(value, dict):
            raise ValueError(f"grounding rules must be an object, not {type(value).__name__}")
        rules = []
        for tool, args in sorted(value.items()):
            if not isinstance(args, dict) or not all(
                    isinstance(p, list) and all(isinstance(x, str) for x in p) for p in args.values()):
                raise ValueError(f"grounding rules of {tool!r} must map arguments to lists of prefixes")
            rules.append((str(tool), tuple((str(a), tuple(sorted(p))) for a, p in sorted(args.items()))))
        return cls(tuple(rules))


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
    """The values a prompt offers to copy: strings (and numbers written as text) and numbers."""

    strings: frozenset[str]
    numbers: frozenset[Number]
    complete: bool = True  # False: the task was too long to offer its words, so nothing may be narrowed


def offered(context: PromptContext) -> Offered:
    """Every value the request holds: its data's leaves, runs of words of its task, and the strings and numbers
    of the unit's earlier steps (a later call copies from an earlier answer)."""
    strings: set[str] = set()
    numbers: set[Number] = set()
    try:
        _leaves(json.loads(context.payload_json), strings, numbers)
    except (ValueError, RecursionError):  # not JSON, or a number past the interpreter's digit limit
        pass
    if len(context.task.split()) > MAX_TASK_WORDS:
        return Offered(frozenset(), frozenset(), complete=False)
    _words(context.task, strings, numbers)
    for step in context.steps:
        for literal in _STRING.findall(step):
            try:
                _leaves(json.loads(f'"{literal}"'), strings, numbers)
            except ValueError:
                continue
        for literal in _NUMBER.findall(step):  # "0042" is a string's digits, not a JSON number: offered as text
            _leaves(literal, strings, numbers)
    return Offered(frozenset(strings), frozenset(numbers))


def _leaves(value: Any, strings: set[str], numbers: set[Number]) -> None:
    if isinstance(value, dict):
        for item in value.values():
            _leaves(item, strings, numbers)
    elif isinstance(value, list):
        for item in value:
            _leaves(item, strings, numbers)
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int | float):
        numbers.add(value)
        strings.add(json.dumps(value))
    elif isinstance(value, str):
        strings.add(value)
        number = _as_number(value)
        if number is not None:
            numbers.add(number)


def _as_number(text: str) -> Number | None:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _words(text: str, strings: set[str], numbers: set[Number]) -> None:
    words = text.split()
    for i in range(len(words)):
        for j in range(i + 1, min(i + MAX_WORDS, len(words)) + 1):
            run = " ".join(words[i:j])
            for form in {run, run.strip(_EDGE)}:
                if form:
                    _leaves(form, strings, numbers)


def _groundable(schema: Any) -> bool:
    """An argument a rule may narrow: a string or number with no fixed set of values of its own."""
    return (isinstance(schema, dict) and "enum" not in schema and "const" not in schema
            and schema.get("type") in ("string", "number", "integer"))


def _prefixes(value: Any, offer: Offered) -> set[str]:
    """The prefixes behind which `value` is a copy of an offered value ("" for a plain copy); empty when none."""
    if isinstance(value, bool) or value is None:
        return set()
    if isinstance(value, int | float):
        return {""} if value in offer.numbers else set()
    if isinstance(value, str):
        return {value[:i] for i in range(len(value)) if value[i:] in offer.strings}
    return set()


def learn(examples: Iterable[tuple[PromptContext, str, Mapping[str, Any]]], tools: Iterable[ToolSpec],
          min_examples: int = MIN_EXAMPLES) -> Grounding:
    """The rules a company's examples (context, tool, arguments) bear out: an argument gets one only when every
    example that passes it copies it from its request, behind a prefix all of them share."""
    schemas = {t.name: t.parameters.get("properties", {}) for t in tools}
    seen: dict[tuple[str, str], set[str] | None] = {}
    counts: dict[tuple[str, str], int] = {}
    for context, tool, arguments in examples:
        if tool in ANSWERS or tool not in schemas:
            continue
        offer: Offered | None = None
        for arg, value in arguments.items():
            key = (tool, arg)
            if not _groundable(schemas[tool].get(arg)) or seen.get(key, set()) is None:
                continue
            offer = offer or offered(context)
            if not offer.complete:
                break
            found = _prefixes(value, offer)
            kept = found if key not in seen else (seen[key] or set()) & found
            seen[key] = kept or None  # None: this argument is not always a copy
            counts[key] = counts.get(key, 0) + 1
    rules: dict[str, dict[str, list[str]]] = {}
    for (tool, arg), prefixes in seen.items():
        if prefixes and counts[(tool, arg)] >= min_examples:
            rules.setdefault(tool, {})[arg] = sorted(prefixes)
    return Grounding.from_json(rules)


def narrow(schema: dict[str, Any], context: PromptContext | None, grounding: Grounding) -> dict[str, Any]:
    """`schema` (a `call_schema`) with each grounded argument reduced to the values this prompt offers, behind
    its prefixes, that its own schema accepts. An argument the prompt offers nothing valid for keeps its schema."""
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
        prefixes = rules.get(arg)
        allowed = _allowed(schema, prefixes, offer) if prefixes is not None and _groundable(schema) else []
        narrowed[arg] = {"enum": allowed} if allowed else schema
    return {**branch, "properties": {**branch["properties"], "arguments": {**arguments, "properties": narrowed}}}


def _allowed(schema: dict[str, Any], prefixes: tuple[str, ...], offer: Offered) -> list[Any]:
    if schema.get("type") == "string":
        values: set[Any] = {p + s for p in prefixes for s in offer.strings}
    else:
        values = {n for n in offer.numbers if "" in prefixes}
    if len(values) > MAX_ENUM * 4:  # checked before each value meets the schema: a bound on the work, too
        return []
    allowed = sorted((v for v in values if is_valid(schema, v)), key=json.dumps)
    return allowed if len(allowed) <= MAX_ENUM else []
