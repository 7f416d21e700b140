from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest
import torch

from monai_vqvae2.quality.similarity import _seeded_pairs, nearest_training_ssim, pairwise_ms_ssim
from tests.quality.conftest import SIZE, textures
from tests.tiny import single_thread  # noqa: F401 (autouse fixture)


# ----------------------------------------------------------------------------------------------------- diversity
def test_seeded_pairs_are_distinct_ordered_and_reproducible():
    assert [tuple(p) for p in _seeded_pairs(7, 21, seed=3)] == list(combinations(range(7), 2))
    pairs = _seeded_pairs(1000, 2000, seed=0)
    assert (pairs[:, 0] < pairs[:, 1]).all() and pairs.max() < 1000 and len({tuple(p) for p in pairs}) == 2000
    np.testing.assert_array_equal(pairs, _seeded_pairs(1000, 2000, seed=0))


def test_diversity_of_copies_is_one_and_of_distinct_images_below_one():
    copies = textures(1, seed=0).repeat(6, 1, 1, 1)
    torch.testing.assert_close(pairwise_ms_ssim(copies, 15), torch.ones(15, dtype=torch.float64), atol=1e-6, rtol=0)
    distinct = pairwise_ms_ssim(textures(6, seed=1), 10, seed=4)
    assert distinct.shape == (10,) and float(distinct.mean()) < 0.9
    torch.testing.assert_close(distinct, pairwise_ms_ssim(textures(6, seed=1), 10, seed=4, batch_size=3))
    with pytest.raises(ValueError, match=r"`num_pairs` is 16 but 6 images give only 15 distinct pairs"):
        pairwise_ms_ssim(copies, 16)
    with pytest.raises(ValueError, match=r"MS-SSIM needs slices of at least 21 pixels per side.*got \(16, 16\)"):
        pairwise_ms_ssim(torch.rand(3, 1, 16, 16), 2)


# -------------------------------------------------------------------------------------------------- memorisation
@pytest.mark.parametrize("num_candidates", [1, 16])
def test_memorisation_finds_exact_copies_and_not_different_images(num_candidates):
    training = textures(40, seed=2)
    samples = torch.cat([training[[7, 31]], textures(3, seed=3)])
    nearest = nearest_training_ssim(samples, training, num_candidates=num_candidates, candidate_size=8, batch_size=3)
    assert nearest.index[:2].tolist() == [7, 31]
    torch.testing.assert_close(nearest.ssim[:2], torch.ones(2, dtype=torch.float64), atol=1e-6, rtol=0)
    assert (nearest.ssim[2:] < 0.95).all()


def test_memorisation_refuses_sets_of_different_sizes():
    with pytest.raises(ValueError, match=r"same size.*`images` \(32, 32\), `training` \(24, 24\)"):
        nearest_training_ssim(torch.rand(2, 1, SIZE, SIZE), torch.rand(2, 1, 24, 24))
