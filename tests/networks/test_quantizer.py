from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from monai.networks.layers import EMAQuantizer

from monai_vqvae2.networks import RestartEMAQuantizer, kmeans


def test_plain_configuration_reproduces_monai_ema_quantizer_exactly():
    torch.manual_seed(0)
    ours = RestartEMAQuantizer(2, num_embeddings=32, embedding_dim=8, codebook_init="normal", restart_threshold=0)
    monai_quantizer = EMAQuantizer(2, num_embeddings=32, embedding_dim=8)
    monai_quantizer.load_state_dict(ours.state_dict(), strict=False)
    for step in range(3):
        inputs = torch.randn(4, 8, 6, 6) + step
        quantized, loss, indices = ours(inputs)
        expected_quantized, expected_loss, expected_indices = monai_quantizer(inputs)
        assert torch.equal(indices, expected_indices)
        torch.testing.assert_close(quantized, expected_quantized)
        torch.testing.assert_close(loss, expected_loss)
        torch.testing.assert_close(ours.ema_cluster_size, monai_quantizer.ema_cluster_size)
        torch.testing.assert_close(ours.codebook, monai_quantizer.embedding.weight)


def test_kmeans_finds_separated_clusters():
    generator = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    points = torch.cat([c + 0.1 * torch.randn(50, 2, generator=generator) for c in centres])
    found = kmeans(points, 4, num_iters=5, generator=generator)
    distances = torch.cdist(centres, found)
    assert distances.min(dim=1).values.max() < 0.1
    assert sorted(distances.argmin(dim=1).tolist()) == [0, 1, 2, 3]


def test_kmeans_with_more_clusters_than_distinct_points():
    points = torch.tensor([[0.0, 0.0]] * 10 + [[1.0, 1.0]] * 10)
    found = kmeans(points, 8, generator=torch.Generator().manual_seed(0))
    assert found.shape == (8, 2) and torch.isfinite(found).all()
    assert torch.cdist(found, points).min(dim=1).values.max() < 0.01


def test_first_training_batch_initialises_the_codebook_on_the_data():
    torch.manual_seed(0)
    quantizer = RestartEMAQuantizer(2, num_embeddings=16, embedding_dim=4)
    assert not bool(quantizer.initialized)
    inputs = 5.0 + torch.randn(8, 4, 8, 8)  # far from the N(0, 1) initial codes
    quantizer.eval()
    quantizer(inputs)
    assert not bool(quantizer.initialized), "evaluation must not initialise the codebook"
    quantizer.train()
    _, _, indices = quantizer(inputs)
    assert bool(quantizer.initialized)
    assert torch.unique(indices).numel() == 16  # every code is used by the batch it was fitted on
    assert abs(float(quantizer.codebook.mean()) - 5.0) < 0.5
    assert int(quantizer.num_updates) == 1


def test_dead_codes_are_restarted_onto_encoder_outputs():
    torch.manual_seed(0)
    quantizer = RestartEMAQuantizer(2, num_embeddings=16, embedding_dim=4, restart_interval=2)
    inputs = torch.randn(8, 4, 8, 8)
    quantizer(inputs)
    quantizer.embedding.weight.data[:5] = 1000.0  # five codes nobody will pick
    quantizer.ema_w.data[:5] = 1000.0
    quantizer.ema_cluster_size.data[:5] = 0.0
    quantizer(inputs)  # update 2: restart check
    assert int(quantizer.num_restarted) >= 5
    flat = inputs.permute(0, 2, 3, 1).reshape(-1, 4)
    nearest_input = torch.cdist(quantizer.codebook[:5], flat).min(dim=1).values
    assert nearest_input.max() < 0.2
    assert torch.equal(quantizer.ema_cluster_size[:5], torch.ones(5))


def test_usage_statistics_on_known_assignments():
    quantizer = RestartEMAQuantizer(2, num_embeddings=8, embedding_dim=8, codebook_init="normal").eval()
    quantizer.embedding.weight.data = torch.eye(8) * 10
    # 4 codes used, each by a quarter of the 16 positions: usage 4/8, perplexity 4
    inputs = (torch.eye(8) * 10)[torch.arange(16) % 4].T.reshape(1, 8, 4, 4)
    _, _, indices = quantizer(inputs)
    assert sorted(torch.unique(indices).tolist()) == [0, 1, 2, 3]
    statistics = quantizer.usage_statistics()
    assert statistics["usage"] == 0.5
    assert math.isclose(statistics["perplexity"], 4.0, rel_tol=1e-6)
    assert statistics["num_quantized"] == 16
    quantizer.reset_usage()
    assert quantizer.usage_statistics() == {"usage": 0.0, "perplexity": 0.0, "num_quantized": 0.0}


def test_index_never_updates_even_in_training_mode():
    quantizer = RestartEMAQuantizer(3, num_embeddings=16, embedding_dim=4)
    inputs = torch.randn(2, 4, 4, 4, 4)
    quantizer(inputs)
    state = {k: v.clone() for k, v in quantizer.state_dict().items()}
    indices = quantizer.index(inputs)
    assert indices.shape == (2, 4, 4, 4)
    for key, value in quantizer.state_dict().items():
        assert torch.equal(value, state[key]), key


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"spatial_dims": 4}, "`spatial_dims` must be 2 or 3, got 4"),
        ({"decay": 1.0}, r"`decay` must be in \[0, 1\), got 1.0"),
        ({"restart_threshold": -1.0}, r"`restart_threshold` must be >= 0 \(0 disables restarts\), got -1.0"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RestartEMAQuantizer(**{"spatial_dims": 2, "num_embeddings": 4, "embedding_dim": 2, **kwargs})


def test_wrong_input_shape_is_named():
    quantizer = RestartEMAQuantizer(2, num_embeddings=4, embedding_dim=2)
    with pytest.raises(ValueError, match=r"must have shape \(B, 2, \*2 spatial dims\), got \(1, 3, 4, 4\)"):
        quantizer(torch.randn(1, 3, 4, 4))


def test_codebooks_stay_identical_across_ddp_ranks(tmp_path):
    """Two gloo ranks see different data; initialisation, EMA updates and restarts must agree exactly."""
    script = Path(__file__).with_name("ddp_quantizer_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(script),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    states = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in range(2)]
    assert int(states[0]["num_restarted"]) > 0
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key


def test_initialisation_and_restart_draws_ignore_the_global_random_state():
    inputs = torch.randn(4, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    codebooks = []
    for global_seed in (0, 1):
        torch.manual_seed(global_seed)
        quantizer = RestartEMAQuantizer(2, num_embeddings=16, embedding_dim=4, restart_interval=1, seed=3)
        quantizer.embedding.weight.data.zero_()
        for step in range(3):
            quantizer(inputs + step)
        codebooks.append(quantizer.codebook.clone())
    assert int(quantizer.num_restarted) > 0
    assert torch.equal(codebooks[0], codebooks[1])
