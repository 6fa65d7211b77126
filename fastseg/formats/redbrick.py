"""RedBrick AI taxonomies and ``segmentMap`` objects, without the RedBrick SDK.

A RedBrick AI project keeps its categories in a *taxonomy*; every exported series maps
the voxel values of its instance segmentation to those categories in a ``segmentMap``.
This module turns both into fastseg types and back:

- :func:`read_taxonomy`, :func:`taxonomy_dict`, :func:`write_taxonomy`: taxonomy
  <-> :class:`~fastseg.Schema`. A category's value is ``classId + 1``, the value
  RedBrick's semantic export gives it, so :func:`fastseg.to_semantic` produces the
  semantic masks RedBrick would.
- :func:`read_segment_map`, :func:`segment_map_dict`: ``segmentMap`` <->
  :class:`~fastseg.SegmentMap`, ``overlappingGroups`` included.

What fastseg has no field for (``labelType``, attribute definitions, masks, label ids,
...) is kept, so that writing what was read gives the input back.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from fastseg._files import write_text_atomically
from fastseg.formats.registry import SeriesError, excerpt, read_json
from fastseg.schema import Category, Schema
from fastseg.segmap import Segment, SegmentMap

__all__ = [
    "read_segment_map",
    "read_taxonomy",
    "segment_map_dict",
    "taxonomy_dict",
    "write_taxonomy",
]

Form = Literal["auto", "short", "full"]

# The order RedBrick writes an object's keys in (its GraphQL ``objectTypes`` selection).
_OBJECT_ORDER = (
    "category",
    "classId",
    "labelType",
    "attributes",
    "color",
    "archived",
    "parents",
    "hint",
)
# Top-level keys of the legacy taxonomy form that the new form does not have.
_LEGACY_KEYS = frozenset(
    {"version", "categories", "attributes", "taskCategories", "taskAttributes", "colorMap"}
)
# Taxonomy-level keys RedBrick defines; other metadata (another format's, e.g. nnU-Net's
# channel_names) is not written into a taxonomy unless it was read from one.
_TAXONOMY_KEYS = frozenset(
    {
        "orgId", "taxId", "name", "studyClassify", "seriesClassify", "instanceClassify",
        "createdAt", "archived", "isNew",
    }
)  # fmt: skip
_READ_KEYS = "redbrick_taxonomy_keys"
# Keys of a full segmentMap entry that become Segment fields rather than ``extra``.
_SEGMENT_KEYS = ("category", "attributes", "overlappingGroups")
_SERIES_KEYS = frozenset({"segmentMap", "segmentations", "items", "name", "binaryMask"})
_MISSING: Any = object()
_HEX = re.compile("#[0-9a-f]{6}")


# --------------------------------------------------------------------------- taxonomy


def read_taxonomy(source: str | os.PathLike[str] | Mapping[str, Any]) -> Schema:
    """Read a RedBrick AI taxonomy: a JSON file, or the dict the SDK returns.

    The current form lists ``objectTypes``; each becomes a
    :class:`~fastseg.Category` named after its ``category``, with value
    ``classId + 1``, its ``color`` (``"#rrggbb"``) and its ``parents``. Every other key
    of the object (``classId``, ``labelType``, the ``attributes`` definitions,
    ``archived``, ``hint``, ...) is kept in the category's ``attributes``; the
    taxonomy's own keys (``name``, ``orgId``, ``taxId``, ``studyClassify``, ...) go to
    the schema's ``metadata``. A colour or parents value that the category alone could
    not give back (upper-case hex, ``null``, an empty list) is kept in ``attributes``
    under its key as well, so :func:`taxonomy_dict` reproduces the input.

    The legacy form (``categories``: a tree of ``{"name", "classId", "children"}``
    under a root, usually ``"object"``) is read too: every node below the root is a
    category whose parents are its path below the root; colours come from the legacy
    ``colorMap``, ``disabled`` becomes ``archived``, and the metadata keeps the other
    top-level keys with ``isNew`` false.

    Parameters
    ----------
    source : str, path-like or mapping
        A taxonomy JSON file, or the taxonomy itself.

    Returns
    -------
    Schema

    Raises
    ------
    ValueError
        If an object lacks ``category`` or ``classId`` (naming its index), or two
        objects share a ``classId`` or a name (naming both).

    Examples
    --------
    >>> from fastseg.formats.redbrick import read_taxonomy
    >>> schema = read_taxonomy({
    ...     "name": "Spine",
    ...     "objectTypes": [
    ...         {"category": "Disc", "classId": 0, "labelType": "SEGMENTATION",
    ...          "color": "#e0e0a0", "parents": ["Spine"]},
    ...         {"category": "L1", "classId": 4, "labelType": "SEGMENTATION"},
    ...     ],
    ... })
    >>> [(c.name, c.value, c.parents) for c in schema]
    [('Disc', 1, ('Spine',)), ('L1', 5, ())]
    >>> schema["Disc"].color, schema["L1"].attributes["labelType"], schema.metadata["name"]
    ((224, 224, 160), 'SEGMENTATION', 'Spine')
    """
    taxonomy = _load_json_object(source, "taxonomy")
    objects = taxonomy.get("objectTypes")
    legacy = taxonomy.get("categories")
    if isinstance(objects, list):
        categories = [_object_category(index, item) for index, item in enumerate(objects)]
        skip = "objectTypes"
    elif isinstance(legacy, list):
        categories = _legacy_categories(legacy, taxonomy.get("colorMap"))
        skip = "categories"
    else:
        raise ValueError(
            "a RedBrick taxonomy lists its categories in objectTypes (or, in the legacy "
            f"form, categories); this one has neither (keys: {excerpt(str(sorted(taxonomy)))})"
        )
    _check_unique(categories, "objectTypes" if skip == "objectTypes" else "categories")
    metadata = {key: copy.deepcopy(value) for key, value in taxonomy.items() if key != skip}
    metadata[_READ_KEYS] = [key for key in taxonomy if key != skip]
    if skip == "categories":
        metadata.setdefault("isNew", False)  # marks the legacy form for taxonomy_dict
    return Schema(categories, metadata=metadata)


def taxonomy_dict(schema: Schema) -> dict[str, Any]:
    """A schema as a RedBrick AI taxonomy (the current, ``objectTypes`` form).

    Objects come in schema order, each with ``classId = value - 1``, its
    ``labelType`` (from the category's attributes, else ``"SEGMENTATION"``), its
    colour as ``"#rrggbb"``, its parents and whatever else its attributes hold; the
    schema's metadata gives the taxonomy-level keys. A taxonomy read with
    :func:`read_taxonomy` from this form gives an equal dict back, key order included.
    A schema read from the legacy form is written in the current form: the legacy-only
    keys (``version``, ``attributes``, ``taskCategories``, ``taskAttributes``,
    ``colorMap``) are left out and ``isNew`` becomes true.

    Examples
    --------
    >>> from fastseg import Category, Schema
    >>> from fastseg.formats.redbrick import taxonomy_dict
    >>> schema = Schema([Category("Liver", 3, color=(255, 0, 0))], metadata={"name": "CT"})
    >>> taxonomy_dict(schema)  # doctest: +NORMALIZE_WHITESPACE
    {'name': 'CT', 'objectTypes': [{'category': 'Liver', 'classId': 2,
      'labelType': 'SEGMENTATION', 'color': '#ff0000'}]}
    """
    objects = [_object_dict(category) for category in schema]
    known = _TAXONOMY_KEYS | set(schema.metadata.get(_READ_KEYS, ()))
    metadata = {key: value for key, value in schema.metadata.items() if key in known}
    metadata.pop("objectTypes", None)
    if metadata.get("isNew") is False:
        metadata = {k: v for k, v in metadata.items() if k not in _LEGACY_KEYS}
        metadata["isNew"] = True
    taxonomy: dict[str, Any] = {}
    for key, value in metadata.items():
        taxonomy[key] = copy.deepcopy(value)
        if key == "instanceClassify":
            # RedBrick writes objectTypes right after instanceClassify (last, in the SDK).
            taxonomy["objectTypes"] = objects
    taxonomy.setdefault("objectTypes", objects)
    return taxonomy


def write_taxonomy(schema: Schema, path: str | os.PathLike[str]) -> Path:
    """Write :func:`taxonomy_dict` of ``schema`` as a JSON file, atomically.

    The JSON goes to a temporary file in the target folder, which replaces ``path``
    only once completely written; an existing file keeps its permissions.

    Returns
    -------
    pathlib.Path
        The file written.

    Examples
    --------
    >>> import os, tempfile
    >>> from fastseg import Category, Schema
    >>> from fastseg.formats.redbrick import read_taxonomy, write_taxonomy
    >>> schema = Schema([Category("Liver", 1), Category("Spleen", 2)])
    >>> path = write_taxonomy(schema, os.path.join(tempfile.mkdtemp(), "taxonomy.json"))
    >>> read_taxonomy(path).names
    ['Liver', 'Spleen']
    """
    target = Path(path)
    text = json.dumps(taxonomy_dict(schema), indent=2, ensure_ascii=False) + "\n"
    write_text_atomically(target, text)
    return target


def _load_json_object(
    source: str | os.PathLike[str] | Mapping[str, Any], what: str
) -> Mapping[str, Any]:
    if isinstance(source, Mapping):
        return source
    path = Path(source)
    loaded = read_json(path)
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: a RedBrick {what} is a JSON object, got {type(loaded).__name__}")
    return loaded


def _class_id(raw: object, where: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
        raise ValueError(f"{where}: classId must be an integer >= 0, got {raw!r}")
    return raw


def _hex(color: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*color)


def _object_category(index: int, item: object) -> Category:
    where = f"objectTypes[{index}]"
    if not isinstance(item, Mapping):
        raise ValueError(f"{where}: expected an object, got {item!r}")
    name = item.get("category")
    if name is None:
        raise ValueError(f"{where}: no category (the object's name)")
    if not isinstance(name, str):
        raise ValueError(f"{where}: category must be a string, got {name!r}")
    where = f"{where} ({name!r})"
    if item.get("classId") is None:
        raise ValueError(f"{where}: no classId")
    class_id = _class_id(item["classId"], where)
    color = item.get("color")
    parents = item.get("parents")
    if parents is not None and (isinstance(parents, str) or not isinstance(parents, Sequence)):
        raise ValueError(f"{where}: parents must be a list of names, got {parents!r}")
    attributes: dict[str, Any] = {}
    for key, value in item.items():
        if key == "category":
            continue
        # Colour and parents live in the Category's own fields; their raw value is
        # kept as well only where those fields could not give it back.
        if key == "color" and isinstance(value, str) and _HEX.fullmatch(value):
            continue
        if key == "parents" and value:
            continue
        attributes[key] = copy.deepcopy(value)
    try:
        return Category(
            name,
            class_id + 1,
            color=color,
            parents=tuple(parents or ()),
            attributes=attributes,
        )
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


def _legacy_categories(roots: list[Any], color_map: object) -> list[Category]:
    colors: dict[tuple[str, ...], Any] = {}
    if isinstance(color_map, list):
        for entry in color_map:
            if isinstance(entry, Mapping) and not entry.get("taskcategory"):
                trail = entry.get("trail")
                if isinstance(trail, list) and entry.get("color") is not None:
                    colors.setdefault(tuple(trail), entry["color"])
    categories: list[Category] = []

    def walk(nodes: object, trail: tuple[str, ...]) -> None:
        where = "categories: " + "/".join(trail)
        if nodes is None:
            return
        if not isinstance(nodes, list):
            raise ValueError(f"{where}: children must be a list, got {nodes!r}")
        for index, node in enumerate(nodes):
            if not isinstance(node, Mapping):
                raise ValueError(f"{where}: child {index} is not an object: {node!r}")
            name = node.get("name")
            if not isinstance(name, str) or not name:
                raise ValueError(f"{where}: child {index} has no name")
            path = (*trail, name)
            here = "categories: " + "/".join(path)
            if node.get("classId") is None:
                raise ValueError(f"{here}: no classId")
            class_id = _class_id(node["classId"], here)
            attributes: dict[str, Any] = {"classId": class_id}
            for key, value in node.items():
                if key not in ("name", "classId", "children"):
                    attributes["archived" if key == "disabled" else key] = copy.deepcopy(value)
            try:
                categories.append(
                    Category(
                        name,
                        class_id + 1,
                        color=colors.get(path),
                        parents=path[1:-1],
                        attributes=attributes,
                    )
                )
            except ValueError as error:
                raise ValueError(f"{here}: {error}") from None
            walk(node.get("children"), path)

    for index, root in enumerate(roots):
        if not isinstance(root, Mapping) or not isinstance(root.get("name"), str):
            raise ValueError(f"categories[{index}]: a root needs a name, got {root!r}")
        walk(root.get("children"), (root["name"],))
    return categories


def _check_unique(categories: list[Category], where: str) -> None:
    by_class: dict[int, list[str]] = {}
    by_name: dict[str, list[int]] = {}
    for category in categories:
        by_class.setdefault(category.value - 1, []).append(category.name)
        by_name.setdefault(category.name, []).append(category.value - 1)
    for class_id, names in by_class.items():
        if len(names) > 1:
            raise ValueError(f"{where}: classId {class_id} is used by {names}")
    for name, class_ids in by_name.items():
        if len(class_ids) > 1:
            raise ValueError(
                f"{where}: the name {name!r} is used by classIds {class_ids} "
                "(fastseg needs unique category names)"
            )


def _object_dict(category: Category) -> dict[str, Any]:
    """One ``objectTypes`` entry: the category's attributes in their order, with the
    keys the Category's own fields decide filled in at RedBrick's positions."""
    entries: dict[str, Any] = {
        key: copy.deepcopy(value) for key, value in category.attributes.items()
    }
    entries.pop("category", None)
    entries["classId"] = category.value - 1
    entries.setdefault("labelType", "SEGMENTATION")

    raw_color = entries.pop("color", _MISSING)
    if category.color is not None:
        same = isinstance(raw_color, str) and _same_color(raw_color, category.color)
        color: Any = raw_color if same else _hex(category.color)
    else:
        color = None if raw_color is None else _MISSING
    raw_parents = entries.pop("parents", _MISSING)
    if category.parents:
        parents: Any = list(category.parents)
    else:
        parents = raw_parents if raw_parents is None or raw_parents == [] else _MISSING

    keys = list(category.attributes)
    order = [k for k in keys if k not in ("category",)]
    for key in ("classId", "labelType"):
        if key not in order:
            _insert(order, key)
    fields = {"category": category.name, "color": color, "parents": parents}
    for key, value in fields.items():
        if key in order:
            if value is _MISSING:
                order.remove(key)
        elif value is not _MISSING:
            _insert(order, key)
    values = {**entries, **{k: v for k, v in fields.items() if v is not _MISSING}}
    return {key: values[key] for key in order}


def _insert(order: list[str], key: str) -> None:
    """Insert ``key`` before the first key RedBrick writes after it."""
    rank = _OBJECT_ORDER.index(key)
    for position, other in enumerate(order):
        if other not in _OBJECT_ORDER or _OBJECT_ORDER.index(other) > rank:
            order.insert(position, key)
            return
    order.append(key)


def _same_color(text: str, color: tuple[int, int, int]) -> bool:
    return text.removeprefix("#").lower() == _hex(color)[1:]


# ------------------------------------------------------------------------ segmentMap


def read_segment_map(source: Mapping[Any, Any], *, schema: Schema | None = None) -> SegmentMap:
    """Read a RedBrick AI ``segmentMap`` (one series' ``series["segmentMap"]``).

    Keys are voxel values of the instance segmentation, as strings (JSON) or ints.
    Values take any of RedBrick's forms:

    - ``"Liver"``: a category name;
    - ``["Abdomen", "Liver"]``: a hierarchy path (parents, then the name);
    - ``2``: a ``classId``, which needs ``schema`` (the category whose ``classId``
      attribute is 2, or else whose value is 3);
    - ``[["object", "Abdomen", "Liver"]]``: the legacy path under the taxonomy's root;
    - ``{"category": ..., "attributes": {...}, "overlappingGroups": [...], ...}``: the
      full form, the category in any of the forms above.

    ``overlappingGroups`` lists the voxel values that stand for this instance together
    with others (where instances overlap); they become the segment map's ``groups``
    (value -> the instances that list it). Every other key of a full entry (``id``,
    ``mask``, ``group``, ``readOnly``, ``comment``, anything unknown) is kept in the
    segment's ``extra``. How each entry was written (key spelling and order, short or
    full, classId or name, ...) is kept in ``metadata["redbrick"]`` where it differs
    from what :func:`segment_map_dict` writes by default, so that it gives the input
    back exactly; a map written the usual way has no such metadata.

    Parameters
    ----------
    source : mapping
        The ``segmentMap`` itself (not the whole series).
    schema : Schema, optional
        The taxonomy (see :func:`read_taxonomy`). Needed for classId values; when
        given, every category must be in it.

    Returns
    -------
    SegmentMap

    Raises
    ------
    ValueError
        For a key that is no instance id, a classId without ``schema``, a category the
        schema lacks, or a malformed entry; the message names the instance.

    Examples
    --------
    >>> from fastseg.formats.redbrick import read_segment_map
    >>> segments = read_segment_map({
    ...     "1": "Vertebra",
    ...     "2": {"category": ["Spine", "Disc"], "attributes": {"Level": "L1-L2"},
    ...           "id": "5a1c", "overlappingGroups": [4]},
    ...     "3": {"category": "Vertebra", "overlappingGroups": [4]},
    ... })
    >>> segments[2].category, dict(segments[2].attributes), dict(segments[2].extra)
    (('Spine', 'Disc'), {'Level': 'L1-L2'}, {'id': '5a1c'})
    >>> dict(segments.groups)
    {4: (2, 3)}
    """
    if not isinstance(source, Mapping):
        raise TypeError(f"a segmentMap is a mapping of voxel value -> category, got {source!r}")
    class_ids = _class_id_table(schema) if schema is not None else None
    segments: dict[int, Segment] = {}
    keys: dict[int, object] = {}
    raws: dict[int, object] = {}
    records: dict[int, dict[str, Any]] = {}
    groups: dict[int, list[int]] = {}
    for key, raw in source.items():
        ident = _key_id(key)
        if ident in segments:
            raise ValueError(
                f"segmentMap keys {keys[ident]!r} and {key!r} are both instance {ident}"
            )
        keys[ident] = key
        raws[ident] = raw
        where = f"instance {ident}"
        record: dict[str, Any] = {}
        if isinstance(key, str) and key != str(ident):
            record["key"] = key
        if isinstance(raw, Mapping):
            segment, listed, how = _read_full(raw, where, class_ids)
            for group in listed:
                members = groups.setdefault(group, [])
                if ident not in members:
                    members.append(ident)
        else:
            category, how = _read_category(raw, where, class_ids)
            segment = _segment(where, category)
        record.update(how)
        if schema is not None and "classId" not in how:
            try:
                segment.resolve(schema)
            except KeyError:
                raise ValueError(
                    f"{where}: category {segment.category!r} is not in the taxonomy "
                    f"(it has {', '.join(schema.names) or 'no categories'})"
                ) from None
        segments[ident] = segment
        records[ident] = record
    for group, members in groups.items():
        if group in segments:
            raise ValueError(
                f"overlappingGroups value {group} (listed by instance(s) {members}) is also "
                "an instance id; a group value must be a voxel value of its own"
            )
    result = SegmentMap(segments, groups)
    member_of = _groups_by_instance(result)
    for ident, raw in raws.items():
        if isinstance(raw, Mapping):
            _record_full_layout(ident, raw, result[ident], member_of[ident], records[ident])
    layout: dict[str, Any] = {}
    order = list(segments)
    if order != sorted(order):
        layout["order"] = order
    entries = {ident: record for ident, record in records.items() if record}
    if entries:
        layout["entries"] = entries
    if not layout:
        return result
    return SegmentMap(segments, groups, metadata={"redbrick": layout})


def segment_map_dict(segment_map: SegmentMap, *, form: Form = "auto") -> dict[str, Any]:
    """A segment map as a RedBrick AI ``segmentMap`` (string keys, JSON-ready).

    Parameters
    ----------
    segment_map : SegmentMap
    form : {"auto", "short", "full"}, optional
        ``"auto"`` writes each entry the way it was read (see
        :func:`read_segment_map`), and an entry built in fastseg in the short form when
        it has nothing but a category, else in the full form. ``"short"`` writes only
        categories and raises if an instance has attributes, extra keys or overlapping
        groups; ``"full"`` writes every entry as an object.

    Returns
    -------
    dict
        Keys in the order they were read in (ascending instance id for instances
        added since); a map read with :func:`read_segment_map` gives the input back.

    Examples
    --------
    >>> from fastseg import Segment, SegmentMap
    >>> from fastseg.formats.redbrick import segment_map_dict
    >>> segments = SegmentMap(
    ...     {1: Segment("Liver"), 2: Segment(("Spine", "L1"), attributes={"Fracture": True}),
    ...      3: Segment("Spleen", extra={"mask": "spleen.nii.gz"})},
    ...     groups={7: (1, 3)},
    ... )
    >>> segment_map_dict(segments)  # doctest: +NORMALIZE_WHITESPACE
    {'1': {'category': 'Liver', 'overlappingGroups': [7]},
     '2': {'category': ['Spine', 'L1'], 'attributes': {'Fracture': True}},
     '3': {'category': 'Spleen', 'mask': 'spleen.nii.gz', 'overlappingGroups': [7]}}
    >>> segment_map_dict(SegmentMap({1: Segment("Liver")}), form="full")
    {'1': {'category': 'Liver'}}
    """
    if form not in ("auto", "short", "full"):
        raise ValueError(f'form must be "auto", "short" or "full", got {form!r}')
    layout = segment_map.metadata.get("redbrick")
    layout = layout if isinstance(layout, Mapping) else {}
    recorded = layout.get("entries")
    recorded = recorded if isinstance(recorded, Mapping) else {}
    order: list[int] = []
    for value in layout.get("order") or ():
        ident = _stored_id(value)
        if ident in segment_map and ident not in order:
            order.append(ident)
    placed = set(order)
    order += [ident for ident in segment_map if ident not in placed]
    member_of = _groups_by_instance(segment_map)
    written: dict[str, Any] = {}
    for ident in order:
        record = recorded.get(ident, recorded.get(str(ident)))
        record = record if isinstance(record, Mapping) else {}
        key = record.get("key")
        if not (isinstance(key, str) and key.strip().isdecimal() and int(key) == ident):
            key = str(ident)
        written[key] = _entry(ident, segment_map[ident], member_of[ident], record, form)
    return written


def _stored_id(value: object) -> int:
    """An instance id from metadata, which may have been through JSON (0 if none)."""
    if isinstance(value, str) and value.isascii() and value.isdecimal():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _key_id(key: object) -> int:
    if isinstance(key, str) and key.strip().isascii() and key.strip().isdecimal():
        value = int(key)
    elif isinstance(key, int) and not isinstance(key, bool):
        value = key
    else:
        value = 0
    if value < 1:
        hint = " (pass the series' segmentMap, not the whole series)" if key in _SERIES_KEYS else ""
        raise ValueError(f"segmentMap key {key!r} is not an instance id (an integer >= 1){hint}")
    return value


def _class_id_table(schema: Schema) -> dict[int, Category]:
    """classId -> category: the ``classId`` attribute, else ``value - 1``."""
    table: dict[int, Category] = {}
    for category in schema:
        class_id = category.attributes.get("classId")
        if isinstance(class_id, bool) or not isinstance(class_id, int):
            class_id = category.value - 1
        table.setdefault(class_id, category)
    return table


def _segment(where: str, category: str | tuple[str, ...], **fields: Any) -> Segment:
    try:
        return Segment(category, **fields)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


def _read_category(
    raw: object, where: str, class_ids: dict[int, Category] | None
) -> tuple[str | tuple[str, ...], dict[str, Any]]:
    """The category of an entry, and how it was written where that is not the default
    (name as a string, path as a list)."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        if class_ids is None:
            raise ValueError(
                f"{where}: category {raw} is a classId; pass schema= (the taxonomy) to read it"
            )
        if raw not in class_ids:
            raise ValueError(f"{where}: no category of the taxonomy has classId {raw}")
        name = class_ids[raw].name
        return name, {"classId": raw, "category": name}
    if isinstance(raw, str):
        return raw, {}
    if isinstance(raw, list | tuple) and raw:
        if len(raw) == 1 and isinstance(raw[0], list | tuple):
            inner = raw[0]
            if len(inner) < 2 or not all(isinstance(p, str) and p for p in inner):
                raise ValueError(
                    f"{where}: a legacy category [[root, ..., name]] needs the root and at "
                    f"least one name, got {raw!r}"
                )
            path = tuple(inner[1:])
            return (path[0] if len(path) == 1 else path), {"root": inner[0]}
        if all(isinstance(p, str) for p in raw):
            return tuple(raw), {}
    raise ValueError(
        f"{where}: a category is a name, a path (list of names) or a classId, "
        f"got {excerpt(repr(raw))}"
    )


def _read_full(
    raw: Mapping[str, Any], where: str, class_ids: dict[int, Category] | None
) -> tuple[Segment, list[int], dict[str, Any]]:
    if "category" not in raw:
        raise ValueError(f"{where}: no category (keys: {excerpt(str(list(raw)))})")
    category, how = _read_category(raw["category"], where, class_ids)
    attributes = raw.get("attributes", {})
    if not isinstance(attributes, Mapping):
        raise ValueError(
            f"{where}: attributes must be an object of attribute name -> value, got {attributes!r}"
        )
    listed = raw.get("overlappingGroups", [])
    if not isinstance(listed, list | tuple) or not all(
        isinstance(g, int) and not isinstance(g, bool) and g >= 1 for g in listed
    ):
        raise ValueError(
            f"{where}: overlappingGroups must be a list of voxel values (integers >= 1), "
            f"got {listed!r}"
        )
    extra = {k: copy.deepcopy(v) for k, v in raw.items() if k not in _SEGMENT_KEYS}
    segment = _segment(where, category, attributes=copy.deepcopy(dict(attributes)), extra=extra)
    return segment, list(listed), how


def _record_full_layout(
    ident: int,
    raw: Mapping[str, Any],
    segment: Segment,
    member_of: list[int],
    record: dict[str, Any],
) -> None:
    """Note in ``record`` what the default writer would do differently for ``raw``."""
    listed = raw.get("overlappingGroups")
    if listed is not None and list(listed) != member_of:
        record["overlappingGroups"] = list(listed)
    written = _entry(ident, segment, member_of, record, "auto")
    if not isinstance(written, dict):
        record["form"] = "full"
        written = _entry(ident, segment, member_of, record, "auto")
    if list(written) != list(raw):
        record["keys"] = list(raw)
        record.pop("form", None)  # the keys say it is a full entry


def _groups_by_instance(segment_map: SegmentMap) -> dict[int, list[int]]:
    member_of: dict[int, list[int]] = {ident: [] for ident in segment_map}
    for group, members in segment_map.groups.items():
        for member in members:
            if group not in member_of[member]:
                member_of[member].append(group)
    return member_of


def _written_category(segment: Segment, record: Mapping[str, Any]) -> Any:
    category = segment.category
    class_id = record.get("classId")
    if isinstance(class_id, int) and record.get("category") == category:
        return class_id
    path = [category] if isinstance(category, str) else list(category)
    root = record.get("root")
    if isinstance(root, str):
        return [[root, *path]]
    return category if isinstance(category, str) else path


def _entry(
    ident: int, segment: Segment, member_of: list[int], record: Mapping[str, Any], form: Form
) -> Any:
    """One segmentMap value, laid out as ``record`` says (see read_segment_map)."""
    category = _written_category(segment, record)
    listed = record.get("overlappingGroups")
    if isinstance(listed, list) and sorted(set(listed)) == sorted(member_of):
        groups = list(listed)
    else:
        groups = list(member_of)
    keys = record.get("keys")
    keys = list(keys) if isinstance(keys, list) else None
    holds = [
        name
        for name, present in (
            ("attributes", bool(segment.attributes)),
            (f"extra keys {list(segment.extra)}", bool(segment.extra)),
            (f"overlapping groups {groups}", bool(groups)),
        )
        if present
    ]
    if form == "short" or (
        form == "auto" and not holds and keys is None and record.get("form") != "full"
    ):
        if holds:
            raise ValueError(
                f"instance {ident}: the short form holds only the category, but this "
                f"instance also has {' and '.join(holds)}; write the full form"
            )
        return category
    clash = [key for key in _SEGMENT_KEYS if key in segment.extra]
    if clash:
        raise ValueError(f"instance {ident}: extra holds {clash}, which a Segment has fields for")
    parts: dict[str, Any] = {"category": category}
    if segment.attributes or (keys is not None and "attributes" in keys):
        parts["attributes"] = copy.deepcopy(dict(segment.attributes))
    parts.update(copy.deepcopy(dict(segment.extra)))
    if groups or (keys is not None and "overlappingGroups" in keys):
        parts["overlappingGroups"] = groups
    # RedBrick's export order: id, category, attributes, ..., mask, overlappingGroups.
    first = [key for key in ("id", "category", "attributes") if key in parts]
    last = [key for key in ("mask", "overlappingGroups") if key in parts]
    order = first + [key for key in parts if key not in first and key not in last] + last
    if keys is not None:
        order = [key for key in keys if key in parts] + [key for key in order if key not in keys]
    return {key: parts[key] for key in order}


# --------------------------------------------------------------- files holding segment maps


def recognise(document: Any) -> bool:
    """A RedBrick taxonomy, ``segmentMap``, series, or export ``tasks.json``."""
    if isinstance(document, list):
        return all(isinstance(t, Mapping) and ("series" in t or "taskId" in t) for t in document)
    if not isinstance(document, Mapping):
        return False
    if "objectTypes" in document or isinstance(document.get("categories"), list):
        return True
    if "segmentMap" in document:
        return True
    return bool(document) and all(
        isinstance(k, str) and k.strip().isascii() and k.strip().isdecimal() for k in document
    )


def recognise_labels(document: Any) -> bool:
    """The SDK's ``labels.json``: a non-empty list of label objects (``dicom``,
    ``classid`` or ``labelid`` keys)."""
    return (
        isinstance(document, list)
        and bool(document)
        and all(
            isinstance(label, Mapping) and ({"dicom", "classid", "labelid"} & set(label))
            for label in document
        )
    )


def read_segment_map_file(
    path: str | os.PathLike[str], schema: Schema | None = None, series: str | None = None
) -> SegmentMap:
    """Read a segment map from a RedBrick file: a ``segmentMap`` object, one series
    (``{"segmentMap": ...}``) or an export's ``tasks.json``.

    In ``tasks.json``, ``series`` chooses the series by its name (``"CT"``), or by task and
    name (``"task-1/CT"``); a file with one series that has a segment map uses it without
    being told.

    Raises
    ------
    SeriesError
        If ``tasks.json`` holds several series with segment maps and ``series`` does not
        choose one of them, or names none or several (the message lists them, cut to a
        readable length; ``available`` holds them all); or ``series`` is given for a
        file holding one segment map.
    ValueError
        If the file holds no segment map, is nested too deeply, or the segment map is
        malformed (naming the file).

    Examples
    --------
    >>> import json, os, tempfile
    >>> from fastseg.formats.redbrick import read_segment_map_file
    >>> path = os.path.join(tempfile.mkdtemp(), "tasks.json")
    >>> series = [{"name": "CT", "segmentMap": {"1": "Liver"}},
    ...           {"name": "MR", "segmentMap": {"1": "Spleen"}}]
    >>> with open(path, "w") as stream:
    ...     json.dump([{"name": "case-1", "series": series}], stream)
    >>> read_segment_map_file(path, series="MR")[1].category
    'Spleen'
    >>> read_segment_map_file(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    fastseg.formats.registry.SeriesError: ...: 2 series ... series= (...): case-1/CT, case-1/MR
    """
    source = os.fspath(path)
    document = read_json(source)
    if isinstance(document, list):
        chosen = _tasks_series(document, source, series)
    elif isinstance(document, Mapping) and (
        "objectTypes" in document or isinstance(document.get("categories"), list)
    ):
        raise ValueError(
            f"{source}: a RedBrick taxonomy names categories, not instances; pass it as the "
            "schema and the series' segmentMap (or tasks.json) as the segment map"
        )
    elif series is not None:
        one = isinstance(document, Mapping) and "segmentMap" in document
        raise SeriesError(
            source, f"{'one series' if one else 'a segmentMap'} holds one segment map"
        )
    elif isinstance(document, Mapping) and "segmentMap" in document:
        chosen = document["segmentMap"]
    else:
        chosen = document
    if not isinstance(chosen, Mapping):
        raise ValueError(f"{source}: a segmentMap is a JSON object, got {type(chosen).__name__}")
    try:
        return read_segment_map(chosen, schema=schema)
    except ValueError as error:
        raise ValueError(f"{source}: {excerpt(str(error))}") from None


def _series_maps(tasks: list[Any], source: str) -> list[tuple[str, str, Any]]:
    """(task, series, segmentMap) of every series of ``tasks`` with a segment map."""
    found: list[tuple[str, str, Any]] = []
    for index, task in enumerate(tasks):
        if not isinstance(task, Mapping):
            raise ValueError(f"{source}: task {index} is not an object")
        task_name = str(task.get("name") or task.get("taskId") or f"task-{index}")
        listed = task.get("series") or []
        if not isinstance(listed, list):
            raise ValueError(f"{source}: task {task_name!r}: series must be a list")
        for position, item in enumerate(listed):
            if isinstance(item, Mapping) and item.get("segmentMap"):
                name = str(item.get("name") or chr(position + ord("A")))
                found.append((task_name, name, item["segmentMap"]))
    return found


def _tasks_series(tasks: list[Any], source: str, series: str | None) -> Any:
    """The segmentMap of the series of ``tasks`` that ``series`` names."""
    found = _series_maps(tasks, source)
    if not found:
        raise ValueError(f"{source}: no series of this tasks.json has a segmentMap")
    if series is None and len(found) == 1:
        return found[0][2]
    available = [f"{task}/{name}" for task, name, _ in found]
    naming = "a series name, or task/name"
    if series is None:
        raise SeriesError(source, f"{len(found)} series have segment maps", available, naming)
    matches = [entry for entry in found if series in (entry[1], f"{entry[0]}/{entry[1]}")]
    if not matches:
        raise SeriesError(source, f"no series {series!r} has a segment map", available, naming)
    if len(matches) > 1:
        tasks_of = [f"{task}/{name}" for task, name, _ in matches]
        raise SeriesError(source, f"{series!r} names {len(matches)} series", tasks_of, "task/name")
    return matches[0][2]


def read_labels_file(
    path: str | os.PathLike[str], schema: Schema | None = None, series: str | None = None
) -> SegmentMap:
    """Read the segmentation labels of the SDK's ``labels.json`` as a segment map.

    Every label with a ``dicom.instanceid`` is an instance, mapped as the SDK's export
    maps it: its category (``[["object", "Liver"]]`` -> ``"Liver"``, deeper paths to a
    path; a ``classid`` without a category needs ``schema``), its attributes
    (``[{"name", "value"}]`` -> a dict, ``"true"``/``"false"`` -> booleans), ``labelid``
    -> ``id``, ``linkid`` -> ``group``, ``readonly`` -> ``readOnly``;
    ``dicom.groupids`` become overlap groups. Labels of several series
    (``volumeindex``) need ``series`` (the index, from 0).
    """
    source = os.fspath(path)
    labels = read_json(source)
    if not recognise_labels(labels):
        raise ValueError(f"{source}: RedBrick labels.json is a list of label objects")
    instances = [
        label
        for label in labels
        if isinstance(label.get("dicom"), Mapping) and label["dicom"].get("instanceid")
    ]
    volumes = sorted({int(label.get("volumeindex") or 0) for label in instances})
    available, naming = [str(v) for v in volumes], "a volumeindex"
    if series is not None:
        if not (series.isascii() and series.isdigit()) or int(series) not in volumes:
            problem = f"no labels of series {series!r}"
            raise SeriesError(source, problem, available, naming)
        instances = [i for i in instances if int(i.get("volumeindex") or 0) == int(series)]
    elif len(volumes) > 1:
        problem = f"labels of {len(volumes)} series (volumeindex {volumes})"
        raise SeriesError(source, problem, available, naming)
    entries: dict[str, Any] = {}
    for label in instances:
        ident = str(label["dicom"]["instanceid"])
        entry: dict[str, Any] = {}
        if label.get("labelid"):
            entry["id"] = label["labelid"]
        category = label.get("category")
        if category is None:
            category = label.get("classid")
        elif isinstance(category, list) and category and isinstance(category[0], list):
            category = category[0][1] if len(category[0]) == 2 else list(category[0][1:])
        entry["category"] = category
        attributes = {}
        for attribute in label.get("attributes") or []:
            if isinstance(attribute, Mapping) and "name" in attribute:
                value = attribute.get("value")
                if isinstance(value, str) and value.lower() in ("true", "false"):
                    value = value.lower() == "true"
                attributes[attribute["name"]] = value
        if attributes:
            entry["attributes"] = attributes
        if label.get("linkid") is not None:
            entry["group"] = label["linkid"]
        if label.get("readonly"):
            entry["readOnly"] = label["readonly"]
        groups = label["dicom"].get("groupids") or []
        if groups:
            entry["overlappingGroups"] = list(groups)
        entries[ident] = entry
    try:
        return read_segment_map(entries, schema=schema)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None
