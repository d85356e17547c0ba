"""Benchmarks that print figures: the classifier, the whole edge agent, and MQTT ingestion."""
