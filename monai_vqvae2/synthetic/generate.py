"""A resumable bank of synthetic slices on disk: NIfTI files, PNG grids and a manifest, written chunk by chunk
(:func:`generate_bank`), and the digest of the model that generated it (:func:`model_digest`).

Read a bank back with :class:`~monai_vqvae2.synthetic.SyntheticSliceDataset` (``SyntheticSliceDataset(bank_dir)``);
its format is that of :mod:`~monai_vqvae2.synthetic.bank_format`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from monai_vqvae2.inferers.sampler import HierarchicalSampler
from monai_vqvae2.io import atomic_write, atomic_write_json
from monai_vqvae2.provenance import checkpoint_records, package_versions
from monai_vqvae2.slice_io import nifti_slice_bytes, slice_pictures, write_grid_png
from monai_vqvae2.synthetic.bank_format import (
    BANK_FORMAT,
    BANK_MANIFEST,
    BANK_TABLE,
    bank_file_name,
    bank_grid_name,
    bank_label_file_name,
    load_bank_manifest,
)
from monai_vqvae2.synthetic.settings import (
    batch_count,
    batch_seed,
    check_count,
    check_sampler,
    check_sampling,
    check_seed,
    global_conditions,
    label_spec,
    position_spec,
    resolve_labels,
    resolve_positions,
    temperature_setting,
)

__all__ = ["generate_bank", "model_digest"]

_BANK_FILE = re.compile(r"(synthetic_\d{6,}(_label)?\.nii\.gz|grid_\d{4,}\.png)")
_TEMPORARY = re.compile(
    rf"\.(synthetic_\d{{6,}}(_label)?\.nii\.gz|grid_\d{{4,}}\.png|{re.escape(BANK_MANIFEST)}|"
    rf"{re.escape(BANK_TABLE)})\..+\.tmp"
)
_TABLE_COLUMNS = (
    "index",
    "file",
    "label_file",
    "chunk",
    "chunk_seed",
    "slice_position",
    "class_label",
    "sha256",
    "label_sha256",
)


def model_digest(sampler: HierarchicalSampler) -> str:
    """SHA-256 over the state of the sampler's VQ-VAE-2 and priors (names, dtypes, shapes and values): two samplers
    with the same digest generate the same slices."""
    digest = hashlib.sha256()
    for part, module in [("vqvae", sampler.vqvae), *((f"prior{i}", p) for i, p in enumerate(sampler.priors))]:
        for name, tensor in sorted(module.state_dict().items()):
            value = tensor.detach().cpu().contiguous()
            digest.update(f"{part}.{name}:{value.dtype}:{tuple(value.shape)};".encode())
            digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _write_table(path: Path, samples: Sequence[dict[str, Any]]) -> Path:
    stream = io.StringIO()
    writer = csv.DictWriter(stream, fieldnames=_TABLE_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for entry in samples:
        writer.writerow({key: "" if entry.get(key) is None else entry[key] for key in _TABLE_COLUMNS})
    text = stream.getvalue()
    return atomic_write(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def _expected_entry(
    index: int, chunk: int, chunk_seed: int, positions: Any, class_labels: Any, label_files: bool
) -> dict[str, Any]:
    return {
        "index": index,
        "file": bank_file_name(index),
        "label_file": bank_label_file_name(index) if label_files else None,
        "chunk": chunk,
        "chunk_seed": chunk_seed,
        "slice_position": None if positions is None else float(positions[index]),
        "class_label": None if class_labels is None else int(class_labels[index]),
    }


def _settings_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    keys = sorted(set(old) | set(new))
    return "; ".join(f"{key}: {old.get(key)!r} -> {new.get(key)!r}" for key in keys if old.get(key) != new.get(key))


def _remove_strays(bank_dir: Path, keep: set[str]) -> list[Path]:
    """Delete bank files not listed in ``keep`` and the temporaries of killed writes; other files are left alone."""
    removed = []
    for path in sorted(bank_dir.iterdir()):
        stray = _BANK_FILE.fullmatch(path.name) and path.name not in keep
        if (stray or _TEMPORARY.fullmatch(path.name)) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def generate_bank(
    sampler: HierarchicalSampler,
    output_dir: str | os.PathLike,
    num_samples: int,
    seed: int = 0,
    chunk_size: int = 64,
    slice_positions: float | Sequence[float] | None = None,
    real_positions: Sequence[float] | None = None,
    class_labels: int | Sequence[int] | None = None,
    temperature: float | Sequence[float] = 1.0,
    top_k: int | None = None,
    method: str = "fast",
    batch_size: int | None = None,
    checkpoints: Sequence[str | os.PathLike] = (),
    spacing: float = 1.0,
    overwrite: bool = False,
) -> Path:
    """Write ``num_samples`` synthetic slices to ``output_dir``, chunk by chunk, resumably.

    Every chunk of ``chunk_size`` slices is sampled with a seed derived from ``seed`` and its number only (the seed
    of batch ``b`` of :class:`~monai_vqvae2.synthetic.SyntheticSliceDataset`), then written atomically:
    ``synthetic_<index>.nii.gz`` per slice (``(X, Y, 1)`` in RAS, 1 mm pixels by default, as
    :func:`~monai_vqvae2.inferers.write_samples` writes them; byte-identical for identical slices) and
    ``grid_<chunk>.png``; then ``manifest.json`` and ``manifest.csv`` are rewritten atomically. When the VQ-VAE-2 has
    a label decoder (``label_channels``), each slice's tissue label map is written beside it as
    ``synthetic_<index>_label.nii.gz`` (uint8, same affine) and the grids show each slice with its label overlaid.

    Running it again with the same settings continues after the last complete chunk: files of an interrupted chunk
    and temporaries of killed writes are removed, nothing is generated twice, and the bank ends identical to that
    of an uninterrupted run. A larger ``num_samples`` extends a bank (a short last chunk is generated again at full
    size). Different settings raise, unless ``overwrite``.

    ``manifest.json`` holds ``settings`` (seed, chunk size, temperature, top-k, method, spatial shape, dtype, device type, spacing,
    how positions and class labels were chosen, whether label maps are written, the model's :func:`model_digest`),
    ``checkpoints`` (path and SHA-256), ``versions`` (packages), ``num_samples`` (requested), ``complete``,
    ``chunks`` (number, seed, first sample, count, grid) and ``samples`` (per slice: index, file, label file, chunk,
    chunk seed, slice position, class label, SHA-256 of the file and of the label file); ``manifest.csv`` has one row
    per slice with the per-sample fields.

    Args:
        sampler: a :class:`~monai_vqvae2.inferers.HierarchicalSampler`.
        output_dir: the bank folder (created if needed).
        num_samples: slices the bank should hold.
        seed: seed every chunk's sampler seed and positions derive from.
        chunk_size: slices sampled and written per chunk (the unit of resumption).
        slice_positions: normalised slice position (0 = inferior, 1 = superior), one float or one per slice; only for
            priors conditioned on it (``num_scalars=1``).
        real_positions: positions of real slices (e.g. :func:`~monai_vqvae2.synthetic.training_slice_positions`) to draw
            each slice's position from, uniformly with replacement; exclusive with ``slice_positions``.
        class_labels: class condition (one int or one per slice) for priors built with ``num_classes > 0``.
        temperature: softmax temperature of the priors, one number or one per level (coarsest first).
        top_k: sample among the ``top_k`` most likely codes only.
        method: ``"fast"`` (cached) or ``"naive"``.
        batch_size: samples the sampler generates at once within a chunk (memory only; results do not depend on it).
        checkpoints: the checkpoints the sampler was loaded from, recorded with their SHA-256.
        spacing: pixel size in mm written in the NIfTI affines.
        overwrite: start again, deleting the bank files in ``output_dir`` first, even with other settings.

    Returns:
        the path of ``manifest.json``.

    Raises:
        TypeError: ``sampler`` is not a ``HierarchicalSampler``.
        ValueError: invalid arguments; positions for unconditioned priors or none for conditioned ones; an existing
            bank in ``output_dir`` made with other settings, or with more samples than ``num_samples``.
    """
    check_sampler(sampler)
    num_samples = check_count(num_samples, "num_samples")
    chunk_size = check_count(chunk_size, "chunk_size")
    seed = check_seed(seed)
    check_sampling(temperature, top_k, method)
    if batch_size is not None:
        check_count(batch_size, "batch_size")
    if isinstance(spacing, bool) or not (isinstance(spacing, (int, float)) and math.isfinite(spacing) and spacing > 0):
        raise ValueError(f"`spacing` must be a positive finite number, got {spacing!r}.")
    num_scalars, num_classes = global_conditions(sampler)
    positions = resolve_positions(num_scalars, num_samples, chunk_size, seed, slice_positions, real_positions)
    label_values = resolve_labels(num_classes, num_samples, class_labels)
    label_files = sampler.vqvae.label_decoder is not None
    records = checkpoint_records(checkpoints)
    settings = {
        "seed": seed,
        "chunk_size": chunk_size,
        "temperature": temperature_setting(temperature),
        "top_k": top_k,
        "method": method,
        "spatial_shape": list(sampler.spatial_shape),
        "dtype": str(sampler.dtype),
        "device": next(sampler.vqvae.parameters()).device.type,
        "spacing": float(spacing),
        "slice_positions": position_spec(slice_positions, real_positions),
        "class_labels": label_spec(class_labels),
        "label_maps": label_files,
        "model_sha256": model_digest(sampler),
        "checkpoints_sha256": [record["sha256"] for record in records],
    }
    versions = package_versions()
    bank_dir = Path(output_dir)
    bank_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = bank_dir / BANK_MANIFEST
    num_chunks = math.ceil(num_samples / chunk_size)
    chunk_seeds = [batch_seed(seed, chunk) for chunk in range(num_chunks)]

    chunks: list[dict[str, Any]] = []
    samples: list[dict[str, Any]] = []
    if overwrite:
        manifest_path.unlink(missing_ok=True)
        (bank_dir / BANK_TABLE).unlink(missing_ok=True)
    elif manifest_path.is_file():
        existing = load_bank_manifest(bank_dir)
        if existing["settings"] != settings or existing.get("versions") != versions:
            difference = _settings_difference(
                {**existing["settings"], "versions": existing.get("versions")}, {**settings, "versions": versions}
            )
            raise ValueError(
                f"the bank in {str(bank_dir)!r} was generated with other settings ({difference}); pass "
                "`overwrite=True` to start it again, or choose another folder."
            )
        if len(existing["samples"]) > num_samples:
            raise ValueError(
                f"the bank in {str(bank_dir)!r} already holds {len(existing['samples'])} samples, more than "
                f"`num_samples={num_samples}`; pass `overwrite=True` to start it again, or a larger `num_samples`."
            )
        for chunk in existing["chunks"]:
            number, first = chunk["chunk"], chunk["first"]
            expected_count = batch_count(num_samples, chunk_size, number) if number < num_chunks else 0
            if number != len(chunks) or first != number * chunk_size or chunk["count"] != expected_count:
                break  # a short last chunk of a smaller bank: generated again at full size
            recorded = existing["samples"][first : first + chunk["count"]]
            for entry in recorded:
                expected = _expected_entry(
                    entry["index"], number, chunk_seeds[number], positions, label_values, label_files
                )
                if {key: entry.get(key) for key in expected} != expected:
                    raise ValueError(
                        f"sample {entry['index']} of the bank in {str(bank_dir)!r} was generated with "
                        f"{_settings_difference({k: entry.get(k) for k in expected}, expected)}; pass "
                        "`overwrite=True` to start it again, or choose another folder."
                    )
            files = [chunk["grid"], *(e[key] for e in recorded for key in ("file", "label_file") if e.get(key))]
            if not all((bank_dir / name).is_file() for name in files):
                break  # damaged: this chunk and the following ones are generated again
            chunks.append(chunk)
            samples.extend(recorded)
    keep = {chunk["grid"] for chunk in chunks} | {entry["file"] for entry in samples}
    _remove_strays(bank_dir, keep | {entry["label_file"] for entry in samples if entry.get("label_file")})

    def write_manifest() -> Path:
        manifest = {
            "format": BANK_FORMAT,
            "settings": settings,
            "checkpoints": records,
            "versions": versions,
            "num_samples": num_samples,
            "complete": len(samples) == num_samples,
            "chunks": chunks,
            "samples": samples,
        }
        path = atomic_write_json(manifest_path, manifest)
        _write_table(bank_dir / BANK_TABLE, samples)
        return path

    write_manifest()
    for number in range(len(chunks), num_chunks):
        first, count = number * chunk_size, batch_count(num_samples, chunk_size, number)
        stop = first + count
        output = sampler.sample(
            count,
            temperature=temperature_setting(temperature),
            top_k=top_k,
            labels=None if label_values is None else torch.from_numpy(label_values[first:stop]),
            scalars=None if positions is None else torch.from_numpy(positions[first:stop])[:, None],
            seed=chunk_seeds[number],
            method=method,
            batch_size=batch_size,
        )
        pictures = slice_pictures(output.images)
        label_maps = None if output.labels is None else output.labels[:, 0].cpu().numpy().astype(np.uint8)
        entries = []
        for offset, picture in enumerate(pictures):
            entry = _expected_entry(first + offset, number, chunk_seeds[number], positions, label_values, label_files)
            payload = nifti_slice_bytes(picture, spacing=spacing)
            atomic_write(bank_dir / entry["file"], lambda temporary, payload=payload: temporary.write_bytes(payload))
            entry["sha256"] = hashlib.sha256(payload).hexdigest()
            entry["label_sha256"] = None
            if label_maps is not None:
                payload = nifti_slice_bytes(label_maps[offset], spacing=spacing)
                atomic_write(bank_dir / entry["label_file"], lambda tmp, payload=payload: tmp.write_bytes(payload))
                entry["label_sha256"] = hashlib.sha256(payload).hexdigest()
            entries.append(entry)
        grid = bank_grid_name(number)
        write_grid_png(bank_dir / grid, pictures, labels=label_maps)
        chunks.append({"chunk": number, "seed": chunk_seeds[number], "first": first, "count": count, "grid": grid})
        samples.extend(entries)
        write_manifest()
    return manifest_path
