"""Errors of the event backbone, raised at its boundaries with the topic, field or address at fault."""


class TopicsError(Exception):
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


class BrokerUnavailable(TopicsError):
    """The Kafka broker did not answer within the bound."""


class DeliveryError(TopicsError):
    """The broker did not acknowledge a produced record."""


class BrokerSetupError(TopicsError):
    """The local broker could not be fetched, formatted or started."""
