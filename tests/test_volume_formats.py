"""Label volumes in every format of the registry: round trips, geometry against
SimpleITK, files written by the real tools, and honest reading of damaged files."""

from __future__ import annotations

import csv
import gzip
import json
import sys
from pathlib import Path
from typing import Any

import nibabel
import numpy as np
import pytest
from shared_data import shared_data_path

import fastseg
from fastseg.formats import registry, volume_suffixes

SimpleITK = pytest.importorskip("SimpleITK")
nrrd = pytest.importorskip("nrrd")

# A rotated, anisotropic affine with an offset: x and y axes swapped and flipped.
AFFINE = np.array(
    [
        [0.0, -0.8, 0.0, 12.5],
        [0.9, 0.0, 0.0, -20.0],
        [0.0, 0.0, 2.5, 31.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)
SUFFIXES = (".nii.gz", ".nii", ".mgz", ".mgh", ".nrrd", ".seg.nrrd", ".mha", ".mhd")
DTYPES = (np.bool_, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64)
# The largest id each dtype is tried with (MGH's int32 limits 64-bit ids: tested apart).
HIGH = {1: 200, 2: 30_000, 4: 70_000, 8: 2**40 + 7}


def volume(dtype: Any, order: str, shape: tuple[int, ...] = (4, 5, 6)) -> np.ndarray:
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 3, size=shape)
    if np.dtype(dtype) != np.bool_:
        labels[1, 2, 3] = HIGH[np.dtype(dtype).itemsize]
    return np.asarray(labels.astype(dtype), order=order)  # type: ignore[call-overload]


def test_every_volume_suffix_is_registered() -> None:
    assert set(volume_suffixes()) == set(SUFFIXES) | {".nhdr"}
    # Longest first, so that ".seg.nrrd" is tried before ".nrrd".
    assert volume_suffixes().index(".seg.nrrd") < volume_suffixes().index(".nrrd")
    for suffix in SUFFIXES:
        assert registry.volume_format(f"a/B{suffix.upper()}").matches(f"b{suffix}")
    with pytest.raises(ValueError, match=r"x\.png: not a label volume file name; .*\.mgz"):
        fastseg.load("x.png")


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_round_trip_matrix(tmp_path: Path, suffix: str, dtype: Any, order: str) -> None:
    labels = volume(dtype, order)
    high = int(labels.max())
    path = tmp_path / f"labels{suffix}"
    if suffix in (".mgz", ".mgh") and high > np.iinfo(np.int32).max:
        with pytest.raises(ValueError, match="does not fit MGH's largest integer type"):
            fastseg.save(path, labels, affine=AFFINE)
        assert list(tmp_path.iterdir()) == []
        return
    fastseg.save(path, labels, affine=AFFINE)
    image = fastseg.load(path)
    np.testing.assert_array_equal(image.labels, labels.astype(np.uint64))
    assert image.labels.dtype.kind in "ui"
    assert image.labels.dtype.isnative
    np.testing.assert_allclose(image.affine, AFFINE, atol=1e-5)
    np.testing.assert_allclose(image.spacing, (0.9, 0.8, 2.5), rtol=1e-6)
    assert image.format == registry.volume_format(path).name
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".seg.nrrd", ".mha", ".mhd"])
def test_world_coordinates_agree_with_simpleitk(tmp_path: Path, suffix: str) -> None:
    """SimpleITK reads the same world point (LPS) for every voxel of what fastseg wrote."""
    labels = volume(np.uint8, "F")
    path = tmp_path / f"labels{suffix}"
    fastseg.save(path, labels, affine=AFFINE)
    image = SimpleITK.ReadImage(str(path))
    np.testing.assert_array_equal(SimpleITK.GetArrayFromImage(image).T, labels)
    for index in [(0, 0, 0), (1, 2, 3), (3, 4, 5)]:
        lps = np.array(image.TransformIndexToPhysicalPoint(index))
        ras = AFFINE @ [*index, 1.0]
        np.testing.assert_allclose(lps * [-1, -1, 1], ras[:3], atol=1e-4)


