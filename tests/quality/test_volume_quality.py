"""The quality report of sampled volumes on constructed cases: slices per plane in the views' orientation, identical
sets, a copied training volume, a blank set, and the folder dispatch of quality_report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from monai_vqvae2.inferers import write_volume_samples
from monai_vqvae2.quality import PLANES, plane_slices, quality_report, volume_quality_report
from monai_vqvae2.quality.volumes import is_volume_folder, load_volume_folder
from monai_vqvae2.slice_io import orthogonal_views
from tests.tiny import single_thread  # noqa: F401 (autouse fixture)


def brains(count: int, seed: int, shape=(32, 36, 32)) -> torch.Tensor:
    """``count`` textured ellipsoid 'brains' ``(N, 1, X, Y, Z)`` in [0, 1], each with its own size and texture."""
    generator = torch.Generator().manual_seed(seed)
    grid = torch.stack(torch.meshgrid(*[torch.linspace(-1, 1, s) for s in shape], indexing="ij"))
    volumes = []
    for _ in range(count):
        radii = torch.tensor([0.8, 0.85, 0.75]) * (1 + 0.1 * torch.rand(3, generator=generator))
        inside = ((grid / radii[:, None, None, None]) ** 2).sum(0) < 1
        texture = 0.6 + 0.3 * torch.sin(6 * grid[0] + 6 * torch.rand(1, generator=generator)) * torch.cos(4 * grid[1])
        texture = texture + 0.1 * torch.randn(shape, generator=generator)  # no two brains alike
        volumes.append(torch.where(inside, texture, torch.zeros(())).clamp(0, 1))
    return torch.stack(volumes)[:, None]


def test_plane_slices_follow_the_orthogonal_views_and_keep_brain_slices():
    volume = torch.zeros(1, 1, 8, 10, 12)
    volume[0, 0, 2:6, 3:8, 4:10] = 0.5
    for plane, axis, (height, width) in (("axial", 4, (10, 8)), ("coronal", 3, (12, 8)), ("sagittal", 2, (12, 10))):
        slices = plane_slices(volume, plane, min_brain_fraction=0.01)
        assert slices.shape == (volume.shape[axis] - {4: 6, 3: 5, 2: 4}[axis], 1, height, width)
    views = orthogonal_views(volume[0, 0].numpy())  # mid-slices: axial z 6, coronal y 5, sagittal x 4
    axial = plane_slices(volume, "axial", min_brain_fraction=0.0)[6, 0].numpy()
    coronal = plane_slices(volume, "coronal", min_brain_fraction=0.0)[5, 0].numpy()
    sagittal = plane_slices(volume, "sagittal", min_brain_fraction=0.0)[4, 0].numpy()
    side = 12
    assert np.array_equal(views[1:11, 2:10], axial)
    assert np.array_equal(views[:, side + 2 : side + 10], coronal)
    assert np.array_equal(views[:, 2 * side + 1 : 2 * side + 11], sagittal)
    with pytest.raises(ValueError, match=r"`plane` must be one of \('axial', 'coronal', 'sagittal'\), got 'oblique'"):
        plane_slices(volume, "oblique")
    with pytest.raises(ValueError, match="No axial slice holds 0.5 brain"):
        plane_slices(volume, "axial", min_brain_fraction=0.5)


def test_identical_sets_score_alike_and_copied_training_volumes_are_near_copies(tmp_path):
    training, real = brains(4, seed=0), brains(2, seed=1)
    report = volume_quality_report(real, real.clone(), training, tmp_path, max_pairs=50, batch_size=32)
    assert set(report["planes"]) == set(PLANES)
    for measures in report["planes"].values():  # samples identical to the real reference: every number equal
        for key in ("frechet_distance_random_cnn", "intensity_wasserstein", "near_copies"):
            assert measures[key]["samples"] == pytest.approx(measures[key]["real"], abs=1e-9)
        assert measures["near_copies"]["real"] == 0
    copies = volume_quality_report(real, training[:2], training, tmp_path / "copies", max_pairs=50, batch_size=32)
    for plane, measures in copies["planes"].items():  # every slice of a copied training volume is its own nearest
        assert measures["near_copies"]["samples"] == measures["counts"]["samples"], plane
        assert measures["nearest_training_ssim"]["samples"]["min"] == pytest.approx(1.0, abs=1e-6)
        assert measures["frechet_distance_random_cnn"]["samples"] < measures["frechet_distance_random_cnn"]["real"]
    assert sorted(p.name for p in (tmp_path / "copies").iterdir()) == ["quality.json", "report.md", "volumes.png"]
    assert "| axial |" in (tmp_path / "copies" / "report.md").read_text()


def test_quality_report_measures_a_folder_of_volumes_per_plane(tmp_path):
    training, real, samples = brains(3, seed=0), brains(2, seed=1), brains(2, seed=2)
    write_volume_samples(samples, tmp_path / "samples", 1.0, {"seed": 0})
    assert is_volume_folder(tmp_path / "samples") and not is_volume_folder(tmp_path)
    assert torch.equal(load_volume_folder(tmp_path / "samples"), samples)
    dataset = [{"image": volume} for volume in real]  # a dataset of dicts, as make_volume_dataset gives
    report = quality_report(None, dataset, tmp_path / "samples", training, tmp_path / "quality", max_pairs=20)
    assert report["kind"] == "volumes" and report["num_volumes"] == {"samples": 2, "real": 2, "training": 3}
    assert report == json.loads((tmp_path / "quality" / "quality.json").read_text())
    blank = torch.zeros(2, 1, 32, 36, 32)
    with pytest.raises(ValueError, match="No axial slice holds 0.1 brain"):
        volume_quality_report(real, blank, training, tmp_path / "blank")
