"""Local stand-ins for the services evalstream talks to: a Kafka broker and an inference engine."""