def test_nifti_nrrd_nifti_keeps_world_coordinates(tmp_path: Path) -> None:
    labels = volume(np.uint16, "F")
    fastseg.save(tmp_path / "a.nii.gz", labels, affine=AFFINE)
    first = fastseg.load(tmp_path / "a.nii.gz")
    fastseg.save(tmp_path / "b.nrrd", first.labels, like=first)
    fastseg.save(tmp_path / "c.nii.gz", fastseg.load(tmp_path / "b.nrrd").labels, like=first)
    again = fastseg.load(tmp_path / "c.nii.gz")
    np.testing.assert_array_equal(again.labels, labels)
    np.testing.assert_allclose(again.affine, first.affine, atol=1e-6)
    header = nrrd.read_header(str(tmp_path / "b.nrrd"))
    assert header["space"] == "left-posterior-superior"
    np.testing.assert_allclose(header["space origin"], [-12.5, 20.0, 31.0])


# ------------------------------------------------------------ files written by real tools


def test_files_written_by_simpleitk(tmp_path: Path) -> None:
    labels = volume(np.uint16, "C")
    image = SimpleITK.GetImageFromArray(np.ascontiguousarray(labels.T))
    image.SetSpacing((0.5, 0.7, 3.0))
    image.SetOrigin((10.0, -4.0, 2.0))
    image.SetDirection((0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0))
    expected = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.array(
        [[0.0, 0.7, 0.0, 10.0], [-0.5, 0.0, 0.0, -4.0], [0.0, 0.0, 3.0, 2.0], [0, 0, 0, 1]]
    )
    for suffix in (".mha", ".mhd", ".nrrd", ".nii.gz"):
        path = tmp_path / f"itk{suffix}"
        SimpleITK.WriteImage(image, str(path), True)
        loaded = fastseg.load(path)
        np.testing.assert_array_equal(loaded.labels, labels)
        np.testing.assert_allclose(loaded.affine, expected, atol=1e-5)


def test_nrrd_in_ras_space_written_by_pynrrd(tmp_path: Path) -> None:
    labels = volume(np.uint8, "F")
    header = {
        "space": "right-anterior-superior",
        "space directions": np.diag([0.9, 0.8, 2.5]),
        "space origin": np.array([1.0, 2.0, 3.0]),
        "kinds": ["domain"] * 3,
    }
    nrrd.write(str(tmp_path / "ras.nrrd"), labels, header, index_order="F")
    loaded = fastseg.load(tmp_path / "ras.nrrd")
    np.testing.assert_array_equal(loaded.labels, labels)
    expected = np.diag([0.9, 0.8, 2.5, 1.0])
    expected[:3, 3] = [1.0, 2.0, 3.0]
    np.testing.assert_allclose(loaded.affine, expected)
    # No space at all: ITK's reading, LPS with the spacings on the diagonal.
    nrrd.write(str(tmp_path / "plain.nrrd"), labels, {"spacings": [2.0, 3.0, 4.0]})
    np.testing.assert_allclose(
        fastseg.load(tmp_path / "plain.nrrd").affine, np.diag([-2, -3, 4, 1])
    )
    reference = SimpleITK.ReadImage(str(tmp_path / "plain.nrrd"))
    assert reference.GetSpacing() == (2.0, 3.0, 4.0)


@pytest.mark.parametrize(
    ("high", "stored"), [(255, np.uint8), (256, np.int16), (32_767, np.int16), (32_768, np.int32)]
)
def test_mgz_keeps_the_smallest_integer_type(tmp_path: Path, high: int, stored: Any) -> None:
    labels = np.zeros((3, 4, 5), np.uint32)
    labels[1, 1, 1] = high
    fastseg.save(tmp_path / "aseg.mgz", labels, affine=AFFINE)
    written = nibabel.load(tmp_path / "aseg.mgz")
    assert written.get_data_dtype() == np.dtype(stored).newbyteorder(">")
    np.testing.assert_array_equal(np.asanyarray(written.dataobj), labels)
    np.testing.assert_allclose(written.affine, AFFINE, atol=1e-5)


def test_mgz_written_by_nibabel_keeps_header(tmp_path: Path) -> None:
    labels = volume(np.int32, "F")
    image = nibabel.MGHImage(labels, AFFINE)
    nibabel.save(image, tmp_path / "fs.mgz")
    loaded = fastseg.load(tmp_path / "fs.mgz")
    assert loaded.labels.dtype == np.int32
    np.testing.assert_array_equal(loaded.labels, labels)
    fastseg.save(tmp_path / "relabelled.mgz", loaded.labels, like=loaded)
    again = nibabel.load(tmp_path / "relabelled.mgz")
    assert again.get_data_dtype() == np.dtype(">i4")  # ids up to 70000
    np.testing.assert_allclose(again.affine, AFFINE, atol=1e-5)
    too_big = np.array([[[0, 2**31]]], np.int64)
    with pytest.raises(ValueError, match=r"label 2147483648 does not fit .*int32"):
        fastseg.save(tmp_path / "big.mgz", too_big)


