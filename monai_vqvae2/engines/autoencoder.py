"""MONAI engines for the VQ-VAE-2 stage: the stock ``SupervisedTrainer`` / ``SupervisedEvaluator`` iterations, with
two event handlers that adapt the ``(reconstruction, quantization_loss)`` output of the network."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from monai.engines import SupervisedEvaluator, SupervisedTrainer
from monai.engines.utils import IterationEvents, PrepareBatch
from monai.utils import CommonKeys
from torch.utils.data import DataLoader

from monai_vqvae2.losses import ReconstructionLoss

__all__ = [
    "QUANTIZATION_LOSS",
    "RECONSTRUCTION_LOSS",
    "ReconstructionBatch",
    "VQVAE2Evaluator",
    "VQVAE2Trainer",
    "loss_terms",
    "unpack_network_output",
]

QUANTIZATION_LOSS = "quantization_loss"
RECONSTRUCTION_LOSS = "reconstruction_loss"


class ReconstructionBatch(PrepareBatch):
    """``prepare_batch`` of an autoencoder: the image is both the network input and the target. With ``label_key``,
    the batch's label maps also reach the network as ``network(images, labels=...)`` (a
    :class:`~monai_vqvae2.networks.VQVAE2` with a label decoder learns them in training).

    Args:
        image_key: key of the images in the batch dict.
        label_key: key of the class maps ``(B, 1, *spatial)`` in the batch dict, or ``None`` for images alone.
    """

    def __init__(self, image_key: str = CommonKeys.IMAGE, label_key: str | None = None) -> None:
        self.image_key = str(image_key)
        self.label_key = None if label_key is None else str(label_key)

    def __call__(
        self,
        batchdata: dict[str, torch.Tensor],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor] | tuple[torch.Tensor, torch.Tensor, tuple, dict[str, torch.Tensor]]:
        keys = [self.image_key] + ([self.label_key] if self.label_key is not None else [])
        if not isinstance(batchdata, dict) or any(key not in batchdata for key in keys):
            found = list(batchdata) if isinstance(batchdata, dict) else type(batchdata).__name__
            raise ValueError(f"Expected a batch dict with key(s) {keys}, got {found}.")
        images = batchdata[self.image_key].to(device=device, non_blocking=non_blocking, **kwargs)
        if self.label_key is None:
            return images, images
        labels = batchdata[self.label_key].to(device=device, non_blocking=non_blocking, **kwargs)
        return images, images, (), {"labels": labels}


def unpack_network_output(engine: SupervisedTrainer | SupervisedEvaluator) -> None:
    """``FORWARD_COMPLETED`` handler: split ``(reconstruction, quantization_loss)`` into ``output["pred"]`` and
    ``output["quantization_loss"]``, so the loss function, metrics and stock handlers see a plain prediction tensor.
    Outputs that are already a tensor (e.g. from ``VQVAE2Reconstructor``) are left alone."""
    prediction = engine.state.output[CommonKeys.PRED]
    if isinstance(prediction, (tuple, list)):
        engine.state.output[CommonKeys.PRED], engine.state.output[QUANTIZATION_LOSS] = prediction


def loss_terms(output: dict) -> dict[str, float]:
    """``output_transform`` for ``StatsHandler``/``TensorBoardStatsHandler``: total, reconstruction and quantization
    losses of a training iteration."""
    return {
        name: float(torch.as_tensor(output[name]).detach())
        for name in (CommonKeys.LOSS, RECONSTRUCTION_LOSS, QUANTIZATION_LOSS)
        if name in output
    }


def _num_batches(loader: DataLoader | Sequence) -> int | None:
    """Batches of one epoch, ``None`` when the loader does not know (an iterable dataset)."""
    try:
        return len(loader)
    except TypeError:
        return None


class VQVAE2Trainer(SupervisedTrainer):
    """MONAI ``SupervisedTrainer`` for a VQ-VAE-2 (or any network returning ``(reconstruction, quantization_loss)``,
    like ``monai.networks.nets.VQVAE``).

    The iteration is MONAI's own (``prepare_batch -> inferer -> loss_function``, AMP, gradient accumulation, all
    ``IterationEvents``): the image is input and target, ``loss_function(reconstruction, image)`` gives the
    reconstruction loss, and ``quantization_loss_weight * quantization_loss`` is added before the backward pass.
    The engine output holds ``pred`` (the reconstruction), ``loss`` (the total), ``reconstruction_loss`` and
    ``quantization_loss``.

    Args:
        device: device of the network and batches.
        max_epochs: epochs to train.
        train_data_loader: loader of dicts with an ``image_key`` entry ``(B, C, *spatial)``.
        network: the autoencoder.
        optimizer: its optimizer.
        loss_function: reconstruction loss ``f(reconstruction, target)``; default MSE.
        quantization_loss_weight: weight of the network's quantization (commitment) loss, which holds the label
            cross-entropy too when the network learns labels.
        image_key: key of the images in the batch dicts.
        label_key: key of the class maps in the batch dicts, passed to the network as ``labels`` (a
            :class:`~monai_vqvae2.networks.VQVAE2` built with ``label_channels``); ``None`` trains on images alone.
        kwargs: any other ``SupervisedTrainer`` argument (``train_handlers``, ``amp``, ``epoch_length``, ...).
            ``decollate`` defaults to ``False``: the stage needs no per-item postprocessing.
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: DataLoader | Sequence,
        network: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_function: Callable | None = None,
        quantization_loss_weight: float = 1.0,
        image_key: str = CommonKeys.IMAGE,
        label_key: str | None = None,
        **kwargs: Any,
    ) -> None:
        if quantization_loss_weight < 0:
            raise ValueError(f"`quantization_loss_weight` must be >= 0, got {quantization_loss_weight}.")
        if kwargs.get("epoch_length") is None and _num_batches(train_data_loader) == 0:
            # a loader that drops its last incomplete batch and holds fewer items than one batch (a few whole
            # volumes, a large batch_size) would "train" every epoch without a single step
            batch_size = getattr(train_data_loader, "batch_size", None)
            raise ValueError(
                f"`train_data_loader` gives no batch: {len(train_data_loader.dataset)} training items, fewer than "
                f"one batch of {batch_size} with drop_last; lower batch_size."
            )
        kwargs.setdefault("prepare_batch", ReconstructionBatch(image_key, label_key))
        kwargs.setdefault("decollate", False)
        super().__init__(
            device=device,
            max_epochs=max_epochs,
            train_data_loader=train_data_loader,
            network=network,
            optimizer=optimizer,
            loss_function=loss_function if loss_function is not None else ReconstructionLoss(),
            **kwargs,
        )
        self.quantization_loss_weight = quantization_loss_weight
        self.add_event_handler(IterationEvents.FORWARD_COMPLETED, unpack_network_output)
        self.add_event_handler(IterationEvents.LOSS_COMPLETED, self._add_quantization_loss)

    def _add_quantization_loss(self, engine: VQVAE2Trainer) -> None:
        output = engine.state.output
        output[RECONSTRUCTION_LOSS] = output[CommonKeys.LOSS].detach()
        quantization_loss = output.get(QUANTIZATION_LOSS)
        if quantization_loss is None:
            raise ValueError(
                "The network must return (reconstruction, quantization_loss) like VQVAE2.forward; got a single tensor."
            )
        output[CommonKeys.LOSS] = output[CommonKeys.LOSS] + self.quantization_loss_weight * quantization_loss
        output[QUANTIZATION_LOSS] = quantization_loss.detach()


