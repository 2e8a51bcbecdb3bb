"""The agents' fixtures: `cda` on a test's `company_tools` topic (importing tools from OpenAPI documents)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from core.settings import Settings


@pytest.fixture
def cli(catalog: Callable[..., Settings], cli_for: Callable[..., Callable[..., Any]]) -> Callable[..., Any]:
    return cli_for(catalog("company_tools"))
