"""Tissue labels beside images: the class vocabulary, and the two checks a label file gets in the chains.

A label file holds one class per voxel (or pixel), stored as some integer value per class: OASIS-1's ``FSL_SEG``
volumes store FSL FAST's classes as 0 (background), 1 (CSF), 2 (grey matter) and 3 (white matter); the
preprocessed OASIS PNG release stores the same four classes as grey levels 0, 85, 170 and 255.
:class:`MapLabelValuesd` turns the stored values into class indices ``0..C-1`` and refuses any other value, naming
the file; :class:`CheckAlignedd` refuses a label whose voxel grid is not the image's (MONAI would resample or crop
the two differently without a word).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapLabelValue, MapTransform

from monai_vqvae2.transforms.dictionary import _source_path
from monai_vqvae2.transforms.errors import InvalidImageError

__all__ = [
    "FSL_TISSUE_VALUES",
    "PNG_TISSUE_VALUES",
    "TISSUE_CLASSES",
    "CheckAlignedd",
    "MapLabelValuesd",
]

#: The tissue classes of OASIS-1's FSL_SEG volumes, of the OASIS PNG masks and of the demo data, by class index.
TISSUE_CLASSES = ("background", "CSF", "grey matter", "white matter")
#: Stored value of each class in FSL FAST segmentations (OASIS-1 ``FSL_SEG``, the demo data).
FSL_TISSUE_VALUES = (0, 1, 2, 3)
#: Stored value of each class in the preprocessed OASIS PNG masks (``keras_png_slices_seg_*``).
PNG_TISSUE_VALUES = (0, 85, 170, 255)


class MapLabelValuesd(MapTransform):
    """Turn the stored values of label images into class indices ``0..len(values)-1`` (float, as loaded; the chains
    make them ``int64`` at the end), refusing any value that is not one of ``values``.

    The mapping is MONAI's ``MapLabelValue``; it leaves unknown values as they are, which would pass a label of
    another convention (or an image given as a label) on as classes, hence the check first.

    Args:
        keys: label keys (after ``LoadImaged`` and ``EnsureChannelFirstd``).
        values: the stored value of each class, by class index, e.g. :data:`PNG_TISSUE_VALUES`.
        path_key: entry naming the label's file in errors when the image carries no file name (``CheckImageFiled``
            stores it).
        allow_missing_keys: do not fail when a key is absent.

    Raises:
        ValueError: ``values`` empty, repeated or not integers.
        InvalidImageError: a label with another value (the message names the file and the values found).
    """

    def __init__(
        self,
        keys: KeysCollection,
        values: Sequence[int] = FSL_TISSUE_VALUES,
        path_key: str | None = "label_source",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        stored = tuple(values)
        if not stored or len(set(stored)) != len(stored) or any(float(v) != int(v) for v in stored):
            raise ValueError(f"`values` must be distinct integers, one per class, got {values!r}.")
        self.values = tuple(int(v) for v in stored)
        self.path_key = path_key
        self.mapping = MapLabelValue(orig_labels=self.values, target_labels=range(len(self.values)), dtype=np.float32)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            label = d[key] if isinstance(d[key], torch.Tensor) else torch.as_tensor(d[key])
            found = torch.unique(label.as_tensor() if isinstance(label, MetaTensor) else label)
            unexpected = [v for v in found.tolist() if v not in self.values]
            if unexpected:
                shown = ", ".join(f"{v:g}" for v in unexpected[:8]) + (" ..." if len(unexpected) > 8 else "")
                raise InvalidImageError(
                    _source_path(label, d.get(self.path_key) if self.path_key else None),
                    f"is not a label image of {len(self.values)} classes: it holds the value(s) {shown}, expected "
                    f"only {list(self.values)} (one per class).",
                )
            d[key] = self.mapping(label)  # keeps a MetaTensor's metadata (file name, affine)
        return d


class CheckAlignedd(MapTransform):
    """Refuse a label that does not lie on its image's voxel grid: the same spatial shape and, for volumes, the same
    affine (to ``atol`` mm).

    Args:
        keys: the label keys checked.
        image_key: the image they belong to.
        atol: largest difference of affine entries accepted, in mm.
        path_key: entry naming the label's file in errors when it carries no file name.
        allow_missing_keys: do not fail when a key is absent.

    Raises:
        InvalidImageError: shapes or affines differ (the message names the label file and both grids).
    """

    def __init__(
        self,
        keys: KeysCollection,
        image_key: str = "image",
        atol: float = 1e-3,
        path_key: str | None = "label_source",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.image_key = image_key
        self.atol = float(atol)
        self.path_key = path_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        image = d[self.image_key]
        for key in self.key_iterator(d):
            label = d[key]
            where = _source_path(label, d.get(self.path_key) if self.path_key else None)
            image_name = _source_path(image, d.get("source"))
            if tuple(label.shape[1:]) != tuple(image.shape[1:]):
                raise InvalidImageError(
                    where,
                    f"has shape {tuple(label.shape[1:])}, but its image {image_name} has {tuple(image.shape[1:])}: "
                    "a label must be on its image's voxel grid.",
                )
            if isinstance(label, MetaTensor) and isinstance(image, MetaTensor) and label.ndim == 4:
                difference = np.abs(np.asarray(label.affine, dtype=np.float64) - np.asarray(image.affine))
                if float(difference.max()) > self.atol:
                    raise InvalidImageError(
                        where,
                        f"has another affine than its image {image_name} (entries differ by up to "
                        f"{float(difference.max()):.3g} mm): a label must be on its image's voxel grid.",
                    )
        return d
