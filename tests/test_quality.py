from __future__ import annotations

import json
import math
import warnings
from itertools import combinations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from monai_vqvae2.inferers import sample_to_folder, write_samples
from monai_vqvae2.networks import VQVAE2, VQVAE2Reconstructor
from monai_vqvae2.pipeline import quality_summary
from monai_vqvae2.quality import (
    FEATURE_SPACE,
    REFERENCE,
    _position_groups,
    _seeded_pairs,
    encoder_features,
    frechet_distance,
    load_sample_folder,
    maximum_mean_discrepancy,
    median_bandwidth,
    nearest_training_ssim,
    pairwise_ms_ssim,
    quality_report,
)
from monai_vqvae2.quality_measures import (
    RandomCNNFeatures,
    foreground_histograms,
    histogram_wasserstein,
    intensity_wasserstein,
    stage_scales,
)
from tests.tiny import single_thread, tiny_sampler  # noqa: F401 (autouse fixture)

SIZE = 32


def tiny_vqvae() -> VQVAE2:
    torch.manual_seed(0)
    return VQVAE2(
        spatial_dims=2,
        in_channels=1,
        out_channels=1,
        channels=8,
        num_res_channels=4,
        num_embeddings=16,
        embedding_dim=4,
    )


def textures(count: int, seed: int) -> torch.Tensor:
    """Distinct smooth random textures in [0, 1], ``(count, 1, SIZE, SIZE)``."""
    noise = torch.rand(count, 1, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))
    smooth = F.avg_pool2d(noise, 3, stride=1, padding=1, count_include_pad=False)
    low, high = smooth.amin(dim=(1, 2, 3), keepdim=True), smooth.amax(dim=(1, 2, 3), keepdim=True)
    return (smooth - low) / (high - low)


def flat_brains(values: list[float], sizes: list[int] | None = None) -> torch.Tensor:
    """``(len(values), 1, SIZE, SIZE)``: a centred square 'brain' of one intensity each (side ``sizes[i]``, default
    16) on a black background."""
    images = torch.zeros(len(values), 1, SIZE, SIZE)
    for index, value in enumerate(values):
        side = 16 if sizes is None else sizes[index]
        start = (SIZE - side) // 2
        images[index, 0, start : start + side, start : start + side] = value
    return images


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


# ---------------------------------------------------------------------------------------------- random features
def test_random_cnn_features_are_seeded_and_leave_the_global_generator_alone():
    state = torch.get_rng_state()
    extract = RandomCNNFeatures(seed=0)
    assert torch.equal(torch.get_rng_state(), state)
    assert extract.stage_channels == (64, 64, 128, 256, 512) and extract.dimension == 1024
    images = textures(3, seed=0)
    features = extract(images)
    assert features.shape == (3, 1024) and features.dtype == torch.float64
    again = RandomCNNFeatures(seed=0)
    assert again.digest == extract.digest and torch.equal(again(images), features)
    assert RandomCNNFeatures(seed=1).digest != extract.digest
    batched = torch.cat([extract(images[:1]), extract(images[1:])])
    torch.testing.assert_close(batched, features, rtol=1e-5, atol=1e-6)  # float32 network
    with pytest.raises(ValueError, match=r"`seed` must be a non-negative integer, got -1"):
        RandomCNNFeatures(seed=-1)
    with pytest.raises(ValueError, match=r"`images` must have shape \(B, 1, H, W\), got \(3, 32, 32\)"):
        extract(images[:, 0])


def test_stage_scales_give_every_stage_total_variance_one():
    features = torch.tensor([[0.0, 0.0, 0.0, 5.0], [2.0, 0.0, 10.0, 5.0]], dtype=torch.float64)
    # stage 1 (2 columns): variances 2 and 0; stage 2: variance 50; stage 3: constant, kept as is
    scales = stage_scales(features, [2, 1, 1])
    torch.testing.assert_close(scales, torch.tensor([0.5**0.5, 0.5**0.5, 50**-0.5, 1.0], dtype=torch.float64))
    scaled = features * scales
    assert scaled[:, :2].var(dim=0).sum().item() == pytest.approx(1.0) and scaled[:, 2].var().item() == pytest.approx(1)
    with pytest.raises(ValueError, match=r"`stage_channels` must be positive widths summing to 4, got \[2, 1\]"):
        stage_scales(features, [2, 1])


