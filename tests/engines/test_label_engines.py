"""The autoencoder engines with tissue labels: the trainer hands the label maps to the network, and
``LabelDiceHandler`` scores the labels the network reads from the codes of the evaluator's images."""

from __future__ import annotations

import math

import pytest
import torch
from monai.data import DataLoader, Dataset

from monai_vqvae2.engines import LabelDiceHandler, VQVAE2Evaluator, VQVAE2Trainer
from monai_vqvae2.networks import VQVAE2
from tests.tiny import single_thread  # noqa: F401 (autouse fixture)

TINY = {"channels": 8, "num_res_layers": 1, "num_res_channels": 4, "num_embeddings": 16, "embedding_dim": 4}


def pairs_loader(count: int = 4, batch_size: int = 2) -> DataLoader:
    """Images whose left half is class 1 and right half class 2 (background none), with their label maps."""
    label = torch.ones(1, 16, 16, dtype=torch.long)
    label[:, :, 8:] = 2
    items = [{"image": torch.rand(1, 16, 16) * 0.5 + 0.5 * (label == 2), "seg": label.clone()} for _ in range(count)]
    return DataLoader(Dataset(items), batch_size=batch_size, shuffle=False)


class LeftHalfReader(torch.nn.Module):
    """Predicts class 1 on the left quarter, class 2 elsewhere: a known label decoder."""

    label_channels = 3

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))

    def forward(self, images, labels=None):
        return images, self.weight * 0

    def predict_labels(self, images):
        labels = torch.full((images.shape[0], 1, *images.shape[2:]), 2, dtype=torch.long)
        labels[..., :4] = 1
        return labels


def test_label_dice_handler_reports_the_dice_of_the_labels_read_from_the_codes():
    evaluator = VQVAE2Evaluator("cpu", pairs_loader(), LeftHalfReader())
    LabelDiceHandler(evaluator.network, label_key="seg", class_names=["CSF", "grey matter"]).attach(evaluator)
    evaluator.run()
    # class 1: prediction 4 columns, truth 8, overlap 4 -> 2*4/12; class 2: prediction 12, truth 8, overlap 8 -> 16/20
    metrics = evaluator.state.metrics
    assert math.isclose(metrics["label_dice_csf"], 8 / 12, rel_tol=1e-6)
    assert math.isclose(metrics["label_dice_grey_matter"], 16 / 20, rel_tol=1e-6)
    assert math.isclose(metrics["label_dice"], (8 / 12 + 16 / 20) / 2, rel_tol=1e-6)


def test_label_dice_handler_needs_a_label_decoder_and_labelled_batches():
    with pytest.raises(ValueError, match=r"needs a VQ-VAE-2 with a label decoder"):
        LabelDiceHandler(VQVAE2(2, 1, 1, **TINY))
    with pytest.raises(ValueError, match=r"must name the 2 foreground classes of the label decoder, got \['CSF'\]"):
        LabelDiceHandler(LeftHalfReader(), class_names=["CSF"])
    evaluator = VQVAE2Evaluator("cpu", pairs_loader(), LeftHalfReader())
    LabelDiceHandler(evaluator.network).attach(evaluator)  # label_key "label": the batches call it "seg"
    with pytest.raises(ValueError, match=r"the evaluator's batches have no 'label' entry"):
        evaluator.run()


def test_the_trainer_teaches_the_label_decoder_and_the_evaluator_measures_it():
    torch.manual_seed(0)
    network = VQVAE2(2, 1, 1, label_channels=3, **TINY)
    trainer = VQVAE2Trainer(
        "cpu", 40, pairs_loader(8, 4), network, torch.optim.Adam(network.parameters(), lr=3e-3), label_key="seg"
    )
    evaluator = VQVAE2Evaluator("cpu", pairs_loader(), network)
    handler = LabelDiceHandler(network, label_key="seg")
    handler.attach(evaluator)
    evaluator.run()
    before = evaluator.state.metrics["label_dice"]
    trainer.run()
    evaluator.run()
    assert evaluator.state.metrics["label_dice"] > 0.95 > before
    # the label cross-entropy is part of the latent loss the trainer reports
    assert float(trainer.state.output["quantization_loss"]) > 0
