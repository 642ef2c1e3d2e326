"""Learned spot interruption rates: the placement prior updated with reported runs (Gamma-Poisson)."""
