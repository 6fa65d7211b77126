"""Relabeling: unique values, remapping, renumbering and masking of label arrays.

Thin wrappers over :mod:`fastseg._kernels.relabel`: they validate input, turn mappings
into lookup tables (dense ids) or hash tables (sparse ids such as connectomics ids near
10^8), pick the output dtype and call one kernel.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, overload

import numpy as np
import numpy.typing as npt

from fastseg._arrays import LabelArray, as_label_array, unsigned_of
from fastseg._jit import chunks_for
from fastseg._tensors import accepts_tensors
from fastseg.dtypes import check_dtype_holds, fit_dtype

__all__ = ["mask", "remap", "renumber", "unique"]

Missing = Literal["keep", "error"] | int

_U64_MAX = int(np.iinfo(np.uint64).max)
# Value ranges up to this many ids are counted and mapped through a flat table; beyond
# it (and when the ids are sparse) through a hash table, so memory never scales with
# the largest id.
_TABLE_ALWAYS = 1 << 16
_TABLE_MAX = 1 << 24


def _count_values(labels: LabelArray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct values (uint64) and their counts (int64) of a non-empty label array."""
    from fastseg._kernels import relabel as relabel_kernels

    chunks = chunks_for(labels.size)
    if labels.flat.itemsize <= 2:
        span = 1 << (8 * labels.flat.itemsize)
        counts = relabel_kernels.count_in_table(labels.flat, np.uint64(0), span, chunks)
        present = np.flatnonzero(counts)
        return present.astype(np.uint64), counts[present]
    # Wider ids are counted in hash tables: one probe per run of equal values costs no
    # more than a table lookup, and memory never scales with the largest id.
    bits = 12
    while True:
        keys, counts, overflow = relabel_kernels.count_hashed(labels.flat, bits, chunks)
        if not overflow:
            return relabel_kernels.merge_counts(keys, counts)
        bits += 4


@overload
def unique(
    labels: npt.NDArray[Any], *, return_counts: Literal[False] = ...
) -> npt.NDArray[Any]: ...
@overload
def unique(
    labels: npt.NDArray[Any], *, return_counts: Literal[True]
) -> tuple[npt.NDArray[Any], npt.NDArray[np.int64]]: ...
@overload
def unique(
    labels: npt.NDArray[Any], *, return_counts: bool
) -> npt.NDArray[Any] | tuple[npt.NDArray[Any], npt.NDArray[np.int64]]: ...
@accepts_tensors
def unique(
    labels: npt.NDArray[Any], *, return_counts: bool = False
) -> npt.NDArray[Any] | tuple[npt.NDArray[Any], npt.NDArray[np.int64]]:
    """Sorted distinct values of a label array, optionally with how often each occurs.

    The same result as ``numpy.unique`` without sorting the volume: dense ids are
    counted in a table, sparse ids in per-thread hash tables.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer or bool label array of any shape and memory order; values must be
        non-negative.
    return_counts : bool, optional
        Also return the number of elements holding each value.

    Returns
    -------
    values : numpy.ndarray
        Distinct values in ascending order, in the dtype of ``labels``.
    counts : numpy.ndarray of int64
        Only with ``return_counts=True``: occurrences of each value.

    Raises
    ------
    TypeError
        If ``labels`` is not an integer or bool numpy array.
    ValueError
        If ``labels`` holds negative values.

    Examples
    --------
    >>> import numpy as np
    >>> import fastseg
    >>> fastseg.unique(np.array([[0, 7], [7, 3]], dtype=np.uint16), return_counts=True)
    (array([0, 3, 7], dtype=uint16), array([1, 1, 2]))
    """
    source = as_label_array(labels)
    if source.size == 0:
        values: np.ndarray = np.empty(0, source.dtype)
        counts: np.ndarray = np.empty(0, np.int64)
    else:
        keys, counts = _count_values(source)
        values = keys.astype(source.dtype)
    return (values, counts) if return_counts else values


# -- mappings ---------------------------------------------------------------------------


