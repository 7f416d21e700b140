"""A tissue segmenter trained on real slices only, and the Dice it measures: how well a label map agrees with an image.

A generated label is only useful if it is the label *of the generated image*. A segmentation network that has seen
real pairs alone is an independent reader of the generated image; the Dice between its segmentation and the
generated label measures their agreement, and the same Dice on held-out real pairs is the value to compare with (the
segmenter's own error on real brains).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from ignite.engine import Events
from monai.data import DataLoader
from monai.engines import SupervisedTrainer
from monai.losses import DiceCELoss
from monai.networks.nets import UNet
from monai.utils import set_determinism

from monai_vqvae2.quality.measures import positive_int

__all__ = ["segment", "tissue_segmenter", "train_segmenter"]


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
