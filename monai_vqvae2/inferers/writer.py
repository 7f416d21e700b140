"""Write sampled slices to disk: one NIfTI per slice, a PNG grid and a JSON manifest.

The slice files and grids are written by :mod:`monai_vqvae2.slice_io`, the digests and versions come from
:mod:`monai_vqvae2.provenance` and the sampler is loaded by :mod:`monai_vqvae2.inferers.loading`; their names are
re-exported here, where they were defined before.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from monai_vqvae2.inferers.loading import load_sampler, prior_checkpoints
from monai_vqvae2.inferers.volume_writer import sample_volumes_to_folder
from monai_vqvae2.io import atomic_write, atomic_write_json
from monai_vqvae2.provenance import checkpoint_records, package_versions
from monai_vqvae2.slice_io import (
    nifti_slice_bytes,
    read_slice_nifti,
    slice_affine,
    slice_pictures,
    write_grid_png,
)

__all__ = [
    "checkpoint_records",
    "load_sampler",
    "nifti_slice_bytes",
    "prior_checkpoints",
    "read_slice_nifti",
    "sample_to_folder",
    "slice_affine",
    "slice_pictures",
    "write_grid_png",
    "write_samples",
]


def write_samples(
    images: torch.Tensor,
    output_dir: str | os.PathLike,
    settings: dict[str, Any],
    checkpoints: Sequence[str | os.PathLike] = (),
    slice_positions: Sequence[float] | None = None,
    spacing: float = 1.0,
    prefix: str = "sample",
    labels: torch.Tensor | None = None,
) -> Path:
    """Write ``images`` ``(B, 1, H, W)`` (display order, anterior up, values in [0, 1]) as
    ``<prefix>_<i>.nii.gz`` (``(X, Y, 1)`` in RAS with :func:`slice_affine`), ``<prefix>_grid.png`` and
    ``manifest.json`` (settings, checkpoints with SHA-256, package versions, one entry per file). With ``labels``,
    each slice's class map goes beside it as ``<prefix>_<i>_label.nii.gz`` (uint8, same affine; the manifest entry's
    ``label``) and every cell of the grid shows the slice and, beside it, the slice with its label overlaid. All writes
    are atomic; the manifest is written last.

    Args:
        images: generated slices.
        output_dir: destination folder.
        settings: sampling settings to record (seed, temperature, method, ...).
        checkpoints: checkpoint files the samples came from.
        slice_positions: normalised slice position of each sample, recorded per file.
        spacing: pixel size in mm written in the NIfTI affines.
        prefix: file name prefix.
        labels: optional class maps ``(B, 1, H, W)`` of the slices, display order.

    Returns:
        the manifest path.

    Raises:
        ValueError: ``labels`` of another shape than ``images``.
    """
    output_dir = Path(output_dir)
    pictures = slice_pictures(images)
    if labels is not None and tuple(labels.shape) != tuple(images.shape):
        raise ValueError(f"`labels` must have the images' shape {tuple(images.shape)}, got {tuple(labels.shape)}.")
    label_maps = None if labels is None else labels[:, 0].detach().cpu().numpy().astype(np.uint8)
    entries = []
    for index, picture in enumerate(pictures):
        name = f"{prefix}_{index:04d}.nii.gz"
        payload = nifti_slice_bytes(picture, spacing=spacing)
        atomic_write(output_dir / name, lambda temporary, payload=payload: temporary.write_bytes(payload))
        entry: dict[str, Any] = {"file": name}
        if label_maps is not None:
            entry["label"] = f"{prefix}_{index:04d}_label.nii.gz"
            payload = nifti_slice_bytes(label_maps[index], spacing=spacing)
            atomic_write(output_dir / entry["label"], lambda temporary, payload=payload: temporary.write_bytes(payload))
        if slice_positions is not None:
            entry["slice_position"] = float(slice_positions[index])
        entries.append(entry)
    write_grid_png(output_dir / f"{prefix}_grid.png", pictures, labels=label_maps)
    manifest = {
        "settings": settings,
        "checkpoints": checkpoint_records(checkpoints),
        "versions": package_versions(),
        "grid": f"{prefix}_grid.png",
        "samples": entries,
    }
    return atomic_write_json(output_dir / "manifest.json", manifest)


def _slice_positions(slice_position: float | Sequence[float] | None) -> list[float] | None:
    """``slice_position`` as a list of normalised positions (``None`` stays ``None``), checked."""
    if slice_position is None:
        return None
    values = [slice_position] if np.ndim(slice_position) == 0 else list(np.asarray(slice_position).reshape(-1))
    if not values:
        raise ValueError("`slice_position` must be None, a number in [0, 1] or a non-empty list of them, got [].")
    positions = []
    for value in values:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(
                f"`slice_position` must be None, a number in [0, 1] or a list of them, got {slice_position!r}."
            )
        if not (math.isfinite(value) and 0.0 <= value <= 1.0):
            raise ValueError(f"`slice_position` holds normalised positions in [0, 1], got {float(value)!r}.")
        positions.append(float(value))
    return positions


def sample_to_folder(
    sampler,
    output_dir: str | os.PathLike,
    num_samples: int,
    slice_position: float | Sequence[float] | None = None,
    temperature: float | Sequence[float] = 1.0,
    top_k: int | None = None,
    seed: int = 0,
    method: str = "fast",
    batch_size: int | None = None,
    checkpoints: Sequence[str | os.PathLike] = (),
    voxel_size: float | Sequence[float] | None = None,
) -> Path:
    """Sample slices with ``sampler`` and write them with :func:`write_samples`: ``num_samples`` slices at each
    slice position (``len(slice_position) * num_samples`` in all for a list), or ``num_samples`` unconditioned slices.
    A sampler of whole volumes writes ``num_samples`` volumes with
    :func:`~monai_vqvae2.inferers.sample_volumes_to_folder` instead (the bundle's sample stage with ``volumes.yaml``).

    All slices come from one :meth:`~monai_vqvae2.inferers.HierarchicalSampler.sample` call with one scalar condition
    per sample, positions in the order given: sample ``i`` is at ``slice_position[i // num_samples]``. The manifest
    records each sample's ``slice_position``.

    Args:
        sampler: a :class:`~monai_vqvae2.inferers.HierarchicalSampler`.
        output_dir: destination folder.
        num_samples: slices to generate at each slice position (all of them when ``slice_position`` is None).
        slice_position: normalised axial position (0 = inferior, 1 = superior) for priors conditioned on it: one
            number, or a list of them (e.g. ``[0.3, 0.5, 0.7]``); ``None`` for unconditioned priors.
        temperature: softmax temperature of the priors, one number or one per level (coarsest first).
        top_k: sample among the ``top_k`` most likely codes only.
        seed: seed of the sampler's own generator.
        method: ``"fast"`` (cached) or ``"naive"``; both give the same codes.
        batch_size: samples generated at once.
        checkpoints: the checkpoints used, recorded in the manifest.
        voxel_size: for a sampler of volumes, the voxel size in mm of its training grid (default 1 mm); slices take
            none.

    Returns:
        the manifest path.

    Raises:
        TypeError: a ``slice_position`` that is neither None, a number nor a list of numbers.
        ValueError: positions outside [0, 1], an empty list, a slice position for volumes or a voxel size for
            slices, or an argument the sampler refuses.
    """
    if len(sampler.spatial_shape) == 3:
        if slice_position is not None:
            raise ValueError(f"`slice_position` is for slices; a sampler of volumes takes none, got {slice_position}.")
        return sample_volumes_to_folder(
            sampler,
            output_dir,
            num_samples,
            1.0 if voxel_size is None else voxel_size,
            temperature=temperature,
            top_k=top_k,
            seed=seed,
            method=method,
            batch_size=batch_size,
            checkpoints=checkpoints,
        )
    if voxel_size is not None:
        raise ValueError(
            f"`voxel_size` is written in the affines of generated volumes; this sampler makes 2D slices, got "
            f"{voxel_size}."
        )
    positions = _slice_positions(slice_position)
    if positions is None:
        total, per_sample = num_samples, None
    else:
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"`num_samples` must be a positive integer, got {num_samples!r}.")
        per_sample = [position for position in positions for _ in range(num_samples)]
        total = len(per_sample)
    output = sampler.sample(
        total,
        temperature=temperature,
        top_k=top_k,
        scalars=None if per_sample is None else torch.tensor(per_sample, dtype=torch.float64)[:, None],
        seed=seed,
        method=method,
        batch_size=batch_size,
    )
    settings = {
        "num_samples": total,
        "num_samples_per_position": num_samples,
        "slice_position": slice_position if positions is None or np.ndim(slice_position) == 0 else positions,
        "temperature": temperature,
        "top_k": top_k,
        "seed": seed,
        "method": method,
        "spatial_shape": list(sampler.spatial_shape),
    }
    return write_samples(
        output.images,
        output_dir,
        settings,
        checkpoints=checkpoints,
        slice_positions=per_sample,
        labels=output.labels,
    )
