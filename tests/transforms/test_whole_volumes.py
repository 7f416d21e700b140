"""Whole volumes for 3D models: RAS order, a fixed millimetre grid, the brain centred, the same result from NIfTI
and OASIS-style Analyze; the volume dataset's caches; the volume writer's NIfTI affine and orthogonal views."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from monai_vqvae2.data import make_volume_dataset
from monai_vqvae2.data.volumes import volume_cache_name
from monai_vqvae2.inferers import (
    HierarchicalSampler,
    orthogonal_views,
    sample_to_folder,
    sample_volumes_to_folder,
    volume_affine,
    write_volume_samples,
)
from monai_vqvae2.networks import VQVAE2, PixelCNNPrior
from monai_vqvae2.transforms import SlicePreprocessing, volume_grid, whole_volume_transforms
from monai_vqvae2.transforms.errors import InvalidImageError


def brain_box(volume: torch.Tensor) -> list[tuple[int, int]]:
    inside = (volume[0] > 0.5).nonzero()
    return list(zip(inside.min(0).values.tolist(), inside.max(0).values.tolist()))


def test_whole_volume_is_ras_on_the_grid_with_the_brain_centred(tmp_path, build):
    ras = build.known_volume()  # brain box x 4..15, y 4..19, z 3..16 (notch at the left-anterior corner of z 14)
    nifti = build.write_nifti(tmp_path / "ras.nii.gz", ras)
    lps = build.write_nifti(tmp_path / "lps.nii.gz", np.ascontiguousarray(ras[::-1, ::-1]), np.diag([-1, -1, 1, 1.0]))
    analyze = build.write_analyze(tmp_path / "oasis_t88.hdr", ras)
    chain = whole_volume_transforms((24, 32, 24), 1.0, crop_margin=0)
    volumes = [chain({"image": str(path)})["image"] for path in (nifti, lps, analyze)]
    for volume in volumes:
        assert volume.shape == (1, 24, 32, 24) and volume.dtype == torch.float32
        assert type(volume) is torch.Tensor  # plain tensors batch and pickle without metadata
        # the 12 x 16 x 14 brain centred in the grid: (24 - 12) // 2 = 6, (32 - 16) // 2 = 8, (24 - 14) // 2 = 5
        assert brain_box(volume) == [(6, 17), (8, 23), (5, 18)]
        assert float(volume[0, 6, 23, 5 + 14 - 3]) == 0.0  # the notch: patient's left (low x), anterior (high y)
        assert float(volume[0, 17, 23, 5 + 14 - 3]) == 1.0
    assert all(torch.equal(volumes[0], other) for other in volumes[1:])


def test_whole_volume_resamples_to_the_voxel_size_and_crops_a_larger_brain_symmetrically(tmp_path, build):
    path = build.write_nifti(tmp_path / "vol.nii.gz", build.known_volume())
    coarse = whole_volume_transforms(16, (2.0, 2.0, 2.0), crop_margin=0)({"image": str(path)})["image"]
    assert coarse.shape == (1, 16, 16, 16)
    (x0, x1), (y0, y1), (z0, z1) = brain_box(coarse)
    assert (x1 - x0 + 1, y1 - y0 + 1) == (6, 8)  # 12 x 16 mm at 2 mm
    small = whole_volume_transforms(8, 1.0, crop_margin=0)({"image": str(path)})["image"]
    assert small.shape == (1, 8, 8, 8) and float(small.min()) == 1.0  # all brain: its centre kept


def test_volume_grid_and_bad_arguments(tmp_path, build):
    assert volume_grid(32, 2) == ((32, 32, 32), (2.0, 2.0, 2.0))
    assert volume_grid((16, 24, 8), (1, 1.5, 2)) == ((16, 24, 8), (1.0, 1.5, 2.0))
    with pytest.raises(ValueError, match=r"`volume_size` must be a positive int or three of them \(X, Y, Z\), got"):
        volume_grid((16, 16), 1.0)
    with pytest.raises(ValueError, match=r"`voxel_size` must be a positive voxel size in mm or three of them, got -1"):
        whole_volume_transforms(16, -1)
    with pytest.raises(TypeError, match="min_brain_fractions"):
        whole_volume_transforms(16, 1.0, min_brain_fractions=0.2)
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not a volume")
    with pytest.raises(InvalidImageError, match="broken.nii.gz"):
        whole_volume_transforms(16, 1.0)({"image": str(broken)})


@pytest.mark.parametrize("cache", ["memory", "disk", None])
def test_volume_dataset_keeps_the_items_and_caches_by_settings(tmp_path, build, cache):
    paths = [build.write_nifti(tmp_path / "data" / f"sub{i}.nii.gz", build.known_volume(100.0 + i)) for i in range(2)]
    items = [{"image": str(path), "subject": f"S{i}", "session": f"S{i}_MR1"} for i, path in enumerate(paths)]
    dataset = make_volume_dataset(items, 16, 2.0, cache=cache, cache_dir=tmp_path / "cache")
    assert len(dataset) == 2
    _, first = dataset[0], dataset[1]
    assert first["image"].shape == (1, 16, 16, 16) and (first["subject"], first["session"]) == ("S1", "S1_MR1")
    assert first["source"] == str(paths[1])
    if cache == "disk":
        folder = tmp_path / "cache" / volume_cache_name((16, 16, 16), (2.0, 2.0, 2.0), SlicePreprocessing())
        assert len(list(folder.glob("*.pt"))) == 2
        other = make_volume_dataset(items, 16, 2.0, {"crop_margin": 0}, cache="disk", cache_dir=tmp_path / "cache")
        assert other[1]["image"].shape == (1, 16, 16, 16)
        assert len([p for p in (tmp_path / "cache").iterdir() if p.is_dir()]) == 2  # other settings, other folder
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["sub0.nii.gz", "sub1.nii.gz"]  # data untouched


def test_volume_dataset_bad_arguments(tmp_path, build):
    path = build.write_nifti(tmp_path / "vol.nii.gz", build.known_volume())
    with pytest.raises(ValueError, match=r"`cache` must be one of \('memory', 'disk', None\), got 'ram'"):
        make_volume_dataset([str(path)], 16, cache="ram")
    with pytest.raises(ValueError, match='`cache="disk"` needs a `cache_dir`'):
        make_volume_dataset([str(path)], 16, cache="disk")
    with pytest.raises(ValueError, match="is listed twice"):
        make_volume_dataset([str(path), str(path)], 16)


def test_volume_affine_and_orthogonal_views():
    affine = volume_affine((4, 6, 2), (2.0, 1.0, 3.0))
    assert np.array_equal(affine, [[2, 0, 0, -3], [0, 1, 0, -2.5], [0, 0, 3, -1.5], [0, 0, 0, 1]])
    volume = np.zeros((4, 6, 8), dtype=np.float32)  # RAS: x 0 is the patient's left, y 5 anterior, z 7 superior
    volume[0, :, :] = 0.5  # the patient's left side
    volume[2, 5, 7] = 1.0  # on the sagittal mid-slice (x 2), anterior and superior
    views = orthogonal_views(volume)
    assert views.shape == (8, 24)  # three views on 8 x 8 squares
    axial, coronal, sagittal = views[:, :8], views[:, 8:16], views[:, 16:]
    # axial (6 rows of y, 4 columns of x, centred at row 1, column 2): the patient's left on the image left
    assert np.array_equal(np.unique(np.argwhere(axial == 0.5)[:, 1]), [2])
    assert np.array_equal(np.unique(np.argwhere(axial == 0.5)[:, 0]), np.arange(1, 7))
    # coronal (8 rows of z, superior first; 4 columns of x): left on the left again
    assert np.array_equal(np.unique(np.argwhere(coronal == 0.5)[:, 1]), [2])
    # sagittal (8 rows of z, 6 columns of y centred at column 1): superior up, anterior on the left
    assert np.argwhere(sagittal == 1.0).tolist() == [[0, 1]]


def test_write_volume_samples_round_trip(tmp_path):
    volumes = torch.rand(2, 1, 8, 12, 8, generator=torch.Generator().manual_seed(0))
    manifest = write_volume_samples(volumes, tmp_path / "out", (2.0, 2.0, 2.0), {"seed": 3})
    record = json.loads(manifest.read_text())
    assert [entry["file"] for entry in record["samples"]] == ["sample_0000.nii.gz", "sample_0001.nii.gz"]
    assert record["settings"] == {"seed": 3, "volume_size": [8, 12, 8], "voxel_size": [2.0, 2.0, 2.0]}
    image = nib.load(tmp_path / "out" / "sample_0001.nii.gz")
    assert nib.aff2axcodes(image.affine) == ("R", "A", "S") and image.header.get_zooms() == (2.0, 2.0, 2.0)
    assert np.array_equal(np.asarray(image.dataobj), volumes[1, 0].numpy())
    views = np.asarray(Image.open(tmp_path / "out" / "sample_views.png"))
    assert views.shape == (2 * 12, 3 * 12)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "manifest.json",
        "sample_0000.nii.gz",
        "sample_0001.nii.gz",
        "sample_views.png",
    ]
    with pytest.raises(ValueError, match=r"`volumes` must be a \(B, 1, X, Y, Z\) tensor, got \(2, 8, 12, 8\)"):
        write_volume_samples(volumes[:, 0], tmp_path / "bad", 1.0, {})


def test_sample_to_folder_writes_volumes_for_a_volume_sampler_and_refuses_slice_options(tmp_path):
    torch.manual_seed(0)
    vqvae = VQVAE2(3, 1, 1, channels=8, num_res_layers=1, num_res_channels=4, num_embeddings=(6, 9), embedding_dim=4)
    prior = {"spatial_dims": 3, "channels": 8, "num_layers": 2, "kernel_size": 3}
    priors = [
        PixelCNNPrior(num_embeddings=6, **prior),
        PixelCNNPrior(num_embeddings=9, condition_num_embeddings=6, **prior),
    ]
    sampler = HierarchicalSampler(vqvae, priors, (16, 16, 8))
    manifest = sample_to_folder(sampler, tmp_path / "samples", 2, seed=4, voxel_size=(1.0, 1.0, 2.0))
    record = json.loads(manifest.read_text())
    assert record["settings"]["voxel_size"] == [1.0, 1.0, 2.0] and len(record["samples"]) == 2
    image = nib.load(tmp_path / "samples" / "sample_0000.nii.gz")
    assert image.shape == (16, 16, 8) and image.header.get_zooms() == (1.0, 1.0, 2.0)
    expected = sampler.sample(2, seed=4).images[0, 0].clamp(0, 1).float().numpy()
    assert np.array_equal(np.asarray(image.dataobj), expected)
    with pytest.raises(ValueError, match=r"`slice_position` is for slices; a sampler of volumes takes none, got 0.5"):
        sample_to_folder(sampler, tmp_path / "bad", 1, slice_position=0.5)
    with pytest.raises(
        ValueError, match=r"sample_volumes_to_folder writes volumes \(use sample_to_folder for slices\)"
    ):
        sample_volumes_to_folder(
            HierarchicalSampler(
                VQVAE2(2, 1, 1), [PixelCNNPrior(), PixelCNNPrior(condition_num_embeddings=512)], (32, 32)
            ),
            tmp_path / "bad",
            1,
            1.0,
        )
    assert not (tmp_path / "bad").exists()
