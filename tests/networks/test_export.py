from __future__ import annotations

import json

import pytest
import torch
from monai.bundle import verify_net_in_out

from monai_vqvae2.networks import VQVAE2, VQVAE2Reconstructor

TINY = {"channels": 8, "num_res_layers": 1, "num_res_channels": 4, "num_embeddings": 16, "embedding_dim": 4}


@pytest.mark.parametrize("spatial_dims,shape", [(2, (32, 32)), (3, (16, 16, 16))])
def test_traced_reconstructor_reproduces_eager_outputs(spatial_dims, shape, tmp_path):
    torch.manual_seed(0)
    network = VQVAE2(spatial_dims, 1, 1, **TINY)
    network(torch.rand(4, 1, *shape))  # one training step: initialise the codebooks
    view = VQVAE2Reconstructor(network).eval()
    images = torch.rand(2, 1, *shape)
    with torch.no_grad():
        eager = view(images)
        traced = torch.jit.trace(view, images)
    path = tmp_path / "reconstructor.ts"
    traced.save(str(path))
    loaded = torch.jit.load(str(path))
    other = torch.rand(3, 1, *shape)  # a different batch size than the one traced
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), eager, rtol=0, atol=1e-6)
        torch.testing.assert_close(loaded(other), network(other)[0], rtol=0, atol=1e-6)
    assert eager.shape == (2, 1, *shape)


def test_view_shares_parameters_and_loads_network_checkpoints():
    network = VQVAE2(2, 1, 1, **TINY)
    view = VQVAE2Reconstructor(network)
    assert view.network is network
    built = VQVAE2Reconstructor(spatial_dims=2, in_channels=1, out_channels=1, **TINY)
    built.network.load_state_dict(network.state_dict())
    images = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(built.eval()(images), view.eval()(images))


def test_view_needs_exactly_one_way_to_get_a_network():
    with pytest.raises(ValueError, match="Give `network` or the VQVAE2 constructor arguments, got neither"):
        VQVAE2Reconstructor()
    with pytest.raises(ValueError, match="not both"):
        VQVAE2Reconstructor(VQVAE2(2, 1, 1, **TINY), spatial_dims=2)


def test_monai_bundle_verify_net_in_out_accepts_the_view(tmp_path):
    config = {
        "imports": ["$import monai_vqvae2"],
        "network_def": {
            "_target_": "monai_vqvae2.networks.VQVAE2Reconstructor",
            "spatial_dims": 2,
            "in_channels": 1,
            "out_channels": 1,
            **TINY,
        },
    }
    meta = {
        "network_data_format": {
            "inputs": {
                "image": {
                    "type": "image",
                    "format": "magnitude",
                    "num_channels": 1,
                    "spatial_shape": ["8*n", "8*n"],
                    "dtype": "float32",
                    "value_range": [0, 1],
                    "is_patch_data": False,
                    "channel_def": {"0": "image"},
                }
            },
            "outputs": {
                "pred": {
                    "type": "image",
                    "format": "magnitude",
                    "num_channels": 1,
                    "spatial_shape": ["8*n", "8*n"],
                    "dtype": "float32",
                    "value_range": [0, 1],
                    "is_patch_data": False,
                    "channel_def": {"0": "image"},
                }
            },
        }
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    verify_net_in_out(
        net_id="network_def",
        meta_file=str(tmp_path / "metadata.json"),
        config_file=str(tmp_path / "config.json"),
        device="cpu",
        n=4,
    )
    with pytest.raises(ValueError, match="not divisible by the total downsampling 8"):
        verify_net_in_out(
            net_id="network_def",
            meta_file=str(tmp_path / "metadata.json"),
            config_file=str(tmp_path / "config.json"),
            device="cpu",
            **{"_meta_#network_data_format#inputs#image#spatial_shape": [12, 12]},
        )
