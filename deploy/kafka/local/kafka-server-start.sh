#!/bin/sh
# The official script's entry point: the broker (KRaft), in the foreground.
exec java -Xmx${KAFKA_HEAP:-512m} -cp "/opt/kafka/libs/*" kafka.Kafka "$@"
