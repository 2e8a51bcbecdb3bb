#!/bin/sh
# The compose broker, secured like `cda kafka up`: SASL/SCRAM for clients and the broker itself, PLAIN inside the
# KRaft quorum, the ACL authorizer (each part's ACLs come from `cda topics apply`). The storage is formatted once,
# with every principal's SCRAM credential; the passwords come from .env (`cda kafka credentials --env-file .env`).
set -eu
: "${SCRAM_BROKER_PASSWORD:?run cda kafka credentials --env-file .env first}"
CONF=/tmp/cda-server.properties
PORT=${KAFKA_CDA_PORT:-19092}  # clients (kafka:PORT)
CONTROLLER=${KAFKA_CDA_CONTROLLER_PORT:-9093}
ADVERTISED=${KAFKA_CDA_ADVERTISED_HOST:-kafka}  # the name clients reach the broker by
umask 077
cat > "$CONF" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@localhost:${CONTROLLER}
listeners=INTERNAL://:${PORT},CONTROLLER://localhost:${CONTROLLER}
advertised.listeners=INTERNAL://${ADVERTISED}:${PORT}
listener.security.protocol.map=INTERNAL:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT
inter.broker.listener.name=INTERNAL
controller.listener.names=CONTROLLER
sasl.enabled.mechanisms=SCRAM-SHA-256
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-256
listener.name.internal.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="broker" password="${SCRAM_BROKER_PASSWORD}";
sasl.mechanism.controller.protocol=PLAIN
listener.name.controller.sasl.enabled.mechanisms=PLAIN
listener.name.controller.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="controller" password="${SCRAM_CONTROLLER_PASSWORD}" user_controller="${SCRAM_CONTROLLER_PASSWORD}";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:broker;User:controller;User:operator
allow.everyone.if.no.acl.found=false
log.dirs=/var/lib/kafka/data
num.partitions=3
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
PROPS
# the healthcheck's login
cat > /tmp/cda-operator.properties <<PROPS
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-256
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="operator" password="${SCRAM_OPERATOR_PASSWORD}";
PROPS
if [ ! -f /var/lib/kafka/data/meta.properties ]; then
  scram=""
  for name in api agents trainer inference projections operator broker; do
    var="SCRAM_$(echo "$name" | tr a-z A-Z)_PASSWORD"
    eval "password=\${$var:?$var is missing (cda kafka credentials --env-file .env)}"
    scram="$scram --add-scram SCRAM-SHA-256=[name=$name,password=$password]"
  done
  # shellcheck disable=SC2086 # one argument per word, on purpose
  /opt/kafka/bin/kafka-storage.sh format --cluster-id "$(/opt/kafka/bin/kafka-storage.sh random-uuid)" \
    -c "$CONF" $scram
fi
exec /opt/kafka/bin/kafka-server-start.sh "$CONF"