def test_aal_atlas_through_every_format(tmp_path: Path) -> None:
    """A real atlas (NIfTI) converted to every format and back keeps ids and geometry."""
    folder = shared_data_path("aal.nii.gz")
    source = fastseg.load(folder / "aal.nii.gz")
    for suffix in (".mgz", ".nrrd", ".mha", ".seg.nrrd"):
        fastseg.save(tmp_path / f"aal{suffix}", source.labels, like=source)
        again = fastseg.load(tmp_path / f"aal{suffix}")
        np.testing.assert_array_equal(again.labels, source.labels)
        np.testing.assert_allclose(again.affine, source.affine, atol=1e-5)


# ------------------------------------------------------------------- honest reading


@pytest.mark.parametrize(("unit", "factor"), [("micron", 1e-3), ("meter", 1e3), ("mm", 1.0)])
def test_nifti_spatial_units_become_millimetres(tmp_path: Path, unit: str, factor: float) -> None:
    image = nibabel.Nifti1Image(np.ones((2, 3, 4), np.uint8), np.diag([500.0, 400.0, 2.0, 1.0]))
    image.header.set_xyzt_units(unit)
    nibabel.save(image, tmp_path / "units.nii.gz")
    loaded = fastseg.load(tmp_path / "units.nii.gz")
    np.testing.assert_allclose(
        loaded.affine, np.diag([500.0 * factor, 400.0 * factor, 2.0 * factor, 1.0])
    )
    np.testing.assert_allclose(loaded.spacing, (500.0 * factor, 400.0 * factor, 2.0 * factor))
    fastseg.save(tmp_path / "again.nii.gz", loaded.labels, like=loaded)
    written = nibabel.load(tmp_path / "again.nii.gz").header
    assert written.get_xyzt_units()[0] == "mm"


def test_nifti_with_an_unknown_unit_code_is_refused(tmp_path: Path) -> None:
    image = nibabel.Nifti1Image(np.ones((2, 2, 2), np.uint8), np.eye(4))
    image.header["xyzt_units"] = 7  # no NIfTI spatial unit has code 7
    nibabel.save(image, tmp_path / "odd.nii")
    with pytest.raises(ValueError, match=r"odd\.nii: the header's spatial unit"):
        fastseg.load(tmp_path / "odd.nii")


def test_damaged_gzip_streams_fail_naming_the_file(tmp_path: Path) -> None:
    labels = np.random.default_rng(3).integers(0, 5, (20, 20, 20)).astype(np.uint8)
    nibabel.save(nibabel.Nifti1Image(labels, np.eye(4)), tmp_path / "good.nii.gz")
    content = (tmp_path / "good.nii.gz").read_bytes()
    bad_crc = bytearray(content)
    bad_crc[-6] ^= 0xFF  # inside the CRC-32 of the trailer: every voxel is intact
    (tmp_path / "crc.nii.gz").write_bytes(bytes(bad_crc))
    bad_length = bytearray(content)
    bad_length[-2] ^= 0x01  # ISIZE, the length modulo 2**32
    (tmp_path / "length.nii.gz").write_bytes(bytes(bad_length))
    (tmp_path / "cut.nii.gz").write_bytes(content[:-10])
    for name in ("crc", "length", "cut"):
        with pytest.raises(ValueError, match=rf"{name}\.nii\.gz: damaged gzip stream"):
            fastseg.load(tmp_path / f"{name}.nii.gz")
    np.testing.assert_array_equal(fastseg.load(tmp_path / "good.nii.gz").labels, labels)
    # Several members (as fastseg writes sparse masks) and zero padding are fine.
    (tmp_path / "padded.nii.gz").write_bytes(content + bytes(16))
    np.testing.assert_array_equal(fastseg.load(tmp_path / "padded.nii.gz").labels, labels)
    raw = gzip.decompress(content)
    members = b"".join(gzip.compress(raw[i : i + 999]) for i in range(0, len(raw), 999))
    (tmp_path / "members.nii.gz").write_bytes(members)
    np.testing.assert_array_equal(fastseg.load(tmp_path / "members.nii.gz").labels, labels)


