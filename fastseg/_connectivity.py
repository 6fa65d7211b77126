"""Which neighbours touch: connectivity arguments as the public functions take them, and
the 3-D neighbourhood the kernels see."""

from __future__ import annotations

import numpy as np

# Valid connectivities per ndim: neighbour counts, and scipy/skimage "hops" 1..ndim.
_CONNECTIVITY: dict[int, dict[int, int]] = {
    1: {2: 2, 1: 2},
    2: {4: 4, 8: 8, 1: 4, 2: 8},
    3: {6: 6, 18: 18, 26: 26, 1: 6, 2: 18, 3: 26},
}
_FULL = {1: 2, 2: 8, 3: 26}

AS_3D = {2: 6, 4: 6, 8: 26, 6: 6, 18: 18, 26: 26}
"""The kernels always see 3-D; a 1-D or 2-D neighbourhood is the 3-D one restricted to a
single plane, where 6 gives 4 neighbours and 26 gives 8."""


def resolve_connectivity(connectivity: int | None, ndim: int) -> int:
    """The neighbour count ``connectivity`` stands for in ``ndim`` dimensions (None: full
    connectivity; 1..ndim: hops), or ValueError naming the valid choices."""
    if connectivity is None:
        return _FULL[ndim]
    choices = _CONNECTIVITY[ndim]
    valid_type = isinstance(connectivity, int | np.integer) and not isinstance(connectivity, bool)
    if not valid_type or connectivity not in choices:
        names = sorted(set(choices.values()))
        raise ValueError(
            f"connectivity {connectivity!r} is not valid for a {ndim}-D array; choose one of "
            f"{', '.join(map(str, names))} (or 1..{ndim} as the number of hops)"
        )
    return choices[connectivity]
