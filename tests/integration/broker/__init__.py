"""Broker conformance: the guarantees the engine relies on, tested against the broker itself.

Run against the session stack's broker (Apache Kafka by default, Tansu with SAGA_BROKER=tansu);
`python -m tests.integration.broker.report` runs it on both and writes docs/broker-conformance.md.
"""
