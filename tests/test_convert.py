"""Instance <-> semantic conversions against plain numpy references."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from shared_data import shared_data_path
from strategies import small_volumes

import fastseg
from fastseg import Category, Schema, Segment, SegmentMap

SPINE = Schema(
    [
        Category("Vertebra", 3, color="#e0e0a0", parents=("Spine",)),
        Category("Disc", 1, parents=("Spine",)),
        Category("Liver", 7),
    ]
)


def semantic_reference(
    instances: np.ndarray, segment_map: SegmentMap, schema: Schema, unknown: str = "error"
) -> np.ndarray:
    """One voxel at a time, with numpy only."""
    out = np.zeros(instances.shape, np.int64)
    for index in np.ndindex(instances.shape):
        value = int(instances[index])
        if value == 0:
            continue
        if value in segment_map:
            out[index] = segment_map[value].resolve(schema).value
        elif value in segment_map.groups:
            out[index] = min(
                segment_map[m].resolve(schema).value for m in segment_map.groups[value]
            )
        elif unknown == "keep":
            out[index] = value
        elif unknown == "error":
            raise AssertionError("unknown id in a reference call")
    return out


def spine_case(seed: int, shape: tuple[int, ...] = (6, 7, 8)) -> tuple[np.ndarray, SegmentMap]:
    rng = np.random.default_rng(seed)
    instances = rng.integers(0, 7, shape).astype(np.uint16)
    segments = SegmentMap(
        {
            1: Segment("Vertebra"),
            2: Segment(("Spine", "Vertebra")),
            3: Segment("Disc"),
            4: Segment("Liver", attributes={"lobe": "left"}),
            5: Segment("Vertebra"),
        },
        groups={6: (1, 3)},
    )
    return instances, segments


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.uint64])
def test_to_semantic_matches_reference(order: str, dtype: Any) -> None:
    instances, segments = spine_case(0)
    instances = np.asarray(instances, order=order).astype(dtype, order=order)
    result = fastseg.to_semantic(instances, segments, SPINE)
    np.testing.assert_array_equal(result, semantic_reference(instances, segments, SPINE))
    assert result.dtype == np.uint8
    assert result.flags.f_contiguous == (order == "F")


def test_overlap_group_goes_to_the_lowest_value() -> None:
    _, segments = spine_case(0)
    # Group 6 covers a Vertebra (3) and a Disc (1): the Disc wins.
    assert fastseg.to_semantic(np.array([6, 1, 3]), segments, SPINE).tolist() == [1, 3, 1]


def test_unknown_ids() -> None:
    instances, segments = spine_case(1)
    instances[0, 0, 0] = 42
    with pytest.raises(ValueError, match="42"):
        fastseg.to_semantic(instances, segments, SPINE)
    background = fastseg.to_semantic(instances, segments, SPINE, unknown="background")
    assert background[0, 0, 0] == 0
    kept = fastseg.to_semantic(instances, segments, SPINE, unknown="keep")
    assert kept[0, 0, 0] == 42
    np.testing.assert_array_equal(kept, semantic_reference(instances, segments, SPINE, "keep"))
    with pytest.raises(ValueError, match="unknown must be"):
        fastseg.to_semantic(instances, segments, SPINE, unknown="drop")  # type: ignore[arg-type]


def test_category_missing_from_schema() -> None:
    with pytest.raises(ValueError, match=r"instance 1: category 'Kidney' is not in the schema"):
        fastseg.to_semantic(np.array([1]), SegmentMap({1: Segment("Kidney")}), SPINE)


@given(
    small_volumes(st.sampled_from([0, 1, 3, 7]), max_side=6),
    st.sampled_from(["C", "F"]),
    st.booleans(),
)
def test_to_instances_then_to_semantic_gives_the_input_back(
    semantic: np.ndarray, order: str, split: bool
) -> None:
    semantic = np.asarray(semantic, order=order)
    instances, segments = fastseg.to_instances(semantic, SPINE, split=split)
    np.testing.assert_array_equal(fastseg.to_semantic(instances, segments, SPINE), semantic)
    present = {int(v) for v in np.unique(semantic)} - {0}
    if split:
        cc, count, _ = fastseg.label(semantic)
        np.testing.assert_array_equal(instances, cc)
        assert len(segments) == count
    else:
        assert len(segments) == len(present)
        assert [segments[k].category for k in segments] == [
            SPINE.by_value(v).name for v in sorted(present)
        ]


def test_to_instances_refuses_values_outside_the_schema() -> None:
    with pytest.raises(ValueError, match="no category of the schema: 2"):
        fastseg.to_instances(np.array([0, 1, 2]), SPINE)


def test_convert_by_name() -> None:
    nnunet = Schema([Category("Disc", 1), Category("Vertebra", 2)])
    semantic = np.array([[0, 3, 1], [7, 3, 0]], np.uint8)
    result = fastseg.convert(semantic, SPINE, nnunet, to_background=["Liver"])
    np.testing.assert_array_equal(result, [[0, 2, 1], [0, 2, 0]])
    with pytest.raises(ValueError, match=r"\['Liver'\] have no counterpart"):
        fastseg.convert(semantic, SPINE, nnunet)
    with pytest.raises(ValueError, match="lacks"):
        fastseg.convert(semantic, SPINE, nnunet, to_background=["Kidney"])
    with pytest.raises(ValueError, match="no category of the schema: 5"):
        fastseg.convert(np.array([5]), SPINE, nnunet, to_background=["Liver"])


@pytest.mark.parametrize("order", ["C", "F"])
def test_binary_masks(order: str) -> None:
    instances, segments = spine_case(2)
    instances = np.asarray(instances, order=order)
    masks = dict(fastseg.binary_masks(instances, segments))
    assert sorted(masks) == [1, 2, 3, 4, 5]
    for ident, mask in masks.items():
        groups = [g for g, members in segments.groups.items() if ident in members]
        np.testing.assert_array_equal(mask, np.isin(instances, [ident, *groups]))
        assert mask.dtype == np.bool_
    plain = dict(fastseg.binary_masks(instances))
    assert sorted(plain) == sorted(int(v) for v in np.unique(instances) if v)
    for ident, mask in plain.items():
        np.testing.assert_array_equal(mask, instances == ident)


def test_redbrick_style_export_from_torso() -> None:
    """Instances from the torso organs with shuffled classIds; semantic value = classId + 1."""
    folder = shared_data_path("torso_labels.nii.gz", "torso_labels.json")
    organs = fastseg.load(folder / "torso_labels.nii.gz").labels
    names = json.loads((folder / "torso_labels.json").read_text())["labels"]
    organ_names = [n for n, v in sorted(names.items(), key=lambda item: item[1]) if v != 0]
    rng = np.random.default_rng(7)
    class_ids = rng.permutation(len(organ_names))
    schema = Schema(
        Category(name, int(class_id) + 1)
        for name, class_id in zip(organ_names, class_ids, strict=True)
    )
    # Instances: connected components of each organ, as an annotation tool would store them.
    cc, count, values = fastseg.label(organs, connectivity=26)
    segments = {k: Segment(organ_names[int(values[k]) - 1]) for k in range(1, count + 1)}
    # Two instances also overlap through a group value beyond the instance ids.
    group = count + 1
    instances = cc.astype(np.uint16)
    instances[organs == 1] = np.where(
        rng.random(int((organs == 1).sum())) < 0.1, group, instances[organs == 1]
    )
    segment_map = SegmentMap(segments, groups={group: (1, count)})
    result = fastseg.to_semantic(instances, segment_map, schema)
    lookup = np.zeros(group + 1, np.int64)
    for k, segment in segments.items():
        lookup[k] = schema[segment.category].value  # type: ignore[index]
    lookup[group] = min(lookup[1], lookup[count])
    np.testing.assert_array_equal(result, lookup[instances])
    back_instances, back_segments = fastseg.to_instances(result, schema)
    np.testing.assert_array_equal(
        fastseg.to_semantic(back_instances, back_segments, schema), result
    )
