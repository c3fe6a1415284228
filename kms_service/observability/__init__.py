"""Operational visibility: Prometheus metrics and the JSON-lines audit log."""
