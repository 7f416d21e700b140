"""A tissue segmenter trained on real slices only, and the Dice it measures: how well a label map agrees with an image.

A generated label is only useful if it is the label *of the generated image*. A segmentation network that has seen
real pairs alone is an independent reader of the generated image; the Dice between its segmentation and the
generated label measures their agreement, and the same Dice on held-out real pairs is the value to compare with (the
segmenter's own error on real brains).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Events
from monai.data import DataLoader
from monai.engines import SupervisedTrainer
from monai.losses import DiceCELoss
from monai.networks.nets import UNet
from monai.utils import set_determinism

from monai_vqvae2.io import atomic_write
from monai_vqvae2.metrics import class_dice
from monai_vqvae2.quality.measures import positive_int
from monai_vqvae2.transforms import TISSUE_CLASSES

__all__ = ["label_agreement", "reference_segmenter", "segment", "tissue_segmenter", "train_segmenter"]


def tissue_segmenter(num_classes: int = 4, spatial_dims: int = 2) -> UNet:
    """The reference segmenter: a small MONAI ``UNet`` (16–128 channels, three stride-2 stages, two residual units).

    Args:
        num_classes: label classes, background included.
        spatial_dims: 2 for slices.

    Returns:
        the untrained network, logits ``(B, num_classes, *spatial)``.
    """
    return UNet(
        spatial_dims=spatial_dims,
        in_channels=1,
        out_channels=num_classes,
        channels=(16, 32, 64, 128),
        strides=(2, 2, 2),
        num_res_units=2,
    )


def train_segmenter(
    network: torch.nn.Module,
    dataset: Any,
    steps: int,
    batch_size: int = 16,
    learning_rate: float = 1e-3,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> torch.nn.Module:
    """Train ``network`` on ``{"image", "label"}`` items for ``steps`` steps with MONAI's ``SupervisedTrainer`` and
    ``DiceCELoss`` (Adam, seeded shuffling).

    Args:
        network: e.g. :func:`tissue_segmenter`.
        dataset: items with ``"image"`` ``(1, H, W)`` and ``"label"`` ``(1, H, W)`` class indices.
        steps: optimisation steps (the last epoch is cut short to end exactly there).
        batch_size: items per step.
        learning_rate: Adam's learning rate.
        seed: seed of the shuffling and of MONAI's determinism.
        device: where to train.

    Returns:
        ``network``, trained, in evaluation mode.

    Raises:
        ValueError: ``steps`` or ``batch_size`` not a positive integer, or an empty dataset.
    """
    steps, batch_size = positive_int(steps, "steps"), positive_int(batch_size, "batch_size")
    if len(dataset) == 0:
        raise ValueError("`dataset` holds no item to train the segmenter on.")
    set_determinism(seed=seed)
    loader = DataLoader(
        dataset,
        batch_size=min(batch_size, len(dataset)),
        shuffle=True,
        drop_last=True,
        generator=torch.Generator().manual_seed(seed),
    )
    network = network.to(device)
    trainer = SupervisedTrainer(
        device=torch.device(device),
        max_epochs=math.ceil(steps / len(loader)),
        train_data_loader=loader,
        network=network,
        optimizer=torch.optim.Adam(network.parameters(), lr=learning_rate),
        loss_function=DiceCELoss(to_onehot_y=True, softmax=True),
        decollate=False,
    )
    trainer.add_event_handler(Events.ITERATION_COMPLETED(once=steps), lambda engine: engine.terminate())
    trainer.run()
    set_determinism(seed=None)
    return network.eval()


@torch.no_grad()
def segment(network: torch.nn.Module, images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Class maps ``(B, 1, *spatial)`` (long) of ``images`` ``(B, 1, *spatial)``, by the argmax of ``network``."""
    network.eval()
    device = next(network.parameters()).device
    parts = [network(chunk.to(device)).argmax(dim=1, keepdim=True).cpu() for chunk in images.split(batch_size)]
    return torch.cat(parts)


def reference_segmenter(
    dataset: Any,
    checkpoint: str | os.PathLike,
    steps: int = 1000,
    batch_size: int = 16,
    learning_rate: float = 1e-3,
    seed: int = 0,
    num_classes: int = len(TISSUE_CLASSES),
    device: str | torch.device = "cpu",
) -> torch.nn.Module:
    """The :func:`tissue_segmenter` trained on the real pairs of ``dataset`` (:func:`train_segmenter`), trained once:
    the weights and settings are saved to ``checkpoint`` (atomically) and loaded from there while the settings (and
    the number of training items) stay the same.

    Args:
        dataset: real ``{"image", "label"}`` items, e.g. the training slices made with ``labels=True``.
        checkpoint: file of the trained segmenter, e.g. ``models/segmenter.pt`` of a run (never in a data folder).
        steps: training steps.
        batch_size: items per step.
        learning_rate: Adam's learning rate.
        seed: seed of the weights and the shuffling.
        num_classes: label classes, background included.
        device: where it trains and runs.

    Returns:
        the segmenter, in evaluation mode, on ``device``.
    """
    settings = {
        "steps": positive_int(steps, "steps"),
        "batch_size": positive_int(batch_size, "batch_size"),
        "learning_rate": float(learning_rate),
        "seed": int(seed),
        "num_classes": positive_int(num_classes, "num_classes"),
        "num_items": len(dataset),
    }
    checkpoint = Path(checkpoint)
    torch.manual_seed(seed)
    network = tissue_segmenter(num_classes)
    if checkpoint.is_file():
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
        if saved.get("settings") == settings:
            network.load_state_dict(saved["state_dict"])
            return network.to(device).eval()
    train_segmenter(network, dataset, steps, batch_size, learning_rate, seed, device)
    state = {"settings": settings, "state_dict": {k: v.cpu() for k, v in network.state_dict().items()}}
    atomic_write(checkpoint, lambda temporary: torch.save(state, temporary))
    return network.eval()


def label_agreement(
    segmenter: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    class_names: Sequence[str] = TISSUE_CLASSES[1:],
    batch_size: int = 64,
) -> dict[str, Any]:
    """How well label maps agree with their images: the Dice (:func:`~monai_vqvae2.metrics.class_dice`) between
    ``labels`` and the segmenter's segmentation of ``images``, per foreground class.

    Args:
        segmenter: a segmenter trained on real pairs only (:func:`reference_segmenter`).
        images: ``(N, 1, H, W)`` in [0, 1].
        labels: ``(N, 1, H, W)`` class maps aligned with ``images``.
        class_names: names of the foreground classes 1, 2, ...
        batch_size: images segmented at once.

    Returns:
        ``{"per_class": {name: mean Dice}, "mean": mean over slices and classes, "per_slice": {"min", "median",
        "max"}}`` of the per-slice mean Dice, and ``"segmented"``: the segmentation ``(N, 1, H, W)``, for figures.
    """
    segmented = segment(segmenter, images, batch_size)
    dice = class_dice(segmented, labels.to(segmented.device).long(), len(class_names) + 1).double()
    per_slice = dice.mean(dim=1)
    return {
        "per_class": {name: float(dice[:, column].mean()) for column, name in enumerate(class_names)},
        "mean": float(per_slice.mean()),
        "per_slice": {
            "min": float(per_slice.min()),
            "median": float(per_slice.median()),
            "max": float(per_slice.max()),
        },
        "segmented": segmented,
    }
