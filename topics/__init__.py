"""The event contract: Avro schemas, the topic catalog, serialization, broker and topic tooling."""
