"""The quality report's former import paths still work: ``monai_vqvae2.quality`` (once a module, now the package)
and ``monai_vqvae2.quality_measures`` give the very objects of the new modules."""

from __future__ import annotations

import monai_vqvae2.quality
import monai_vqvae2.quality_measures
from monai_vqvae2.quality import features, images, measures, plan, report, similarity

# the names ``monai_vqvae2.quality`` exported when it was one module
FORMER_QUALITY_NAMES = [
    "FEATURE_SPACE",
    "REFERENCE",
    "NearestTraining",
    "SampleFolder",
    "encoder_features",
    "frechet_distance",
    "load_sample_folder",
    "maximum_mean_discrepancy",
    "median_bandwidth",
    "nearest_training_ssim",
    "pairwise_ms_ssim",
    "quality_report",
]


def test_the_old_import_paths_give_the_new_objects():
    assert monai_vqvae2.quality_measures.histogram_wasserstein is measures.histogram_wasserstein
    assert monai_vqvae2.quality.quality_report is report.quality_report
    assert monai_vqvae2.quality.REFERENCE is plan.REFERENCE
    assert monai_vqvae2.quality.load_sample_folder is images.load_sample_folder
    assert monai_vqvae2.quality.pairwise_ms_ssim is similarity.pairwise_ms_ssim
    assert monai_vqvae2.quality_measures.RandomCNNFeatures is features.RandomCNNFeatures
    volume_names = {"PLANES", "plane_slices", "volume_quality_report"}  # added with the quality of volumes
    # added with the label agreement of image + label pairs
    label_names = {"label_agreement", "load_sample_labels", "reference_segmenter", "segment", "tissue_segmenter"}
    label_names.add("train_segmenter")
    expected = set(FORMER_QUALITY_NAMES) | set(monai_vqvae2.quality_measures.__all__) | volume_names | label_names
    assert set(monai_vqvae2.quality.__all__) == expected
    for name in monai_vqvae2.quality_measures.__all__:
        assert getattr(monai_vqvae2.quality_measures, name) is getattr(monai_vqvae2.quality, name), name
