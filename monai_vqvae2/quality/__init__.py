"""Quality of generated slices: realism, diversity and memorisation, each beside what real unseen brains score.

:func:`~monai_vqvae2.quality.report.quality_report` computes every measure and writes the report (its module says
how the measures are read). The modules it builds on, each importing only those listed before it:
:mod:`~monai_vqvae2.quality.measures` (distances between feature sets and intensity histograms),
:mod:`~monai_vqvae2.quality.images` (slices from tensors, datasets and samples folders),
:mod:`~monai_vqvae2.quality.features` (encoder and random-CNN feature spaces),
:mod:`~monai_vqvae2.quality.similarity` (SSIM diversity and memorisation),
:mod:`~monai_vqvae2.quality.figures` (PNG figures), :mod:`~monai_vqvae2.quality.plan` (which slices each comparison
uses) and :mod:`~monai_vqvae2.quality.markdown` (``report.md``).
"""

from __future__ import annotations

from monai_vqvae2.quality.features import FEATURE_SPACE, RANDOM_FEATURE_SPACE, RandomCNNFeatures, encoder_features
from monai_vqvae2.quality.images import SampleFolder, load_sample_folder
from monai_vqvae2.quality.measures import (
    FOREGROUND_THRESHOLD,
    HISTOGRAM_BINS,
    foreground_histograms,
    frechet_distance,
    histogram_wasserstein,
    intensity_wasserstein,
    maximum_mean_discrepancy,
    median_bandwidth,
    stage_scales,
)
from monai_vqvae2.quality.plan import REFERENCE
from monai_vqvae2.quality.report import quality_report
from monai_vqvae2.quality.similarity import NearestTraining, nearest_training_ssim, pairwise_ms_ssim

__all__ = [
    "FEATURE_SPACE",
    "FOREGROUND_THRESHOLD",
    "HISTOGRAM_BINS",
    "RANDOM_FEATURE_SPACE",
    "REFERENCE",
    "NearestTraining",
    "RandomCNNFeatures",
    "SampleFolder",
    "encoder_features",
    "foreground_histograms",
    "frechet_distance",
    "histogram_wasserstein",
    "intensity_wasserstein",
    "load_sample_folder",
    "maximum_mean_discrepancy",
    "median_bandwidth",
    "nearest_training_ssim",
    "pairwise_ms_ssim",
    "quality_report",
    "stage_scales",
]
