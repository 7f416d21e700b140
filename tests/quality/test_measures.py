from __future__ import annotations

import math
import warnings

import pytest
import torch

from monai_vqvae2.quality.measures import (
    foreground_histograms,
    frechet_distance,
    histogram_wasserstein,
    intensity_wasserstein,
    maximum_mean_discrepancy,
    median_bandwidth,
    stage_scales,
)
from tests.quality.conftest import flat_brains
from tests.tiny import single_thread  # noqa: F401 (autouse fixture)


def hadamard_features(mean: list[float], scale: list[float]) -> torch.Tensor:
    """Four 2D points with exactly the given mean and the diagonal covariance ``diag(scale^2 * 4 / 3)``: the
    columns of the +-1 design below have zero mean, are orthogonal and have a sum of squares of 4."""
    design = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]], dtype=torch.float64)
    return torch.tensor(mean, dtype=torch.float64) + design * torch.tensor(scale, dtype=torch.float64)


# ------------------------------------------------------------------------------------------------------- realism
def test_identical_sets_give_zero_frechet_distance_and_mmd():
    features = torch.randn(12, 40, generator=torch.Generator().manual_seed(0)).relu()  # fewer rows than features
    scale = float(torch.cov(features.T.double()).trace())
    assert frechet_distance(features, features.clone()) <= 1e-6 * scale
    bandwidth = median_bandwidth(features, features)
    assert maximum_mean_discrepancy(features, features.clone(), bandwidth) == pytest.approx(0.0, abs=1e-12)


def test_shifted_sets_are_further_apart():
    features = torch.randn(30, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    shift = torch.full((8,), 0.5, dtype=torch.float64)
    # same covariance: the Fréchet distance is exactly the squared shift of the means
    assert frechet_distance(features, features + shift) == pytest.approx(float(shift.square().sum()), rel=1e-9)
    assert frechet_distance(features, features + 2 * shift) > frechet_distance(features, features + shift)
    bandwidth = median_bandwidth(features, features)
    near = maximum_mean_discrepancy(features, features + shift, bandwidth)
    far = maximum_mean_discrepancy(features, features + 2 * shift, bandwidth)
    assert 0 < near < far


def test_frechet_distance_matches_the_closed_form_for_diagonal_gaussians():
    first = hadamard_features([0.0, 1.0], [1.0, 2.0])
    second = hadamard_features([3.0, -1.0], [0.5, 3.0])
    torch.testing.assert_close(torch.cov(first.T), torch.diag(torch.tensor([4 / 3, 16 / 3], dtype=torch.float64)))
    # |mu_a - mu_b|^2 + sum_i (sigma_a,i - sigma_b,i)^2 for diagonal covariances
    sigma = math.sqrt(4 / 3)
    expected = (3**2 + 2**2) + (sigma * (1.0 - 0.5)) ** 2 + (sigma * (2.0 - 3.0)) ** 2
    assert frechet_distance(first, second) == pytest.approx(expected, rel=1e-12)
    assert frechet_distance(second, first) == pytest.approx(expected, rel=1e-12)


def test_frechet_distance_agrees_with_monai_fid():
    pytest.importorskip("scipy")
    from monai.metrics import FIDMetric

    generator = torch.Generator().manual_seed(2)
    real = torch.randn(40, 10, generator=generator, dtype=torch.float64).relu()
    fake = torch.randn(50, 10, generator=generator, dtype=torch.float64).relu() + 0.2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI passes SciPy's deprecated `disp` argument
        reference = float(FIDMetric()(fake, real))
    assert frechet_distance(real, fake) == pytest.approx(reference, rel=1e-6)


def test_mmd_on_known_inputs():
    first = torch.tensor([[0.0], [1.0]])
    second = torch.tensor([[0.0], [2.0]])
    e1, e4 = math.exp(-1 / 2), math.exp(-4 / 2)  # kernel at distances 1 and 2 with bandwidth 1
    # V-statistic: (2 + 2 e1) / 4 + (2 + 2 e4) / 4 - 2 (1 + e4 + 2 e1) / 4
    assert maximum_mean_discrepancy(first, second, 1.0) == pytest.approx((1 - e1) / 2, rel=1e-12)
    # U-statistic: 2 e1 / 2 + 2 e4 / 2 - 2 (1 + e4 + 2 e1) / 4
    assert maximum_mean_discrepancy(first, second, 1.0, unbiased=True) == pytest.approx((e4 - 1) / 2, rel=1e-12)
    # pooled points 0, 1, 0, 2: pairwise distances 0, 1, 1, 1, 2, 2 -> median 1
    assert median_bandwidth(first, second) == 1.0
    assert median_bandwidth(torch.tensor([[0.0], [1.0]]), torch.tensor([[3.0], [3.0]])) == 2.0


def test_feature_set_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"`features_b` needs at least 2 feature vectors, got 1"):
        frechet_distance(torch.zeros(3, 2), torch.zeros(1, 2))
    with pytest.raises(ValueError, match=r"same feature size, got 2 and 3"):
        maximum_mean_discrepancy(torch.zeros(3, 2), torch.zeros(3, 3), 1.0)
    with pytest.raises(ValueError, match=r"`bandwidth` must be a positive number, got 0"):
        maximum_mean_discrepancy(torch.zeros(3, 2), torch.zeros(3, 2), 0)


