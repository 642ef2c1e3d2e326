"""GPU price-arbitrage broker."""

__version__ = "0.1.0"
