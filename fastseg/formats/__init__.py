"""Readers and writers of every file format fastseg knows, one module per format.

:mod:`fastseg.formats.registry` is the one table of them (names, suffixes, how a file is
recognised, which functions read and write it); :func:`fastseg.load`,
:func:`fastseg.save`, :meth:`fastseg.Schema.load`, :meth:`fastseg.SegmentMap.load` and
the command line all choose formats there. Schema readers keep whatever a format carries
beyond names and values in ``Category.attributes`` and ``Schema.metadata``, so that a
round trip is exact.

Volumes:

- :mod:`fastseg.formats.nifti`: NIfTI ``.nii``, ``.nii.gz``
- :mod:`fastseg.formats.mgh`: FreeSurfer ``.mgh``, ``.mgz``
- :mod:`fastseg.formats.nrrd`: NRRD ``.nrrd`` (extra ``slicer``)
- :mod:`fastseg.formats.slicer`: 3D Slicer ``.seg.nrrd``, voxels and segments (extra
  ``slicer``)
- :mod:`fastseg.formats.metaimage`: MetaImage ``.mha``, ``.mhd`` (extra ``metaimage``)

Schemas and segment maps:

- :mod:`fastseg.formats.nnunet`: nnU-Net ``dataset.json`` (v2, and MSD / nnU-Net v1)
- :mod:`fastseg.formats.itksnap`: ITK-SNAP label description files
- :mod:`fastseg.formats.bids`: BIDS ``*_dseg.tsv`` lookup tables
- :mod:`fastseg.formats.labellist`: label-list JSON of atlas viewers (niivue)
- :mod:`fastseg.formats.dcmqi`: dcmqi segmentation metadata (``segmentAttributes``)
- :mod:`fastseg.formats.redbrick`: RedBrick AI taxonomies, segment maps, ``tasks.json``
  and the SDK's ``labels.json``
- :mod:`fastseg.formats.redbrick_export`: RedBrick export folders, and their semantic and
  binary layouts
"""

from fastseg.formats.registry import FORMATS, Format, volume_suffix_list, volume_suffixes

__all__ = ["FORMATS", "Format", "volume_suffix_list", "volume_suffixes"]
