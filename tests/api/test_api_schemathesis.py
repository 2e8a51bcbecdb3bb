"""schemathesis against the live API on the real broker and chDB: every operation of the OpenAPI document, with
generated valid and invalid input, under a real company key. Counts (printed): responses, 5xx, and responses that
break their own schema (undeclared status, wrong content type, body not matching the declared schema)."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.api_support import api_stack, auth

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(1200)]
EXAMPLES = int(os.environ.get("CDA_TEST_SCHEMATHESIS_EXAMPLES", "30"))
SCHEMA_CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance,
                 response_headers_conformance]


def exercise(operation: Any, url: str, key: str, counts: Counter[str], problems: list[str]) -> None:
    """Generated cases of one operation against the live server; every answer counted and checked."""

    @given(case=operation.as_strategy())
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(case: schemathesis.Case) -> None:
        headers = {**(case.headers or {}), **auth(key)}
        if case.path.startswith("/admin"):
            headers.pop("Authorization", None)
        response = case.call(base_url=url, headers=headers, timeout=60)
        counts["responses"] += 1
        counts[f"{response.status_code // 100}xx"] += 1
        counts[str(response.status_code)] += 1
        try:
            case.validate_response(response, checks=[not_a_server_error])
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - counted, then failed by the test
            counts["server_errors"] += 1
            problems.append(f"{case.method} {case.formatted_path}: {exc}"[:400])
        try:
            case.validate_response(response, checks=SCHEMA_CHECKS)
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001
            counts["schema_violations"] += 1
            problems.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {exc}"[:400])

    run()


def test_schemathesis_finds_no_5xx_and_no_response_breaking_its_schema(catalog, store) -> None:  # type: ignore[no-untyped-def]
    for stack in api_stack(catalog, store, api_rate_per_s=10_000.0, api_rate_burst=10_000):
        _, key = stack.company()
        with stack.client(key) as client:  # something to find: a tool, a job
            client.post("/company-automation/register-tools", json={"tools": [
                {"name": "t1", "description": "d", "url": "https://x.example/a", "parameters": {"type": "object"}}]})
            client.post("/company-automation/process", json={"task": "t", "data": {"a": [{"b": 1}]}})
        schema = schemathesis.openapi.from_url(f"{stack.url}/openapi.json")
        counts: Counter[str] = Counter()
        problems: list[str] = []
        for result in schema.get_all_operations():
            exercise(result.ok(), stack.url, key, counts, problems)
        print(f"\nSCHEMATHESIS operations={len(list(schema.get_all_operations()))} responses={counts['responses']} "
              f"2xx={counts['2xx']} 4xx={counts['4xx']} 5xx={counts['5xx']} server_errors={counts['server_errors']} "
              f"schema_violations={counts['schema_violations']} by status={ {k: v for k, v in counts.items() if k.isdigit()} }")
        assert counts["responses"] > 0
        assert problems == []
