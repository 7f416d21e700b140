"""Distances between sets of slices, as pure tensor maths: between feature sets (Fréchet distance, maximum mean
discrepancy) and between in-brain intensity distributions (Wasserstein distance of histograms).

- **Feature-set distances** (:func:`frechet_distance`, and :func:`maximum_mean_discrepancy` with the bandwidth of
  :func:`median_bandwidth`) on any ``(N, D)`` features, e.g. those of :mod:`monai_vqvae2.quality.features`, in
  float64; :func:`stage_scales` gives every stage of a multi-stage feature vector the same weight in a distance.
- **In-brain intensity distance** (:func:`foreground_histograms`, :func:`histogram_wasserstein`,
  :func:`intensity_wasserstein`): the 1-D Wasserstein distance between the pooled histograms of the pixels above a
  small foreground threshold (0.01, the brain mask of :class:`~monai_vqvae2.metrics.MaskedSSIMMetric`). It reads in
  intensity units: 0.02 means the in-brain intensities would have to move by 2 % of the [0, 1] range on average to
  match. The Wasserstein distance is chosen over the Jensen-Shannon divergence because it respects the order of the
  bins: a histogram shifted by one bin is close, whereas the Jensen-Shannon divergence of two histograms that do not
  overlap is maximal (log 2) however small the shift.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "FOREGROUND_THRESHOLD",
    "HISTOGRAM_BINS",
    "chunked_distances",
    "foreground_histograms",
    "frechet_distance",
    "histogram_wasserstein",
    "intensity_wasserstein",
    "maximum_mean_discrepancy",
    "median_bandwidth",
    "positive_int",
    "stage_scales",
]

# intensity above which a pixel belongs to the brain (MaskedSSIMMetric's default foreground_threshold)
FOREGROUND_THRESHOLD = 0.01
# equal bins over [0, 1]: a resolution of 1/256, below what 8-bit display can show
HISTOGRAM_BINS = 256
# chunk of rows of the kernel and distance matrices held in memory at once
_CHUNK = 1024


def positive_int(value: Any, name: str) -> int:
    """``value`` as an ``int``, checked to be a positive integer (a bool is not one).

    Args:
        value: the number to check.
        name: the argument's name, for the error message.

    Raises:
        ValueError: ``value`` is not a positive integer.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
    return int(value)


# ---------------------------------------------------------------------------------------------------- feature sets
def _check_features(features: torch.Tensor, name: str, minimum: int = 2) -> torch.Tensor:
    features = torch.as_tensor(features)
    if features.ndim != 2:
        raise ValueError(f"`{name}` must have shape (N, D), got {tuple(features.shape)}.")
    if features.shape[0] < minimum:
        raise ValueError(f"`{name}` needs at least {minimum} feature vectors, got {features.shape[0]}.")
    if not torch.isfinite(features).all():
        raise ValueError(f"`{name}` holds non-finite values.")
    return features.double().cpu()


