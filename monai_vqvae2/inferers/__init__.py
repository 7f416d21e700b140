"""Inferers: slice-wise volume reconstruction, hierarchical sampling from the priors and writing samples.

Banks of synthetic slices (:func:`~monai_vqvae2.synthetic.generate_bank`) live in :mod:`monai_vqvae2.synthetic`,
above this package.
"""

from __future__ import annotations

from typing import Any

from monai_vqvae2.inferers.preview import SaveAxialPreviewd
from monai_vqvae2.inferers.sampler import HierarchicalSampler, SampleOutput
from monai_vqvae2.inferers.slices import AxialSliceInferer
from monai_vqvae2.inferers.writer import (
    load_sampler,
    prior_checkpoints,
    read_slice_nifti,
    sample_to_folder,
    slice_affine,
    write_samples,
)

__all__ = [
    "AxialSliceInferer",
    "HierarchicalSampler",
    "SampleOutput",
    "SaveAxialPreviewd",
    "load_sampler",
    "prior_checkpoints",
    "read_slice_nifti",
    "sample_to_folder",
    "slice_affine",
    "write_samples",
]

# the bank names this package exported before monai_vqvae2.synthetic existed (not in __all__: see below)
_SYNTHETIC_NAMES = ("generate_bank", "model_digest")


def __getattr__(name: str) -> Any:
    """The former bank names, imported from :mod:`monai_vqvae2.synthetic` on first access. They are left out of
    ``__all__``, so that ``from monai_vqvae2.inferers import *`` never imports the package above this one."""
    if name in _SYNTHETIC_NAMES:
        # kept for backward compatibility; the names live in monai_vqvae2.synthetic, which sits above this package
        import monai_vqvae2.synthetic

        return getattr(monai_vqvae2.synthetic, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """The module's names and the former bank names."""
    return sorted({*globals(), *_SYNTHETIC_NAMES})
