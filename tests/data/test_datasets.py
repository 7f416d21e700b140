"""Slice datasets: one item per kept slice, volumes decoded once, memory/disk caches, DataLoader-ready."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import DataLoader

from monai_vqvae2.apps import discover_dataset, join_clinical_data
from monai_vqvae2.data import SliceDataset, make_slice_dataset
from monai_vqvae2.data import datasets as datasets_module

SLICES_PER_VOLUME = 10  # full slices of conftest.known_volume kept with min_brain_fraction=0.1


@pytest.fixture
def count_decodes(monkeypatch):
    """Count how many source files go through the transform chain."""
    calls: list[str] = []
    original = datasets_module._SourceProcessor.__call__

    def counting(self, item):
        calls.append(os.path.basename(item["image"]))
        return original(self, item)

    monkeypatch.setattr(datasets_module._SourceProcessor, "__call__", counting)
    return calls


def test_memory_dataset_items(oasis1_tree, count_decodes):
    root, _ = oasis1_tree
    items = discover_dataset(root)
    dataset = make_slice_dataset(items, image_size=32, cache="memory", min_brain_fraction=0.1)
    assert isinstance(dataset, SliceDataset)
    assert len(dataset) == 4 * SLICES_PER_VOLUME and len(count_decodes) == 4
    item = dataset[0]
    assert item["image"].shape == (1, 32, 32) and item["image"].dtype == torch.float32
    assert 0.0 <= float(item["image"].min()) and float(item["image"].max()) <= 1.0
    assert (item["subject"], item["session"], item["slice_index"]) == ("OAS1_0001", "OAS1_0001_MR1", 5)
    assert item["slice_position"] == pytest.approx(4 / 17) and item["source"] == items[0]["image"]
    assert dataset.subjects == ["OAS1_0001", "OAS1_0002", "OAS1_0042"]
    _ = [dataset[i] for i in range(len(dataset))]
    assert len(count_decodes) == 4  # epochs read the cache, never the files


def test_dataloader_shuffles_across_volumes(oasis1_tree):
    root, _ = oasis1_tree
    dataset = make_slice_dataset(discover_dataset(root), image_size=32, min_brain_fraction=0.1)
    loader = DataLoader(dataset, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(0))
    batches = list(loader)
    assert [tuple(b["image"].shape) for b in batches] == [(8, 1, 32, 32)] * 5
    assert len(set(batches[0]["session"])) > 1
    assert batches[0]["slice_position"].dtype == torch.float64 and batches[0]["slice_index"].dtype == torch.int64
    seen = sorted((s, int(i)) for b in batches for s, i in zip(b["session"], b["slice_index"]))
    assert len(seen) == len(set(seen)) == 40


def test_disk_cache_is_reused_across_runs(oasis1_tree, tmp_path, count_decodes):
    root, expected = oasis1_tree
    items = discover_dataset(root)
    cache_dir = tmp_path / "cache"
    first = make_slice_dataset(items, image_size=32, cache="disk", cache_dir=cache_dir, min_brain_fraction=0.1)
    assert len(count_decodes) == 4
    (folder,) = cache_dir.iterdir()
    assert len(list(folder.glob("*.pt"))) == 40 and (folder / "index.json").is_file()
    reference = [first[i]["image"] for i in range(len(first))]

    count_decodes.clear()
    again = make_slice_dataset(items, image_size=32, cache="disk", cache_dir=cache_dir, min_brain_fraction=0.1)
    assert count_decodes == [] and len(again) == 40
    assert all(torch.equal(again[i]["image"], reference[i]) for i in range(40))
    memory = make_slice_dataset(items, image_size=32, cache="memory", min_brain_fraction=0.1)
    assert all(torch.equal(memory[i]["image"], reference[i]) for i in range(40))

    # a changed file is decoded again, the others are not; other settings get their own cache folder
    changed = expected["OAS1_0042_MR1"]
    os.utime(changed, ns=(1, 1))
    count_decodes.clear()
    make_slice_dataset(items, image_size=32, cache="disk", cache_dir=cache_dir, min_brain_fraction=0.1)
    assert count_decodes == [changed.name]
    count_decodes.clear()
    make_slice_dataset(items, image_size=16, cache="disk", cache_dir=cache_dir, min_brain_fraction=0.1)
    assert len(count_decodes) == 4 and len(list(cache_dir.iterdir())) == 2


def test_new_metadata_does_not_invalidate_disk_cache(oasis1_tree, tmp_path, count_decodes):
    root, _ = oasis1_tree
    items = discover_dataset(root)
    make_slice_dataset(items, image_size=32, cache="disk", cache_dir=tmp_path / "c", min_brain_fraction=0.1)
    clinical = tmp_path / "clinical.csv"
    clinical.write_text("ID,Age\nOAS1_0001_MR1,74\nOAS1_0002_MR1,55\nOAS1_0002_MR2,55\nOAS1_0042_MR1,81\n")
    count_decodes.clear()
    dataset = make_slice_dataset(
        join_clinical_data(items, clinical),
        image_size=32,
        cache="disk",
        cache_dir=tmp_path / "c",
        min_brain_fraction=0.1,
    )
    assert count_decodes == []
    assert [dataset[i]["age"] for i in (0, 39)] == [74.0, 81.0]


def test_no_cache_decodes_on_access(oasis1_tree, count_decodes):
    root, _ = oasis1_tree
    items = discover_dataset(root)[:2]
    dataset = make_slice_dataset(items, image_size=32, cache=None, min_brain_fraction=0.1)
    assert len(count_decodes) == 2
    first, last = dataset[0], dataset[19]
    assert len(count_decodes) == 4 and last["session"] == "OAS1_0002_MR1"
    assert first["image"].shape == (1, 32, 32)


def test_png_slices_through_the_same_dataset(oasis1_tree, tmp_path, build):
    root, _ = oasis1_tree
    pixels = np.zeros((16, 16), np.uint8)
    pixels[4:12, 4:12] = 255
    for k in range(3):
        build.write_png(tmp_path / "png" / "keras_png_slices_train" / f"case_007_slice_{k}.nii.png", pixels)
    png_items = discover_dataset(tmp_path / "png")
    dataset = make_slice_dataset(discover_dataset(root)[:1] + png_items, image_size=32, min_brain_fraction=0.1)
    assert len(dataset) == SLICES_PER_VOLUME + 3
    png = dataset[SLICES_PER_VOLUME + 2]
    assert (png["subject"], png["split"], png["slice_index"], png["slice_position"]) == ("case_007", "train", 2, 1.0)
    assert png["image"].shape == (1, 32, 32) and float(png["image"][0, 16, 16]) == 1.0
    assert float(png["image"][0, 0, 0]) == 0.0
    assert dataset[0]["split"] == ""  # volumes get the keys only PNG items have, so that batches collate
    batch = next(iter(DataLoader(dataset, batch_size=len(dataset))))
    assert batch["image"].shape == (13, 1, 32, 32) and batch["split"][-3:] == ["train"] * 3


def test_transform_runs_on_every_access(oasis1_tree):
    root, _ = oasis1_tree
    calls = []

    def flip(item):
        calls.append(item["slice_index"])
        return dict(item, image=torch.flip(item["image"], dims=(-1,)))

    plain = make_slice_dataset(discover_dataset(root)[:1], image_size=32, min_brain_fraction=0.1)
    flipped = make_slice_dataset(discover_dataset(root)[:1], image_size=32, min_brain_fraction=0.1, transform=flip)
    assert torch.equal(flipped[3]["image"], torch.flip(plain[3]["image"], dims=(-1,)))
    flipped[3]
    assert calls == [8, 8]


def test_worker_processes_give_the_same_slices(oasis1_tree):
    root, _ = oasis1_tree
    items = discover_dataset(root)
    serial = make_slice_dataset(items, image_size=32, min_brain_fraction=0.1, num_workers=0)
    parallel = make_slice_dataset(items, image_size=32, min_brain_fraction=0.1, num_workers=2)
    assert serial.slice_items == parallel.slice_items
    assert all(torch.equal(serial[i]["image"], parallel[i]["image"]) for i in range(len(serial)))


def test_volume_without_enough_brain_warns(tmp_path, build):
    sparse = np.zeros(build.SHAPE, np.float32)
    sparse[8:11, 8:11, 5:15] = 100.0  # a thin column: brain fraction 9 / 49 per slice after the crop
    good = build.write_nifti(tmp_path / "good.nii.gz", build.known_volume())
    thin = build.write_nifti(tmp_path / "thin.nii.gz", sparse)
    with pytest.warns(UserWarning, match=r"thin.nii.gz: no axial slice has a brain fraction >= 0.2"):
        dataset = make_slice_dataset(
            [{"image": str(good)}, {"image": str(thin)}], image_size=32, min_brain_fraction=0.2
        )
    assert len(dataset) == SLICES_PER_VOLUME and dataset.subjects == ["good"]
    with (
        pytest.warns(UserWarning, match="thin.nii.gz: no axial slice"),
        pytest.raises(ValueError, match=r"no slice left: 0 of 1 source\(s\) skipped as bad input"),
    ):
        make_slice_dataset([{"image": str(thin)}], image_size=32, min_brain_fraction=0.2)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"cache": "ram"}, r"`cache` must be one of \('memory', 'disk', None\), got 'ram'"),
        ({"cache": "disk"}, r"`cache_dir` is required with cache='disk'"),
        ({"cache": "memory", "cache_dir": "x"}, r"`cache_dir` is only used with cache='disk', got cache='memory'"),
        ({"min_brain_fraction": -0.1}, r"`min_brain_fraction` must be in \[0, 1\], got -0.1"),
        ({"num_workers": -1}, r"`num_workers` must be an int >= 0, got -1"),
        ({"on_error": "ignore"}, r"`on_error` must be one of \('raise', 'skip'\), got 'ignore'"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_slice_dataset([{"image": "/nowhere.nii"}], **kwargs)


def test_bad_items():
    with pytest.raises(ValueError, match=r"`items` is empty"):
        make_slice_dataset([])
    with pytest.raises(TypeError, match=r"`items` must be a sequence of dicts .* got str"):
        make_slice_dataset("/data")
    with pytest.raises(ValueError, match=r"`items\[1\]`: .*a.nii is listed twice"):
        make_slice_dataset([{"image": "/x/a.nii"}, {"image": "/x/a.nii"}])


def test_docs_example_runs(oasis1_tree, tmp_path, monkeypatch):
    """The first Python example of bundle/docs/data.md, on a small OASIS-1 tree, so the docs cannot rot."""
    root, _ = oasis1_tree
    docs = Path(__file__).resolve().parents[2] / "bundle" / "docs" / "data.md"
    code = docs.read_text().split("```python\n", 1)[1].split("```", 1)[0]
    assert '"/data/oasis1"' in code and '"runs/split.json"' in code
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code.replace('"/data/oasis1"', repr(str(root))), str(docs), "exec"), namespace)  # noqa: S102 (running the documented example is the point)
    assert len(namespace["train"]) > 0 and (tmp_path / "runs" / "split.json").is_file()
    batch = next(iter(namespace["loader"]))
    assert batch["image"].shape[1:] == (1, 128, 128)
