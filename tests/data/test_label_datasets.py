"""Slice datasets with labels: ``{"image", "label"}`` items that a MONAI segmentation pipeline takes as they are."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import DataLoader
from monai.losses import DiceCELoss
from monai.networks.nets import UNet

from monai_vqvae2.data import make_slice_dataset


def tissue_label(volume: np.ndarray) -> np.ndarray:
    """Classes 1..3 inside the brain by x band, 0 outside."""
    label = np.zeros(volume.shape, dtype=np.int16)
    x = np.broadcast_to(np.arange(volume.shape[0])[:, None, None], volume.shape)
    label[volume > 0] = np.digitize(x[volume > 0], [8, 12]) + 1
    return label


@pytest.fixture
def labelled_items(tmp_path, build):
    items = []
    for number in range(2):
        volume = build.known_volume(100.0 + number)
        image = build.write_analyze(tmp_path / f"s{number}" / "image.hdr", volume)
        label = build.write_analyze(tmp_path / f"s{number}" / "image_fseg.hdr", tissue_label(volume))
        items.append({"image": str(image), "label": str(label), "subject": f"s{number}"})
    return items


def test_slices_come_with_their_labels_and_train_a_monai_segmentation_network(labelled_items):
    dataset = make_slice_dataset(labelled_items, image_size=32, min_brain_fraction=0.5, labels=True)
    plain = make_slice_dataset(labelled_items, image_size=32, min_brain_fraction=0.5)
    assert len(dataset) == len(plain) == 20  # 10 full slices per volume
    for index in (0, 9, 19):
        item = dataset[index]
        assert torch.equal(item["image"], plain[index]["image"])
        assert item["label"].dtype == torch.int64 and item["label"].shape == (1, 32, 32)
        assert set(item["label"].unique().tolist()) == {0, 1, 2, 3}
        assert item["label_source"].endswith("image_fseg.hdr")
        assert "label" not in plain[index]
    batch = next(iter(DataLoader(dataset, batch_size=4)))
    network = UNet(spatial_dims=2, in_channels=1, out_channels=4, channels=(4, 8), strides=(2,), num_res_units=0)
    loss = DiceCELoss(to_onehot_y=True, softmax=True)(network(batch["image"]), batch["label"])
    loss.backward()
    assert torch.isfinite(loss) and batch["label"].shape == (4, 1, 32, 32)


def test_the_disk_cache_keeps_labelled_slices_apart_and_follows_the_label_file(labelled_items, tmp_path, build):
    cache = tmp_path / "cache"
    first = make_slice_dataset(labelled_items, image_size=32, cache="disk", cache_dir=cache, labels=True)
    plain = make_slice_dataset(labelled_items, image_size=32, cache="disk", cache_dir=cache)
    assert "label" not in plain[0] and len(list(cache.iterdir())) == 2  # one folder with labels, one without
    again = make_slice_dataset(labelled_items, image_size=32, cache="disk", cache_dir=cache, labels=True)
    assert all(torch.equal(first[i]["label"], again[i]["label"]) for i in range(len(first)))
    # a changed label file is read again, not taken from the cache
    relabelled = tissue_label(build.known_volume())
    relabelled[relabelled == 1] = 2
    build.write_analyze(tmp_path / "s0" / "image_fseg.hdr", relabelled)
    changed = make_slice_dataset(labelled_items, image_size=32, cache="disk", cache_dir=cache, labels=True)
    assert 1 not in changed[5]["label"].unique().tolist() and 1 in first[5]["label"].unique().tolist()


def test_an_item_without_its_label_is_refused_naming_it(labelled_items):
    del labelled_items[1]["label"]
    with pytest.raises(ValueError, match=r"`items\[1\]` \(.*s1/image\.hdr\) has no 'label' file, and labels=True"):
        make_slice_dataset(labelled_items, image_size=32, labels=True)
