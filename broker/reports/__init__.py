"""Showback: what each team and project spent on GPUs, in business terms."""
