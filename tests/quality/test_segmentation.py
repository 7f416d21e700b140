"""The reference segmenter (a MONAI UNet trained on real pairs only) and the class Dice it is scored with."""

from __future__ import annotations

import pytest
import torch

from monai_vqvae2.metrics import class_dice
from monai_vqvae2.quality.segmentation import (
    label_agreement,
    reference_segmenter,
    segment,
    tissue_segmenter,
    train_segmenter,
)
from tests.tiny import single_thread  # noqa: F401 (autouse fixture)


def test_class_dice_per_item_and_foreground_class():
    target = torch.zeros(2, 1, 4, 4, dtype=torch.long)
    target[:, 0, :2] = 1  # 8 pixels of class 1 in both items
    prediction = target.clone()
    prediction[1, 0, 0] = 2  # item 1: 4 of its class-1 pixels called class 2
    dice = class_dice(prediction, target, num_classes=3)
    # item 0: class 1 exact, class 2 absent from both; item 1: class 1 2*4/(4+8), class 2 only predicted
    torch.testing.assert_close(dice, torch.tensor([[1.0, 1.0], [8 / 12, 0.0]]))
    with pytest.raises(ValueError, match=r"`prediction` \(2, 1, 4, 4\) and `target` \(2, 1, 4, 2\) differ"):
        class_dice(prediction, target[..., :2], 3)


def test_the_segmenter_learns_intensity_bands_and_segments_new_images():
    generator = torch.Generator().manual_seed(0)
    items = []
    for _ in range(16):
        label = torch.randint(0, 4, (1, 4, 4), generator=generator).repeat_interleave(8, 1).repeat_interleave(8, 2)
        items.append({"image": label.float() / 3 + 0.02 * torch.randn(1, 32, 32, generator=generator), "label": label})
    network = train_segmenter(tissue_segmenter(4), items, steps=120, batch_size=8, learning_rate=3e-3)
    assert not network.training
    images = torch.stack([item["image"] for item in items])
    labels = torch.stack([item["label"] for item in items])
    predicted = segment(network, images, batch_size=5)
    assert predicted.shape == (16, 1, 32, 32) and predicted.dtype == torch.long
    assert class_dice(predicted, labels, 4).mean() > 0.9


def test_train_segmenter_refuses_bad_budgets_and_empty_data():
    with pytest.raises(ValueError, match=r"`steps` must be a positive integer"):
        train_segmenter(tissue_segmenter(), [{"image": torch.zeros(1, 8, 8), "label": torch.zeros(1, 8, 8)}], 0)
    with pytest.raises(ValueError, match=r"`dataset` holds no item to train the segmenter on"):
        train_segmenter(tissue_segmenter(), [], 5)


def test_the_reference_segmenter_is_trained_once_and_again_when_its_settings_change(tmp_path):
    items = [{"image": torch.rand(1, 16, 16), "label": torch.randint(0, 4, (1, 16, 16))} for _ in range(4)]
    checkpoint = tmp_path / "models" / "segmenter.pt"
    first = reference_segmenter(items, checkpoint, steps=2, batch_size=2)
    stamp = checkpoint.stat().st_mtime_ns
    again = reference_segmenter(items, checkpoint, steps=2, batch_size=2)
    assert checkpoint.stat().st_mtime_ns == stamp and not again.training
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    assert torch.load(checkpoint, weights_only=True)["settings"]["num_items"] == 4
    reference_segmenter(items, checkpoint, steps=3, batch_size=2)  # other settings: trained again
    assert torch.load(checkpoint, weights_only=True)["settings"]["steps"] == 3


def test_label_agreement_is_perfect_for_the_segmenters_own_labels_and_names_the_classes():
    network = tissue_segmenter(4)
    images = torch.rand(3, 1, 16, 16)
    own = segment(network, images)
    agreement = label_agreement(network, images, own)
    assert agreement["per_class"] == {"CSF": 1.0, "grey matter": 1.0, "white matter": 1.0}
    assert agreement["mean"] == 1.0 and torch.equal(agreement["segmented"], own)
