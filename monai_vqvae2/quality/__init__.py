"""Quality of generated slices (and volumes, plane by plane): realism, diversity and memorisation, each beside what
real unseen brains score.

:func:`~monai_vqvae2.quality.report.quality_report` computes every measure and writes the report (its module says
how the measures are read). The modules it builds on, each importing only those listed before it:
:mod:`~monai_vqvae2.quality.measures` (distances between feature sets and intensity histograms),
:mod:`~monai_vqvae2.quality.images` (slices from tensors, datasets and samples folders),
:mod:`~monai_vqvae2.quality.features` (encoder and random-CNN feature spaces),
:mod:`~monai_vqvae2.quality.similarity` (SSIM diversity and memorisation),
:mod:`~monai_vqvae2.quality.figures` (PNG figures), :mod:`~monai_vqvae2.quality.plan` (which slices each comparison
uses), :mod:`~monai_vqvae2.quality.segmentation` (the real-data segmenter of the label agreement),
:mod:`~monai_vqvae2.quality.markdown` (``report.md``) and :mod:`~monai_vqvae2.quality.volumes` (the report
of sampled volumes: :func:`~monai_vqvae2.quality.volumes.volume_quality_report`, which ``quality_report`` runs for a
folder of volumes).
"""

from __future__ import annotations

from monai_vqvae2.quality.features import FEATURE_SPACE, RANDOM_FEATURE_SPACE, RandomCNNFeatures, encoder_features
from monai_vqvae2.quality.images import SampleFolder, load_sample_folder, load_sample_labels
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
from monai_vqvae2.quality.segmentation import (
    label_agreement,
    reference_segmenter,
    segment,
    tissue_segmenter,
    train_segmenter,
)
from monai_vqvae2.quality.similarity import NearestTraining, nearest_training_ssim, pairwise_ms_ssim
from monai_vqvae2.quality.volumes import PLANES, plane_slices, volume_quality_report

__all__ = [
    "FEATURE_SPACE",
    "FOREGROUND_THRESHOLD",
    "HISTOGRAM_BINS",
    "PLANES",
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
    "label_agreement",
    "load_sample_folder",
    "load_sample_labels",
    "maximum_mean_discrepancy",
    "median_bandwidth",
    "nearest_training_ssim",
    "pairwise_ms_ssim",
    "plane_slices",
    "quality_report",
    "reference_segmenter",
    "segment",
    "stage_scales",
    "tissue_segmenter",
    "train_segmenter",
    "volume_quality_report",
]
