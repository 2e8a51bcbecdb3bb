"""JSON Schemas that fetch nothing: every validator cda builds comes from here.

A company writes its tools' parameter schemas. jsonschema's default registry retrieves a `$ref` it does not
hold with urllib (no timeout, redirects followed, `file://` read): from one company key that is a request to
any address, a hung worker or a read of `/dev/zero`. Here a `$ref` resolves only inside its own schema (and
the bundled meta-schemas); registration refuses any other (`check_local_refs`), and one already on the log
makes the arguments invalid instead of being fetched.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any, NoReturn

import referencing
import referencing.exceptions
from jsonschema import exceptions as schema_errors
from jsonschema.protocols import Validator
from jsonschema.validators import Draft202012Validator, validator_for

from core.errors import CdaError

REFERENCE_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")


class RemoteReference(CdaError, ValueError):
    """A schema `$ref` pointing outside the schema itself."""


def _refuse(uri: str) -> NoReturn:
    raise referencing.exceptions.NoSuchResource(ref=uri)


LOCAL_ONLY: referencing.Registry[Any] = referencing.Registry(retrieve=_refuse)  # type: ignore[call-arg]


def _walk(node: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key in REFERENCE_KEYWORDS and isinstance(value, str):
                yield f"{path}.{key}" if path else key, value
            else:
                yield from _walk(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")


def remote_refs(schema: Any) -> list[tuple[str, str]]:
    """(where, reference) of each reference that does not point inside the schema (`#...`)."""
    return [(where, ref) for where, ref in _walk(schema, "") if not ref.startswith("#")]


def check_local_refs(schema: Any, field: str) -> None:
    """`RemoteReference` naming `field` and the place of the first reference outside the schema."""
    found = remote_refs(schema)
    if found:
        where, ref = found[0]
        raise RemoteReference(f"{field}: {where} must point inside the schema ('#/...'), not {ref!r}: "
                              "references to other documents are never fetched")


def check_schema(schema: Mapping[str, Any]) -> None:
    """`jsonschema.SchemaError` when `schema` is not a valid schema of its draft (2020-12 by default)."""
    validator_for(schema, default=Draft202012Validator).check_schema(schema)


def validator(schema: Mapping[str, Any]) -> Validator:
    """A validator of `schema` (its own draft, 2020-12 by default) whose references resolve only locally."""
    return validator_for(schema, default=Draft202012Validator)(schema, registry=LOCAL_ONLY)  # type: ignore[call-arg]


@lru_cache(maxsize=1024)
def cached_validator(schema_json: str) -> Validator:
    """`validator` of a schema given as canonical JSON text, checked first, kept for reuse."""
    schema = json.loads(schema_json)
    check_schema(schema)
    return validator(schema)


def errors(schema: Mapping[str, Any] | Validator, instance: Any) -> list[schema_errors.ValidationError]:
    """The validation errors of `instance`, by path; a reference that cannot be resolved locally is one error
    at the root (never a fetch, never an exception)."""
    checker = schema if not isinstance(schema, Mapping) else validator(schema)
    try:
        return sorted(checker.iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path])
    except referencing.exceptions.Unresolvable as exc:
        return [schema_errors.ValidationError(f"the schema refers to something it does not hold: {exc}")]


def is_valid(schema: Mapping[str, Any], instance: Any) -> bool:
    return not errors(schema, instance)