# ------------------------------------------------------------------------------------------------------ features
def test_encoder_features_pool_each_level_and_do_not_depend_on_batching():
    vqvae = tiny_vqvae()
    images = textures(5, seed=0)
    features = encoder_features(VQVAE2Reconstructor(vqvae), images, batch_size=2)
    assert features.shape == (5, 16) and features.dtype == torch.float64  # 8 channels per level, 2 levels
    torch.testing.assert_close(features, encoder_features(vqvae, images, batch_size=64))
    with torch.no_grad():
        bottom = vqvae.encoders[1](images)
        top = vqvae.encoders[0](bottom)
    torch.testing.assert_close(features[:, :8], top.mean(dim=(2, 3)).double())  # coarsest level first
    assert vqvae.training  # the mode is restored
    dataset = [{"image": image} for image in images]
    torch.testing.assert_close(encoder_features(vqvae, dataset), features)
    assert "global-average-pooled" in FEATURE_SPACE


def test_encoder_features_refuse_bad_images():
    vqvae = tiny_vqvae()
    with pytest.raises(ValueError, match=r"`images` must have shape \(N, 1, H, W\).*got \(2, 32, 32\)"):
        encoder_features(vqvae, torch.rand(2, SIZE, SIZE))
    with pytest.raises(ValueError, match=r"`images` must hold intensities in \[0, 1\], got values in \[0, 2\]"):
        encoder_features(vqvae, torch.tensor([0.0, 2.0]).repeat(2, 1, 16, 16))
    with pytest.raises(ValueError, match=r"not divisible by the total downsampling 8"):
        encoder_features(vqvae, torch.rand(2, 1, 20, 20))


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


# --------------------------------------------------------------------------------------------------------- report
def with_positions(images: torch.Tensor, positions: list[float]) -> list[dict]:
    return [{"image": image, "slice_position": position} for image, position in zip(images, positions)]


def test_quality_report_writes_json_markdown_and_figures(tmp_path):
    vqvae = tiny_vqvae()
    training = textures(30, seed=4)
    real = with_positions(textures(12, seed=5), [index / 11 for index in range(12)])
    samples = torch.cat([training[[3]], textures(5, seed=6)])
    positions = [0.25, 0.25, 0.5, 0.5, 0.75, 0.75]
    report = quality_report(vqvae, real, samples, training, tmp_path / "quality", sample_positions=positions)

    files = sorted(p.name for p in (tmp_path / "quality").iterdir())
    assert files == ["nearest_neighbours.png", "quality.json", "report.md", "samples_by_position.png"]
    assert json.loads((tmp_path / "quality" / "quality.json").read_text()) == report
    # the real reference: as many real test slices as samples (no window: from anywhere), the whole training base
    assert report["counts"] == {"samples": 6, "real_reference": 6, "real_test": 12, "training_base": 30, "training": 30}
    assert report["reference"] == REFERENCE and report["by_position"] == []
    assert report["feature_spaces"]["encoder"]["dimension"] == 16
    random_cnn = report["feature_spaces"]["random_cnn"]
    assert random_cnn["dimension"] == 1024 and random_cnn["digest"] == RandomCNNFeatures(seed=0).digest
    overall = report["overall"]
    assert overall["counts"] == {"samples": 6, "real": 6, "training_base": 30}
    for key in ("frechet_distance_encoder", "mmd2_encoder", "frechet_distance_random_cnn", "intensity_wasserstein"):
        assert overall[key]["samples"] > 0 and overall[key]["real"] > 0, key
    assert overall["pairwise_ms_ssim"]["num_pairs"] == 15
    assert set(overall["pairwise_ms_ssim"]["real"]) == {"min", "p5", "p25", "median", "p75", "p95", "max", "mean"}
    assert overall["near_copies"] == {"samples": 1, "real": 0}
    assert overall["nearest_training_ssim"]["samples"]["max"] == pytest.approx(1.0, abs=1e-6)
    assert overall["nearest_training_ssim"]["real"]["max"] < 0.95
    memorisation = report["memorisation"]
    assert memorisation["num_near_copies"] == 1 and len(memorisation["nearest"]) == 6
    assert memorisation["near_copies"][0]["sample"] == 0 and memorisation["near_copies"][0]["training_index"] == 3
    markdown = (tmp_path / "quality" / "report.md").read_text()
    assert REFERENCE in markdown and "| measure | samples | real reference | how to read |" in markdown
    assert "| near-copies (SSIM ≥ 0.95) | 1 / 6 | 0 / 6 |" in markdown
    fid = overall["frechet_distance_random_cnn"]
    assert f"| Fréchet distance, random-CNN features | {fid['samples']:.4g} | {fid['real']:.4g} |" in markdown
    assert "(nearest_neighbours.png)" in markdown and "(samples_by_position.png)" in markdown
    summary = quality_summary(report)  # the demo's headline numbers read the same keys
    assert summary["frechet_distance"] == overall["frechet_distance_encoder"]["samples"]
    assert summary["frechet_distance_real"] == overall["frechet_distance_encoder"]["real"]
    assert (summary["num_near_copies"], summary["num_near_copies_real"]) == (1, 0)

    again = quality_report(vqvae, real, samples, training, tmp_path / "again", sample_positions=positions)
    assert again == report  # seeded: the same inputs give the same numbers


