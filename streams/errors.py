"""Errors of the agents (`streams/`). Each refusal of the API bridge carries the `kind` that its
`CallOutcome.error_kind` reports, so the agent loop records one stable word per failure, and `retryable`
says whether the same call could succeed later unchanged.

Messages name the tool, field, host or secret *reference*; never a secret's value."""

from __future__ import annotations

from core.errors import CdaError, TransientError


class StreamsError(CdaError):
    """Base of every error raised by `streams`."""


class BridgeError(StreamsError):
    """A tool call that is refused or failed for good; `kind` is the outcome's `error_kind`."""

    kind = "bridge_error"
    retryable = False


class InvalidArguments(BridgeError):
    """The arguments do not fit the tool's schema (or its URL template); nothing was sent."""

    kind = "invalid_arguments"


class BadUrl(BridgeError):
    """The tool's URL or method cannot be called (not http(s), no host, credentials in the URL, ...)."""

    kind = "bad_url"


class BlockedAddress(BridgeError):
    """The host resolves to an address tools may not reach (loopback, private, metadata, ...)."""

    kind = "blocked_address"


class UnresolvedHost(BridgeError):
    """The host did not resolve; DNS may answer later, so the call may be tried again."""

    kind = "transport"
    retryable = True


class MissingSecret(BridgeError):
    """The tool's secret reference names nothing that is there (or names an unknown backend)."""

    kind = "missing_secret"


class SecretNotAllowed(BridgeError):
    """The tool's secret reference is not in the company's allowed secrets."""

    kind = "secret_not_allowed"


class ResponseTooLarge(BridgeError):
    """The company's API answered with more than the bridge reads."""

    kind = "response_too_large"


class AttemptTimedOut(StreamsError, TransientError):
    """One attempt of a call ran past its bound; the Idempotency-Key makes a resend safe."""
