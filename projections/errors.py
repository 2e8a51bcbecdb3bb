"""Errors of the projections, naming the table, event or store at fault."""

from core.errors import CdaError, TransientError


class ProjectionError(CdaError):
    """Base of every error raised by `projections`."""


class StoreUnavailable(ProjectionError, TransientError):
    """The ClickHouse store cannot be reached or opened; retry later, commit nothing."""


class StoreError(ProjectionError):
    """The store refused a statement (bad SQL, bad data): retrying will not help."""


class FoldError(ProjectionError):
    """An event cannot be folded into a projection (unknown type, field out of range)."""


class UnknownProjection(ProjectionError):
    """A projection name that is not defined."""