def _integer_array(values: Iterable[Any], what: str) -> np.ndarray:
    """Python or numpy integers as an int64/uint64 array; TypeError for anything else."""
    items = list(values)
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | np.integer):
            raise TypeError(f"{what} must be integers, got {item!r} ({type(item).__name__})")
    if not items:
        return np.empty(0, np.int64)
    low, high = int(min(items)), int(max(items))
    if high > _U64_MAX or low < int(np.iinfo(np.int64).min):
        raise ValueError(f"{what} must fit in 64 bits, got {high if high > _U64_MAX else low}")
    dtype = np.uint64 if high > np.iinfo(np.int64).max else np.int64
    if dtype is np.uint64 and low < 0:
        raise ValueError(f"{what} mix negative values and values above 2**63")
    return np.array([int(item) for item in items], dtype=dtype)


def _mapping_arrays(mapping: object) -> tuple[np.ndarray, np.ndarray]:
    """(keys, values) of a dict or a lookup array, keys as int64/uint64."""
    if isinstance(mapping, Mapping):
        keys = _integer_array(mapping.keys(), "mapping keys")
        values = _integer_array(mapping.values(), "mapping values")
        if keys.size and keys.min() < 0:
            raise ValueError(f"mapping keys must be non-negative label ids, got {int(keys.min())}")
        return keys, values
    if isinstance(mapping, np.ndarray):
        if mapping.ndim != 1 or mapping.dtype.kind not in "biu":
            raise TypeError(
                f"a lookup array mapping must be a 1-D integer array (value i maps to mapping[i]), "
                f"got a {mapping.ndim}-D {mapping.dtype} array"
            )
        return np.arange(mapping.size, dtype=np.int64), mapping
    raise TypeError(
        "mapping must be a dict {old id: new id} or a 1-D integer lookup array, "
        f"got {type(mapping).__name__}"
    )


def _resolve_missing(missing: object) -> tuple[int, int | None]:
    """(kernel mode, fill value) for the ``missing`` argument."""
    from fastseg._kernels import relabel as relabel_kernels

    if isinstance(missing, str):
        if missing == "keep":
            return relabel_kernels.KEEP, None
        if missing == "error":
            return relabel_kernels.ERROR, None
    elif isinstance(missing, int | np.integer) and not isinstance(missing, bool):
        return relabel_kernels.FILL, int(missing)
    raise ValueError(f'missing must be "keep", "error" or an integer fill value, got {missing!r}')


def _apply(
    source: LabelArray,
    keys: np.ndarray,
    values: np.ndarray,
    out: np.ndarray,
    mode: int,
    fill: int,
    *,
    complete: bool = False,
) -> tuple[int, int]:
    """Run a remap kernel into the flat array ``out``; returns (voxels without an entry,
    largest such value).

    Kernels only see unsigned arrays: ``out``, the table and ``fill`` are handed over as
    unsigned views of the same bits, so signed and bool outputs need no kernels of
    their own. ``complete`` says that ``keys`` holds every value present in ``source``
    (renumber knows this), so holes in a flat table can never be hit.
    """
    from fastseg._kernels import relabel as relabel_kernels

    unsigned = unsigned_of(out.dtype)
    target = out.view(unsigned)
    fill_bits = np.uint64(np.array(fill, dtype=out.dtype).view(unsigned).item())
    chunks = chunks_for(source.size)
    low = int(keys.min()) if keys.size else 0
    span = int(keys.max()) - low + 1 if keys.size else 1
    if span <= _TABLE_ALWAYS or (span <= _TABLE_MAX and span <= 64 * keys.size):
        table = np.zeros(span, out.dtype)
        known = np.zeros(span, np.bool_)
        offsets = (keys - np.uint64(low)).astype(np.int64)
        table[offsets] = values.astype(out.dtype)
        known[offsets] = True
        if complete or known.all():
            result = relabel_kernels.remap_dense(
                source.flat, np.uint64(low), table.view(unsigned), target, mode, fill_bits, chunks
            )
            return int(result[0]), int(result[1])
        result = relabel_kernels.remap_through_table(
            source.flat, np.uint64(low), table.view(unsigned), known, target, mode, fill_bits,
            chunks,
        )  # fmt: skip
    else:
        from fastseg._kernels import _hashing as hashing_kernels

        table_keys, table_values, used, bits = hashing_kernels.build_table(
            keys, values.astype(out.dtype).view(unsigned)
        )
        result = relabel_kernels.remap_through_hash(
            source.flat, table_keys, table_values, used, bits, target, mode, fill_bits, chunks
        )
    return int(result[0]), int(result[1])


