"""Synthetic slice datasets (on the fly and from a bank) and mixing them with real slices."""

from __future__ import annotations

import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import DataLoader

from monai_vqvae2.data import save_split
from monai_vqvae2.synthetic import (
    MIXED_KEYS,
    MixedSliceDataset,
    SyntheticSliceDataset,
    generate_bank,
    slice_positions_of,
    training_slice_positions,
)
from tests.tiny import TINY_SHAPE, single_thread, tiny_sampler  # noqa: F401 (autouse fixture)

ROOT = Path(__file__).resolve().parents[2]
SHAPE = TINY_SHAPE
ITEM_KEYS = {"image", "subject", "session", "source", "slice_index", "slice_position", "synthetic", "index", "seed"}
REAL_POOL = [0.2] * 30 + [0.8] * 10  # a skewed distribution: mean 0.35


def invert(item: dict) -> dict:
    return {**item, "image": 1 - item["image"]}


def test_generated_items_have_the_keys_shapes_and_types_of_real_slices(sampler):
    dataset = SyntheticSliceDataset(sampler, 5, slice_positions=0.25, seed=3, batch_size=2)
    assert len(dataset) == 5 and len(dataset.batch_seeds) == 3
    item = dataset[3]
    assert set(item) == ITEM_KEYS
    assert item["image"].dtype == torch.float32 and tuple(item["image"].shape) == (1, 32, 32)
    assert 0 <= float(item["image"].min()) and float(item["image"].max()) <= 1
    assert item["subject"] == item["session"] == "synthetic" and item["source"] == "generated"
    assert item["slice_index"] == -1 and item["slice_position"] == 0.25
    assert item["synthetic"] is True and item["index"] == 3 and item["seed"] == dataset.batch_seeds[1]
    # item 3 is sample 1 of batch 1, sampled with that batch's own seed
    expected = sampler.sample(2, scalars=torch.full((2, 1), 0.25, dtype=torch.float64), seed=dataset.batch_seeds[1])
    assert torch.equal(item["image"], expected.images[1].clamp(0, 1))
    assert torch.equal(dataset[-1]["image"], dataset[4]["image"])
    with pytest.raises(IndexError, match="index 5 is out of range for 5 synthetic slices"):
        dataset[5]


def test_items_do_not_depend_on_the_reading_order_and_follow_the_seed(sampler):
    arguments = {"num_samples": 5, "slice_positions": [0.1, 0.3, 0.5, 0.7, 0.9], "seed": 11, "batch_size": 2}
    in_order = [SyntheticSliceDataset(sampler, **arguments)[i]["image"] for i in range(5)]
    shuffled = SyntheticSliceDataset(sampler, **arguments)
    for index in (4, 1, 3, 0, 2):
        assert torch.equal(shuffled[index]["image"], in_order[index])
        assert shuffled[index]["slice_position"] == arguments["slice_positions"][index]
    other_seed = SyntheticSliceDataset(sampler, **{**arguments, "seed": 12})
    assert not torch.equal(other_seed[0]["image"], in_order[0])
    assert other_seed.batch_seeds != shuffled.batch_seeds


def test_positions_are_drawn_from_the_real_distribution(sampler):
    dataset = SyntheticSliceDataset(sampler, 2000, real_positions=REAL_POOL, seed=5, batch_size=16)
    positions = dataset.slice_positions
    assert positions.shape == (2000,) and set(np.unique(positions)) == {0.2, 0.8}
    assert abs(positions.mean() - 0.35) < 0.02
    # only the distribution matters (the pool is sorted first), and the same seed gives the same draws
    reversed_pool = SyntheticSliceDataset(sampler, 2000, real_positions=REAL_POOL[::-1], seed=5, batch_size=16)
    np.testing.assert_array_equal(reversed_pool.slice_positions, positions)
    assert not np.array_equal(
        SyntheticSliceDataset(sampler, 2000, real_positions=REAL_POOL, seed=6).slice_positions, positions
    )
    assert dataset[17]["slice_position"] == positions[17]


def test_unconditioned_priors_take_no_positions_and_labels_are_kept():
    sampler = tiny_sampler(num_scalars=0, num_classes=3)
    dataset = SyntheticSliceDataset(sampler, 4, class_labels=[0, 2, 1, 2], batch_size=4)
    item = dataset[1]
    assert math.isnan(item["slice_position"]) and item["class_label"] == 2 and dataset.slice_positions is None
    with pytest.raises(ValueError, match="`slice_positions` was given but the sampler's priors are not conditioned"):
        SyntheticSliceDataset(sampler, 4, slice_positions=0.5, class_labels=0)
    with pytest.raises(ValueError, match="`real_positions` was given but the sampler's priors are not conditioned"):
        SyntheticSliceDataset(sampler, 4, real_positions=REAL_POOL, class_labels=0)
    with pytest.raises(ValueError, match=r"built with `num_classes=3`: pass `class_labels`"):
        SyntheticSliceDataset(sampler, 4)
    with pytest.raises(ValueError, match=r"`class_labels` must lie in \[0, 2\], got values in \[0, 3\]"):
        SyntheticSliceDataset(sampler, 2, class_labels=[0, 3])


