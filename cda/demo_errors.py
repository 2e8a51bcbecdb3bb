"""The demo's one error: a step that could not be done, named with what to do."""

from __future__ import annotations

from core.errors import CdaError


class DemoError(CdaError):
    """A step of the demo could not be done; the message names the step and what to do."""
