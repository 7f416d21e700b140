from __future__ import annotations

import pytest
import torch

from monai_vqvae2.inferers import AxialSliceInferer
from monai_vqvae2.networks import VQVAE2, VQVAE2Reconstructor


class ShapeRecorder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.shapes = []

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        return x


@pytest.mark.parametrize("shape", [(32, 32, 5), (24, 32, 3), (32, 20, 4)])
def test_identity_network_gives_back_the_volume_when_no_rescaling_is_needed(shape):
    volume = torch.rand(2, 1, *shape)
    network = ShapeRecorder()
    result = AxialSliceInferer(image_size=32, sw_batch_size=4)(volume, network)
    torch.testing.assert_close(result, volume)
    assert all(s[1:] == (1, 32, 32) for s in network.shapes)
    assert sum(s[0] for s in network.shapes) == 2 * shape[2]


def test_rescaled_slices_keep_the_input_grid_and_the_slice_order():
    volume = torch.zeros(1, 1, 40, 48, 6)
    for z in range(6):
        volume[..., z] = z / 5  # each axial slice has its own constant value
    result = AxialSliceInferer(image_size=16)(volume, ShapeRecorder())
    assert result.shape == volume.shape
    torch.testing.assert_close(result, volume, atol=1e-5, rtol=0)


def test_works_with_the_reconstruction_view():
    network = VQVAE2Reconstructor(
        VQVAE2(2, 1, 1, channels=8, num_res_layers=1, num_res_channels=4, num_embeddings=16, embedding_dim=4)
    ).eval()
    with torch.no_grad():
        result = AxialSliceInferer(image_size=32)(torch.rand(1, 1, 30, 36, 4), network)
    assert result.shape == (1, 1, 30, 36, 4)


def test_rejects_non_volumes():
    with pytest.raises(ValueError, match=r"expects volumes \(B, C, X, Y, Z\), got shape \(1, 1, 32, 32\)"):
        AxialSliceInferer(32)(torch.rand(1, 1, 32, 32), ShapeRecorder())
