"""Errors of the inference package, naming the adapter, company or server at fault."""

from cda.errors import CdaError, TransientError


class InferenceError(CdaError):
    """Base of every error raised by `inference`."""


class InferenceUnavailable(InferenceError, TransientError):
    """The server is down, restarting or too slow: the request failed fast instead of hanging."""


class AdapterInvalid(InferenceError):
    """An adapter cannot be served; `kind` classifies why (rank_too_large, wrong_base_model, ...)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class ServerSetupError(InferenceError):
    """The vLLM server could not be started."""