def test_damaged_mgz_fails_naming_the_file(tmp_path: Path) -> None:
    fastseg.save(tmp_path / "a.mgz", volume(np.uint8, "F"))
    content = bytearray((tmp_path / "a.mgz").read_bytes())
    content[-6] ^= 0xFF
    (tmp_path / "a.mgz").write_bytes(bytes(content))
    with pytest.raises(ValueError, match=r"a\.mgz: not a readable MGH image"):
        fastseg.load(tmp_path / "a.mgz")


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_ids_beyond_32_bits_are_exact(tmp_path: Path, suffix: str) -> None:
    labels = np.array([[[0, 2**32, 2**63 + 5]]], np.uint64)
    fastseg.save(tmp_path / f"big{suffix}", labels)
    loaded = fastseg.load(tmp_path / f"big{suffix}")
    assert loaded.labels.dtype == np.uint64
    np.testing.assert_array_equal(loaded.labels, labels)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd"])
@pytest.mark.parametrize("shape", [(0, 3, 4), (3, 0, 4), (2, 3, 0)])
def test_zero_size_volumes_keep_their_shape(tmp_path: Path, suffix: str, shape: tuple) -> None:
    fastseg.save(tmp_path / f"empty{suffix}", np.zeros(shape, np.uint8))
    assert fastseg.load(tmp_path / f"empty{suffix}").labels.shape == shape


def test_metaimage_refuses_an_empty_volume(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="MetaImage cannot hold an empty volume"):
        fastseg.save(tmp_path / "empty.mha", np.zeros((0, 2, 2), np.uint8))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("suffix", "module", "extra"),
    [
        (".mha", "SimpleITK", "metaimage"),
        (".nrrd", "nrrd", "slicer"),
        (".seg.nrrd", "nrrd", "slicer"),
    ],
)
def test_missing_optional_dependency_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, suffix: str, module: str, extra: str
) -> None:
    path = tmp_path / f"x{suffix}"
    fastseg.save(path, volume(np.uint8, "F"))
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ImportError, match=rf"^[^\n]*pip install 'fastseg\[{extra}\]'$"):
        fastseg.load(path)
    with pytest.raises(ImportError, match=rf"fastseg\[{extra}\]"):
        fastseg.save(tmp_path / f"y{suffix}", volume(np.uint8, "F"))


def test_format_argument_overrides_the_name(tmp_path: Path) -> None:
    labels = volume(np.uint8, "F")
    fastseg.save(tmp_path / "labels.bin", labels, format="nrrd")
    assert fastseg.load(tmp_path / "labels.bin", format="nrrd").labels.tolist() == labels.tolist()
    with pytest.raises(ValueError, match="a volume format is one of nifti, mgh"):
        fastseg.load(tmp_path / "labels.bin", format="png")


# ------------------------------------------------- Slicer .seg.nrrd, built to its spec

SLICER_SEGMENTS = {
    # Segment order interleaves the layers, as Slicer writes overlapping segments.
    "Segment0_Color": "0.866667 0.509804 0.396078",
    "Segment0_ColorAutoGenerated": "0",
    "Segment0_Extent": "0 3 0 4 0 5",
    "Segment0_ID": "Segment_1",
    "Segment0_LabelValue": "1",
    "Segment0_Layer": "0",
    "Segment0_Name": "liver",
    "Segment0_NameAutoGenerated": "0",
    "Segment0_Tags": "Segmentation.Status:inprogress|TerminologyEntry:Segmentation category"
    " and type - 3D Slicer General Anatomy list~SCT^123037004^Anatomical Structure"
    "~SCT^10200004^Liver~^^~Anatomic codes - DICOM master list~^^~^^|",
    "Segment1_Color": "0.564706 0.933333 0.564706",
    "Segment1_ColorAutoGenerated": "1",
    "Segment1_Extent": "1 2 1 3 1 4",
    "Segment1_ID": "Segment_2",
    "Segment1_LabelValue": "1",
    "Segment1_Layer": "1",
    "Segment1_Name": "tumor",
    "Segment1_NameAutoGenerated": "0",
    "Segment1_Tags": "Segmentation.Status:inprogress|",
    "Segment2_Color": "0.8 0.2 0.2",
    "Segment2_ColorAutoGenerated": "0",
    "Segment2_Extent": "0 3 0 4 0 5",
    "Segment2_ID": "Segment_3",
    "Segment2_LabelValue": "2",
    "Segment2_Layer": "0",
    "Segment2_Name": "vessel",
    "Segment2_NameAutoGenerated": "0",
    "Segment2_Tags": "Segmentation.Status:inprogress|",
    "Segmentation_ContainedRepresentationNames": "Binary labelmap|Closed surface|",
    "Segmentation_ConversionParameters": "Collapse labelmaps|1|Merge the labelmaps into as "
    "few shared labelmaps as possible&Smoothing factor|0.5|Smoothing factor.",
    "Segmentation_MasterRepresentation": "Binary labelmap",
    "Segmentation_ReferenceImageExtentOffset": "0 0 0",
}