@pytest.mark.parametrize(
    "arguments,error,message",
    [
        ({"num_samples": 0}, ValueError, r"`num_samples` must be a positive integer, got 0"),
        ({"num_samples": None}, ValueError, r"`num_samples` is required when generating on the fly"),
        ({"batch_size": 0}, ValueError, r"`batch_size` must be a positive integer, got 0"),
        ({"seed": -1}, ValueError, r"`seed` must be a non-negative integer, got -1"),
        ({"temperature": 0.0}, ValueError, r"`temperature` must be a positive finite number or one per level, got 0.0"),
        ({"top_k": 0}, ValueError, r"`top_k` must be None or a positive integer, got 0"),
        ({"method": "slow"}, ValueError, r"`method` must be one of \('fast', 'naive'\), got 'slow'"),
        ({"slice_positions": None}, ValueError, r"conditioned on the slice position \(`num_scalars=1`\): pass"),
        ({"real_positions": [0.5]}, ValueError, r"either `slice_positions` or `real_positions`"),
        ({"slice_positions": [0.5, 0.5]}, ValueError, r"`slice_positions` needs one float or 4 values .* got 2"),
        ({"slice_positions": 1.5}, ValueError, r"`slice_positions` holds normalised positions in \[0, 1\], got 1.5"),
        (
            {"class_labels": 1},
            ValueError,
            r"`class_labels` was given but the sampler.s priors were built with `num_classes=0`",
        ),
        ({"slice_positions": True}, TypeError, r"`slice_positions` must be a float or a sequence of floats, got True"),
        ({"real_positions": ["a"], "slice_positions": None}, TypeError, r"`real_positions` must be a float or a seq"),
    ],
)
def test_generation_errors(sampler, arguments, error, message):
    arguments = {"num_samples": 4, "slice_positions": 0.5, **arguments}
    with pytest.raises(error, match=message):
        SyntheticSliceDataset(sampler, **arguments)


def test_source_must_be_a_sampler_or_a_bank(tmp_path):
    with pytest.raises(TypeError, match="`source` must be a HierarchicalSampler or a bank folder path, got int"):
        SyntheticSliceDataset(42, 4)
    with pytest.raises(FileNotFoundError, match="no bank manifest .*manifest.json"):
        SyntheticSliceDataset(tmp_path)