def _dtype_range(dtype: np.dtype[Any]) -> tuple[int, int]:
    if dtype.kind == "b":
        return 0, 1
    info = np.iinfo(dtype)
    return int(info.min), int(info.max)


def _missing_values(source: LabelArray, keys: np.ndarray, limit: int) -> list[int]:
    """Up to ``limit`` distinct label values that ``keys`` does not map (for messages)."""
    present, _ = _count_values(source)
    absent = np.setdiff1d(present, keys.astype(np.uint64), assume_unique=True)
    return [int(v) for v in absent[:limit]]


def _remap_arrays(
    source: LabelArray,
    keys: np.ndarray,
    values: np.ndarray,
    *,
    missing: object,
    out_dtype: npt.DTypeLike | None,
    in_place: bool,
    complete: bool = False,
) -> np.ndarray:
    mode, fill = _resolve_missing(missing)
    from fastseg._kernels import relabel as relabel_kernels

    native = source.dtype.newbyteorder("=")
    # Keys the input dtype cannot hold never match; dropping them (and their values)
    # keeps tables small and the output dtype no wider than the data needs.
    type_max = _dtype_range(native)[1]
    if keys.size and int(keys.max()) > type_max:
        inside = keys <= type_max
        keys, values = keys[inside], values[inside]
    keys = keys.astype(np.uint64)
    if keys.size != np.unique(keys).size:
        raise ValueError("mapping keys must be unique")

    low = int(values.min()) if values.size else 0
    high = int(values.max()) if values.size else 0
    if fill is not None:
        low, high = min(low, fill), max(high, fill)

    if in_place:
        if out_dtype is not None and np.dtype(out_dtype) != native:
            raise ValueError(
                f"in_place=True writes into the input's own {source.dtype} array; "
                f"out_dtype={np.dtype(out_dtype)} is not allowed with it"
            )
        check_dtype_holds(native, low, high, "the input dtype")
        out_flat = source.writable_flat("labels").view(native)
        if mode == relabel_kernels.ERROR:
            _raise_if_missing(source, keys)
        _apply(source, keys, values, out_flat, mode, fill or 0, complete=complete)
        return source.original

    dtype: np.dtype[Any]
    if out_dtype is None:
        dtype = fit_dtype(high, min(low, 0))
    else:
        dtype = np.dtype(out_dtype).newbyteorder("=")
        check_dtype_holds(dtype, low, high, "out_dtype")
    out, out_flat = source.empty(dtype)
    n_missing, largest = _apply(source, keys, values, out_flat, mode, fill or 0, complete=complete)
    if mode == relabel_kernels.ERROR and n_missing:
        _raise_missing(source, keys, n_missing)
    if mode == relabel_kernels.KEEP and n_missing and largest > _dtype_range(dtype)[1]:
        if out_dtype is not None:
            check_dtype_holds(dtype, low, largest, "out_dtype")
        dtype = fit_dtype(max(high, largest), min(low, 0))
        out, out_flat = source.empty(dtype)
        _apply(source, keys, values, out_flat, mode, 0)
    return out


def _integer_out_dtype(out_dtype: npt.DTypeLike | None) -> None:
    """The public out_dtype arguments take integer dtypes only."""
    if out_dtype is not None and np.dtype(out_dtype).kind not in "iu":
        raise TypeError(f"out_dtype must be an integer dtype, got {np.dtype(out_dtype)}")


def _raise_if_missing(source: LabelArray, keys: np.ndarray) -> None:
    """Check before writing in place that every label has an entry (``missing="error"``)."""
    if source.size == 0:
        return
    present, counts = _count_values(source)
    absent = ~np.isin(present, keys)
    if absent.any():
        _raise_missing(source, keys, int(counts[absent].sum()))


def _raise_missing(source: LabelArray, keys: np.ndarray, n_missing: int) -> None:
    shown = 5
    absent = _missing_values(source, keys, shown + 1)
    listed = ", ".join(str(v) for v in absent[:shown]) + (", ..." if len(absent) > shown else "")
    raise ValueError(
        f"{n_missing} voxels hold ids that the mapping does not map (missing='error'): "
        f"{listed}; add them to the mapping or pass missing='keep' or an integer fill value"
    )


