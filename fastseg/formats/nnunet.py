"""nnU-Net ``dataset.json`` label definitions: nnU-Net v2, and MSD / nnU-Net v1.

nnU-Net v2 names its labels as ``{"background": 0, "liver": 1, ...}``: label 0 must be
called ``"background"``, and the values must be consecutive. Region-based datasets give
each label as a list of segmentation values (``"tumor core": [2, 3]``) and add
``regions_class_order``, the value each region is painted with; an optional ``"ignore"``
label takes the highest value. The Medical Segmentation Decathlon (MSD) and nnU-Net v1
map values to names instead: ``{"0": "background", "1": "liver"}``.

How a file maps onto a :class:`~fastseg.Schema`:

- Label 0 is background, not a :class:`~fastseg.Category`; its name goes into
  ``schema.metadata["background"]``.
- A region label becomes a category whose value is its ``regions_class_order`` entry and
  whose ``attributes["regions"]`` holds the label as written (a list of ints, or an int).
- The ignore label becomes a category with ``attributes["ignore"] = True``.
- Every other top-level key (``channel_names``, ``numTraining``, ``file_ending``, ...)
  goes into ``schema.metadata`` unchanged, and ``metadata["nnunet_key_order"]`` records
  the order of the top-level keys, so that writing reproduces the file.

Writing takes the top-level keys from that record (and from ``base``) only, so metadata
a schema brought from another format never ends up in ``dataset.json``.

Colours, parents and other attributes have no place in ``dataset.json`` and are not
written.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fastseg._files import write_text_atomically
from fastseg.formats.registry import excerpt, read_json
from fastseg.schema import Category, Schema

__all__ = ["read_dataset_json", "write_dataset_json"]

_KEY_ORDER = "nnunet_key_order"
# This module's own keys in Schema.metadata, so refused as top-level keys of a file.
_RESERVED = frozenset({"background", _KEY_ORDER})
_INTEGER = re.compile(r"[0-9]+")


def read_dataset_json(path_or_dict: str | os.PathLike[str] | Mapping[str, Any]) -> Schema:
    """Read the labels of an nnU-Net ``dataset.json`` (v2, or MSD / nnU-Net v1).

    The version is detected from ``labels``: names mapped to integers (or region lists)
    is v2, integer strings mapped to names is v1 / MSD. v2 categories come in value
    order, region-based ones in file order (which is their output channel order).

    Parameters
    ----------
    path_or_dict : str, path-like or mapping
        The ``dataset.json`` file, or its already-parsed content.

    Returns
    -------
    Schema
        Label 0's name is in ``metadata["background"]``; every top-level key other than
        ``labels`` (and ``regions_class_order``) is in ``metadata`` unchanged.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is not JSON or its labels are malformed, naming the file (or
        ``<dict>``) and the key: no ``background`` 0, duplicate names or values,
        non-integer values, values that are not consecutive (v2), a misplaced ignore
        label, or regions that do not match ``regions_class_order``.

    Examples
    --------
    >>> from fastseg.formats.nnunet import read_dataset_json
    >>> schema = read_dataset_json({
    ...     "channel_names": {"0": "CT"},
    ...     "labels": {"background": 0, "liver": 1, "tumor": 2},
    ...     "numTraining": 131,
    ...     "file_ending": ".nii.gz",
    ... })
    >>> schema, schema.metadata["numTraining"]
    (Schema(liver=1, tumor=2), 131)
    """
    if isinstance(path_or_dict, Mapping):
        source = "<dict>"
        content: Mapping[str, Any] = path_or_dict
    else:
        source = os.fspath(path_or_dict)
        content = _load_json(Path(path_or_dict), source)
    if not isinstance(content, Mapping):
        raise ValueError(f"{source}: expected a JSON object, got {type(content).__name__}")
    if "labels" not in content:
        raise ValueError(f"{source}: no 'labels' key")
    labels = content["labels"]
    if not isinstance(labels, Mapping) or not labels:
        raise ValueError(
            f"{source}: 'labels' must be a non-empty object, got {excerpt(repr(labels))}"
        )
    for key in content:
        if key in _RESERVED:
            raise ValueError(
                f"{source}: top-level key {key!r} is reserved for fastseg's own metadata"
            )
    if all(isinstance(name, str) for name in labels.values()):
        categories, background = _parse_v1(labels, source)
        structural: tuple[str, ...] = ("labels",)
    else:
        categories, background = _parse_v2(labels, content.get("regions_class_order"), source)
        structural = ("labels", "regions_class_order")
    metadata: dict[str, Any] = {
        key: copy.deepcopy(value) for key, value in content.items() if key not in structural
    }
    metadata["background"] = background
    metadata[_KEY_ORDER] = tuple(content)
    return Schema(categories, metadata=metadata)


def write_dataset_json(
    schema: Schema,
    path: str | os.PathLike[str],
    *,
    base: Mapping[str, Any] | None = None,
    version: int = 2,
) -> None:
    """Write a schema as an nnU-Net ``dataset.json``, the way nnU-Net writes it.

    The text is ``json.dumps(content, indent=4)`` (what nnU-Net's ``save_json`` writes),
    with the top-level keys in the order of the file the schema was read from. The labels
    come background first, then in value order (region-based: in category order, with
    ``regions_class_order`` from the category values).

    Parameters
    ----------
    schema : Schema
        The categories. The metadata keys named in ``metadata["nnunet_key_order"]`` (the
        top-level keys of the file the schema was read from) are written unchanged.
    path : str or path-like
        Target file; its folder must exist. An existing file is replaced only once the
        new one is completely written.
    base : mapping, optional
        Further top-level keys (``channel_names``, ``numTraining``, ``file_ending``, ...),
        e.g. for a schema read from another format, in the order given after the recorded
        ones. They take precedence over ``schema.metadata``; ``labels`` and
        ``regions_class_order`` always come from the schema.
    version : {2, 1}
        2 writes ``{"background": 0, name: value, ...}`` (label 0 is always called
        ``"background"``, as nnU-Net requires); 1 writes the MSD / nnU-Net v1 form
        ``{"0": background, "1": name, ...}``, naming label 0
        ``metadata["background"]`` (default ``"background"``), with no regions or ignore
        label.

    Raises
    ------
    ValueError
        If the schema cannot be written in that version: values not consecutive (v2),
        an ignore label that is not named ``"ignore"`` or not the highest value, a
        category named ``"background"`` (v2), regions or an ignore label (v1), or a
        ``base`` key that is one of fastseg's own (``background``, ``nnunet_key_order``).

    Examples
    --------
    >>> import os, tempfile
    >>> from pathlib import Path
    >>> from fastseg import Category, Schema
    >>> from fastseg.formats.nnunet import write_dataset_json
    >>> folder = tempfile.TemporaryDirectory()
    >>> target = os.path.join(folder.name, "dataset.json")
    >>> schema = Schema([Category("liver", 1), Category("tumor", 2)])
    >>> write_dataset_json(
    ...     schema, target, base={"channel_names": {"0": "CT"}, "numTraining": 131}
    ... )
    >>> print(Path(target).read_text())
    {
        "channel_names": {
            "0": "CT"
        },
        "labels": {
            "background": 0,
            "liver": 1,
            "tumor": 2
        },
        "numTraining": 131
    }
    >>> folder.cleanup()
    """
    if version not in (1, 2):
        raise ValueError(f"version must be 1 or 2, got {version!r}")
    target = Path(path)
    where = f"cannot write {os.fspath(path)} as nnU-Net v{version}"
    structural = _labels_v2(schema, where) if version == 2 else _labels_v1(schema, where)
    base = dict(base or {})
    for key in base:
        if key in _RESERVED:
            raise ValueError(f"{where}: base key {key!r} is reserved for fastseg's own metadata")
    order = [str(k) for k in schema.metadata.get(_KEY_ORDER, ())]
    own = {k: schema.metadata[k] for k in order if k in schema.metadata and k not in _RESERVED}
    fields: dict[str, Any] = {**own, **base}
    fields.pop("labels", None)
    fields.pop("regions_class_order", None)
    fields.update(structural)
    order += [k for k in base if k not in order]
    if "labels" not in order:
        after = [i + 1 for i, k in enumerate(order) if k in ("channel_names", "modality")]
        order.insert(after[0] if after else 0, "labels")
    order += [k for k in fields if k not in order]
    content = {key: fields[key] for key in order if key in fields}
    write_text_atomically(target, json.dumps(content, indent=4))


def _labels_v2(schema: Schema, where: str) -> dict[str, Any]:
    """``labels`` (and ``regions_class_order``) for v2, checked as the reader checks."""
    ignore: list[Category] = []
    regular: list[Category] = []
    for category in schema:
        if category.name == "background":
            raise ValueError(
                f"{where}: a category is named 'background', which nnU-Net reserves for 0"
            )
        marked = category.attributes.get("ignore", False) is True
        if marked and category.name != "ignore":
            raise ValueError(
                f"{where}: category {category.name!r} is marked as the ignore label, which "
                f"nnU-Net requires to be named 'ignore'"
            )
        if marked or category.name == "ignore":
            if "regions" in category.attributes:
                raise ValueError(f"{where}: the ignore label cannot be a region")
            ignore.append(category)
        else:
            regular.append(category)
    regions = any("regions" in c.attributes for c in regular)
    labels: dict[str, Any] = {"background": 0}
    structural: dict[str, Any] = {"labels": labels}
    if regions:
        for category in schema:
            region = category.attributes.get("regions", category.value)
            labels[category.name] = list(region) if isinstance(region, (list, tuple)) else region
        structural["regions_class_order"] = [c.value for c in regular]
    else:
        for category in sorted(schema, key=lambda c: c.value):
            labels[category.name] = category.value
    # The reader's checks, so that everything written reads back.
    _parse_v2(labels, structural.get("regions_class_order"), where)
    return structural


def _labels_v1(schema: Schema, where: str) -> dict[str, Any]:
    labels = {"0": str(schema.metadata.get("background", "background"))}
    for category in sorted(schema, key=lambda c: c.value):
        if "regions" in category.attributes or category.attributes.get("ignore", False):
            raise ValueError(
                f"{where}: category {category.name!r} is a region or ignore label, which "
                f"MSD / nnU-Net v1 labels cannot express"
            )
        labels[str(category.value)] = category.name
    return {"labels": labels}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_v1(labels: Mapping[str, Any], source: str) -> tuple[list[Category], str]:
    """``{"0": "background", "1": "liver"}``: categories in value order."""
    background: str | None = None
    seen_values: dict[int, str] = {}
    seen_names: dict[str, str] = {}
    entries: list[tuple[int, str]] = []
    for key, name in labels.items():
        if not _INTEGER.fullmatch(key):
            raise ValueError(f"{source}: labels[{key!r}]: the key is not a non-negative integer")
        value = int(key)
        if value in seen_values:
            raise ValueError(
                f"{source}: labels[{key!r}]: value {value} is also labels[{seen_values[value]!r}]"
            )
        seen_values[value] = key
        if value == 0:
            background = name
            continue
        if name in seen_names:
            raise ValueError(
                f"{source}: labels[{key!r}]: name {name!r} is also labels[{seen_names[name]!r}]"
            )
        seen_names[name] = key
        entries.append((value, name))
    if background is None:
        raise ValueError(f"{source}: labels has no '0' (background) entry")
    categories = [
        _category(name, value, {}, f"{source}: labels[{seen_values[value]!r}]")
        for value, name in sorted(entries)
    ]
    return categories, background


def _parse_v2(labels: Mapping[str, Any], order: object, source: str) -> tuple[list[Category], str]:
    """``{"background": 0, name: value or region}``: checked as nnU-Net checks it."""
    if "background" not in labels:
        raise ValueError(
            f"{source}: labels has no 'background' entry (nnU-Net requires 'background': 0)"
        )
    if not (_is_int(labels["background"]) and labels["background"] == 0):
        raise ValueError(f"{source}: labels['background'] must be 0, got {labels['background']!r}")
    ignore = labels.get("ignore")
    if "ignore" in labels and not (_is_int(ignore) and ignore is not None and ignore >= 1):
        raise ValueError(
            f"{source}: labels['ignore'] must be an integer >= 1 (not a region), got {ignore!r}"
        )
    others = [(k, v) for k, v in labels.items() if k not in ("background", "ignore")]
    if order is None:
        categories, used = _plain_labels(others, source)
    else:
        categories, used = _region_labels(others, order, source)
    used.add(0)
    highest = max(used)
    if isinstance(ignore, int):
        if ignore != highest + 1:
            raise ValueError(
                f"{source}: labels['ignore'] is {ignore}, but nnU-Net requires the ignore "
                f"label to be the highest label, {highest + 1}"
            )
        taken = {c.value: c.name for c in categories}
        if ignore in taken:
            raise ValueError(
                f"{source}: labels['ignore']: value {ignore} is also regions_class_order's "
                f"entry for {taken[ignore]!r}"
            )
        categories.append(_category("ignore", ignore, {"ignore": True}, source))
        used.add(ignore)
    missing = sorted(set(range(max(used) + 1)) - used)
    if missing:
        raise ValueError(
            f"{source}: labels are not consecutive, value {missing[0]} is missing "
            f"(nnU-Net requires labels 0, 1, 2, ... without gaps)"
        )
    return categories, "background"


def _plain_labels(entries: list[tuple[str, Any]], source: str) -> tuple[list[Category], set[int]]:
    seen: dict[int, str] = {}
    for name, value in entries:
        where = f"{source}: labels[{name!r}]"
        if isinstance(value, list):
            raise ValueError(
                f"{where}: a region (list of labels) needs 'regions_class_order', which the "
                f"file does not have"
            )
        if not _is_int(value) or value < 0:
            raise ValueError(f"{where}: expected an integer >= 0, got {value!r}")
        if value == 0:
            raise ValueError(f"{where}: value 0 is reserved for 'background'")
        if value in seen:
            raise ValueError(f"{where}: value {value} is also labels[{seen[value]!r}]")
        seen[value] = name
    categories = [
        _category(seen[value], value, {}, f"{source}: labels[{seen[value]!r}]")
        for value in sorted(seen)
    ]
    return categories, set(seen)


def _region_labels(
    entries: list[tuple[str, Any]], order: object, source: str
) -> tuple[list[Category], set[int]]:
    if not isinstance(order, list) or not all(_is_int(v) and v >= 1 for v in order):
        raise ValueError(
            f"{source}: regions_class_order must be a list of integers >= 1, got {order!r}"
        )
    if len(order) != len(entries):
        raise ValueError(
            f"{source}: regions_class_order has {len(order)} entries for {len(entries)} "
            f"regions (every label but 'background' and 'ignore')"
        )
    used: set[int] = set()
    seen: dict[int, str] = {}
    categories = []
    for (name, region), value in zip(entries, order, strict=True):
        where = f"{source}: labels[{name!r}]"
        members = region if isinstance(region, list) else [region]
        if not members or not all(_is_int(v) and v >= 1 for v in members):
            raise ValueError(
                f"{where}: a region must be an integer >= 1 or a non-empty list of them, "
                f"got {region!r}"
            )
        if value in seen:
            raise ValueError(
                f"{source}: regions_class_order: value {value} is given to both "
                f"{seen[value]!r} and {name!r}"
            )
        seen[value] = name
        used.update(members)
        kept = list(region) if isinstance(region, list) else region
        categories.append(_category(name, value, {"regions": kept}, where))
    return categories, used


def _category(name: str, value: int, attributes: dict[str, Any], where: str) -> Category:
    try:
        return Category(name, value, attributes=attributes)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


class _DuplicateKeyError(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKeyError(f"duplicate key {key!r} in a JSON object")
        result[key] = value
    return result


def _load_json(path: Path, source: str) -> Any:
    try:
        return read_json(path, object_pairs_hook=_unique_keys)
    except _DuplicateKeyError as error:
        raise ValueError(f"{source}: {error}") from None


def recognise(document: Any) -> bool:
    """A JSON object whose ``labels`` is an object (nnU-Net v2, or MSD / v1)."""
    return isinstance(document, Mapping) and isinstance(document.get("labels"), Mapping)


DEFAULT_CHANNEL = "CT"
"""The one input channel a dataset.json names when not told (``{"0": "CT"}``)."""
DEFAULT_FILE_ENDING = ".nii.gz"


def dataset_json_fields(
    schema: Schema,
    folder: str | os.PathLike[str],
    *,
    channel_names: Mapping[str, str] | None = None,
    num_training: int | None = None,
    file_ending: str | None = None,
) -> dict[str, Any]:
    """The top-level keys nnU-Net v2 needs beside ``labels``, for
    :func:`write_dataset_json`'s ``base``.

    Each comes from the argument when given, else from the schema when it was read
    from a ``dataset.json``, else a default: ``channel_names`` ``{"0": "CT"}``,
    ``numTraining`` the number of ``labelsTr/*<file_ending>`` files in ``folder`` (the
    dataset folder; 0 when it has none), ``file_ending`` ``".nii.gz"``.

    Examples
    --------
    >>> import tempfile
    >>> from fastseg import Category, Schema
    >>> from fastseg.formats.nnunet import dataset_json_fields
    >>> dataset_json_fields(Schema([Category("liver", 1)]), tempfile.mkdtemp())
    {'channel_names': {'0': 'CT'}, 'numTraining': 0, 'file_ending': '.nii.gz'}
    """
    metadata = schema.metadata
    recorded = set(metadata.get(_KEY_ORDER, ()))
    fields: dict[str, Any] = {}
    if channel_names is not None:
        fields["channel_names"] = dict(channel_names)
    elif "channel_names" not in recorded and "modality" not in recorded:
        fields["channel_names"] = {"0": DEFAULT_CHANNEL}
    if file_ending is not None:
        fields["file_ending"] = file_ending
    ending = str(fields.get("file_ending", metadata.get("file_ending", DEFAULT_FILE_ENDING)))
    if num_training is not None:
        fields["numTraining"] = int(num_training)
    elif "numTraining" not in recorded:
        labels = Path(folder) / "labelsTr"
        count = sum(1 for p in labels.glob(f"*{ending}") if p.is_file()) if labels.is_dir() else 0
        fields["numTraining"] = count
    if "file_ending" not in fields and "file_ending" not in recorded:
        fields["file_ending"] = DEFAULT_FILE_ENDING
    return {
        key: fields[key] for key in ("channel_names", "numTraining", "file_ending") if key in fields
    }
