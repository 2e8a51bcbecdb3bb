"""The top floor's fixtures: `cda` on the whole catalog under the test's prefix, with its own database."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from core.settings import Settings


@pytest.fixture
def cli(catalog: Callable[..., Settings], cli_for: Callable[..., Callable[..., Any]]) -> Callable[..., Any]:
    return cli_for(catalog())
