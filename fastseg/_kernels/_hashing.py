"""Open-addressing hash tables over uint64 keys, stored as plain arrays.

Used where ids are too sparse for a lookup table the size of the largest id
(connectomics ids reach 10^8 and beyond). Tables have a power-of-two capacity and are
kept at most half full, so linear probing stays short.
"""

from __future__ import annotations

import numpy as np

from fastseg._jit import kernel

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@kernel(helper=True)
def table_bits(n_keys: int) -> int:
    """log2 of the capacity that keeps ``n_keys`` keys at most a quarter full."""
    bits = 4
    while (1 << bits) < 4 * n_keys:
        bits += 1
    return bits


@kernel(helper=True)
def find_slot(keys: np.ndarray, used: np.ndarray, bits: int, key: np.uint64) -> np.int64:
    """Slot holding ``key``, or the empty slot where it would go (check ``used``).

    The home slot is the top ``bits`` bits of ``key`` times 2^64/phi (Fibonacci hashing)."""
    mask = (np.int64(1) << bits) - 1
    slot = np.int64((key * _GOLDEN) >> np.uint64(64 - bits))  # Fibonacci hashing
    while used[slot] and keys[slot] != key:
        slot = (slot + 1) & mask
    return slot


@kernel()
def build_table(
    keys: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Hash table of unique uint64 ``keys`` to ``values``: (keys, values, used, bits)."""
    bits = table_bits(keys.size)
    capacity = 1 << bits
    table_keys = np.zeros(capacity, np.uint64)
    table_values = np.zeros(capacity, values.dtype)
    used = np.zeros(capacity, np.bool_)
    for i in range(keys.size):
        slot = find_slot(table_keys, used, bits, keys[i])
        table_keys[slot] = keys[i]
        table_values[slot] = values[i]
        used[slot] = True
    return table_keys, table_values, used, bits
