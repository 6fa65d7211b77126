"""Instance <-> semantic conversions driven by a schema and a segment map.

Each conversion is one relabeling or labeling pass (the kernels of
:mod:`fastseg.relabel` and :mod:`fastseg.components`); this module only turns schemas
and segment maps into id mappings and checks that data and mappings agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from fastseg._arrays import as_label_array, flat_view
from fastseg._tensors import accepts_tensors
from fastseg.components import label
from fastseg.relabel import dense_ids, remap, unique
from fastseg.schema import Schema
from fastseg.segmap import Segment, SegmentMap

__all__ = ["binary_masks", "convert", "to_instances", "to_semantic"]

Unknown = Literal["error", "background", "keep"]


def _category_values(segment_map: SegmentMap, schema: Schema) -> dict[int, int]:
    """Instance id (and overlap group value) -> the semantic value of its category."""
    values: dict[int, int] = {}
    for ident, segment in segment_map.items():
        try:
            values[ident] = segment.resolve(schema).value
        except KeyError:
            raise ValueError(
                f"instance {ident}: category {segment.category!r} is not in the schema "
                f"(it has {', '.join(schema.names) or 'no categories'})"
            ) from None
    for group, members in segment_map.groups.items():
        # Where instances overlap, the category with the lowest value wins (RedBrick's
        # rule: the lowest classId).
        values[group] = min(values[m] for m in members)
    return values


@accepts_tensors
def to_semantic(
    instances: npt.NDArray[Any],
    segment_map: SegmentMap,
    schema: Schema,
    *,
    unknown: Unknown = "error",
) -> npt.NDArray[Any]:
    """Turn an instance map into a semantic map: every instance id becomes its category's
    value, in one lookup pass.

    Parameters
    ----------
    instances : numpy.ndarray
        Instance map (0 background), any shape and memory order.
    segment_map : SegmentMap
        Which category each instance (and overlap group) belongs to.
    schema : Schema
        The categories' values in the semantic map.
    unknown : {"error", "background", "keep"}, optional
        What to do with ids in the volume that the segment map does not list: raise a
        ``ValueError`` naming them (default), make them background, or keep them.

    Returns
    -------
    numpy.ndarray
        Semantic map in the smallest unsigned dtype, same shape and memory order.

    Examples
    --------
    >>> import numpy as np
    >>> from fastseg import Category, Schema, Segment, SegmentMap, to_semantic
    >>> schema = Schema([Category("Vertebra", 1), Category("Disc", 2)])
    >>> spine = SegmentMap({1: Segment("Vertebra"), 2: Segment("Disc"), 3: Segment("Vertebra")})
    >>> to_semantic(np.array([0, 1, 2, 3, 3]), spine, schema)
    array([0, 1, 2, 1, 1], dtype=uint8)
    """
    if unknown not in ("error", "background", "keep"):
        raise ValueError(f'unknown must be "error", "background" or "keep", got {unknown!r}')
    mapping = _category_values(segment_map, schema)
    mapping[0] = 0
    missing: Any = {"error": "error", "background": 0, "keep": "keep"}[unknown]
    return remap(instances, mapping, missing=missing)


@accepts_tensors
def to_instances(
    semantic: npt.NDArray[Any],
    schema: Schema,
    *,
    connectivity: int | None = None,
    split: bool = True,
) -> tuple[npt.NDArray[Any], SegmentMap]:
    """Recover instances from a semantic map, with the segment map that explains them.

    With ``split`` every connected component of every category becomes one instance,
    numbered 1, 2, ... in the order of its first voxel in row-major (C) order (the
    numbering of :func:`fastseg.label`). Without, each category present becomes one
    instance, numbered in ascending order of category value.

    Parameters
    ----------
    semantic : numpy.ndarray
        Semantic map whose values are the schema's category values (0 background).
    schema : Schema
    connectivity : int, optional
        As in :func:`fastseg.label` (default: full, 26 in 3-D and 8 in 2-D); 26 means
        full connectivity in 2-D as well.
    split : bool, optional
        One instance per connected component (default) or per category.

    Returns
    -------
    instances : numpy.ndarray
    segment_map : SegmentMap

    Raises
    ------
    ValueError
        If the map holds a value that is no category of the schema.

    Examples
    --------
    >>> import numpy as np
    >>> from fastseg import Category, Schema, to_instances
    >>> schema = Schema([Category("Vertebra", 1), Category("Disc", 2)])
    >>> instances, segments = to_instances(np.array([[1, 1, 0, 1], [2, 2, 0, 1]]), schema)
    >>> instances
    array([[1, 1, 0, 2],
           [3, 3, 0, 2]], dtype=uint8)
    >>> [segments[k].category for k in segments]
    ['Vertebra', 'Vertebra', 'Disc']
    """
    present = [int(v) for v in unique(semantic) if v != 0]
    _check_values(present, schema)
    if split:
        source = as_label_array(semantic, ndims=(1, 2, 3))
        full = {1: 2, 2: 8, 3: 26}[source.original.ndim]
        wanted = full if connectivity == 26 and source.original.ndim < 3 else connectivity
        components = label(semantic, connectivity=wanted)  # type: ignore[arg-type]
        segments = {
            k: Segment(schema.by_value(int(components.values[k])).name)
            for k in range(1, components.count + 1)
        }
        return components.labels, SegmentMap(segments)
    mapping = {value: rank + 1 for rank, value in enumerate(present)}
    mapping[0] = 0
    instances = remap(semantic, mapping, missing="error")
    return instances, SegmentMap(
        {mapping[value]: Segment(schema.by_value(value).name) for value in present}
    )


def _check_values(present: Iterable[int], schema: Schema) -> None:
    strangers = [v for v in present if v not in set(schema.values)]
    if strangers:
        shown = ", ".join(str(v) for v in strangers[:5])
        raise ValueError(
            f"the semantic map holds values that are no category of the schema: {shown}"
            f"{', ...' if len(strangers) > 5 else ''}"
        )


@accepts_tensors
def convert(
    semantic: npt.NDArray[Any],
    source: Schema,
    target: Schema,
    *,
    to_background: Iterable[str] = (),
) -> npt.NDArray[Any]:
    """Translate a semantic map from one schema's values to another's, by category name.

    E.g. RedBrick values (classId + 1) to nnU-Net's consecutive labels.

    Parameters
    ----------
    semantic : numpy.ndarray
        Semantic map in ``source``'s values (0 background).
    source, target : Schema
    to_background : iterable of str, optional
        Names of source categories to drop (make background) because ``target`` has no
        such category; any other name missing from ``target`` raises.

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> import numpy as np
    >>> from fastseg import Category, Schema, convert
    >>> redbrick = Schema([Category("liver", 5), Category("spleen", 9), Category("tag", 2)])
    >>> nnunet = Schema([Category("liver", 1), Category("spleen", 2)])
    >>> convert(np.array([0, 5, 9, 2]), redbrick, nnunet, to_background=["tag"])
    array([0, 1, 2, 0], dtype=uint8)
    """
    dropped = set(to_background)
    unknown = sorted(dropped - set(source.names))
    if unknown:
        raise ValueError(f"to_background names categories the source schema lacks: {unknown}")
    mapping = {0: 0}
    lost = []
    for category in source:
        if category.name in dropped:
            mapping[category.value] = 0
        elif category.name in target:
            mapping[category.value] = target[category.name].value
        else:
            lost.append(category.name)
    if lost:
        raise ValueError(
            f"categories {lost} have no counterpart in the target schema; map them to "
            f"background explicitly with to_background=[...] if that is intended"
        )
    present = [int(v) for v in unique(semantic) if v != 0]
    _check_values(present, source)
    return remap(semantic, mapping, missing="error")


@accepts_tensors
def binary_masks(
    instances: npt.NDArray[Any], segment_map: SegmentMap | None = None
) -> Iterator[tuple[int, npt.NDArray[np.bool_]]]:
    """Full-size boolean mask of every instance, one at a time.

    One pass records where every value lies (as runs of the array in memory order);
    each mask is then written from its instance's runs only, never by scanning the
    whole volume again. With a segment map, an instance's mask also covers the overlap
    groups it belongs to.

    Yields
    ------
    instance : int
        Every instance of ``segment_map`` (ascending), or every non-zero value present.
    mask : numpy.ndarray of bool
        Same shape and memory order as ``instances``.

    Examples
    --------
    >>> import numpy as np
    >>> from fastseg import binary_masks
    >>> [(k, m.astype(int).tolist()) for k, m in binary_masks(np.array([0, 2, 2, 5]))]
    [(2, [0, 1, 1, 0]), (5, [0, 0, 0, 1])]
    """
    source, old_ids = dense_ids(as_label_array(instances, name="instances"))
    _, high = source.value_range() if source.size else (0, 0)

    from fastseg._kernels import convert as convert_kernels

    offsets, starts, stops = convert_kernels.runs_by_id(source.flat, high + 1)
    present = np.flatnonzero(np.diff(offsets)[: high + 1])
    dense_of = {(int(old_ids[k]) if old_ids is not None else int(k)): int(k) for k in present}
    ids = list(segment_map) if segment_map is not None else sorted(dense_of)
    owners: dict[int, list[int]] = {ident: [ident] for ident in ids}
    if segment_map is not None:
        for group, members in segment_map.groups.items():
            for member in members:
                owners[member].append(group)
    for ident in ids:
        # Zeroed lazily by the operating system: untouched pages cost nothing.
        mask = np.zeros(source.shape, np.bool_, order=source.order)
        flat = flat_view(mask)
        for value in owners[ident]:
            k = dense_of.get(value)
            if k is not None:
                convert_kernels.fill_runs(
                    flat, starts[offsets[k] : offsets[k + 1]], stops[offsets[k] : offsets[k + 1]]
                )
        yield ident, mask
