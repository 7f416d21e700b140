"""Write sampled slices to disk: one NIfTI per slice, a PNG grid and a JSON manifest."""

from __future__ import annotations

import gzip
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from PIL import Image

from monai_vqvae2.data.codes import file_digest
from monai_vqvae2.engines.provenance import package_versions
from monai_vqvae2.io import atomic_write, atomic_write_json

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


def slice_affine(height: int, width: int, spacing: float = 1.0, position_mm: float = 0.0) -> np.ndarray:
    """RAS affine of a generated axial slice stored as ``(X, Y, 1)``: ``spacing`` mm pixels, centred on the origin,
    at height ``position_mm`` on the inferior-superior axis."""
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = [-(width - 1) * spacing / 2, -(height - 1) * spacing / 2, position_mm]
    return affine


def _grid(images: np.ndarray, columns: int) -> np.ndarray:
    count, height, width = images.shape
    rows = math.ceil(count / columns)
    grid = np.zeros((rows * height, columns * width), dtype=images.dtype)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        grid[row * height : (row + 1) * height, column * width : (column + 1) * width] = image
    return grid


def slice_pictures(images: torch.Tensor) -> np.ndarray:
    """``(B, 1, H, W)`` images to float32 ``(B, H, W)`` pictures clamped to [0, 1], on the CPU.

    Args:
        images: generated slices, display order (anterior up).

    Returns:
        the pictures, as :func:`nifti_slice_bytes` and :func:`write_grid_png` take them.
    """
    return images[:, 0].detach().float().cpu().clamp(0, 1).numpy()


def nifti_slice_bytes(picture: np.ndarray, spacing: float = 1.0) -> bytes:
    """A picture ``(H, W)`` in display order (anterior up) as gzipped NIfTI bytes, ``(X, Y, 1)`` in RAS with
    :func:`slice_affine`. The gzip header carries no time stamp, so equal pictures give byte-identical files.

    Args:
        picture: one picture of :func:`slice_pictures`.
        spacing: pixel size in mm written in the affine.

    Returns:
        the bytes of a ``.nii.gz`` file (read back by :func:`read_slice_nifti`).
    """
    volume = np.rot90(picture, k=-1)[:, :, None].astype(np.float32)  # display order back to (X=R, Y=A)
    image = nib.Nifti1Image(volume, slice_affine(*picture.shape, spacing=spacing))
    return gzip.compress(image.to_bytes(), mtime=0)


def read_slice_nifti(path: str | os.PathLike) -> np.ndarray:
    """Read a slice written by :func:`write_samples` or a bank back into display order: the inverse of the writers.

    Args:
        path: an ``(X, Y, 1)`` NIfTI file.

    Returns:
        the picture ``(H, W)``, float32, anterior up.

    Raises:
        ValueError: the file does not hold one ``(X, Y, 1)`` slice.
    """
    volume = np.asarray(nib.load(str(path)).dataobj, dtype=np.float32)
    if volume.ndim != 3 or volume.shape[2] != 1:
        raise ValueError(f"{path} must hold one slice of shape (X, Y, 1), got {volume.shape}.")
    return np.ascontiguousarray(np.rot90(volume[:, :, 0], k=1))  # (X=R, Y=A) back to display order


def write_grid_png(path: Path, pictures: np.ndarray) -> Path:
    """Pictures ``(B, H, W)`` in [0, 1] side by side in a near-square 8-bit grid, written atomically.

    Args:
        path: the PNG file to write.
        pictures: the pictures of :func:`slice_pictures`, in order, row by row.

    Returns:
        ``path``.
    """
    columns = max(1, math.ceil(math.sqrt(len(pictures))))
    grid = (_grid(pictures, columns) * 255).round().astype(np.uint8)
    return atomic_write(path, lambda temporary: Image.fromarray(grid).save(temporary, "PNG"))


def checkpoint_records(checkpoints: Sequence[str | os.PathLike]) -> list[dict[str, str]]:
    """``{"path", "sha256"}`` of each checkpoint file, for manifests.

    Args:
        checkpoints: the checkpoint files.

    Returns:
        one record per file, in order.
    """
    return [{"path": str(path), "sha256": file_digest(path)} for path in checkpoints]


