"""fastseg: fast, typed tools for segmentation label volumes.

Relabeling, connected components, per-instance statistics and instance <-> semantic
conversions on numpy label arrays, with the category schemas of RedBrick AI, nnU-Net,
ITK-SNAP, BIDS, dcmqi, atlas label lists and 3D Slicer, and label volumes read and
written in every format of :mod:`fastseg.formats` (NIfTI, MGH/MGZ, NRRD, Slicer
``.seg.nrrd``, MetaImage). Kernels are compiled with numba on first use: importing
fastseg compiles nothing and does not import numba.
"""

from fastseg._jit import ThreadSetting, cache_dir, get_threads, set_threads
from fastseg._warmup import WarmupReport, warmup, warmup_operations
from fastseg.cleanup import dust, fill_holes, largest_k
from fastseg.components import Components, component_values, each, label
from fastseg.convert import binary_masks, convert, to_instances, to_semantic
from fastseg.dtypes import as_labels, fit_dtype
from fastseg.evaluate import Evaluation, EvaluationMetric, evaluate
from fastseg.io import LabelImage, load, save
from fastseg.relabel import mask, remap, renumber, unique
from fastseg.sample_index import SampleIndex, load_index, write_index
from fastseg.sampling import Locations, locations
from fastseg.schema import Category, Schema
from fastseg.segmap import Segment, SegmentMap
from fastseg.stats import InstanceStats, contacts, stats

__all__ = [
    "Category",
    "Components",
    "Evaluation",
    "EvaluationMetric",
    "InstanceStats",
    "LabelImage",
    "Locations",
    "SampleIndex",
    "Schema",
    "Segment",
    "SegmentMap",
    "ThreadSetting",
    "WarmupReport",
    "as_labels",
    "binary_masks",
    "cache_dir",
    "component_values",
    "contacts",
    "convert",
    "dust",
    "each",
    "evaluate",
    "fill_holes",
    "fit_dtype",
    "get_threads",
    "label",
    "largest_k",
    "load",
    "load_index",
    "locations",
    "mask",
    "remap",
    "renumber",
    "save",
    "set_threads",
    "stats",
    "to_instances",
    "to_semantic",
    "unique",
    "warmup",
    "warmup_operations",
    "write_index",
]
__version__ = "0.1.0"
