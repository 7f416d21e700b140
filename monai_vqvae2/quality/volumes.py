"""Quality of generated volumes, plane by plane: the slice measures of :mod:`monai_vqvae2.quality.report` on the
axial, coronal and sagittal slices of the volumes, beside the same numbers for real held-out volumes.

A 3D generator is judged on 2D slices of each plane, as MAISI reports its Fréchet distances per plane (Guo et al.
2024, https://arxiv.org/abs/2409.11169): a feature space for slices exists (here the seeded random CNN that no
training shaped), one for whole brain volumes would need many more volumes than a research data set holds to
estimate a covariance. Per plane, the slices holding at least ``min_brain_fraction`` brain of the samples and of the
real test volumes are each compared with the training volumes' slices of that plane: Fréchet distance in the random-CNN
features, in-brain intensity distance, diversity (pairwise MS-SSIM) and memorisation (nearest training slice by SSIM,
near-copies). The autoencoder's own encoder features of the slice report are left out: a 3D encoder has no features
of single slices.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
from PIL import Image

from monai_vqvae2.io import atomic_write, atomic_write_json
from monai_vqvae2.quality.features import RANDOM_FEATURE_SPACE, RandomCNNFeatures
from monai_vqvae2.quality.measures import (
    FOREGROUND_THRESHOLD,
    foreground_histograms,
    frechet_distance,
    histogram_wasserstein,
    positive_int,
    stage_scales,
)
from monai_vqvae2.quality.similarity import nearest_training_ssim, pairwise_ms_ssim
from monai_vqvae2.slice_io import orthogonal_views, to_display

__all__ = ["PLANES", "is_volume_folder", "load_volume_folder", "plane_slices", "volume_quality_report"]

PLANES = ("axial", "coronal", "sagittal")


def is_volume_folder(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds volumes written by :func:`~monai_vqvae2.inferers.write_volume_samples` (its manifest
    records a ``volume_size``)."""
    manifest = Path(path) / "manifest.json"
    try:
        return "volume_size" in json.loads(manifest.read_text(encoding="utf-8")).get("settings", {})
    except (OSError, ValueError, AttributeError):
        return False


def load_volume_folder(path: str | os.PathLike) -> torch.Tensor:
    """The volumes of a folder written by :func:`~monai_vqvae2.inferers.write_volume_samples`, ``(N, 1, X, Y, Z)``
    float32 in RAS order, in the manifest's order.

    Raises:
        FileNotFoundError: no ``manifest.json``, or a listed file is missing.
        ValueError: a manifest without samples, or volumes of different shapes.
    """
    folder = Path(path)
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(f"No manifest.json in the samples folder {folder}: expected sampled volumes.")
    entries = json.loads(manifest_path.read_text(encoding="utf-8")).get("samples") or []
    if not entries:
        raise ValueError(f"{manifest_path} lists no samples.")
    volumes = []
    for entry in entries:
        file = folder / entry["file"]
        if not file.is_file():
            raise FileNotFoundError(f"{file} is listed in {manifest_path} but does not exist.")
        volumes.append(np.asarray(nib.load(str(file)).dataobj, dtype=np.float32))
    if len({volume.shape for volume in volumes}) > 1:
        raise ValueError(f"The volumes in {folder} differ in shape: {sorted({v.shape for v in volumes})}.")
    return torch.from_numpy(np.stack(volumes))[:, None]


def plane_slices(volumes: torch.Tensor | Sequence[Any], plane: str, min_brain_fraction: float = 0.1) -> torch.Tensor:
    """The slices of RAS volumes along one plane, in the orientation of
    :func:`~monai_vqvae2.slice_io.orthogonal_views`, that hold at least ``min_brain_fraction`` brain (pixels above the
    quality measures' foreground threshold).

    Args:
        volumes: ``(N, 1, X, Y, Z)`` in [0, 1], or a dataset of dicts with such an ``"image"`` ``(1, X, Y, Z)``.
        plane: ``"axial"``, ``"coronal"`` or ``"sagittal"``.
        min_brain_fraction: fraction of brain pixels a slice needs to be kept.

    Returns:
        ``(M, 1, H, W)`` float32.

    Raises:
        ValueError: an unknown plane, or no slice with enough brain.
    """
    if plane not in PLANES:
        raise ValueError(f"`plane` must be one of {PLANES}, got {plane!r}.")
    slices = []
    for index in range(len(volumes)):
        volume = _volume(volumes, index)[0]
        if plane == "axial":
            pictures = torch.stack([to_display(volume[:, :, z]) for z in range(volume.shape[2])])
        elif plane == "coronal":
            pictures = volume.permute(1, 2, 0).flip(1)  # per y: rows superior first, columns x (left to right)
        else:
            pictures = volume.permute(0, 2, 1).flip(1, 2)  # per x: rows superior first, columns anterior first
        brain = (pictures > FOREGROUND_THRESHOLD).float().mean(dim=(1, 2))
        slices.append(pictures[brain >= min_brain_fraction])
    kept = torch.cat(slices)
    if len(kept) == 0:
        raise ValueError(f"No {plane} slice holds {min_brain_fraction} brain.")
    return kept[:, None].contiguous()


