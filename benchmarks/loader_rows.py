"""Report rows for the data-loader transforms, one sample at a time, in this process.

A training pipeline calls a transform once per sample: these rows time
``fastseg.transforms`` on the torso CT labels (384 x 320 x 89, as a ``(1, X, Y, Z)``
tensor) against the transform a MONAI or TorchIO pipeline uses for the same job, on the
same input. ``benchmarks/startup.py`` runs the same pairs inside a 2-worker DataLoader.

- ``KeepLargest()`` against MONAI's ``KeepLargestConnectedComponent()`` on a MetaTensor:
  the largest component of every organ, full connectivity;
- ``Remap(mapping)`` through ``as_torchio`` against TorchIO's ``RemapLabels(mapping)``
  on a Subject: every organ to another value.

The rows join the table of ``report.py`` through its ``ROW_MODULES``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from checks import same_values
from harness import Row, Verdict, anchor_module
from inputs import Volumes

from fastseg.transforms import KeepLargest, Remap, as_torchio


def torso_tensor(v: Volumes) -> Any:
    """The torso labels as a ``(1, X, Y, Z)`` MONAI MetaTensor."""

    def build() -> Any:
        monai_data = anchor_module("monai.data")
        torch = anchor_module("torch")
        return monai_data.MetaTensor(torch.from_numpy(v["torso_labels"][None]))

    return v.derived("torso MetaTensor", build)


def torso_subject(v: Volumes) -> Any:
    def build() -> Any:
        torchio = anchor_module("torchio")
        return torchio.Subject(seg=torchio.LabelMap(tensor=torso_tensor(v).as_tensor()))

    return v.derived("torso TorchIO subject", build)


def organ_mapping(v: Volumes) -> dict[int, int]:
    """Every organ of the torso labels to another value."""
    organs = [int(x) for x in np.unique(v["torso_labels"]) if x]
    return {organ: (organ * 7) % 13 for organ in organs}


def same_tensor(fast: Any, anchor: Any) -> Verdict:
    return same_values(np.asarray(fast), np.asarray(anchor))


def same_subject(fast: Any, anchor: Any) -> Verdict:
    return same_values(fast.seg.data.numpy(), anchor.seg.data.numpy())


def rows(v: Volumes) -> list[Row]:
    def monai_keep() -> Any:
        monai = anchor_module("monai.transforms")
        transform = v.derived("MONAI keep", monai.KeepLargestConnectedComponent)
        return transform(torso_tensor(v))

    def torchio_remap() -> Any:
        torchio = anchor_module("torchio")
        transform = v.derived("TorchIO remap", lambda: torchio.RemapLabels(organ_mapping(v)))
        return transform(torso_subject(v))

    def fastseg_remap() -> Any:
        subject = torso_subject(v)  # skips the row without TorchIO
        transform = v.derived("fastseg remap", lambda: as_torchio(Remap(organ_mapping(v))))
        return transform(subject)

    keep = KeepLargest()
    return [
        Row(
            "transforms.KeepLargest(), torso MetaTensor (1x384x320x89, 11 organs)",
            lambda: keep(torso_tensor(v)),
            "MONAI KeepLargestConnectedComponent()",
            monai_keep,
            target=0.2,
            check=same_tensor,
        ),
        Row(
            "transforms.Remap via as_torchio, torso Subject (11 organs)",
            fastseg_remap,
            "TorchIO RemapLabels",
            torchio_remap,
            target=0.5,
            check=same_subject,
        ),
    ]