def slicer_layered_file(path: Path) -> np.ndarray:
    """A .seg.nrrd laid out as Slicer writes overlapping segments: a list axis of layers
    first (fastest), three domain axes, LPS space, gzip, the segment fields after the
    NRRD fields. Returns the labels as (x, y, z, layers)."""
    labels = np.zeros((4, 5, 6, 2), np.uint8)
    labels[:, :, :3, 0] = 1  # liver
    labels[:, :, 4:, 0] = 2  # vessel
    labels[1:3, 1:4, 1:5, 1] = 1  # tumor, overlapping both
    lines = [
        "NRRD0004",
        "# Complete NRRD file format specification at:",
        "# http://teem.sourceforge.net/nrrd/format.html",
        "type: unsigned char",
        "dimension: 4",
        "space: left-posterior-superior",
        "sizes: 2 4 5 6",
        "space directions: none (-0.80000000000000004,0,0) (0,-0.90000000000000002,0) (0,0,2.5)",
        "kinds: list domain domain domain",
        "encoding: gzip",
        "space origin: (10,20,30)",
        *(f"{key}:={value}" for key, value in SLICER_SEGMENTS.items()),
        "",
    ]
    # The list axis varies fastest: (layers, x, y, z) in Fortran order.
    voxels = np.moveaxis(labels, 3, 0).tobytes(order="F")
    path.write_bytes("\n".join(lines).encode() + b"\n" + gzip.compress(voxels))
    return labels


def test_slicer_layered_file_round_trips(tmp_path: Path) -> None:
    labels = slicer_layered_file(tmp_path / "Segmentation.seg.nrrd")
    image = fastseg.load(tmp_path / "Segmentation.seg.nrrd")
    assert image.format == "seg.nrrd"
    np.testing.assert_array_equal(image.labels, labels)
    expected = np.diag([0.8, 0.9, 2.5, 1.0])
    expected[:3, 3] = [-10.0, -20.0, 30.0]
    np.testing.assert_allclose(image.affine, expected)
    assert image.segments is not None
    assert {layer: s.names for layer, s in image.segments.items()} == {
        0: ["liver", "vessel"],
        1: ["tumor"],
    }
    assert image.schema is None  # two layers share value 1
    assert image.segments[0]["liver"].color == (221, 130, 101)
    with pytest.raises(ValueError, match="read_seg_nrrd_layers"):
        fastseg.Schema.load(tmp_path / "Segmentation.seg.nrrd")

    fastseg.save(tmp_path / "again.seg.nrrd", image.labels, like=image)
    original, original_header = nrrd.read(str(tmp_path / "Segmentation.seg.nrrd"))
    written, written_header = nrrd.read(str(tmp_path / "again.seg.nrrd"))
    np.testing.assert_array_equal(written, original)
    assert written.dtype == original.dtype  # "uint8" spells Slicer's "unsigned char"
    for key in ("dimension", "space", "sizes", "kinds", "encoding"):
        assert np.array_equal(written_header[key], original_header[key]), key
    for key in ("space directions", "space origin"):
        np.testing.assert_allclose(written_header[key], original_header[key])
    custom = {k: v for k, v in written_header.items() if k.startswith("Segment")}
    assert custom == SLICER_SEGMENTS
    assert list(custom) == list(SLICER_SEGMENTS)

    # Slicer's own reading, through ITK: same voxels and geometry.
    itk = SimpleITK.ReadImage(str(tmp_path / "again.seg.nrrd"))
    np.testing.assert_array_equal(SimpleITK.GetArrayFromImage(itk).T, np.moveaxis(labels, 3, 0))

    # A value without a segment on its layer is refused, and nothing is written.
    changed = image.labels.copy()
    changed[0, 0, 0, 1] = 2
    with pytest.raises(ValueError, match=r"layer 1 hold values without a category: \[2\]"):
        fastseg.save(tmp_path / "bad.seg.nrrd", changed, like=image)
    assert not (tmp_path / "bad.seg.nrrd").exists()


