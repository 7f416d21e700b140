from __future__ import annotations

import json

import pytest
import torch

from monai_vqvae2.inferers import sample_to_folder, write_samples
from monai_vqvae2.quality.images import load_sample_folder, load_sample_labels
from tests.quality.conftest import textures
from tests.tiny import single_thread, tiny_sampler  # noqa: F401 (autouse fixture)


# ------------------------------------------------------------------------------------------------ samples folder
def test_sample_to_folder_draws_num_samples_at_each_slice_position(tmp_path):
    sampler = tiny_sampler()
    sample_to_folder(sampler, tmp_path / "list", 2, slice_position=[0.3, 0.7], seed=3, batch_size=3)
    manifest = json.loads((tmp_path / "list" / "manifest.json").read_text())
    assert manifest["settings"]["num_samples"] == 4 and manifest["settings"]["num_samples_per_position"] == 2
    assert manifest["settings"]["slice_position"] == [0.3, 0.7]
    folder = load_sample_folder(tmp_path / "list")
    assert folder.positions == [0.3, 0.3, 0.7, 0.7]
    # one sampler call with a position per sample: exactly what the folder holds
    expected = sampler.sample(4, scalars=torch.tensor([[0.3], [0.3], [0.7], [0.7]]), seed=3).images
    torch.testing.assert_close(folder.images, expected.clamp(0, 1), rtol=0, atol=1e-6)

    sample_to_folder(sampler, tmp_path / "one", 3, slice_position=0.5)
    one = json.loads((tmp_path / "one" / "manifest.json").read_text())
    assert one["settings"]["slice_position"] == 0.5 and one["settings"]["num_samples"] == 3
    assert load_sample_folder(tmp_path / "one").positions == [0.5, 0.5, 0.5]
    with pytest.raises(ValueError, match=r"`slice_position` holds normalised positions in \[0, 1\], got 1.5"):
        sample_to_folder(sampler, tmp_path / "bad", 2, slice_position=[0.5, 1.5])
    with pytest.raises(ValueError, match=r"`slice_position` must be None, a number in \[0, 1\] or a non-empty list"):
        sample_to_folder(sampler, tmp_path / "bad", 2, slice_position=[])
    with pytest.raises(TypeError, match=r"`slice_position` must be None, a number in \[0, 1\] or a list of them"):
        sample_to_folder(sampler, tmp_path / "bad", 2, slice_position=["middle"])


def test_load_sample_folder_undoes_write_samples(tmp_path):
    images = textures(3, seed=10)[:, :, :, :24]  # non-square: the rotation must be undone exactly
    write_samples(images, tmp_path / "with", settings={}, slice_positions=[0.2, 0.5, 0.8])
    loaded, positions = load_sample_folder(tmp_path / "with")
    assert loaded.dtype == torch.float32 and torch.equal(loaded, images)
    assert positions == [0.2, 0.5, 0.8]
    write_samples(images, tmp_path / "without", settings={})
    folder = load_sample_folder(tmp_path / "without")
    assert torch.equal(folder.images, images) and folder.positions is None


def test_load_sample_folder_errors_name_the_file(tmp_path):
    write_samples(textures(2, seed=0), tmp_path, settings={})
    (tmp_path / "sample_0001.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"sample_0001.nii.gz is listed in .*manifest.json but does not exist"):
        load_sample_folder(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["samples"] = [{"file": "sample_0000.nii.gz", "slice_position": None}]
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert load_sample_folder(tmp_path).positions is None  # null positions are unknown positions
    manifest["samples"].append({"file": "sample_0000.nii.gz", "slice_position": 0.5})
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"manifest.json records a 'slice_position' for some samples only"):
        load_sample_folder(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"samples": []}))
    with pytest.raises(ValueError, match=r"manifest.json must list the samples"):
        load_sample_folder(tmp_path)


def test_sample_labels_are_read_back_as_written(tmp_path):
    labels = torch.randint(0, 4, (3, 1, 8, 8))
    write_samples(torch.rand(3, 1, 8, 8), tmp_path / "pairs", {}, labels=labels)
    assert torch.equal(load_sample_labels(tmp_path / "pairs"), labels)
    write_samples(torch.rand(2, 1, 8, 8), tmp_path / "images", {})
    assert load_sample_labels(tmp_path / "images") is None
    (tmp_path / "pairs" / "sample_0001_label.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"sample_0001_label.nii.gz is listed in .* but does not exist"):
        load_sample_labels(tmp_path / "pairs")