def _check_pair(features_a: torch.Tensor, features_b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    features_a, features_b = _check_features(features_a, "features_a"), _check_features(features_b, "features_b")
    if features_a.shape[1] != features_b.shape[1]:
        raise ValueError(
            f"`features_a` and `features_b` must have the same feature size, got {features_a.shape[1]} and "
            f"{features_b.shape[1]}."
        )
    return features_a, features_b


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (the FID formula of Heusel et al. 2017,
    https://arxiv.org/abs/1706.08500, here on any features):
    ``|mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2))`` with unbiased covariances ``S``.

    ``tr((S_a S_b)^(1/2))`` is the sum of the square roots of the eigenvalues of ``S_a S_b``. With ``S = X^T X`` for
    the centred rows ``X`` divided by ``sqrt(N - 1)``, those eigenvalues are the squared singular values of
    ``X_a X_b^T``, so when a set has no more rows than features (the usual case per slice position) the trace is the
    sum of the singular values of that ``(N_a, N_b)`` matrix; otherwise it is the sum of the singular values of
    ``S_a^(1/2) S_b^(1/2)`` (symmetric square roots by eigendecomposition). Both are exact when the covariances are
    singular: identical sets give 0 to rounding (about 1e-15 relative). Computed in float64; tiny negative rounding
    is clamped to 0.

    Args:
        features_a: ``(N_a, D)``, ``N_a >= 2``.
        features_b: ``(N_b, D)``, ``N_b >= 2``.

    Returns:
        the distance (squared feature units); lower means closer distributions.

    Raises:
        ValueError: not two 2D sets with the same ``D`` and at least two rows each, or non-finite values.
    """
    features_a, features_b = _check_pair(features_a, features_b)
    mean_a, mean_b = features_a.mean(0), features_b.mean(0)
    rows_a = (features_a - mean_a) / math.sqrt(len(features_a) - 1)  # S_a = rows_a^T rows_a
    rows_b = (features_b - mean_b) / math.sqrt(len(features_b) - 1)
    if min(len(rows_a), len(rows_b)) <= features_a.shape[1]:
        trace_sqrt = torch.linalg.svdvals(rows_a @ rows_b.T).sum()
    else:
        trace_sqrt = torch.linalg.svdvals(_psd_sqrt(rows_a.T @ rows_a) @ _psd_sqrt(rows_b.T @ rows_b)).sum()
    distance = (mean_a - mean_b).square().sum() + rows_a.square().sum() + rows_b.square().sum() - 2 * trace_sqrt
    return max(float(distance), 0.0)


def chunked_distances(features_a: torch.Tensor, features_b: torch.Tensor) -> Iterator[torch.Tensor]:
    """Euclidean distances, ``_CHUNK`` rows of ``features_a`` at a time (exact: zero for identical rows)."""
    for start in range(0, len(features_a), _CHUNK):
        yield torch.cdist(features_a[start : start + _CHUNK], features_b, compute_mode="donot_use_mm_for_euclid_dist")


def median_bandwidth(
    features_a: torch.Tensor, features_b: torch.Tensor | None = None, max_points: int = 1000, seed: int = 0
) -> float:
    """RBF bandwidth by the median heuristic: the median Euclidean distance between distinct points of the pooled
    sets (a seeded subset of ``max_points`` points when they are more). When that median is 0 (mostly repeated
    points) the median of the non-zero distances is used, and 1.0 when all points coincide.

    Args:
        features_a: ``(N_a, D)``.
        features_b: ``(N_b, D)``, pooled with ``features_a``; ``None``: ``features_a`` alone.
        max_points: largest pooled set used.
        seed: seed of the subset.

    Returns:
        the bandwidth ``sigma`` (feature units).

    Raises:
        ValueError: bad feature sets or ``max_points < 2``.
    """
    if features_b is None:
        pooled = _check_features(features_a, "features_a")
    else:
        pooled = torch.cat(_check_pair(features_a, features_b))
    if positive_int(max_points, "max_points") < 2:
        raise ValueError(f"`max_points` must be >= 2, got {max_points}.")
    if len(pooled) > max_points:
        chosen = np.sort(np.random.default_rng(seed).choice(len(pooled), size=max_points, replace=False))
        pooled = pooled[torch.from_numpy(chosen)]
    upper = torch.triu_indices(len(pooled), len(pooled), offset=1)
    distances = torch.cat(list(chunked_distances(pooled, pooled)))[upper[0], upper[1]].numpy()
    median = float(np.median(distances))
    if median > 0:
        return median
    positive = distances[distances > 0]
    return float(np.median(positive)) if positive.size else 1.0


def _kernel_sum(features_a: torch.Tensor, features_b: torch.Tensor, bandwidth: float) -> float:
    total = 0.0
    for distances in chunked_distances(features_a, features_b):
        total += float(torch.exp(-distances.square() / (2 * bandwidth**2)).sum())
    return total


def maximum_mean_discrepancy(
    features_a: torch.Tensor, features_b: torch.Tensor, bandwidth: float, unbiased: bool = False
) -> float:
    """Squared maximum mean discrepancy MMD² (Gretton et al. 2012, https://jmlr.org/papers/v13/gretton12a.html) with
    the RBF kernel ``k(x, y) = exp(-|x - y|^2 / (2 bandwidth^2))``.

    - ``unbiased=False`` (default): the V-statistic ``mean K_aa + mean K_bb - 2 mean K_ab`` (all pairs, diagonals
      included). It is the squared distance between the kernel mean embeddings of the two sets, so it is never
      negative and exactly 0 for identical sets; for two independent draws of one distribution it is positive,
      about ``(1 - mean k) (1 / N_a + 1 / N_b)``, so compare values at equal set sizes.
    - ``unbiased=True``: the U-statistic (Gretton et al., eq. 3; diagonals of ``K_aa`` and ``K_bb`` left out). Its
      expectation is 0 for one distribution whatever the sizes, so it can be slightly negative, and it is negative
      (not 0) for identical sets.

    Args:
        features_a: ``(N_a, D)``, ``N_a >= 2``.
        features_b: ``(N_b, D)``, ``N_b >= 2``.
        bandwidth: kernel width ``sigma`` (see :func:`median_bandwidth`).
        unbiased: the U-statistic instead of the V-statistic.

    Returns:
        MMD² (the kernel is in [0, 1], so values lie in [-2, 2]; lower means closer distributions).

    Raises:
        ValueError: bad feature sets or a bandwidth that is not positive.
    """
    features_a, features_b = _check_pair(features_a, features_b)
    try:
        sigma = float(bandwidth)
    except (TypeError, ValueError):
        sigma = float("nan")
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"`bandwidth` must be a positive number, got {bandwidth!r}.")
    count_a, count_b = len(features_a), len(features_b)
    sum_aa = _kernel_sum(features_a, features_a, sigma)
    sum_bb = _kernel_sum(features_b, features_b, sigma)
    sum_ab = _kernel_sum(features_a, features_b, sigma)
    if unbiased:  # the diagonals are k(x, x) = 1
        within_a = (sum_aa - count_a) / (count_a * (count_a - 1))
        within_b = (sum_bb - count_b) / (count_b * (count_b - 1))
    else:
        within_a, within_b = sum_aa / count_a**2, sum_bb / count_b**2
    return within_a + within_b - 2 * sum_ab / (count_a * count_b)


# -------------------------------------------------------------------------------------------- in-brain intensities
def _check_bins_and_threshold(bins: int, threshold: float) -> None:
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"`bins` must be a positive integer, got {bins!r}.")
    if not (isinstance(threshold, (int, float)) and 0.0 <= threshold < 1.0):
        raise ValueError(f"`threshold` must be a number in [0, 1), got {threshold!r}.")


def foreground_histograms(
    images: torch.Tensor, bins: int = HISTOGRAM_BINS, threshold: float = FOREGROUND_THRESHOLD
) -> torch.Tensor:
    """Per-image histograms of the intensities inside the brain: the pixels strictly above ``threshold``, counted in
    ``bins`` equal bins over [0, 1] (bin ``k`` holds ``[k / bins, (k + 1) / bins)``; values of 1 or more count in the
    last bin). Summing rows pools images.

    Args:
        images: ``(N, ...)`` intensities in [0, 1], e.g. ``(N, 1, H, W)``.
        bins: number of bins.
        threshold: foreground threshold (0.01: :class:`~monai_vqvae2.metrics.MaskedSSIMMetric`'s brain mask).

    Returns:
        ``(N, bins)`` float64 pixel counts, on the CPU.

    Raises:
        ValueError: not a batch of images, non-finite values, or bad ``bins`` / ``threshold``.
    """
    _check_bins_and_threshold(bins, threshold)
    images = torch.as_tensor(images)
    if images.ndim < 2 or images.shape[0] == 0:
        raise ValueError(f"`images` must be a non-empty batch (N, ...), got shape {tuple(images.shape)}.")
    values = images.detach().reshape(images.shape[0], -1).double().cpu()
    if not torch.isfinite(values).all():
        raise ValueError("`images` holds non-finite values.")
    index = (values * bins).floor().clamp(0, bins - 1).long()
    counts = torch.zeros((values.shape[0], bins), dtype=torch.float64)
    return counts.scatter_add_(1, index, (values > threshold).double())


def histogram_wasserstein(histogram_a: torch.Tensor, histogram_b: torch.Tensor) -> float:
    """1-D Wasserstein (earth mover's) distance between two histograms over the same equal bins on [0, 1]:
    ``sum_k |CDF_a(k) - CDF_b(k)| / bins`` after normalising each histogram to a total of 1. It is the mean distance
    intensity mass must move to turn one distribution into the other: 0 for identical histograms, ``|a - b|`` for all
    mass at intensity ``a`` against all mass at ``b``.

    Args:
        histogram_a: ``(bins,)`` non-negative counts (e.g. :func:`foreground_histograms` summed over images).
        histogram_b: ``(bins,)`` counts over the same bins.

    Returns:
        the distance in intensity units, in [0, 1].

    Raises:
        ValueError: histograms of different or non-1-D shapes, negative or non-finite counts, or an empty histogram
            (no foreground pixel).
    """
    histograms = []
    for name, histogram in (("histogram_a", histogram_a), ("histogram_b", histogram_b)):
        histogram = torch.as_tensor(histogram).double().cpu()
        if histogram.ndim != 1 or histogram.numel() == 0:
            raise ValueError(f"`{name}` must be a 1-D histogram (bins,), got shape {tuple(histogram.shape)}.")
        if not torch.isfinite(histogram).all() or (histogram < 0).any():
            raise ValueError(f"`{name}` must hold finite non-negative counts.")
        if histogram.sum() <= 0:
            raise ValueError(f"`{name}` is empty (no pixel above the foreground threshold).")
        histograms.append(histogram / histogram.sum())
    first, second = histograms
    if first.shape != second.shape:
        raise ValueError(
            f"`histogram_a` and `histogram_b` must have the same bins, got {first.numel()} and {second.numel()}."
        )
    return float((first.cumsum(0) - second.cumsum(0)).abs().sum() / first.numel())


def intensity_wasserstein(
    images_a: torch.Tensor,
    images_b: torch.Tensor,
    bins: int = HISTOGRAM_BINS,
    threshold: float = FOREGROUND_THRESHOLD,
) -> float:
    """Wasserstein distance between the pooled in-brain intensity histograms of two sets of images:
    :func:`histogram_wasserstein` of the :func:`foreground_histograms` of each set, summed over its images.

    Args:
        images_a: ``(N_a, ...)`` intensities in [0, 1].
        images_b: ``(N_b, ...)`` intensities in [0, 1].
        bins: number of equal bins over [0, 1].
        threshold: foreground threshold.

    Returns:
        the distance in intensity units (0 for identical sets).

    Raises:
        ValueError: as :func:`foreground_histograms` and :func:`histogram_wasserstein`.
    """
    return histogram_wasserstein(
        foreground_histograms(images_a, bins, threshold).sum(0), foreground_histograms(images_b, bins, threshold).sum(0)
    )


# --------------------------------------------------------------------------------------------------- stage weights
def stage_scales(features: torch.Tensor, stage_channels: Sequence[int]) -> torch.Tensor:
    """Per-column factors that give every stage of a multi-stage feature vector a total variance of 1 over
    ``features`` (the trace of each stage's covariance): without them the deepest, widest stage would dominate any
    distance. A stage without variance keeps the factor 1.

    Args:
        features: ``(N, D)`` features of the reference set (the training base), ``N >= 2``.
        stage_channels: the stages' widths, in column order, summing to ``D``.

    Returns:
        ``(D,)`` float64 factors to multiply every feature set by.

    Raises:
        ValueError: fewer than two rows, or stage widths that do not sum to ``D``.
    """
    features = torch.as_tensor(features).double().cpu()
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"`features` must have shape (N, D) with N >= 2, got {tuple(features.shape)}.")
    if sum(stage_channels) != features.shape[1] or any(c < 1 for c in stage_channels):
        raise ValueError(
            f"`stage_channels` must be positive widths summing to {features.shape[1]}, got {list(stage_channels)}."
        )
    factors, start = [], 0
    for channels in stage_channels:
        total = float(features[:, start : start + channels].var(dim=0).sum())
        factor = 1.0 / math.sqrt(total) if total > 0 and math.isfinite(total) else 1.0
        factors.append(torch.full((channels,), factor, dtype=torch.float64))
        start += channels
    return torch.cat(factors)
