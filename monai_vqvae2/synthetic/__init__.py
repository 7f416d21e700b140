"""Synthetic slices for augmentation: banks of generated slices on disk, synthetic slice datasets (on the fly or from
a bank) and mixing them with real slices.

Typical use::

    from monai_vqvae2.synthetic import MixedSliceDataset, SyntheticSliceDataset, generate_bank, slice_positions_of

    generate_bank(sampler, "runs/oasis1/bank", num_samples=1000, real_positions=slice_positions_of(train))
    mixed = MixedSliceDataset(train, SyntheticSliceDataset("runs/oasis1/bank"), synthetic_fraction=0.3, seed=0)

The package sits above :mod:`monai_vqvae2.data` and :mod:`monai_vqvae2.inferers`, which it builds on. Its modules,
each importing only those listed before it: :mod:`~monai_vqvae2.synthetic.bank_format` (a bank's file names and
manifest), :mod:`~monai_vqvae2.synthetic.settings` (argument checks, per-batch seeds, per-sample slice positions and
class labels), :mod:`~monai_vqvae2.synthetic.positions` (positions of real slices to draw from),
:mod:`~monai_vqvae2.synthetic.datasets` (:class:`SyntheticSliceDataset`, :class:`MixedSliceDataset`) and
:mod:`~monai_vqvae2.synthetic.generate` (:func:`generate_bank`, :func:`model_digest`).
"""

from __future__ import annotations

from monai_vqvae2.synthetic.bank_format import (
    BANK_FORMAT,
    BANK_MANIFEST,
    BANK_TABLE,
    bank_file_name,
    bank_grid_name,
    bank_label_file_name,
    load_bank_manifest,
)
from monai_vqvae2.synthetic.datasets import MIXED_KEYS, PAIRED_KEYS, MixedSliceDataset, SyntheticSliceDataset
from monai_vqvae2.synthetic.generate import generate_bank, model_digest
from monai_vqvae2.synthetic.positions import slice_positions_of, training_slice_positions

__all__ = [
    "BANK_FORMAT",
    "BANK_MANIFEST",
    "BANK_TABLE",
    "MIXED_KEYS",
    "PAIRED_KEYS",
    "MixedSliceDataset",
    "SyntheticSliceDataset",
    "bank_file_name",
    "bank_grid_name",
    "bank_label_file_name",
    "generate_bank",
    "load_bank_manifest",
    "model_digest",
    "slice_positions_of",
    "training_slice_positions",
]
