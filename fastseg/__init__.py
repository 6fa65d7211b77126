"""fastseg: fast, typed tools for segmentation label volumes.

Relabeling, connected components and per-instance statistics on numpy label arrays,
compiled with numba on first use (nothing compiles at import).
"""

from fastseg.dtypes import as_labels, fit_dtype
from fastseg.relabel import mask, remap, renumber, unique

__all__ = ["as_labels", "fit_dtype", "mask", "remap", "renumber", "unique"]
__version__ = "0.1.0"
