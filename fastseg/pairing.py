"""Pairing label files with their images by name.

A label file's image lies at the same path below an image folder, named like the label
file or, for nnU-Net, with the first channel's ``_0000`` (``imagesTr/case_0000.nii.gz``
for ``labelsTr/case.nii.gz``); a name template names it otherwise, from the label file's

- ``{name}``: its file name (``sub-01_dseg.nii.gz``);
- ``{stem}``: the name without its volume ending (``sub-01_dseg``);
- ``{ext}``: that ending (``.nii.gz``);
- ``{entities}``: the stem without its last ``_suffix``, i.e. BIDS entities
  (``sub-01``), so that ``'{entities}_T1w.nii.gz'`` finds ``sub-01_T1w.nii.gz``.

Used by ``fastseg stats --images`` and by loaders that pair labels with images.
"""

from __future__ import annotations

import os

from fastseg._batch import split_suffix

__all__ = ["IMAGE_NAMES", "TEMPLATE_FIELDS", "check_template", "find_image", "image_candidates"]

IMAGE_NAMES: tuple[str, ...] = ("{name}", "{stem}_0000{ext}")
"""The templates tried without one: the same name, then nnU-Net's first channel."""

TEMPLATE_FIELDS: tuple[str, ...] = ("name", "stem", "ext", "entities")
"""The placeholders a name template may use."""


def template_fields(name: str) -> dict[str, str]:
    """The placeholders' values for the label file ``name``.

    Examples
    --------
    >>> from fastseg.pairing import template_fields
    >>> template_fields("sub-01_ses-1_dseg.nii.gz")["entities"]
    'sub-01_ses-1'
    """
    stem, extension = split_suffix(name)
    return {
        "name": name,
        "stem": stem,
        "ext": extension,
        "entities": stem.rpartition("_")[0] or stem,
    }


def check_template(template: str) -> None:
    """Refuse a name template with placeholders other than :data:`TEMPLATE_FIELDS`.

    Raises
    ------
    ValueError
        Naming the unknown placeholder (or the format error) and the known ones.

    Examples
    --------
    >>> from fastseg.pairing import check_template
    >>> check_template("{stem}_0001{ext}")
    >>> check_template("{case}.nii")
    Traceback (most recent call last):
    ...
    ValueError: no placeholder {case}; the placeholders are {name}, {stem}, {ext}, {entities}
    """
    try:
        template.format(**dict.fromkeys(TEMPLATE_FIELDS, ""))
    except (KeyError, IndexError, ValueError) as error:
        fields = ", ".join("{" + f + "}" for f in TEMPLATE_FIELDS)
        what = f"no placeholder {{{error.args[0]}}}" if isinstance(error, KeyError) else error
        raise ValueError(f"{what}; the placeholders are {fields}") from None


def image_candidates(
    relative: str,
    images: str | os.PathLike[str],
    template: str | None = None,
    *,
    labels: str | os.PathLike[str] | None = None,
) -> tuple[str, ...]:
    """The files that may be the image of the label file at ``relative``.

    Parameters
    ----------
    relative : str
        The label file's path below its folder (or its name).
    images : str or path-like
        The image folder; the candidates lie at ``relative``'s folder below it.
    template : str, optional
        The image's name (see the module's placeholders); by default :data:`IMAGE_NAMES`.
    labels : str or path-like, optional
        The label file itself, never its own image (an image folder that is the label
        folder).

    Returns
    -------
    tuple of str
        In the order tried.

    Examples
    --------
    >>> from fastseg.pairing import image_candidates
    >>> image_candidates("liver/case.nii.gz", "imagesTr")
    ('imagesTr/liver/case.nii.gz', 'imagesTr/liver/case_0000.nii.gz')
    >>> image_candidates("sub-01_dseg.nii.gz", "anat", "{entities}_T1w.nii.gz")
    ('anat/sub-01_T1w.nii.gz',)
    """
    folder, name = os.path.split(relative)
    fields = template_fields(name)
    names = IMAGE_NAMES if template is None else (template,)
    paths = (os.path.join(os.fspath(images), folder, n.format(**fields)) for n in names)
    if labels is None:
        return tuple(paths)
    itself = os.path.realpath(labels)
    return tuple(p for p in paths if os.path.realpath(p) != itself)


def find_image(candidates: tuple[str, ...]) -> str:
    """The one candidate that exists.

    Raises
    ------
    ValueError
        If none or several exist (naming them).

    Examples
    --------
    >>> from fastseg.pairing import find_image
    >>> find_image(("/no/such/image.nii.gz",))
    Traceback (most recent call last):
    ...
    ValueError: no intensity image /no/such/image.nii.gz: no such file
    """
    found = [path for path in candidates if os.path.exists(path)]
    if not candidates:
        raise ValueError("no intensity image: the only candidate is the label file itself")
    if len(candidates) == 1 and not found:
        raise ValueError(f"no intensity image {candidates[0]}: no such file")
    if not found:
        raise ValueError(f"no intensity image: neither {' nor '.join(candidates)} exists")
    if len(found) > 1:
        raise ValueError(
            f"two intensity images, {found[0]} and {found[1]} (a name template chooses one)"
        )
    return found[0]
