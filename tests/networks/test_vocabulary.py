"""The network vocabulary the stages share: :func:`unwrap` and :func:`level_names`, and their former import paths."""

from __future__ import annotations

import pytest
import torch

import monai_vqvae2.engines
import monai_vqvae2.engines.handlers
from monai_vqvae2.networks import VQVAE2, VQVAE2Reconstructor, level_names, unwrap, vocabulary

TINY = {"channels": 8, "num_res_layers": 1, "num_res_channels": 4, "num_embeddings": 16, "embedding_dim": 4}


@pytest.mark.parametrize(
    "num_levels,names",
    [
        (1, ["bottom"]),
        (2, ["top", "bottom"]),
        (3, ["top", "middle", "bottom"]),
        (4, ["top", "level1", "level2", "bottom"]),
        (5, ["top", "level1", "level2", "level3", "bottom"]),
    ],
)
def test_level_names_coarsest_first(num_levels, names):
    assert level_names(num_levels) == names


def test_unwrap_finds_the_network_inside_parallel_wrappers_and_views():
    network = VQVAE2(2, 1, 1, **TINY)
    assert unwrap(network) is network
    assert unwrap(VQVAE2Reconstructor(network)) is network
    assert unwrap(torch.nn.DataParallel(VQVAE2Reconstructor(network))) is network
    assert unwrap(torch.nn.DataParallel(torch.nn.DataParallel(network))) is network
    plain = torch.nn.Linear(2, 2)
    assert unwrap(plain) is plain  # nothing to unwrap


def test_the_old_import_paths_give_the_new_objects():
    assert monai_vqvae2.engines.handlers.unwrap is vocabulary.unwrap is unwrap
    assert monai_vqvae2.engines.handlers.level_names is vocabulary.level_names is level_names
    assert monai_vqvae2.engines.level_names is level_names
    assert "level_names" in monai_vqvae2.engines.__all__
    assert {"unwrap", "level_names"} <= set(monai_vqvae2.engines.handlers.__all__)
