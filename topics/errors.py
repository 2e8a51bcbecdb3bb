"""Errors of the event backbone, raised at its boundaries with the topic, field or address at fault."""

from core.errors import CdaError, TransientError


class TopicsError(CdaError):
    """Base of every error raised by `topics`."""


class SchemaNotFound(TopicsError):
    """No schema in the catalog matches an event type, version or fingerprint."""


class EventValidationError(TopicsError):
    """An event does not fit its schema; `path` names the field at fault."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


class SerializationError(TopicsError):
    """Bytes could not be turned into an event, or an event into bytes."""


class IncompatibleSchema(TopicsError):
    """A schema change would make stored events unreadable."""


class UnknownTopic(TopicsError):
    """A topic name is not in the catalog."""


class BrokerUnavailable(TopicsError, TransientError):
    """The Kafka broker did not answer within the bound."""


class DeliveryError(TopicsError, TransientError):
    """The broker did not acknowledge a produced record."""


class BrokerSetupError(TopicsError):
    """The local broker could not be fetched, formatted or started."""


class InvalidIdentifier(EventValidationError):
    """An identifier field (company, request, tool, job, session...) is not of the one safe form."""


class RegistryUnavailable(TopicsError, TransientError):
    """The schema registry did not answer; decoding is retried, never dead-lettered."""


class CommitFailed(TopicsError, TransientError):
    """A consumer group could not commit (broker gone, rebalance): re-join; the records come back."""
