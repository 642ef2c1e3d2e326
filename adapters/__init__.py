"""Price sources: one module per source, each a ``Source`` subclass registered under ``broker.sources``."""
