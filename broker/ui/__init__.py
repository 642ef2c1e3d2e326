"""The dashboard at ``/ui``: one static page that reads the public API (offers, price history, source health)."""
