#!/bin/sh
# The official script's entry point: Kafka's storage tool (format, random-uuid).
exec java -cp "/opt/kafka/libs/*" kafka.tools.StorageTool "$@"