def _volume(volumes: torch.Tensor | Sequence[Any], index: int) -> torch.Tensor:
    """Volume ``index`` ``(1, X, Y, Z)`` of a tensor or of a dataset of dicts with an ``"image"``."""
    item = volumes[index]
    return torch.as_tensor(item["image"] if isinstance(item, dict) else item).float()


def _distribution(values: torch.Tensor) -> dict[str, float]:
    array = values.double().numpy()
    return {"min": float(array.min()), "median": float(np.median(array)), "mean": float(array.mean())}


def _plane_measures(
    sets: dict[str, torch.Tensor],
    training: torch.Tensor,
    extract: RandomCNNFeatures,
    max_pairs: int,
    near_copy_threshold: float,
    num_candidates: int,
    candidate_size: int,
    seed: int,
    batch_size: int,
) -> dict[str, Any]:
    def features(images: torch.Tensor) -> torch.Tensor:
        return torch.cat([extract(images[start : start + batch_size]) for start in range(0, len(images), batch_size)])

    base_features = features(training)
    scales = stage_scales(base_features, extract.stage_channels)
    base_histogram = foreground_histograms(training).sum(0)
    counts = {name: len(images) for name, images in sets.items()}
    num_pairs = min(max_pairs, *(count * (count - 1) // 2 for count in counts.values()))
    measured: dict[str, dict[str, Any]] = {}
    for name, images in sets.items():
        nearest = nearest_training_ssim(images, training, num_candidates, candidate_size, batch_size)
        measured[name] = {
            "frechet_distance_random_cnn": frechet_distance(base_features * scales, features(images) * scales),
            "intensity_wasserstein": histogram_wasserstein(foreground_histograms(images).sum(0), base_histogram),
            "pairwise_ms_ssim": _distribution(pairwise_ms_ssim(images, num_pairs, seed, batch_size)),
            "nearest_training_ssim": _distribution(nearest.ssim),
            "near_copies": int((nearest.ssim >= near_copy_threshold).sum()),
        }
    # laid out as the slice report's measures: {measure: {"samples": ..., "real": ...}}
    report: dict[str, Any] = {"counts": {**counts, "training": len(training)}}
    for measure in measured["samples"]:
        report[measure] = {name: values[measure] for name, values in measured.items()}
    report["pairwise_ms_ssim"]["num_pairs"] = num_pairs
    return report


def _views_figure(volumes: torch.Tensor) -> np.ndarray:
    return (np.concatenate([orthogonal_views(v[0].numpy()) for v in volumes]) * 255).round().astype(np.uint8)


def volume_quality_report(
    real_test: torch.Tensor | Sequence[Any],
    samples: torch.Tensor | str | os.PathLike,
    training: torch.Tensor | Sequence[Any],
    output_dir: str | os.PathLike,
    *,
    seed: int = 0,
    batch_size: int = 64,
    max_pairs: int = 500,
    near_copy_threshold: float = 0.95,
    num_candidates: int = 16,
    candidate_size: int = 32,
    num_figure_images: int = 8,
    min_brain_fraction: float = 0.1,
    feature_seed: int = 0,
) -> dict[str, Any]:
    """Measure generated volumes plane by plane against the training volumes, beside real held-out volumes measured
    the same way, and write ``quality.json``, ``report.md`` and ``volumes.png`` (orthogonal mid-slices of samples,
    then of the real test volumes) under ``output_dir``, each atomically (``quality.json`` last).

    Args:
        real_test: real held-out volumes: ``(N, 1, X, Y, Z)`` in [0, 1] or a dataset of dicts with an ``"image"``
            (e.g. :func:`~monai_vqvae2.data.make_volume_dataset`); the real reference.
        samples: generated volumes in the same forms, or a folder written by
            :func:`~monai_vqvae2.inferers.write_volume_samples` (read with :func:`load_volume_folder`).
        training: the training volumes, in the same forms.
        output_dir: folder of the report files.
        seed: seed of the pair draws.
        batch_size: slices processed at once.
        max_pairs: most pairs compared per set for diversity.
        near_copy_threshold: nearest-training SSIM at or above which a slice counts as a near-copy.
        num_candidates: training slices compared by SSIM per slice.
        candidate_size: thumbnail side used to pre-select them.
        num_figure_images: sampled volumes shown in ``volumes.png``.
        min_brain_fraction: brain a slice needs to be measured (as :func:`plane_slices`).
        feature_seed: seed of the random CNN's weights.

    Returns:
        the report as written to ``quality.json``: per plane (``"planes"``), the counts and each measure for
        ``"samples"`` and ``"real"``, laid out as the slice report's measures.

    Raises:
        ValueError: bad arguments, or a plane without two slices in a set.
    """
    if not 0.0 < near_copy_threshold <= 1.0:
        raise ValueError(f"`near_copy_threshold` must be in (0, 1], got {near_copy_threshold!r}.")
    options = {
        "max_pairs": positive_int(max_pairs, "max_pairs"),
        "near_copy_threshold": near_copy_threshold,
        "num_candidates": positive_int(num_candidates, "num_candidates"),
        "candidate_size": positive_int(candidate_size, "candidate_size"),
        "seed": seed,
        "batch_size": positive_int(batch_size, "batch_size"),
    }
    samples_dir = None
    if isinstance(samples, (str, os.PathLike)):
        samples_dir, samples = str(samples), load_volume_folder(samples)
    extract = RandomCNNFeatures(seed=feature_seed)
    planes = {}
    for plane in PLANES:
        sets = {
            "samples": plane_slices(samples, plane, min_brain_fraction),
            "real": plane_slices(real_test, plane, min_brain_fraction),
        }
        short = [name for name, images in sets.items() if len(images) < 2]
        if short:
            raise ValueError(f"Fewer than 2 {plane} slices with {min_brain_fraction} brain in: {', '.join(short)}.")
        planes[plane] = _plane_measures(sets, plane_slices(training, plane, min_brain_fraction), extract, **options)
    report = {
        "kind": "volumes",
        "num_volumes": {"samples": len(samples), "real": len(real_test), "training": len(training)},
        "samples_dir": samples_dir,
        "settings": {
            **options,
            "min_brain_fraction": min_brain_fraction,
            "feature_space": RANDOM_FEATURE_SPACE,
            "feature_seed": feature_seed,
            "feature_digest": extract.digest,
        },
        "planes": planes,
    }
    output_dir = Path(output_dir)
    shown = [_volume(samples, index) for index in range(min(num_figure_images, len(samples)))]
    figure = _views_figure(torch.stack([*shown, _volume(real_test, 0)]))
    atomic_write(output_dir / "volumes.png", lambda temporary: Image.fromarray(figure).save(temporary, "PNG"))
    atomic_write(output_dir / "report.md", lambda temporary: temporary.write_text(_markdown(report)))
    atomic_write_json(output_dir / "quality.json", report)
    return report


def _pair(measure: dict[str, Any], field: str | None = None) -> str:
    """``"samples / real"`` of one measure, three decimals for numbers."""
    a, b = (measure[name] if field is None else measure[name][field] for name in ("samples", "real"))
    return f"{a:.3f} / {b:.3f}" if isinstance(a, float) else f"{a} / {b}"


def _markdown(report: dict[str, Any]) -> str:
    volumes, settings = report["num_volumes"], report["settings"]
    lines = [
        "# Quality of the generated volumes, plane by plane",
        "",
        (
            f"Volumes: {volumes['samples']} sampled, {volumes['real']} real held-out (the reference), "
            f"{volumes['training']} training. Slices with at least {settings['min_brain_fraction']} brain, each set "
            "against the training volumes' slices of the same plane. Read every sample number against the real one "
            "beside it."
        ),
        "",
        "| plane | slices (samples / real) | FD random CNN | in-brain W | pairwise MS-SSIM | nearest training SSIM "
        + "| near-copies |",
        "|---|---|---|---|---|---|---|",
    ]
    for plane, measures in report["planes"].items():
        counts = measures["counts"]
        lines.append(
            f"| {plane} | {counts['samples']} / {counts['real']} | {_pair(measures['frechet_distance_random_cnn'])} "
            f"| {_pair(measures['intensity_wasserstein'])} | {_pair(measures['pairwise_ms_ssim'], 'mean')} "
            f"| {_pair(measures['nearest_training_ssim'], 'median')} | {_pair(measures['near_copies'])} |"
        )
    lines += [
        "",
        "Each cell: samples / real reference (means of the pairwise MS-SSIM, medians of the nearest SSIM). "
        + "`volumes.png`: the samples' axial, coronal and sagittal mid-slices, then the first real held-out volume's.",
    ]
    return "\n".join(lines) + "\n"
