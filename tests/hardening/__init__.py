"""Hardening: bad inputs, faults, interrupted work and long runs."""
