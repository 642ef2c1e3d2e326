"""Prometheus metrics, structured JSON logs with a request id, and redaction of secrets from logs."""
