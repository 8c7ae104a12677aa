"""A real single-node Apache Kafka broker (KRaft) from its Maven Central jars, without Docker."""