@accepts_tensors
def remap(
    labels: npt.NDArray[Any],
    mapping: Mapping[int, int] | npt.NDArray[np.integer],
    *,
    missing: Missing = "keep",
    out_dtype: npt.DTypeLike | None = None,
    in_place: bool = False,
) -> npt.NDArray[Any]:
    """Replace every label by its image under ``mapping``.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer or bool label array of any shape and memory order (a leading channel
        axis is fine); values must be non-negative.
    mapping : dict or numpy.ndarray
        ``{old: new}``, or a 1-D integer lookup array where value ``i`` maps to
        ``mapping[i]``.
    missing : {"keep", "error"} or int, optional
        What happens to labels the mapping does not cover: ``"keep"`` them unchanged
        (default), raise a ``ValueError`` naming the first few (``"error"``), or replace
        them by the given integer.
    out_dtype : dtype, optional
        Integer dtype of the result. By default the smallest unsigned type that holds
        every output value (signed only if the mapping produces negative values). A
        dtype that cannot hold the result raises ``ValueError``.
    in_place : bool, optional
        Write the result into ``labels`` itself (which must be writeable and contiguous,
        and whose dtype must hold the result) and return it.

    Returns
    -------
    numpy.ndarray
        The remapped labels, same shape and memory order as ``labels``.

    Raises
    ------
    TypeError
        For float labels, a mapping that is neither a dict nor an integer array, or
        non-integer keys or values.
    ValueError
        For negative labels, ``missing="error"`` with unmapped labels, or an output
        dtype too small for the result.

    Examples
    --------
    >>> import numpy as np
    >>> import fastseg
    >>> vertebrae = np.array([[0, 11, 12], [13, 13, 0]], dtype=np.uint32)
    >>> fastseg.remap(vertebrae, {11: 1, 12: 1, 13: 1})
    array([[0, 1, 1],
           [1, 1, 0]], dtype=uint8)
    >>> fastseg.remap(vertebrae, {11: 1}, missing=0)
    array([[0, 1, 0],
           [0, 0, 0]], dtype=uint8)
    """
    source = as_label_array(labels)
    _integer_out_dtype(out_dtype)
    keys, values = _mapping_arrays(mapping)
    return _remap_arrays(
        source, keys, values, missing=missing, out_dtype=out_dtype, in_place=in_place
    )


@accepts_tensors
def renumber(
    labels: npt.NDArray[Any],
    *,
    start: int = 1,
    preserve_zero: bool = True,
    out_dtype: npt.DTypeLike | None = None,
    in_place: bool = False,
) -> tuple[npt.NDArray[Any], dict[int, int]]:
    """Relabel ids to consecutive integers, in ascending order of the old ids.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer or bool label array of any shape and memory order.
    start : int, optional
        The first new id (default 1).
    preserve_zero : bool, optional
        Keep 0 (background) as 0 and number the other ids from ``start`` (default).
        With ``False`` every id, 0 included, is numbered from ``start``.
    out_dtype : dtype, optional
        Integer dtype of the result; by default the smallest unsigned type that holds
        the largest new id. Too small raises ``ValueError``.
    in_place : bool, optional
        Write the result into ``labels`` itself and return it.

    Returns
    -------
    relabeled : numpy.ndarray
        Same shape and memory order as ``labels``.
    mapping : dict[int, int]
        Old id → new id for every id present.

    Examples
    --------
    >>> import numpy as np
    >>> import fastseg
    >>> relabeled, mapping = fastseg.renumber(np.array([0, 98_340_797, 0, 512, 512]))
    >>> relabeled
    array([0, 2, 0, 1, 1], dtype=uint8)
    >>> mapping
    {0: 0, 512: 1, 98340797: 2}
    """
    if isinstance(start, bool) or not isinstance(start, int | np.integer):
        raise TypeError(f"start must be an integer, got {start!r}")
    start = int(start)
    if start < 0 or (preserve_zero and start < 1):
        lowest = 1 if preserve_zero else 0
        raise ValueError(
            f"start must be at least {lowest}"
            f"{' with preserve_zero=True' if preserve_zero else ''}, got {start}"
        )
    source = as_label_array(labels)
    _integer_out_dtype(out_dtype)
    relabeled, keys, values = _renumber_arrays(source, start, preserve_zero, out_dtype, in_place)
    mapping = dict(zip(keys.tolist(), values.tolist(), strict=True))
    return relabeled, mapping


