"""Numba kernels: arrays in, arrays out. No validation, no Python objects, no I/O.

Modules here import numba at import time; public wrappers import them on first use so
that ``import fastseg`` stays cheap.
"""
