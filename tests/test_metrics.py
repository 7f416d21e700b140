from __future__ import annotations

import math

import pytest
import torch
from monai.metrics import SSIMMetric

from monai_vqvae2.metrics import (
    MaskedPSNRMetric,
    MaskedSSIMMetric,
    ReferencePrediction,
    code_statistics,
    codes_in_mask,
    ms_ssim_weights,
)


def brain_like(size: int = 64) -> torch.Tensor:
    """Black background with a textured square 'brain' in the middle."""
    target = torch.zeros(2, 1, size, size)
    target[:, :, 16:48, 16:48] = 0.5 + 0.5 * torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    return target


def test_masked_psnr_uses_only_foreground_pixels():
    target = brain_like()
    prediction = target.clone()
    prediction[target > 0.01] += 0.1  # error 0.1 inside the brain only
    prediction[:, :, :4, :4] = 1.0  # background errors do not count
    assert torch.allclose(MaskedPSNRMetric()(prediction, target), torch.full((2, 1), 20.0), atol=1e-4)


def test_masked_ssim_is_one_for_perfect_predictions_and_ignores_background():
    target = brain_like()
    assert torch.allclose(MaskedSSIMMetric()(target, target), torch.ones(2, 1))
    noisy_background = target + (target == 0) * 0.3 * torch.rand_like(target)
    whole = float(SSIMMetric(spatial_dims=2)(noisy_background, target).mean())
    brain = float(MaskedSSIMMetric()(noisy_background, target).mean())
    assert brain > 0.9 > whole


def test_empty_foreground_gives_nan_and_is_left_out_of_the_mean():
    target = brain_like()
    target[1] = 0
    metric = MaskedSSIMMetric()
    values = metric(target, target)
    assert values[0].item() == 1.0 and math.isnan(values[1].item())
    assert metric.aggregate().item() == 1.0


def test_reference_predictions():
    target = brain_like()
    zeros, same = ReferencePrediction("zeros")({"label": target, "pred": None})
    assert same is target and torch.equal(zeros, torch.zeros_like(target))
    blurred, _ = ReferencePrediction("downsample", factor=4)({"label": target})
    assert blurred.shape == target.shape
    flat = torch.full((1, 1, 16, 16), 0.25)
    assert torch.allclose(ReferencePrediction("downsample")({"label": flat})[0], flat)
    with pytest.raises(ValueError, match=r"`kind` must be one of \('zeros', 'downsample'\), got 'mean'"):
        ReferencePrediction("mean")


@pytest.mark.parametrize("size,scales", [(16, None), (32, 2), (64, 3), (128, 4), (256, 5)])
def test_ms_ssim_scales_fit_the_image(size, scales):
    weights = ms_ssim_weights(size)
    if scales is None:
        assert weights is None
    else:
        assert len(weights) == scales and math.isclose(sum(weights), 1.0)


def test_codes_in_mask_keeps_positions_mostly_inside():
    indices = torch.arange(16).reshape(1, 4, 4)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4, :4] = 1  # the top-left 2x2 code positions
    mask[..., 4, 4] = 1  # a quarter of one pixel block of position (2, 2): below min_fraction
    assert codes_in_mask(indices, mask).tolist() == [0, 1, 4, 5]
    assert codes_in_mask(indices, mask, min_fraction=0.25).tolist() == [0, 1, 4, 5, 10]


@pytest.mark.parametrize(
    "counts,perplexity,distinct", [([4, 0, 0], 1.0, 1.0), ([2, 2, 0, 0], 2.0, 2.0), ([1, 1, 1, 1], 4.0, 4.0)]
)
def test_code_statistics_of_known_histograms(counts, perplexity, distinct):
    statistics = code_statistics(torch.tensor(counts))
    assert math.isclose(statistics["perplexity"], perplexity) and statistics["distinct"] == distinct


def test_code_statistics_of_an_empty_histogram_is_nan():
    assert math.isnan(code_statistics(torch.zeros(3))["perplexity"])