def write_samples(
    images: torch.Tensor,
    output_dir: str | os.PathLike,
    settings: dict[str, Any],
    checkpoints: Sequence[str | os.PathLike] = (),
    slice_positions: Sequence[float] | None = None,
    spacing: float = 1.0,
    prefix: str = "sample",
) -> Path:
    """Write ``images`` ``(B, 1, H, W)`` (display order, anterior up, values in [0, 1]) as
    ``<prefix>_<i>.nii.gz`` (``(X, Y, 1)`` in RAS with :func:`slice_affine`), ``<prefix>_grid.png`` and
    ``manifest.json`` (settings, checkpoints with SHA-256, package versions, one entry per file). All writes are
    atomic; the manifest is written last.

    Args:
        images: generated slices.
        output_dir: destination folder.
        settings: sampling settings to record (seed, temperature, method, ...).
        checkpoints: checkpoint files the samples came from.
        slice_positions: normalised slice position of each sample, recorded per file.
        spacing: pixel size in mm written in the NIfTI affines.
        prefix: file name prefix.

    Returns:
        the manifest path.
    """
    output_dir = Path(output_dir)
    pictures = slice_pictures(images)
    entries = []
    for index, picture in enumerate(pictures):
        name = f"{prefix}_{index:04d}.nii.gz"
        payload = nifti_slice_bytes(picture, spacing=spacing)
        atomic_write(output_dir / name, lambda temporary, payload=payload: temporary.write_bytes(payload))
        entry: dict[str, Any] = {"file": name}
        if slice_positions is not None:
            entry["slice_position"] = float(slice_positions[index])
        entries.append(entry)
    write_grid_png(output_dir / f"{prefix}_grid.png", pictures)
    manifest = {
        "settings": settings,
        "checkpoints": checkpoint_records(checkpoints),
        "versions": package_versions(),
        "grid": f"{prefix}_grid.png",
        "samples": entries,
    }
    return atomic_write_json(output_dir / "manifest.json", manifest)


def prior_checkpoints(checkpoint_dir: str | os.PathLike, num_levels: int) -> list[str]:
    """Best prior checkpoints as the prior stage writes them, coarsest first: ``<dir>/prior_<level>/model.pt``."""
    from monai_vqvae2.engines.handlers import level_names

    return [str(Path(checkpoint_dir) / f"prior_{name}" / "model.pt") for name in level_names(num_levels)]


def load_sampler(
    vqvae: torch.nn.Module,
    prior_checkpoints: Sequence[str | os.PathLike],
    spatial_shape: Sequence[int],
    device: str | torch.device = "cpu",
    num_scalars: int = 0,
    num_classes: int = 0,
    **prior_settings: Any,
):
    """A :class:`~monai_vqvae2.inferers.HierarchicalSampler` from a (loaded) VQ-VAE-2 and one prior checkpoint per
    level, coarsest first; priors are built by :func:`~monai_vqvae2.networks.prior_for_level` with
    ``prior_settings`` and loaded with ``torch.load(..., weights_only=True)``.

    Raises:
        ValueError: not one checkpoint per level.
    """
    from monai_vqvae2.inferers.sampler import HierarchicalSampler
    from monai_vqvae2.networks import prior_for_level

    vqvae = getattr(vqvae, "network", vqvae)
    if len(prior_checkpoints) != vqvae.num_levels:
        raise ValueError(
            f"`prior_checkpoints` needs {vqvae.num_levels} files (one per level, coarsest first), "
            f"got {len(prior_checkpoints)}."
        )
    priors = []
    for level, checkpoint in enumerate(prior_checkpoints):
        prior = prior_for_level(vqvae, level, num_scalars=num_scalars, num_classes=num_classes, **prior_settings)
        prior.load_state_dict(torch.load(checkpoint, map_location=device, weights_only=True))
        priors.append(prior.to(device).eval())
    return HierarchicalSampler(vqvae.eval(), priors, spatial_shape=spatial_shape)


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
) -> Path:
    """Sample slices with ``sampler`` and write them with :func:`write_samples`: ``num_samples`` slices at each
    slice position (``len(slice_position) * num_samples`` in all for a list), or ``num_samples`` unconditioned slices.

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

    Returns:
        the manifest path.

    Raises:
        TypeError: a ``slice_position`` that is neither None, a number nor a list of numbers.
        ValueError: positions outside [0, 1], an empty list, or an argument the sampler refuses.
    """
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
    return write_samples(output.images, output_dir, settings, checkpoints=checkpoints, slice_positions=per_sample)