def test_slicer_one_layer_with_a_schema(tmp_path: Path) -> None:
    schema = fastseg.Schema([fastseg.Category("liver", 1, color=(221, 130, 101))])
    labels = np.zeros((3, 4, 5), np.uint8)
    labels[1, 1, 1] = 1
    fastseg.save(tmp_path / "one.seg.nrrd", labels, affine=AFFINE, schema=schema)
    image = fastseg.load(tmp_path / "one.seg.nrrd")
    assert image.schema is not None
    assert [(c.name, c.value, c.color) for c in image.schema] == [("liver", 1, (221, 130, 101))]
    np.testing.assert_allclose(image.affine, AFFINE, atol=1e-12)
    segments = fastseg.SegmentMap.load(tmp_path / "one.seg.nrrd")
    assert segments[1].category == "liver"
    # Without a schema every value becomes a segment of its own.
    fastseg.save(tmp_path / "plain.seg.nrrd", labels * 7)
    assert fastseg.load(tmp_path / "plain.seg.nrrd").schema.names == ["Segment_7"]  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="layered labels need their segments"):
        fastseg.save(tmp_path / "layers.seg.nrrd", np.zeros((2, 2, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="NIfTI has no place for category names"):
        fastseg.save(tmp_path / "x.nii.gz", labels, schema=schema)


def test_a_nii_gz_that_is_not_compressed_is_read_as_it_is(tmp_path: Path) -> None:
    labels = volume(np.uint8, "F")
    fastseg.save(tmp_path / "plain.nii", labels)
    (tmp_path / "misnamed.nii.gz").write_bytes((tmp_path / "plain.nii").read_bytes())
    np.testing.assert_array_equal(fastseg.load(tmp_path / "misnamed.nii.gz").labels, labels)
    (tmp_path / "garbage.nii.gz").write_bytes(bytes(range(200)))
    with pytest.raises(
        ValueError, match=r"garbage\.nii\.gz: not a readable NIfTI image \(no NIfTI"
    ):
        fastseg.load(tmp_path / "garbage.nii.gz")


def test_command_line_walk_finds_every_volume_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fastseg.cli import main

    labels = np.zeros((3, 4, 5), np.uint8)
    labels[1, 1, 1] = 9
    for suffix in (".nii.gz", ".MGZ", ".nrrd", ".seg.nrrd", ".mha"):
        fastseg.save(tmp_path / f"case{suffix}", labels, format=None if suffix != ".MGZ" else "mgh")
    (tmp_path / "notes.txt").write_text("not a volume")
    assert main(["info", str(tmp_path), "--json", "-q"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(Path(row["file"]).name for row in rows) == [
        "case.MGZ", "case.mha", "case.nii.gz", "case.nrrd", "case.seg.nrrd"
    ]  # fmt: skip
    assert all(row["ids"][-1]["id"] == 9 for row in rows)
    # stats measures every format (the volume and world centroid from its affine).
    assert main(["stats", str(tmp_path), "-q", "--format", "json"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert sorted((Path(r["file"]).name, r["id"], r["voxel_count"]) for r in table) == [
        (f"case{suffix}", 9, 1) for suffix in (".MGZ", ".mha", ".nii.gz", ".nrrd", ".seg.nrrd")
    ]
    # evaluate pairs and scores every format (against the same files moved by one voxel).
    moved = tmp_path / "moved"
    moved.mkdir()
    shifted = np.roll(labels, 1, axis=0)
    for suffix in (".nii.gz", ".MGZ", ".nrrd", ".seg.nrrd", ".mha"):
        fastseg.save(moved / f"case{suffix}", shifted, format="mgh" if suffix == ".MGZ" else None)
    table = tmp_path / "metrics.csv"
    arguments = [str(tmp_path), str(moved), "-o", str(table), "--metrics", "overlap"]
    assert main(["evaluate", *arguments]) == 0
    rows = list(csv.DictReader(table.read_text().splitlines()))
    assert sorted((r["case"], r["class"], r["tp"], r["fp"], r["fn"]) for r in rows) == [
        (f"case{suffix}", "9", "0", "1", "1")
        for suffix in (".MGZ", ".mha", ".nii.gz", ".nrrd", ".seg.nrrd")
    ]
    assert main(["relabel", str(tmp_path / "case.MGZ"), "--renumber", "-q"]) == 0
    written = nibabel.load(tmp_path / "case_relabeled.MGZ")
    assert written.get_data_dtype() == np.uint8  # not float32
    np.testing.assert_array_equal(np.asanyarray(written.dataobj), (labels > 0).astype(np.uint8))
