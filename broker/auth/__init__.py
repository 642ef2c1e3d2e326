"""API keys: scoped bearer tokens stored only as hashes, checked on every request but liveness and readiness."""
