"""Scratch arrays whose memory goes back to the system from the front, as work passes it.

Labeling holds a few bytes per run until the output is painted, and painting touches
the output's fresh pages in order: handing back the run tables as painting passes them
keeps the peak near the output's size instead of the output plus the tables. Where the
platform cannot hand back part of an allocation (no ``madvise``), or for small tables,
the array is an ordinary one and releasing does nothing.
"""

from __future__ import annotations

import contextlib
import mmap
from typing import Any

import numpy as np
import numpy.typing as npt

_DONTNEED = getattr(mmap, "MADV_DONTNEED", None)
_ANONYMOUS = getattr(mmap, "MAP_ANONYMOUS", None)
_HUGEPAGE = getattr(mmap, "MADV_HUGEPAGE", None)

_HUGE_BYTES = 2 << 20

# Below this size the tables do not weigh on the peak; an ordinary array is cheaper.
MIN_BYTES = 16 << 20


class Scratch:
    """An uninitialised 1-D array (``.array``) whose front can be handed back.

    Parameters
    ----------
    count : int
        Number of elements.
    dtype : dtype
        Element type.
    """

    def __init__(self, count: int, dtype: npt.DTypeLike) -> None:
        dt = np.dtype(dtype)
        nbytes = count * dt.itemsize
        self._map: mmap.mmap | None = None
        self._released = 0
        self.array: np.ndarray[Any, Any]
        if _DONTNEED is None or _ANONYMOUS is None or nbytes < MIN_BYTES:
            self.array = np.empty(count, dt)
            return
        # Private: shared anonymous memory would keep its pages after MADV_DONTNEED
        # (and is not given huge pages).
        self._map = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | _ANONYMOUS)
        if _HUGEPAGE is not None:
            # Fewer page faults while the tables are written, as numpy asks for its
            # own large arrays; a system that refuses only loses that.
            with contextlib.suppress(OSError):
                self._map.madvise(_HUGEPAGE)
        self.array = np.frombuffer(self._map, dt, count)

    def release_before(self, stop: int) -> None:
        """Hand back the whole pages below element ``stop``; their contents are lost and
        must not be read again."""
        if self._map is None or _DONTNEED is None:
            return
        # Whole huge pages only (they are 2 MiB aligned in the address space), so that
        # none is split to hand back part of it.
        address = self.array.ctypes.data
        end = (address + stop * self.array.itemsize) // _HUGE_BYTES * _HUGE_BYTES - address
        if end > self._released:
            self._map.madvise(_DONTNEED, self._released, end - self._released)
            self._released = end
