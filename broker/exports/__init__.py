"""Exports for negotiation: commitment recommendations with market evidence (JSON, CSV, XLSX) and FOCUS usage."""
