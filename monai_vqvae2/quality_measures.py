"""Kept for backward compatibility: the in-brain intensity measures and the random-CNN feature space now live in
:mod:`monai_vqvae2.quality.measures` and :mod:`monai_vqvae2.quality.features`; new code imports them from
:mod:`monai_vqvae2.quality`."""

from __future__ import annotations

from monai_vqvae2.quality.features import (
    RANDOM_FEATURE_MODEL,  # noqa: F401 (a former public name, not in __all__)
    RANDOM_FEATURE_SPACE,
    RandomCNNFeatures,
)
from monai_vqvae2.quality.measures import (
    FOREGROUND_THRESHOLD,
    HISTOGRAM_BINS,
    foreground_histograms,
    histogram_wasserstein,
    intensity_wasserstein,
    stage_scales,
)

__all__ = [
    "FOREGROUND_THRESHOLD",
    "HISTOGRAM_BINS",
    "RANDOM_FEATURE_SPACE",
    "RandomCNNFeatures",
    "foreground_histograms",
    "histogram_wasserstein",
    "intensity_wasserstein",
    "stage_scales",
]