def test_bank_items_equal_the_bank_files_and_the_items_generated_on_the_fly(sampler, tmp_path):
    generate_bank(sampler, tmp_path / "bank", 5, seed=3, chunk_size=2, real_positions=REAL_POOL)
    bank = SyntheticSliceDataset(tmp_path / "bank", transform=invert)
    on_the_fly = SyntheticSliceDataset(sampler, 5, real_positions=REAL_POOL, seed=3, batch_size=2, transform=invert)
    assert len(bank) == 5
    for index in range(5):
        stored, generated = bank[index], on_the_fly[index]
        assert set(stored) == ITEM_KEYS
        path = tmp_path / "bank" / f"synthetic_{index:06d}.nii.gz"
        assert stored["source"] == str(path)
        pixels = np.rot90(nib.load(path).get_fdata(dtype=np.float32)[:, :, 0], k=1)  # back to display order
        np.testing.assert_array_equal(stored["image"].numpy()[0], 1 - pixels)
        assert torch.equal(stored["image"], generated["image"])
        for key in ITEM_KEYS - {"image", "source"}:
            assert stored[key] == generated[key], key
    assert len(SyntheticSliceDataset(tmp_path / "bank", num_samples=3)) == 3
    with pytest.raises(ValueError, match=r"`num_samples` must be None or an integer in \[1, 5\] .* got 6"):
        SyntheticSliceDataset(tmp_path / "bank", num_samples=6)
    with pytest.raises(ValueError, match="`temperature` only applies to slices generated on the fly"):
        SyntheticSliceDataset(tmp_path / "bank", temperature=0.5)
    (tmp_path / "bank" / "synthetic_000004.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match="synthetic_000004.nii.gz' is listed in the manifest but missing"):
        bank[4]


def test_slice_positions_of_code_files_slice_datasets_and_items(tmp_path, real_slices):
    items = [
        {"slice_position": 0.1},
        {"slice_position": math.nan},
        {"slice_position": 0.7, "synthetic": True},
        {"slice_position": torch.tensor([0.4])},
    ]
    np.testing.assert_allclose(slice_positions_of(items), [0.1, 0.4])
    codes = tmp_path / "train.npz"
    np.savez(codes, slice_position=np.array([0.25, 0.5, np.nan], dtype=np.float32))
    np.testing.assert_array_equal(slice_positions_of(codes), [0.25, 0.5])
    from_descriptors = slice_positions_of(real_slices)
    assert len(from_descriptors) == len(real_slices) == 10
    np.testing.assert_array_equal(from_descriptors, [real_slices[i]["slice_position"] for i in range(10)])
    with pytest.raises(FileNotFoundError, match="code file .*missing.npz' does not exist"):
        slice_positions_of(tmp_path / "missing.npz")
    with pytest.raises(TypeError, match="`source` must be a code file path, .* got dict"):
        slice_positions_of({"slice_position": 0.5})
    with pytest.raises(ValueError, match="no finite 'slice_position' in list"):
        slice_positions_of([{"image": 0}])


def test_training_slice_positions_prefer_the_code_file_then_the_split(tmp_path, real_slices):
    volume = real_slices.slice_items[0]["source"]
    split_file = save_split(
        {"train": [{"image": volume, "subject": "sub01"}], "validation": [], "test": []}, tmp_path / "split.json"
    )
    from_split = training_slice_positions(tmp_path / "codes.npz", split_file, image_size=32)
    np.testing.assert_array_equal(from_split, slice_positions_of(real_slices))
    np.savez(tmp_path / "codes.npz", slice_position=np.array([0.5, 0.75], dtype=np.float32))
    np.testing.assert_array_equal(training_slice_positions(tmp_path / "codes.npz", split_file), [0.5, 0.75])
    with pytest.raises(FileNotFoundError, match="neither the code file .* nor the split file"):
        training_slice_positions(tmp_path / "none.npz", tmp_path / "none.json")


def real_items(count: int) -> list[dict]:
    return [
        {
            "image": torch.zeros(1, 2, 2),
            "subject": f"s{i}",
            "session": f"s{i}",
            "source": "f.nii",
            "slice_index": i,
            "slice_position": 0.5,
            "age": 70,
        }
        for i in range(count)
    ]


def synthetic_items(count: int) -> list[dict]:
    return [
        {
            "image": torch.ones(1, 2, 2),
            "subject": "synthetic",
            "session": "synthetic",
            "source": "generated",
            "slice_index": -1,
            "slice_position": 0.5,
            "synthetic": True,
            "index": i,
        }
        for i in range(count)
    ]


def test_mixing_makes_exactly_the_chosen_fraction_synthetic_deterministically():
    mixed = MixedSliceDataset(real_items(50), synthetic_items(20), synthetic_fraction=0.3, seed=0, length=2000)
    assert len(mixed) == 2000 and mixed.num_synthetic == 600 and int(mixed.is_synthetic.sum()) == 600
    flags = np.array([mixed[i]["synthetic"] for i in range(2000)])
    np.testing.assert_array_equal(flags, mixed.is_synthetic)
    # spread evenly: every prefix of k indices holds 0.3 k synthetic ones, give or take one
    counts = np.cumsum(flags)
    assert np.abs(counts - 0.3 * np.arange(1, 2001)).max() <= 1
    assert np.all(np.abs(flags.reshape(20, 100).mean(axis=1) - 0.3) <= 0.03)  # any batch of 100 in order
    again = MixedSliceDataset(real_items(50), synthetic_items(20), synthetic_fraction=0.3, seed=0, length=2000)
    np.testing.assert_array_equal(again.is_synthetic, mixed.is_synthetic)
    other = MixedSliceDataset(real_items(50), synthetic_items(20), synthetic_fraction=0.3, seed=1, length=2000)
    assert not np.array_equal(other.is_synthetic, mixed.is_synthetic)
    # real and synthetic items are read in turn, cycling
    real_indices = [mixed.source_of(i)[1] for i in np.flatnonzero(~mixed.is_synthetic)]
    assert real_indices == [k % 50 for k in range(1400)]


def test_default_length_uses_every_real_item_once_and_epochs_move_through_the_synthetic_pool():
    real, synthetic = real_items(70), synthetic_items(100)
    mixed = MixedSliceDataset(real, synthetic, synthetic_fraction=0.3, seed=4)
    assert len(mixed) == 100 and mixed.num_synthetic == 30  # 70 real + round(70 * 0.3 / 0.7)
    sources = [mixed.source_of(i) for i in range(100)]
    assert sorted(index for synthetic, index in sources if not synthetic) == list(range(70))
    assert sorted(index for synthetic, index in sources if synthetic) == list(range(30))
    mixed.set_epoch(3)  # synthetic items 90..99, then 0..19, in index order
    in_order = [mixed.source_of(i)[1] for i in np.flatnonzero(mixed.is_synthetic)]
    assert in_order == [*range(90, 100), *range(20)]
    assert MixedSliceDataset(real, synthetic, synthetic_fraction=0.0).num_synthetic == 0


def test_mixed_items_keep_the_shared_keys_and_mark_real_items():
    mixed = MixedSliceDataset(real_items(3), synthetic_items(3), synthetic_fraction=0.5, seed=0)
    for index in range(len(mixed)):
        item = mixed[index]
        assert set(item) == set(MIXED_KEYS)
        assert item["synthetic"] is bool(mixed.is_synthetic[index])
    everything = MixedSliceDataset(real_items(3), synthetic_items(3), 0.5, keys=None)
    real_index = int(np.flatnonzero(~everything.is_synthetic)[0])
    assert everything[real_index]["age"] == 70 and everything[real_index]["synthetic"] is False
    narrow = MixedSliceDataset(real_items(3), synthetic_items(3), 0.5, keys=["image", "age"])
    synthetic_index = int(np.flatnonzero(narrow.is_synthetic)[0])
    with pytest.raises(ValueError, match=r"synthetic item \d has no 'age'; pass `keys` that every item has"):
        narrow[synthetic_index]


@pytest.mark.parametrize(
    "arguments,error,message",
    [
        ({"synthetic_fraction": 1.0}, ValueError, r"`synthetic_fraction` must be in \[0, 1\), got 1.0"),
        ({"synthetic_fraction": -0.1}, ValueError, r"`synthetic_fraction` must be in \[0, 1\), got -0.1"),
        ({"synthetic_fraction": "0.3"}, TypeError, r"`synthetic_fraction` must be a number in \[0, 1\), got '0.3'"),
        ({"real": []}, ValueError, r"`real` is empty"),
        ({"synthetic": []}, ValueError, r"`synthetic` is empty but `synthetic_fraction` is 0.3"),
        ({"length": 0}, ValueError, r"`length` must be a positive integer, got 0"),
        ({"seed": -2}, ValueError, r"`seed` must be a non-negative integer, got -2"),
        ({"keys": "image"}, ValueError, r"`keys` must be None or a sequence of key names, got 'image'"),
    ],
)
def test_mixing_errors(arguments, error, message):
    arguments = {"real": real_items(4), "synthetic": synthetic_items(4), "synthetic_fraction": 0.3, **arguments}
    with pytest.raises(error, match=message):
        MixedSliceDataset(**arguments)


def test_monai_dataloader_collates_mixed_batches_in_worker_processes(sampler, real_slices):
    synthetic = SyntheticSliceDataset(sampler, 4, real_positions=slice_positions_of(real_slices), seed=2, batch_size=4)
    mixed = MixedSliceDataset(real_slices, synthetic, synthetic_fraction=0.25, seed=1, transform=invert)
    assert len(mixed) == 13 and mixed.num_synthetic == 3  # 10 real + round(10 / 3)
    batches = list(DataLoader(mixed, batch_size=5, shuffle=False, num_workers=2))
    assert [tuple(batch["image"].shape) for batch in batches] == [(5, 1, 32, 32), (5, 1, 32, 32), (3, 1, 32, 32)]
    flags = torch.cat([batch["synthetic"] for batch in batches]).numpy()
    np.testing.assert_array_equal(flags, mixed.is_synthetic)  # MONAI's per-worker reseeding leaves the plan alone
    images = torch.cat([batch["image"] for batch in batches])
    positions = torch.cat([batch["slice_position"] for batch in batches])
    for index in range(13):
        is_synthetic, source_index = mixed.source_of(index)
        expected = (synthetic if is_synthetic else real_slices)[source_index]
        assert torch.equal(images[index], 1 - expected["image"])
        assert positions[index].item() == expected["slice_position"]
    assert set(batches[0]) == set(MIXED_KEYS)


def test_docs_example_runs(sampler, real_slices, tmp_path, monkeypatch, capsys):
    """The Python example of bundle/docs/synthetic.md, with a tiny sampler and ten real slices."""
    docs = ROOT / "bundle" / "docs" / "synthetic.md"
    code = docs.read_text().split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"sampler": sampler, "train": real_slices}
    exec(compile(code, str(docs), "exec"), namespace)  # noqa: S102 (running the documented example is the point)
    assert capsys.readouterr().out.strip() == "(1, 32, 32) 14 4"
    assert len(list((tmp_path / "runs" / "oasis1" / "bank").glob("synthetic_*.nii.gz"))) == 64
