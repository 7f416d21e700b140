"""Generated image + label pairs: the sampler decodes both from one code map, and every writer and dataset keeps them
together (NIfTI label files, overlays in the grids, ``{"image", "label"}`` items)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import DataLoader
from monai.losses import DiceCELoss
from monai.networks.nets import UNet
from PIL import Image

from monai_vqvae2.inferers import sample_to_folder, write_samples
from monai_vqvae2.slice_io import read_slice_nifti
from monai_vqvae2.synthetic import (
    PAIRED_KEYS,
    MixedSliceDataset,
    SyntheticSliceDataset,
    generate_bank,
    load_bank_manifest,
)
from tests.tiny import single_thread, tiny_sampler  # noqa: F401 (autouse fixture)


@pytest.fixture(scope="module")
def paired_sampler():
    return tiny_sampler(label_channels=4)


def test_the_sampler_decodes_the_label_of_each_image_from_its_codes(paired_sampler):
    output = paired_sampler.sample(3, scalars=0.5, seed=4)
    assert output.labels.shape == (3, 1, 32, 32) and output.labels.dtype == torch.long
    assert torch.equal(output.labels, paired_sampler.vqvae.decode_label_samples(output.indices))
    assert set(output.labels.unique().tolist()) <= {0, 1, 2, 3}
    assert tiny_sampler().sample(1, scalars=0.5).labels is None


def test_samples_are_written_with_their_label_files_and_an_overlay_grid(paired_sampler, tmp_path):
    manifest = json.loads(sample_to_folder(paired_sampler, tmp_path / "out", 2, slice_position=[0.3, 0.6]).read_text())
    output = paired_sampler.sample(4, scalars=torch.tensor([0.3, 0.3, 0.6, 0.6], dtype=torch.float64)[:, None])
    assert [entry["label"] for entry in manifest["samples"]] == [f"sample_{i:04d}_label.nii.gz" for i in range(4)]
    for index, entry in enumerate(manifest["samples"]):
        label_file = nib.load(tmp_path / "out" / entry["label"])
        image_file = nib.load(tmp_path / "out" / entry["file"])
        assert label_file.get_data_dtype() == np.uint8 and label_file.shape == (32, 32, 1)
        np.testing.assert_array_equal(label_file.affine, image_file.affine)
        np.testing.assert_array_equal(read_slice_nifti(tmp_path / "out" / entry["label"]), output.labels[index, 0])
    grid = np.asarray(Image.open(tmp_path / "out" / "sample_grid.png"))
    assert grid.shape == (64, 128, 3)  # 2 x 2 cells, each the slice and the slice with its label overlaid
    picture = np.round(output.images[0, 0].clamp(0, 1).numpy() * 255)
    np.testing.assert_array_equal(grid[:32, :32, 0], picture)  # the plain slice, grey
    labelled = output.labels[0, 0].numpy() > 0
    assert (grid[:32, 32:64][labelled] != grid[:32, :32][labelled]).any(axis=-1).all()  # coloured where labelled
    np.testing.assert_array_equal(grid[:32, 32:64][~labelled], grid[:32, :32][~labelled])  # background untouched


def test_write_samples_refuses_labels_of_another_shape(tmp_path):
    with pytest.raises(ValueError, match=r"`labels` must have the images' shape \(2, 1, 8, 8\), got \(2, 1, 8, 4\)"):
        write_samples(torch.zeros(2, 1, 8, 8), tmp_path, {}, labels=torch.zeros(2, 1, 8, 4, dtype=torch.long))
    assert list(tmp_path.iterdir()) == []


def test_a_bank_keeps_each_label_beside_its_slice_and_reads_back_what_was_generated(paired_sampler, tmp_path):
    bank = tmp_path / "bank"
    generate_bank(paired_sampler, bank, 3, chunk_size=2, slice_positions=0.5)
    manifest = load_bank_manifest(bank)
    assert manifest["settings"]["label_maps"] is True
    on_the_fly = SyntheticSliceDataset(paired_sampler, 3, slice_positions=0.5, batch_size=2)
    banked = SyntheticSliceDataset(bank)
    for index in range(3):
        entry = manifest["samples"][index]
        assert entry["label_file"] == f"synthetic_{index:06d}_label.nii.gz" and len(entry["label_sha256"]) == 64
        item, generated = banked[index], on_the_fly[index]
        assert item["label"].dtype == torch.int64 and item["label"].shape == (1, 32, 32)
        assert torch.equal(item["label"], generated["label"]) and torch.equal(item["image"], generated["image"])
        assert item["label_source"] == str(bank / entry["label_file"]) and generated["label_source"] == "generated"
    # a lost label file makes its chunk be generated again, identically
    (bank / manifest["samples"][2]["label_file"]).unlink()
    generate_bank(paired_sampler, bank, 3, chunk_size=2, slice_positions=0.5)
    assert load_bank_manifest(bank)["samples"] == manifest["samples"]
    assert torch.equal(SyntheticSliceDataset(bank)[2]["label"], on_the_fly[2]["label"])


def test_a_missing_label_file_is_named(paired_sampler, tmp_path):
    generate_bank(paired_sampler, tmp_path, 1, slice_positions=0.5)
    (tmp_path / "synthetic_000000_label.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"bank label file .*synthetic_000000_label.nii.gz' is listed"):
        SyntheticSliceDataset(tmp_path)[0]


def test_real_and_synthetic_pairs_mix_and_train_a_monai_segmentation_network(paired_sampler):
    real = [
        {
            "image": torch.rand(1, 32, 32),
            "label": torch.randint(0, 4, (1, 32, 32)),
            "subject": "s",
            "session": "s",
            "source": "real.nii.gz",
            "slice_index": index,
            "slice_position": 0.5,
        }
        for index in range(6)
    ]
    synthetic = SyntheticSliceDataset(paired_sampler, 4, slice_positions=0.5, batch_size=4)
    mixed = MixedSliceDataset(real, synthetic, synthetic_fraction=0.4, keys=PAIRED_KEYS)
    assert mixed.num_synthetic == 4 and set(mixed[0]) == set(PAIRED_KEYS)
    batch = next(iter(DataLoader(mixed, batch_size=len(mixed))))
    assert batch["label"].shape == (10, 1, 32, 32) and int(batch["synthetic"].sum()) == 4
    network = UNet(spatial_dims=2, in_channels=1, out_channels=4, channels=(4, 8), strides=(2,), num_res_units=0)
    loss = DiceCELoss(to_onehot_y=True, softmax=True)(network(batch["image"]), batch["label"])
    loss.backward()
    assert torch.isfinite(loss)
