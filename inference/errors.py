"""Errors of the inference package, naming the adapter, company or server at fault."""

from core.errors import CdaError, TransientError


class InferenceError(CdaError):
    """Base of every error raised by `inference`."""


class InferenceUnavailable(InferenceError, TransientError):
    """The server is down, restarting or too slow: the request failed fast instead of hanging."""


class CompletionRefused(InferenceError):
    """The server answered a completion with a client error (a prompt too long, a bad parameter): sending
    the same request again cannot help."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code


class AdapterInvalid(InferenceError):
    """An adapter cannot be served; `kind` classifies why (rank_too_large, wrong_base_model, foreign_uri...)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class NotAnAdapterAnnouncement(InferenceError):
    """A record on `lora_adapter_ready` that is no `lora_adapter_ready` event: dead-lettered, never served."""


class WaitingForTopics(InferenceError, TransientError):
    """A topic the lifecycle reads does not exist yet (the catalog is applied later): wait and join again."""


class ServerSetupError(InferenceError):
    """The vLLM server could not be started."""
