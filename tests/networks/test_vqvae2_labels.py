"""VQVAE2 with a label decoder: one code map gives an image and its tissue label map."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from monai_vqvae2.networks import VQVAE2
from tests.tiny import single_thread  # noqa: F401 (autouse fixture)


def small(**kwargs) -> VQVAE2:
    torch.manual_seed(0)
    settings = {"channels": 8, "num_res_layers": 1, "num_res_channels": 4, "num_embeddings": 16, "embedding_dim": 4}
    return VQVAE2(spatial_dims=2, in_channels=1, out_channels=1, **{**settings, **kwargs})


def pairs(count: int = 4, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose class is their intensity band: 0 background, 1..3 three grey levels in vertical stripes."""
    labels = torch.zeros(count, 1, size, size, dtype=torch.long)
    for item in range(count):
        labels[item, 0, 2:-2, 2 + item : 6 + item] = 1
        labels[item, 0, 2:-2, 6 + item : 9 + item] = 2
        labels[item, 0, 2:-2, 9 + item : 12] = 3
    return labels.float() / 3, labels


def test_the_label_decoder_reads_the_same_codes_as_the_image_decoder():
    network = small(label_channels=4).eval()
    images, labels = pairs()
    indices = network.index_quantize(images)
    decoded = network.decode_label_samples(indices)
    assert decoded.shape == (4, 1, 16, 16) and decoded.dtype == torch.long
    assert torch.equal(decoded, network.predict_labels(images))
    assert network.decode_labels(network.embed(indices)).shape == (4, 4, 16, 16)
    reconstruction, loss = network(images, labels)  # eval mode: labels are not a training target
    assert torch.allclose(reconstruction, network.decode_samples(indices), atol=1e-6)
    assert torch.equal(loss, network(images)[1])


def frozen_codebooks(**kwargs) -> VQVAE2:
    """A network in training mode whose codebooks stay as they are (quantizers in eval mode): repeatable losses."""
    network = small(**kwargs).train()
    for quantizer in network.quantizers:
        quantizer.eval()
    return network


@pytest.mark.parametrize("weight", [1.0, 0.5, 0.0])
def test_labels_join_the_latent_loss_in_training_as_their_weighted_cross_entropy(weight):
    images, labels = pairs()
    network = frozen_codebooks(label_channels=4, label_weight=weight)
    logits = network.decode_labels(network.encode(images).quantized)
    expected = (weight if weight > 0 else 1.0) * F.cross_entropy(logits, labels[:, 0])
    assert torch.allclose(network(images, labels)[1] - network(images)[1], expected, atol=1e-6)


def test_label_weight_zero_leaves_the_codes_to_the_image():
    images, labels = pairs()
    for weight in (0.0, 1.0):
        network = frozen_codebooks(label_channels=4, label_weight=weight)
        label_term = network(images, labels)[1] - network(images)[1]
        label_term.backward()
        encoder_gradient = network.encoders[-1][0].weight.grad
        assert network.label_decoder[0].weight.grad.abs().sum() > 0
        if weight == 0:
            assert encoder_gradient is None or encoder_gradient.abs().max() == 0
        else:
            assert encoder_gradient.abs().max() > 0


def test_a_few_steps_teach_the_label_decoder_the_stripes():
    network = small(label_channels=4, num_embeddings=32)
    images, labels = pairs(8)
    optimizer = torch.optim.Adam(network.parameters(), lr=3e-3)
    network.train()
    for _ in range(150):
        reconstruction, latent_loss = network(images, labels)
        loss = F.mse_loss(reconstruction, images) + latent_loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    network.eval()
    accuracy = (network.predict_labels(images) == labels).float().mean()
    assert accuracy > 0.95


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"label_channels": 1}, r"`label_channels` must be None or a number of classes >= 2, got 1"),
        ({"label_channels": True}, r"`label_channels` must be None or a number of classes >= 2, got True"),
        ({"label_channels": 4, "label_weight": -1.0}, r"`label_weight` must be >= 0, got -1.0"),
    ],
)
def test_bad_label_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        small(**kwargs)


def test_bad_labels_are_refused_by_name():
    images, labels = pairs()
    with pytest.raises(ValueError, match=r"`labels` were given, but the VQVAE2 has no label decoder"):
        small()(images, labels)
    with pytest.raises(ValueError, match=r"`decode_labels` needs a label decoder"):
        small().predict_labels(images)
    network = small(label_channels=4).train()
    with pytest.raises(ValueError, match=r"integer class map of shape \(4, 1, 16, 16\).*got \(4, 16, 16\)"):
        network(images, labels[:, 0])
    with pytest.raises(ValueError, match=r"integer class map.*got \(4, 1, 16, 16\) of torch.float32"):
        network(images, labels.float())
    with pytest.raises(ValueError, match=r"`labels` hold classes 0..4, outside 0..3 \(`label_channels=4`\)"):
        network(images, labels + (labels == 3).long())


def test_with_label_weight_zero_the_image_model_trains_exactly_as_without_labels():
    images, labels = pairs(8)
    trained = {}
    for with_labels in (False, True):
        network = small(label_channels=4) if with_labels else small()
        optimizer = torch.optim.Adam(network.parameters(), lr=1e-2)
        network.train()
        for _ in range(3):
            reconstruction, latent_loss = network(images, labels) if with_labels else network(images)
            loss = F.mse_loss(reconstruction, images) + latent_loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        trained[with_labels] = network.state_dict()
    image_only, labelled = trained[False], trained[True]
    assert set(labelled) - set(image_only) == {key for key in labelled if key.startswith("label_decoder.")}
    assert all(torch.equal(image_only[key], labelled[key]) for key in image_only)  # codebooks included
