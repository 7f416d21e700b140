"""Resumable banks of synthetic slices: files, manifest, resumption after interruption, settings checks."""

from __future__ import annotations

import csv
import hashlib
import json
from importlib import metadata
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from monai_vqvae2.data.codes import file_digest
from monai_vqvae2.inferers import HierarchicalSampler
from monai_vqvae2.networks import VQVAE2, PixelCNNPrior
from monai_vqvae2.synthetic import SyntheticSliceDataset, generate_bank, load_bank_manifest, model_digest
from tests.tiny import TINY_SHAPE, single_thread, tiny_sampler  # noqa: F401 (autouse fixture)

SHAPE = TINY_SHAPE
REAL_POOL = [0.2, 0.4, 0.4, 0.9]


class CountingSampler:
    """Counts ``sample`` calls of a sampler and fails the call numbered ``fail_at`` (simulating a killed run)."""

    def __init__(self, sampler: HierarchicalSampler, monkeypatch, fail_at: int | None = None) -> None:
        self.calls: list[int] = []
        original = sampler.sample

        def sample(num_samples, *args, **kwargs):
            self.calls.append(num_samples)
            if fail_at is not None and len(self.calls) == fail_at:
                raise KeyboardInterrupt("killed")
            return original(num_samples, *args, **kwargs)

        monkeypatch.setattr(sampler, "sample", sample)


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_bank_files_and_manifest(sampler, tmp_path):
    checkpoint = tmp_path / "prior.pt"
    torch.save(sampler.priors[0].state_dict(), checkpoint)
    bank = tmp_path / "bank"
    manifest_path = generate_bank(
        sampler, bank, 5, seed=2, chunk_size=2, real_positions=REAL_POOL, temperature=0.9, checkpoints=[checkpoint]
    )
    assert manifest_path == bank / "manifest.json"
    assert sorted(p.name for p in bank.iterdir()) == [
        "grid_0000.png",
        "grid_0001.png",
        "grid_0002.png",
        "manifest.csv",
        "manifest.json",
        *(f"synthetic_{i:06d}.nii.gz" for i in range(5)),
    ]
    manifest = json.loads(manifest_path.read_text())
    assert manifest == load_bank_manifest(bank)
    settings = manifest["settings"]
    assert settings["seed"] == 2 and settings["chunk_size"] == 2 and settings["temperature"] == 0.9
    assert settings["top_k"] is None and settings["method"] == "fast" and settings["spatial_shape"] == [32, 32]
    assert settings["dtype"] == "torch.float64" and settings["device"] == "cpu" and settings["spacing"] == 1.0
    pool = np.sort(np.array(REAL_POOL, dtype="<f8"))
    assert settings["slice_positions"] == {
        "mode": "real",
        "count": 4,
        "sha256": hashlib.sha256(pool.tobytes()).hexdigest(),
    }
    assert settings["class_labels"] == {"mode": "none"} and settings["model_sha256"] == model_digest(sampler)
    assert settings["label_maps"] is False
    assert manifest["checkpoints"] == [{"path": str(checkpoint), "sha256": file_digest(checkpoint)}]
    assert settings["checkpoints_sha256"] == [file_digest(checkpoint)]
    assert manifest["versions"]["torch"] == metadata.version("torch")
    assert manifest["num_samples"] == 5 and manifest["complete"] is True
    # the chunk seeds and positions are those of the on-the-fly dataset with batch_size=chunk_size
    reference = SyntheticSliceDataset(sampler, 5, real_positions=REAL_POOL, seed=2, batch_size=2, temperature=0.9)
    seeds = reference.batch_seeds
    assert manifest["chunks"] == [
        {"chunk": 0, "seed": seeds[0], "first": 0, "count": 2, "grid": "grid_0000.png"},
        {"chunk": 1, "seed": seeds[1], "first": 2, "count": 2, "grid": "grid_0001.png"},
        {"chunk": 2, "seed": seeds[2], "first": 4, "count": 1, "grid": "grid_0002.png"},
    ]
    rows = list(csv.DictReader((bank / "manifest.csv").open()))
    assert len(rows) == len(manifest["samples"]) == 5
    for index, (entry, row) in enumerate(zip(manifest["samples"], rows)):
        path = bank / f"synthetic_{index:06d}.nii.gz"
        assert entry == {
            "index": index,
            "file": path.name,
            "chunk": index // 2,
            "chunk_seed": seeds[index // 2],
            "slice_position": reference.slice_positions[index],
            "class_label": None,
            "label_file": None,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "label_sha256": None,
        }
        assert entry["slice_position"] in REAL_POOL
        assert row == {key: "" if value is None else str(value) for key, value in entry.items()}
        image = nib.load(path)
        assert image.shape == (32, 32, 1) and image.get_data_dtype() == np.float32
        np.testing.assert_allclose(image.affine[:3, 3], [-15.5, -15.5, 0.0])
        pixels = np.rot90(image.get_fdata(dtype=np.float32)[:, :, 0], k=1)
        np.testing.assert_array_equal(pixels, reference[index]["image"].numpy()[0])
    # chunk 1 is what the sampler gives for that chunk's seed and positions
    chunk = sampler.sample(
        2, temperature=0.9, scalars=torch.tensor(reference.slice_positions[2:4])[:, None], seed=seeds[1]
    )
    np.testing.assert_array_equal(SyntheticSliceDataset(bank)[3]["image"].numpy(), chunk.images[1].clamp(0, 1).numpy())
    assert Image.open(bank / "grid_0001.png").size == (64, 32) and Image.open(bank / "grid_0002.png").size == (32, 32)


def test_resume_after_a_killed_run_gives_the_uninterrupted_bank(sampler, tmp_path, monkeypatch):
    arguments = {"num_samples": 8, "seed": 1, "chunk_size": 3, "slice_positions": 0.5}
    straight = tmp_path / "straight"
    generate_bank(sampler, straight, **arguments)

    interrupted = tmp_path / "interrupted"
    with monkeypatch.context() as patch:
        CountingSampler(sampler, patch, fail_at=2)
        with pytest.raises(KeyboardInterrupt):
            generate_bank(sampler, interrupted, **arguments)
    manifest = load_bank_manifest(interrupted)
    assert manifest["complete"] is False and [c["chunk"] for c in manifest["chunks"]] == [0]
    assert len(manifest["samples"]) == 3
    # what a SIGKILL in the middle of chunk 1 leaves behind, and a file that is not the bank's
    (interrupted / "synthetic_000003.nii.gz").write_bytes(b"half a slice")
    (interrupted / ".synthetic_000004.nii.gz.x1y2z3.tmp").write_bytes(b"partial")
    (interrupted / ".manifest.json.a1b2c3.tmp").write_bytes(b"{")
    (interrupted / "notes.txt").write_text("mine")

    counter = CountingSampler(sampler, monkeypatch)
    generate_bank(sampler, interrupted, **arguments)
    assert counter.calls == [3, 2]  # chunks 1 and 2 only: chunk 0 is not generated again
    resumed = folder_bytes(interrupted)
    assert resumed.pop("notes.txt") == b"mine"
    assert resumed == folder_bytes(straight)  # every file byte for byte, manifests included

    generate_bank(sampler, interrupted, **arguments)  # a complete bank: nothing to do
    assert counter.calls == [3, 2]


def test_a_larger_num_samples_extends_the_bank_and_regenerates_only_a_short_last_chunk(sampler, tmp_path, monkeypatch):
    straight = tmp_path / "straight"
    generate_bank(sampler, straight, 8, chunk_size=3, slice_positions=[i / 10 for i in range(8)])
    grown = tmp_path / "grown"
    generate_bank(sampler, grown, 4, chunk_size=3, slice_positions=[i / 10 for i in range(4)])
    first_chunk = (grown / "synthetic_000000.nii.gz").stat().st_mtime_ns
    counter = CountingSampler(sampler, monkeypatch)
    generate_bank(sampler, grown, 8, chunk_size=3, slice_positions=[i / 10 for i in range(8)])
    assert counter.calls == [3, 2]  # chunk 1 (1 slice before) again at full size, then chunk 2
    assert (grown / "synthetic_000000.nii.gz").stat().st_mtime_ns == first_chunk
    assert folder_bytes(grown) == folder_bytes(straight)


def test_a_damaged_bank_is_repaired_from_the_first_missing_file(sampler, tmp_path, monkeypatch):
    bank = tmp_path / "bank"
    generate_bank(sampler, bank, 6, chunk_size=2, slice_positions=0.3)
    reference = folder_bytes(bank)
    (bank / "synthetic_000003.nii.gz").unlink()
    counter = CountingSampler(sampler, monkeypatch)
    generate_bank(sampler, bank, 6, chunk_size=2, slice_positions=0.3)
    assert counter.calls == [2, 2]  # chunks 1 and 2
    assert folder_bytes(bank) == reference


def test_other_settings_raise_unless_overwrite(sampler, tmp_path):
    bank = tmp_path / "bank"
    generate_bank(sampler, bank, 4, chunk_size=2, slice_positions=[0.1, 0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match=r"generated with other settings \(temperature: 1.0 -> 0.5\); pass `overwrite"):
        generate_bank(sampler, bank, 4, chunk_size=2, slice_positions=[0.1, 0.2, 0.3, 0.4], temperature=0.5)
    with pytest.raises(ValueError, match=r"other settings \(model_sha256: '[0-9a-f]{64}' -> '[0-9a-f]{64}'\)"):
        generate_bank(tiny_sampler(seed=1), bank, 4, chunk_size=2, slice_positions=[0.1, 0.2, 0.3, 0.4])
    with pytest.raises(ValueError, match=r"other settings \(slice_positions: \{'mode': 'per_sample'\} -> "):
        generate_bank(sampler, bank, 4, chunk_size=2, slice_positions=0.5)
    with pytest.raises(ValueError, match=r"sample 1 of the bank in .* generated with slice_position: 0.2 -> 0.7"):
        generate_bank(sampler, bank, 4, chunk_size=2, slice_positions=[0.1, 0.7, 0.3, 0.4])
    with pytest.raises(ValueError, match=r"already holds 4 samples, more than `num_samples=3`"):
        generate_bank(sampler, bank, 3, chunk_size=2, slice_positions=[0.1, 0.2, 0.3])
    generate_bank(sampler, bank, 3, chunk_size=2, slice_positions=0.5, temperature=0.5, overwrite=True)
    manifest = load_bank_manifest(bank)
    assert manifest["settings"]["temperature"] == 0.5 and len(manifest["samples"]) == 3
    assert sorted(p.name for p in bank.glob("synthetic_*")) == [f"synthetic_{i:06d}.nii.gz" for i in range(3)]
    # one temperature per level is recorded as given, and a rerun with it continues the bank
    generate_bank(sampler, bank, 3, chunk_size=2, slice_positions=0.5, temperature=(0.8, 0.5), overwrite=True)
    assert load_bank_manifest(bank)["settings"]["temperature"] == [0.8, 0.5]
    generate_bank(sampler, bank, 4, chunk_size=2, slice_positions=0.5, temperature=[0.8, 0.5])
    with pytest.raises(ValueError, match=r"other settings \(temperature: \[0.8, 0.5\] -> 0.8\)"):
        generate_bank(sampler, bank, 4, chunk_size=2, slice_positions=0.5, temperature=0.8)


def test_class_labels_are_recorded_and_read_back(tmp_path):
    sampler = tiny_sampler(num_scalars=0, num_classes=2)
    bank = tmp_path / "bank"
    generate_bank(sampler, bank, 3, chunk_size=2, class_labels=[1, 0, 1])
    manifest = load_bank_manifest(bank)
    assert manifest["settings"]["class_labels"] == {"mode": "per_sample"}
    assert manifest["settings"]["slice_positions"] == {"mode": "none"}
    assert [(e["class_label"], e["slice_position"]) for e in manifest["samples"]] == [(1, None), (0, None), (1, None)]
    items = SyntheticSliceDataset(bank)
    assert [items[i]["class_label"] for i in range(3)] == [1, 0, 1] and np.isnan(items[0]["slice_position"])
    assert "label" not in items[0]  # the VQ-VAE-2 has no label decoder: no tissue label maps


def test_a_format_1_bank_is_read_with_its_class_labels_renamed(tmp_path):
    sampler = tiny_sampler(num_scalars=0, num_classes=2)
    bank = tmp_path / "bank"
    generate_bank(sampler, bank, 2, chunk_size=2, class_labels=[1, 0])
    manifest = json.loads((bank / "manifest.json").read_text())
    manifest["format"] = 1
    manifest["settings"]["labels"] = manifest["settings"].pop("class_labels")
    for entry in manifest["samples"]:
        entry["label"] = entry.pop("class_label")
    (bank / "manifest.json").write_text(json.dumps(manifest))
    assert load_bank_manifest(bank)["settings"]["class_labels"] == {"mode": "per_sample"}
    assert [SyntheticSliceDataset(bank)[i]["class_label"] for i in range(2)] == [1, 0]


def test_model_digest_follows_the_weights_not_the_sampling(sampler):
    before = model_digest(sampler)
    sampler.sample(1, scalars=0.5)
    assert model_digest(sampler) == before == model_digest(tiny_sampler())
    other = tiny_sampler()
    with torch.no_grad():
        next(other.priors[1].parameters()).view(-1)[0] += 1e-3
    assert model_digest(other) != before


@pytest.mark.parametrize(
    "arguments,error,message",
    [
        ({"num_samples": 0}, ValueError, r"`num_samples` must be a positive integer, got 0"),
        ({"chunk_size": 0}, ValueError, r"`chunk_size` must be a positive integer, got 0"),
        ({"batch_size": 0}, ValueError, r"`batch_size` must be a positive integer, got 0"),
        ({"seed": 1.5}, ValueError, r"`seed` must be a non-negative integer, got 1.5"),
        ({"spacing": 0}, ValueError, r"`spacing` must be a positive finite number, got 0"),
        ({"top_k": -1}, ValueError, r"`top_k` must be None or a positive integer, got -1"),
        ({"slice_positions": None}, ValueError, r"pass `slice_positions` \(one float, or one per sample\)"),
        (
            {"slice_positions": None, "real_positions": []},
            ValueError,
            r"`real_positions` must be a non-empty 1-D sequence of floats",
        ),
        ({"real_positions": [0.5]}, ValueError, r"Pass either `slice_positions` or `real_positions`"),
        ({"sampler": "bank"}, TypeError, r"`sampler` must be a HierarchicalSampler, got str"),
    ],
)
def test_bank_errors(sampler, tmp_path, arguments, error, message):
    arguments = {"sampler": sampler, "output_dir": tmp_path, "num_samples": 2, "slice_positions": 0.5, **arguments}
    with pytest.raises(error, match=message):
        generate_bank(**arguments)
    assert not (tmp_path / "manifest.json").exists()


def test_bad_manifests(tmp_path):
    with pytest.raises(FileNotFoundError, match="no bank manifest"):
        load_bank_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{")
    with pytest.raises(ValueError, match="is not valid JSON"):
        load_bank_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"settings": {}, "samples": []}))
    with pytest.raises(ValueError, match=r"is not a bank manifest of format 2 \(found format None\)"):
        load_bank_manifest(tmp_path)


def test_a_bank_of_volumes_is_refused(tmp_path):
    vqvae = VQVAE2(3, 1, 1, channels=8, num_res_layers=1, num_res_channels=4, num_embeddings=4, embedding_dim=4)
    priors = [PixelCNNPrior(3, 4, channels=8, num_layers=1, kernel_size=3)]
    priors.append(PixelCNNPrior(3, 4, channels=8, num_layers=1, kernel_size=3, condition_num_embeddings=4))
    volumes = HierarchicalSampler(vqvae, priors, (16, 16, 16))
    with pytest.raises(ValueError, match=r"generates volumes of shape \(16, 16, 16\); synthetic banks and datasets"):
        generate_bank(volumes, tmp_path, 2)
    assert not list(tmp_path.iterdir())
