"""Readers and writers of schema and mapping formats.

Each module reads one file format into a :class:`fastseg.Schema` and writes a schema back,
keeping whatever the format carries beyond names and values in ``Category.attributes``
and ``Schema.metadata`` so that a round trip is exact. Pure Python: nothing here touches
label arrays.

- :mod:`fastseg.formats.nnunet`: nnU-Net ``dataset.json`` (v2, and MSD / nnU-Net v1)
- :mod:`fastseg.formats.itksnap`: ITK-SNAP label description files
- :mod:`fastseg.formats.bids`: BIDS ``*_dseg.tsv`` lookup tables
- :mod:`fastseg.formats.redbrick`: RedBrick AI taxonomies and segment maps
- :mod:`fastseg.formats.redbrick_export`: RedBrick export folders (``tasks.json``), and
  their semantic and binary layouts
- :mod:`fastseg.formats.slicer`: 3D Slicer ``.seg.nrrd`` segment metadata (extra ``slicer``)
- :mod:`fastseg.formats.detect`: ``Schema.load`` / ``save`` format detection
"""