def test_a_generator_that_draws_held_out_slices_lands_exactly_on_the_real_reference(tmp_path):
    vqvae = tiny_vqvae()
    held_out = textures(6, seed=5)
    report = quality_report(vqvae, held_out, held_out.clone(), textures(20, seed=4), tmp_path)
    overall = report["overall"]
    for key, value in overall.items():
        if key not in ("counts", "pairwise_ms_ssim"):
            assert value["samples"] == value["real"], key
    assert overall["pairwise_ms_ssim"]["samples"] == overall["pairwise_ms_ssim"]["real"]


def test_the_report_measures_the_known_in_brain_intensity_shift(tmp_path):
    training = flat_brains([0.25] * 6, sizes=[10, 12, 14, 16, 18, 20])
    real = flat_brains([0.25] * 4, sizes=[11, 13, 15, 17])
    samples = flat_brains([0.75] * 4, sizes=[11, 13, 15, 17])
    report = quality_report(tiny_vqvae(), real, samples, training, tmp_path, num_figure_images=2)
    assert report["overall"]["intensity_wasserstein"] == {"samples": 0.5, "real": 0.0}


def test_per_position_measures_use_the_real_and_training_slices_near_each_position(tmp_path):
    vqvae = tiny_vqvae()
    real = with_positions(textures(12, seed=5), [index / 11 for index in range(12)])
    training = with_positions(textures(20, seed=4), [(index % 10) / 9 for index in range(20)])
    samples, positions = textures(6, seed=6), [0.25, 0.25, 0.5, 0.5, 0.75, 0.75]
    report = quality_report(vqvae, real, samples, training, tmp_path, sample_positions=positions, position_window=0.1)
    # real 2/11, 3/11 are within 0.1 of 0.25; 5/11, 6/11 of 0.5; 8/11, 9/11 of 0.75; training 2/9 and 3/9 of 0.25,
    # 4/9 and 5/9 of 0.5, 6/9 and 7/9 of 0.75, each position twice
    assert report["selection"] == {
        "position_window": 0.1,
        "real_test_in_windows": 6,
        "training_in_windows": 12,
        "max_base_slices": 2000,
    }
    assert [entry["position"] for entry in report["by_position"]] == [0.25, 0.5, 0.75]
    for entry in report["by_position"]:
        assert entry["counts"] == {"samples": 2, "real": 2, "training_base": 4}
        assert entry["pairwise_ms_ssim"]["num_pairs"] == 1
        assert entry["frechet_distance_random_cnn"]["samples"] > 0 and entry["frechet_distance_random_cnn"]["real"] > 0
    assert report["overall"]["counts"] == {"samples": 6, "real": 6, "training_base": 12}
    markdown = (tmp_path / "report.md").read_text()
    assert "### Position 0.5 (±0.1): 2 samples, 2 real reference slices, 4 training base slices" in markdown

    capped = quality_report(
        vqvae, real, samples, training, tmp_path, sample_positions=positions, position_window=0.1, max_base_slices=3
    )
    assert [entry["counts"]["training_base"] for entry in capped["by_position"]] == [3, 3, 3]

    # within 0.06: one real slice near 0.25 (3/11) and near 0.75 (8/11), two near 0.5: those positions are skipped
    narrow = quality_report(vqvae, real, samples, training, tmp_path, sample_positions=positions, position_window=0.06)
    skipped = [entry.get("skipped") for entry in narrow["by_position"]]
    assert skipped == ["fewer than 2 slices in: real", None, "fewer than 2 slices in: real"]
    assert narrow["overall"]["counts"] == {"samples": 6, "real": 4, "training_base": 8}
    assert "Not computed: fewer than 2 slices in: real." in (tmp_path / "report.md").read_text()