def _renumber_arrays(
    source: LabelArray,
    start: int,
    preserve_zero: bool,
    out_dtype: npt.DTypeLike | None,
    in_place: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`renumber` of a validated array: the relabeled array, the sorted old ids
    (uint64) and the new id of each."""
    if source.flat.itemsize >= 4 and source.size and not in_place:
        return _renumber_hashed(source, start, preserve_zero, out_dtype)
    if source.size == 0:
        keys = np.empty(0, np.uint64)
    else:
        keys, _ = _count_values(source)
    values = _new_ids(keys, start, preserve_zero)
    relabeled = _remap_arrays(
        source, keys, values, missing="keep", out_dtype=out_dtype, in_place=in_place, complete=True
    )
    return relabeled, keys, values


def _new_ids(keys: np.ndarray, start: int, preserve_zero: bool) -> np.ndarray:
    """New id of each sorted old id."""
    values = np.arange(start, start + keys.size, dtype=np.int64)
    if preserve_zero and keys.size and keys[0] == 0:
        values[1:] -= 1
        values[0] = 0
    return values


def _renumber_hashed(
    source: LabelArray, start: int, preserve_zero: bool, out_dtype: npt.DTypeLike | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Renumber wide ids reading the input once.

    The first pass writes each voxel's slot in its chunk's hash table (a small id) into
    the output; once every value is known and sorted, a second pass over the output
    translates slots into the new ids.
    """
    from fastseg._kernels import relabel as relabel_kernels

    chunks = chunks_for(source.size)
    bits = 16
    while True:
        slot_dtype = fit_dtype((1 << bits) - 1)
        slots, slots_flat = source.empty(slot_dtype)
        keys, used, overflow = relabel_kernels.hash_slots(source.flat, bits, slots_flat, chunks)
        if not overflow:
            break
        bits += 4
    sorted_keys = np.unique(keys[used])
    new_ids = _new_ids(sorted_keys, start, preserve_zero)
    high = int(new_ids.max())
    dtype: np.dtype[Any]
    if out_dtype is None:
        dtype = fit_dtype(high)
    else:
        dtype = np.dtype(out_dtype).newbyteorder("=")
        check_dtype_holds(dtype, 0, high, "out_dtype")
    tables = np.zeros(keys.shape, dtype)
    tables[used] = new_ids[np.searchsorted(sorted_keys, keys[used])]
    if dtype == slot_dtype:
        out, out_flat = slots, slots_flat
    else:
        out, out_flat = source.empty(dtype)
    relabel_kernels.translate_slots(slots_flat, tables, out_flat, chunks)
    return out, sorted_keys, new_ids


@accepts_tensors
def mask(
    labels: npt.NDArray[Any],
    keep: Iterable[int] | npt.NDArray[np.integer] | None = None,
    *,
    remove: Iterable[int] | npt.NDArray[np.integer] | None = None,
    value: int = 0,
    in_place: bool = False,
) -> npt.NDArray[Any]:
    """Keep only the ids in ``keep``, or drop the ids in ``remove``, setting the rest to ``value``.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer or bool label array of any shape and memory order.
    keep : iterable of int, optional
        Ids to keep; every other voxel becomes ``value``.
    remove : iterable of int, optional
        Ids to replace by ``value``; give exactly one of ``keep`` and ``remove``.
    value : int, optional
        The replacement (default 0); must fit the dtype of ``labels``.
    in_place : bool, optional
        Write the result into ``labels`` itself and return it.

    Returns
    -------
    numpy.ndarray
        Same shape, dtype (in native byte order) and memory order as ``labels``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastseg
    >>> organs = np.array([0, 1, 2, 3, 2], dtype=np.uint8)
    >>> fastseg.mask(organs, [2, 3])
    array([0, 0, 2, 3, 2], dtype=uint8)
    >>> fastseg.mask(organs, remove=[2])
    array([0, 1, 0, 3, 0], dtype=uint8)
    """
    if (keep is None) == (remove is None):
        raise ValueError("give exactly one of keep and remove")
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"value must be an integer, got {value!r}")
    source = as_label_array(labels)
    ids = _id_array(keep if keep is not None else remove, "keep" if keep is not None else "remove")
    check_dtype_holds(source.dtype, int(value), int(value), "the labels' dtype")
    missing: Missing
    if keep is not None:
        keys, values, missing = ids, ids, int(value)
    else:
        # uint64 labels may take a value above the largest int64.
        wide = int(value) > np.iinfo(np.int64).max
        values = np.full(ids.size, int(value), np.uint64 if wide else np.int64)
        keys, missing = ids, "keep"
    return _remap_arrays(
        source,
        keys,
        values,
        missing=missing,
        out_dtype=None if in_place else source.dtype.newbyteorder("="),
        in_place=in_place,
    )


