"""The reference segmenter (a MONAI UNet trained on real pairs only) and the class Dice it is scored with."""

from __future__ import annotations

import pytest
import torch

from monai_vqvae2.metrics import class_dice
from monai_vqvae2.quality.segmentation import segment, tissue_segmenter, train_segmenter
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