def test_position_window_errors_say_what_is_missing(tmp_path):
    vqvae = tiny_vqvae()
    real = with_positions(textures(12, seed=5), [index / 11 for index in range(12)])
    training = with_positions(textures(8, seed=4), [index / 7 for index in range(8)])
    samples, positions = textures(4, seed=6), [0.25, 0.5, 0.5, 0.75]
    arguments = {"sample_positions": positions, "position_window": 0.001}
    with pytest.raises(ValueError, match=r"`position_window` 0.001 keeps no real test slice \(of 12\) near the sample"):
        quality_report(vqvae, real, samples, training, tmp_path, **arguments)
    arguments["position_window"] = 0.1
    with pytest.raises(ValueError, match=r"needs slice positions, but the real test slices' are unknown"):
        quality_report(vqvae, samples, samples, training, tmp_path, **arguments)
    with pytest.raises(ValueError, match=r"needs slice positions, but the training slices' are unknown"):
        quality_report(vqvae, real, samples, samples, tmp_path, **arguments)
    with pytest.raises(ValueError, match=r"needs slice positions, but the samples' are unknown"):
        quality_report(vqvae, real, samples, training, tmp_path, position_window=0.1)


def test_quality_report_reads_a_samples_folder_and_skips_the_position_figure_without_positions(tmp_path):
    vqvae = tiny_vqvae()
    samples = textures(4, seed=7)
    write_samples(samples, tmp_path / "samples", settings={"seed": 0})
    report = quality_report(
        vqvae, textures(6, seed=8), tmp_path / "samples", textures(10, seed=9), tmp_path / "quality", max_pairs=3
    )
    assert report["figures"]["by_position"] is None and report["sample_positions"] is None
    assert report["overall"]["pairwise_ms_ssim"]["num_pairs"] == 3 and report["counts"]["samples"] == 4
    assert report["counts"]["real_reference"] == 4  # as many real slices as samples
    assert not (tmp_path / "quality" / "samples_by_position.png").exists()
    assert "not drawn" in (tmp_path / "quality" / "report.md").read_text()


def test_position_groups_are_ordered_and_capped():
    assert _position_groups([0.5, 0.25, 0.5, 0.2501], max_rows=8) == [[1, 3], [0, 2]]
    groups = _position_groups([i / 19 for i in reversed(range(20))], max_rows=8)
    assert len(groups) == 8 and [i for group in groups for i in group] == list(reversed(range(20)))