def _id_array(ids: object, what: str) -> np.ndarray:
    """Distinct non-negative ids from an iterable or integer array."""
    if isinstance(ids, np.ndarray):
        if ids.dtype.kind not in "biu":
            raise TypeError(f"{what} must hold integer ids, got a {ids.dtype} array")
        items: Iterable[Any] = ids.astype(np.uint64 if ids.dtype == np.uint64 else np.int64).ravel()
    elif isinstance(ids, Iterable) and not isinstance(ids, str | bytes):
        items = ids
    else:
        raise TypeError(f"{what} must be an iterable of integer ids, got {type(ids).__name__}")
    array = np.unique(_integer_array(items, what))
    if array.size and array[0] < 0:
        raise ValueError(f"{what} must be non-negative ids, got {int(array[0])}")
    return array


# Tables indexed by id (statistics, boxes, runs and contacts per id) are used as they are
# while that costs little: when the largest id is below _DENSE_ALWAYS, or below
# _DENSE_FACTOR times the number of distinct ids. Counting the distinct ids takes one bit
# per possible id and chunk, so it is done only below _COUNTED_MAX (2 MB of bits); sparser
# ids are renumbered first. Memory then follows the number of ids, never their values.
_DENSE_ALWAYS = 1 << 14
_DENSE_FACTOR = 4
_COUNTED_MAX = 1 << 24
_COUNT_CHUNKS = 8


def id_table_size(source: LabelArray, *, count_any: bool = False) -> int | None:
    """Length of a table indexed by the ids of ``source`` (its largest id + 1) when that
    is at most a small multiple of the number of distinct ids; ``None`` when the ids are
    too sparse for such a table.

    Ids from :data:`_COUNTED_MAX` up are only counted (in a hash table, one more pass)
    with ``count_any``; otherwise they are taken as too sparse.
    """
    if source.size == 0:
        return 1
    _, high = source.value_range()
    if high < _DENSE_ALWAYS:
        return high + 1
    if high < _COUNTED_MAX:
        from fastseg._kernels import relabel as relabel_kernels

        chunks = min(chunks_for(source.size), _COUNT_CHUNKS)
        distinct = int(relabel_kernels.count_present(source.flat, high + 1, chunks))
    elif count_any:
        distinct = int(_count_values(source)[0].size)
    else:
        return None
    return high + 1 if high < _DENSE_FACTOR * distinct else None


def dense_ids(source: LabelArray) -> tuple[LabelArray, np.ndarray | None]:
    """``source`` with ids small enough to index per-id tables, and each new id's old id.

    Component maps are dense already and pass through; sparse instance ids (one stray
    voxel of id 4,194,303, connectomics ids up to 10^8 and beyond) are renumbered first,
    so that no table follows the largest id (see :func:`id_table_size`).
    """
    if id_table_size(source) is not None:
        return source, None
    dense, keys, values = _renumber_arrays(source, 1, True, None, False)
    old_ids = np.zeros(int(values[-1]) + 1, np.uint64)
    old_ids[values] = keys
    result = as_label_array(dense)
    # The range is known: no pass over the renumbered array to find it again.
    result._range.append((int(values[0]), int(values[-1])))
    return result, old_ids