def test_frechet_distance_is_the_same_through_the_sample_space_and_the_covariances():
    generator = torch.Generator().manual_seed(3)
    first = torch.randn(30, 8, generator=generator, dtype=torch.float64)
    second = 1.5 * torch.randn(40, 8, generator=generator, dtype=torch.float64) + 0.3
    # zero columns change no distance but make the sets smaller than the features (the sample-space route)
    padded = [torch.cat([f, torch.zeros(len(f), 60, dtype=torch.float64)], dim=1) for f in (first, second)]
    assert frechet_distance(*padded) == pytest.approx(frechet_distance(first, second), rel=1e-12)


def test_median_bandwidth_of_one_set():
    # pairwise distances 1, 3, 2 -> median 2
    assert median_bandwidth(torch.tensor([[0.0], [1.0], [3.0]])) == 2.0


# ------------------------------------------------------------------------------------------ in-brain intensities
def test_foreground_histograms_count_only_the_pixels_above_the_threshold():
    image = torch.tensor([0.0, 0.005, 0.02, 0.25, 0.5, 0.999, 1.0]).reshape(1, 1, 1, 7)
    counts = foreground_histograms(image, bins=4, threshold=0.01)  # bins [0, .25), [.25, .5), [.5, .75), [.75, 1]
    assert counts.dtype == torch.float64 and counts.tolist() == [[1.0, 1.0, 1.0, 2.0]]
    brains = flat_brains([0.25, 0.75])
    counts = foreground_histograms(brains)  # 256 bins: 0.25 in bin 64, 0.75 in bin 192; the background is left out
    assert counts.shape == (2, 256) and counts.sum().item() == 2 * 16 * 16
    assert counts[0, 64].item() == counts[1, 192].item() == 256.0


def test_histogram_wasserstein_on_known_histograms():
    assert histogram_wasserstein(torch.tensor([0.0, 1, 3, 0]), torch.tensor([0.0, 2, 6, 0])) == 0.0  # normalised
    # all mass at bin 1 against all mass at bin 3 of 4: it moves two bins of width 1/4
    assert histogram_wasserstein(torch.tensor([0.0, 2, 0, 0]), torch.tensor([0.0, 0, 0, 5])) == 0.5
    with pytest.raises(ValueError, match=r"`histogram_b` is empty \(no pixel above the foreground threshold\)"):
        histogram_wasserstein(torch.ones(4), torch.zeros(4))
    with pytest.raises(ValueError, match=r"`histogram_a` and `histogram_b` must have the same bins, got 4 and 3"):
        histogram_wasserstein(torch.ones(4), torch.ones(3))
    with pytest.raises(ValueError, match=r"`histogram_a` must hold finite non-negative counts"):
        histogram_wasserstein(torch.tensor([1.0, -1.0]), torch.ones(2))


def test_intensity_wasserstein_of_known_sets():
    quarter = flat_brains([0.25, 0.25], sizes=[8, 20])
    assert intensity_wasserstein(quarter, flat_brains([0.25], sizes=[12])) == 0.0  # brain size does not matter
    assert intensity_wasserstein(quarter, flat_brains([0.75, 0.75])) == 0.5
    assert intensity_wasserstein(quarter, flat_brains([0.375])) == 0.125  # a shift of exactly 32 of 256 bins
    # half the mass at 0.25 and half at 0.75 against all of it at 0.75: half the mass moves 0.5
    assert intensity_wasserstein(flat_brains([0.25, 0.75]), flat_brains([0.75])) == 0.25
    with pytest.raises(ValueError, match=r"`bins` must be a positive integer, got 0"):
        intensity_wasserstein(quarter, quarter, bins=0)
    with pytest.raises(ValueError, match=r"`histogram_a` is empty"):
        intensity_wasserstein(torch.zeros(2, 1, 4, 4), quarter)


# ------------------------------------------------------------------------------------------------ stage weights
def test_stage_scales_give_every_stage_total_variance_one():
    features = torch.tensor([[0.0, 0.0, 0.0, 5.0], [2.0, 0.0, 10.0, 5.0]], dtype=torch.float64)
    # stage 1 (2 columns): variances 2 and 0; stage 2: variance 50; stage 3: constant, kept as is
    scales = stage_scales(features, [2, 1, 1])
    torch.testing.assert_close(scales, torch.tensor([0.5**0.5, 0.5**0.5, 50**-0.5, 1.0], dtype=torch.float64))
    scaled = features * scales
    assert scaled[:, :2].var(dim=0).sum().item() == pytest.approx(1.0) and scaled[:, 2].var().item() == pytest.approx(1)
    with pytest.raises(ValueError, match=r"`stage_channels` must be positive widths summing to 4, got \[2, 1\]"):
        stage_scales(features, [2, 1])
