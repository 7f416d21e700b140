"""Write sampled volumes to disk: one NIfTI per volume on the grid it was trained on, a PNG of three orthogonal
mid-slices per volume, and a JSON manifest."""

from __future__ import annotations

import gzip
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from PIL import Image

from monai_vqvae2.io import atomic_write, atomic_write_json
from monai_vqvae2.provenance import checkpoint_records, package_versions
from monai_vqvae2.slice_io import orthogonal_views
from monai_vqvae2.transforms import volume_grid

__all__ = ["orthogonal_views", "sample_volumes_to_folder", "volume_affine", "write_volume_samples"]


def volume_affine(volume_size: Sequence[int], voxel_size: Sequence[float]) -> np.ndarray:
    """RAS affine of a generated ``(X, Y, Z)`` volume: ``voxel_size`` mm voxels, the grid centred on the origin.

    Args:
        volume_size: voxels ``(X, Y, Z)``.
        voxel_size: voxel sizes in mm.

    Returns:
        the ``(4, 4)`` affine.
    """
    affine = np.diag([*(float(p) for p in voxel_size), 1.0])
    affine[:3, 3] = [-(size - 1) * float(p) / 2 for size, p in zip(volume_size, voxel_size)]
    return affine


def write_volume_samples(
    volumes: torch.Tensor,
    output_dir: str | os.PathLike,
    voxel_size: float | Sequence[float],
    settings: dict[str, Any],
    checkpoints: Sequence[str | os.PathLike] = (),
    prefix: str = "sample",
    labels: torch.Tensor | None = None,
) -> Path:
    """Write ``volumes`` ``(B, 1, X, Y, Z)`` (RAS, values in [0, 1]) as ``<prefix>_<i>.nii.gz`` with
    :func:`volume_affine`, ``<prefix>_views.png`` (one row of :func:`orthogonal_views` per volume) and
    ``manifest.json`` (settings, checkpoints with SHA-256, package versions, one entry per file). With ``labels``,
    each volume's class map goes beside it as ``<prefix>_<i>_label.nii.gz`` (uint8, same affine; the manifest entry's
    ``label``). All writes are atomic; the manifest is written last.

    Args:
        volumes: generated volumes.
        output_dir: destination folder.
        settings: sampling settings to record (seed, temperature, method, ...).
        checkpoints: checkpoint files the samples came from.
        prefix: file name prefix.
        voxel_size: voxel size in mm of the grid the model was trained on (one for all axes, or three).
        labels: optional class maps ``(B, 1, X, Y, Z)`` of the volumes.

    Returns:
        the manifest path.

    Raises:
        ValueError: ``volumes`` that are not ``(B, 1, X, Y, Z)``, ``labels`` of another shape, or a bad
            ``voxel_size``.
    """
    if not isinstance(volumes, torch.Tensor) or volumes.ndim != 5 or volumes.shape[1] != 1:
        shape = tuple(volumes.shape) if isinstance(volumes, torch.Tensor) else type(volumes).__name__
        raise ValueError(f"`volumes` must be a (B, 1, X, Y, Z) tensor, got {shape}.")
    if labels is not None and tuple(labels.shape) != tuple(volumes.shape):
        raise ValueError(f"`labels` must have the volumes' shape {tuple(volumes.shape)}, got {tuple(labels.shape)}.")
    size, spacing = volume_grid(tuple(volumes.shape[2:]), voxel_size)
    output_dir = Path(output_dir)
    pictures = volumes[:, 0].detach().float().cpu().clamp(0, 1).numpy()
    affine = volume_affine(size, spacing)
    entries = []
    for index, picture in enumerate(pictures):
        name = f"{prefix}_{index:04d}.nii.gz"
        payload = gzip.compress(nib.Nifti1Image(picture, affine).to_bytes(), mtime=0)  # no time stamp: reproducible
        atomic_write(output_dir / name, lambda temporary, payload=payload: temporary.write_bytes(payload))
        entries.append({"file": name})
        if labels is not None:
            label = labels[index, 0].detach().cpu().numpy().astype(np.uint8)
            label_name = f"{prefix}_{index:04d}_label.nii.gz"
            payload = gzip.compress(nib.Nifti1Image(label, affine).to_bytes(), mtime=0)
            atomic_write(output_dir / label_name, lambda temporary, payload=payload: temporary.write_bytes(payload))
            entries[-1]["label"] = label_name
    views = (np.concatenate([orthogonal_views(picture) for picture in pictures]) * 255).round().astype(np.uint8)
    atomic_write(output_dir / f"{prefix}_views.png", lambda temporary: Image.fromarray(views).save(temporary, "PNG"))
    manifest = {
        "settings": {**settings, "volume_size": list(size), "voxel_size": list(spacing)},
        "checkpoints": checkpoint_records(checkpoints),
        "versions": package_versions(),
        "views": f"{prefix}_views.png",
        "samples": entries,
    }
    return atomic_write_json(output_dir / "manifest.json", manifest)


def sample_volumes_to_folder(
    sampler,
    output_dir: str | os.PathLike,
    num_samples: int,
    voxel_size: float | Sequence[float],
    temperature: float | Sequence[float] = 1.0,
    top_k: int | None = None,
    seed: int = 0,
    method: str = "fast",
    batch_size: int | None = None,
    checkpoints: Sequence[str | os.PathLike] = (),
) -> Path:
    """Sample ``num_samples`` volumes with a 3D ``sampler`` and write them with :func:`write_volume_samples`.

    Args:
        sampler: a :class:`~monai_vqvae2.inferers.HierarchicalSampler` of a 3D VQ-VAE-2 and volume priors.
        output_dir: destination folder.
        num_samples: volumes to generate.
        voxel_size: voxel size in mm of the training grid (written in the affines).
        temperature: softmax temperature of the priors, one number or one per level (coarsest first).
        top_k: sample among the ``top_k`` most likely codes only.
        seed: seed of the sampler's own generator.
        method: ``"fast"`` (cached) or ``"naive"``; both give the same codes.
        batch_size: volumes generated at once.
        checkpoints: the checkpoints used, recorded in the manifest.

    Returns:
        the manifest path.

    Raises:
        ValueError: a 2D sampler, or an argument the sampler refuses.
    """
    if len(sampler.spatial_shape) != 3:
        raise ValueError(
            f"`sampler` generates {len(sampler.spatial_shape)}D images of shape {sampler.spatial_shape}; "
            "sample_volumes_to_folder writes volumes (use sample_to_folder for slices)."
        )
    output = sampler.sample(
        num_samples, temperature=temperature, top_k=top_k, seed=seed, method=method, batch_size=batch_size
    )
    settings = {
        "num_samples": num_samples,
        "temperature": temperature,
        "top_k": top_k,
        "seed": seed,
        "method": method,
        "spatial_shape": list(sampler.spatial_shape),
    }
    return write_volume_samples(
        output.images, output_dir, voxel_size, settings, checkpoints=checkpoints, labels=output.labels
    )