class VQVAE2Evaluator(SupervisedEvaluator):
    """MONAI ``SupervisedEvaluator`` for a VQ-VAE-2: the network runs in evaluation mode (codebooks frozen), the
    engine output holds ``pred`` (the reconstruction), ``label`` (the image) and ``quantization_loss``, so MONAI metric
    handlers such as ``IgniteMetricHandler(SSIMMetric(...))`` apply directly.

    Args:
        device: device of the network and batches.
        val_data_loader: loader of dicts with an ``image_key`` entry.
        network: a network returning ``(reconstruction, quantization_loss)`` or just the reconstruction.
        image_key: key of the images in the batch dicts.
        kwargs: any other ``SupervisedEvaluator`` argument (``key_val_metric``, ``additional_metrics``,
            ``val_handlers``, ``inferer``, ``postprocessing``, ...). ``decollate`` defaults to ``False``.
    """

    def __init__(
        self,
        device: str | torch.device,
        val_data_loader: DataLoader | Sequence,
        network: torch.nn.Module,
        image_key: str = CommonKeys.IMAGE,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("prepare_batch", ReconstructionBatch(image_key))
        kwargs.setdefault("decollate", False)
        super().__init__(device=device, val_data_loader=val_data_loader, network=network, **kwargs)
        self.add_event_handler(IterationEvents.FORWARD_COMPLETED, unpack_network_output)