def test_quality_report_checks_its_arguments(tmp_path):
    vqvae = tiny_vqvae()
    images = textures(4, seed=0)
    with pytest.raises(ValueError, match=r"`sample_positions` needs one position per sample \(4\), got 2"):
        quality_report(vqvae, images, images, images, tmp_path, sample_positions=[0.1, 0.2])
    with pytest.raises(ValueError, match=r"`near_copy_threshold` must be in \(0, 1\], got 1.5"):
        quality_report(vqvae, images, images, images, tmp_path, near_copy_threshold=1.5)
    with pytest.raises(ValueError, match=r"`max_base_slices` must be >= 2 or None, got 1"):
        quality_report(vqvae, images, images, images, tmp_path, max_base_slices=1)
    with pytest.raises(ValueError, match=r"`samples` needs at least 2 slices, got 1"):
        quality_report(vqvae, images, images[:1], images, tmp_path)
    with pytest.raises(TypeError, match=r"`training\[0\]` must be a dict with an 'image', got Tensor"):
        quality_report(vqvae, images, images, list(images), tmp_path)
    with pytest.raises(FileNotFoundError, match=r"No manifest.json in the samples folder"):
        quality_report(vqvae, images, tmp_path, images, tmp_path)


# ------------------------------------------------------------------------------------------------ samples folder
def test_sample_to_folder_draws_num_samples_at_each_slice_position(tmp_path):
    sampler = tiny_sampler()
    sample_to_folder(sampler, tmp_path / "list", 2, slice_position=[0.3, 0.7], seed=3, batch_size=3)
    manifest = json.loads((tmp_path / "list" / "manifest.json").read_text())
    assert manifest["settings"]["num_samples"] == 4 and manifest["settings"]["num_samples_per_position"] == 2
    assert manifest["settings"]["slice_position"] == [0.3, 0.7]
    folder = load_sample_folder(tmp_path / "list")
    assert folder.positions == [0.3, 0.3, 0.7, 0.7]
    # one sampler call with a position per sample: exactly what the folder holds
    expected = sampler.sample(4, scalars=torch.tensor([[0.3], [0.3], [0.7], [0.7]]), seed=3).images
    torch.testing.assert_close(folder.images, expected.clamp(0, 1), rtol=0, atol=1e-6)

    sample_to_folder(sampler, tmp_path / "one", 3, slice_position=0.5)
    one = json.loads((tmp_path / "one" / "manifest.json").read_text())
    assert one["settings"]["slice_position"] == 0.5 and one["settings"]["num_samples"] == 3
    assert load_sample_folder(tmp_path / "one").positions == [0.5, 0.5, 0.5]
    with pytest.raises(ValueError, match=r"`slice_position` holds normalised positions in \[0, 1\], got 1.5"):
        sample_to_folder(sampler, tmp_path / "bad", 2, slice_position=[0.5, 1.5])
    with pytest.raises(ValueError, match=r"`slice_position` must be None, a number in \[0, 1\] or a non-empty list"):
        sample_to_folder(sampler, tmp_path / "bad", 2, slice_position=[])
    with pytest.raises(TypeError, match=r"`slice_position` must be None, a number in \[0, 1\] or a list of them"):
        sample_to_folder(sampler, tmp_path / "bad", 2, slice_position=["middle"])


def test_load_sample_folder_undoes_write_samples(tmp_path):
    images = textures(3, seed=10)[:, :, :, :24]  # non-square: the rotation must be undone exactly
    write_samples(images, tmp_path / "with", settings={}, slice_positions=[0.2, 0.5, 0.8])
    loaded, positions = load_sample_folder(tmp_path / "with")
    assert loaded.dtype == torch.float32 and torch.equal(loaded, images)
    assert positions == [0.2, 0.5, 0.8]
    write_samples(images, tmp_path / "without", settings={})
    folder = load_sample_folder(tmp_path / "without")
    assert torch.equal(folder.images, images) and folder.positions is None


def test_load_sample_folder_errors_name_the_file(tmp_path):
    write_samples(textures(2, seed=0), tmp_path, settings={})
    (tmp_path / "sample_0001.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"sample_0001.nii.gz is listed in .*manifest.json but does not exist"):
        load_sample_folder(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["samples"] = [{"file": "sample_0000.nii.gz", "slice_position": None}]
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert load_sample_folder(tmp_path).positions is None  # null positions are unknown positions
    manifest["samples"].append({"file": "sample_0000.nii.gz", "slice_position": 0.5})
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"manifest.json records a 'slice_position' for some samples only"):
        load_sample_folder(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"samples": []}))
    with pytest.raises(ValueError, match=r"manifest.json must list the samples"):
        load_sample_folder(tmp_path)
