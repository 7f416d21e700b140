"""Quality of generated slices: realism, diversity and memorisation, each beside what real unseen brains score.

The yardstick is the **real reference**: real slices of held-out (test split) subjects at the samples' slice
positions, as many as there are samples, scored against the training slices exactly the way the samples are. A
generator whose samples are distributed like real brains lands where that reference lands, so every number is read
against the one beside it. Every subset and pair is drawn with a seeded generator, so the same inputs always give the
same report. What each number means and how to read it: ``bundle/docs/quality.md``.

- **Base**: every set (samples, real reference) is compared with the same training base, a seeded subset of the
  training slices (per slice position when the samples have positions and ``position_window`` is set;
  :mod:`monai_vqvae2.quality.plan`).
- **Encoder features** (:func:`~monai_vqvae2.quality.features.encoder_features`): the trained VQ-VAE-2's own
  encoder. Each level's encoder output (before quantization) is global-average-pooled and the levels are
  concatenated, coarsest first: ``sum(channels)`` numbers per slice; comparable only between reports made with the
  same autoencoder checkpoint. The Fréchet distance (Heusel et al. 2017, https://arxiv.org/abs/1706.08500;
  :func:`~monai_vqvae2.quality.measures.frechet_distance`) and the squared maximum mean discrepancy (Gretton et al.
  2012, https://jmlr.org/papers/v13/gretton12a.html; :func:`~monai_vqvae2.quality.measures.maximum_mean_discrepancy`,
  bandwidth by :func:`~monai_vqvae2.quality.measures.median_bandwidth`) are computed there.
- **Random-CNN features** (:class:`~monai_vqvae2.quality.features.RandomCNNFeatures`): a seeded, untrained MONAI
  ResNet, a feature space the generator did not shape; Fréchet distance there.
- **In-brain intensities** (:func:`~monai_vqvae2.quality.measures.histogram_wasserstein`): the Wasserstein distance
  between the pooled intensity histograms of the pixels above 0.01.
- **Diversity** (:func:`~monai_vqvae2.quality.similarity.pairwise_ms_ssim`): mean MS-SSIM (Wang et al. 2003) over
  seeded random pairs within a set.
- **Memorisation** (:func:`~monai_vqvae2.quality.similarity.nearest_training_ssim`): each slice's SSIM to its most
  similar training slice, searched over the whole training set (candidates pre-selected by pixel distance of small
  thumbnails).

:func:`quality_report` computes them all and writes ``quality.json``, ``report.md``
(:mod:`monai_vqvae2.quality.markdown`) and PNG figures (:mod:`monai_vqvae2.quality.figures`) atomically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from monai_vqvae2.io import atomic_write, atomic_write_json
from monai_vqvae2.metrics import ms_ssim_weights
from monai_vqvae2.networks import unwrap
from monai_vqvae2.quality.features import FEATURE_SPACE, RANDOM_FEATURE_SPACE, RandomCNNFeatures, encoder_features
from monai_vqvae2.quality.figures import MAX_POSITION_ROWS, label_pairs_figure, nearest_figure, position_figure
from monai_vqvae2.quality.images import ImageSet, check_same_size, load_sample_folder, load_sample_labels
from monai_vqvae2.quality.markdown import report_markdown
from monai_vqvae2.quality.measures import (
    FOREGROUND_THRESHOLD,
    HISTOGRAM_BINS,
    foreground_histograms,
    frechet_distance,
    histogram_wasserstein,
    maximum_mean_discrepancy,
    median_bandwidth,
    positive_int,
    stage_scales,
)
from monai_vqvae2.quality.plan import REFERENCE, SETS, Group, plan_groups
from monai_vqvae2.quality.segmentation import label_agreement
from monai_vqvae2.quality.similarity import (
    SSIM_KERNEL_SIZE,
    NearestTraining,
    ms_ssim_metric,
    nearest_from_thumbnails,
    pairwise_ms_ssim,
    thumbnail_vectors,
)
from monai_vqvae2.quality.volumes import is_volume_folder, volume_quality_report

__all__ = ["quality_report"]

PERCENTILES = (5, 25, 50, 75, 95)


def _distribution(values: torch.Tensor | Sequence[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=np.float64)
    summary = {"min": float(array.min()), "mean": float(array.mean()), "max": float(array.max())}
    for percentile, value in zip(PERCENTILES, np.percentile(array, PERCENTILES)):
        summary["median" if percentile == 50 else f"p{percentile}"] = float(value)
    return summary


def _random_features(extract: RandomCNNFeatures, source: ImageSet, batch_size: int) -> torch.Tensor:
    return torch.cat([extract(batch) for batch in source.batches(batch_size)])


def _histograms(source: ImageSet, batch_size: int) -> torch.Tensor:
    return torch.cat([foreground_histograms(batch) for batch in source.batches(batch_size)])


class _PerSlice(NamedTuple):
    """Everything computed once per slice, for the samples, the real reference and the training base (rows in the
    order of the overall group's index lists)."""

    images: dict[str, ImageSet]  # "samples", "real"
    encoder: dict[str, torch.Tensor]  # "samples", "real", "base"
    random_cnn: dict[str, torch.Tensor]
    histograms: dict[str, torch.Tensor]
    nearest: dict[str, NearestTraining]  # "samples", "real"


def _wasserstein(histograms: torch.Tensor, base: torch.Tensor) -> float | None:
    """In-brain intensity distance of two pooled histograms; ``None`` when a set has no foreground pixel."""
    if histograms.sum() <= 0 or base.sum() <= 0:
        return None
    return histogram_wasserstein(histograms, base)


def _measures(
    group: Group,
    overall: Group,
    per_slice: _PerSlice,
    bandwidth: float,
    threshold: float,
    max_pairs: int,
    seed: int,
    batch_size: int,
) -> dict[str, Any]:
    """Every measure of one comparison, for the samples and the real reference side by side (``{"samples": ...,
    "real": ...}``), each against the group's training base."""
    real_row = {index: row for row, index in enumerate(overall.real)}
    base_row = {index: row for row, index in enumerate(overall.base)}
    rows = {"samples": torch.as_tensor(group.samples), "real": torch.as_tensor([real_row[i] for i in group.real])}
    base = torch.as_tensor([base_row[i] for i in group.base])
    counts = {"samples": len(group.samples), "real": len(group.real), "training_base": len(group.base)}
    short = [name.replace("_", " ") for name, count in counts.items() if count < 2]
    if short:
        return {"counts": counts, "skipped": f"fewer than 2 slices in: {', '.join(short)}"}

    def both(function: Any) -> dict[str, Any]:
        return {name: function(name, rows[name]) for name in SETS}

    encoder_base, random_base = per_slice.encoder["base"][base], per_slice.random_cnn["base"][base]
    histogram_base = per_slice.histograms["base"][base].sum(0)
    num_pairs = min(max_pairs, *(count * (count - 1) // 2 for count in (counts["samples"], counts["real"])))
    return {
        "counts": counts,
        "frechet_distance_encoder": both(lambda n, r: frechet_distance(encoder_base, per_slice.encoder[n][r])),
        "mmd2_encoder": both(lambda n, r: maximum_mean_discrepancy(encoder_base, per_slice.encoder[n][r], bandwidth)),
        "mmd2_unbiased_encoder": both(
            lambda n, r: maximum_mean_discrepancy(encoder_base, per_slice.encoder[n][r], bandwidth, unbiased=True)
        ),
        "frechet_distance_random_cnn": both(lambda n, r: frechet_distance(random_base, per_slice.random_cnn[n][r])),
        "intensity_wasserstein": both(lambda n, r: _wasserstein(per_slice.histograms[n][r].sum(0), histogram_base)),
        "pairwise_ms_ssim": {
            "num_pairs": num_pairs,
            **both(
                lambda n, r: _distribution(
                    pairwise_ms_ssim(per_slice.images[n].subset(r.tolist()), num_pairs, seed, batch_size)
                )
            ),
        },
        "nearest_training_ssim": both(lambda n, r: _distribution(per_slice.nearest[n].ssim[r])),
        "near_copies": both(lambda n, r: int((per_slice.nearest[n].ssim[r] >= threshold).sum())),
    }


#: what the label agreement measures, for the report
LABEL_AGREEMENT = (
    "Dice per tissue class between each slice's label map and the segmentation of the slice by a MONAI UNet trained "
    "on real training pairs only; for the samples their generated label, for the real reference the real label."
)


def _label_agreement(
    segmenter: torch.nn.Module,
    samples: ImageSet,
    sample_labels: torch.Tensor | None,
    real: ImageSet,
    batch_size: int,
    num_figure_images: int,
    path: Path,
) -> dict[str, Any]:
    """The report's ``label_agreement``: samples and real reference side by side, and the figure of
    ``num_figure_images`` samples spread over the set with their labels and the segmenter's."""
    if sample_labels is None:
        if samples._dataset is None:
            raise ValueError(
                "`segmenter` was given, but the samples have no label maps: sample with a VQ-VAE-2 that has a label "
                "decoder (labels: true), or pass `sample_labels`."
            )
        sample_labels = samples.labels(range(len(samples)))
    if tuple(sample_labels.shape) != (len(samples), 1, *samples.spatial_shape):
        raise ValueError(
            f"`sample_labels` must have shape {(len(samples), 1, *samples.spatial_shape)}, got "
            f"{tuple(sample_labels.shape)}."
        )
    images = samples.get(range(len(samples)))
    generated = label_agreement(segmenter, images, sample_labels, batch_size=batch_size)
    reference = label_agreement(
        segmenter, real.get(range(len(real))), real.labels(range(len(real))), batch_size=batch_size
    )
    # evenly spread over the samples, which are in slice-position order when several positions were sampled
    shown = torch.linspace(0, len(samples) - 1, min(num_figure_images, len(samples))).round().long().unique()
    label_pairs_figure(images[shown], sample_labels[shown], generated.pop("segmented")[shown], path)
    reference.pop("segmented")
    return {"description": LABEL_AGREEMENT, "samples": generated, "real": reference, "figure": path.name}


def quality_report(
    vqvae: torch.nn.Module,
    real_test: Any,
    samples: Any,
    training: Any,
    output_dir: str | os.PathLike,
    sample_positions: Sequence[float] | None = None,
    *,
    seed: int = 0,
    batch_size: int = 64,
    max_pairs: int = 500,
    near_copy_threshold: float = 0.95,
    num_candidates: int = 16,
    candidate_size: int = 32,
    max_bandwidth_points: int = 1000,
    num_figure_images: int = 8,
    position_window: float | None = None,
    max_base_slices: int | None = 2000,
    feature_seed: int = 0,
    segmenter: torch.nn.Module | None = None,
    sample_labels: torch.Tensor | None = None,
) -> dict[str, Any]:
    """Measure generated slices against the training slices, beside real slices of held-out subjects measured the
    same way, and write ``quality.json``, ``report.md``, ``nearest_neighbours.png`` and (when slice positions are
    known) ``samples_by_position.png`` under ``output_dir``, each atomically (``quality.json`` last).

    Two sets are scored, each against the same **training base** (a seeded subset of at most ``max_base_slices``
    training slices): the samples, and the **real reference**, a seeded draw of as many real test slices (held-out
    subjects) as there are samples. A generator whose samples are distributed like real brains scores what the real
    reference scores; every measure is reported for both, side by side:

    - Fréchet distance and MMD² (V- and U-statistic, RBF kernel with the median distance of the base as bandwidth) in
      the VQ-VAE-2 encoder features (:func:`~monai_vqvae2.quality.features.encoder_features`);
    - Fréchet distance in the features of a seeded random CNN that no training shaped
      (:class:`~monai_vqvae2.quality.features.RandomCNNFeatures`, each stage scaled to total variance 1 over the base
      by :func:`~monai_vqvae2.quality.measures.stage_scales`);
    - the Wasserstein distance between the pooled in-brain intensity histograms
      (:func:`~monai_vqvae2.quality.measures.histogram_wasserstein`);
    - diversity: MS-SSIM over seeded pairs within the set (as many pairs for both sets);
    - memorisation: each slice's SSIM to its nearest slice of the **whole** training set
      (:func:`~monai_vqvae2.quality.similarity.nearest_training_ssim`) and how many reach ``near_copy_threshold`` (the
      samples that do are listed);
    - with a ``segmenter`` trained on real pairs only
      (:func:`~monai_vqvae2.quality.segmentation.reference_segmenter`): the **label agreement**, the Dice per tissue
      class between each sample's generated label map and the segmenter's segmentation of the sample, beside the same
      Dice between the real reference's labels and their segmentation (the segmenter's own error on real brains), and
      ``label_pairs.png``.

    A folder of sampled volumes (written by :func:`~monai_vqvae2.inferers.write_volume_samples`) is measured plane by
    plane instead, with the real and training volumes: :func:`~monai_vqvae2.quality.volumes.volume_quality_report`
    (``vqvae``, ``sample_positions``, ``position_window``, ``max_base_slices`` and ``max_bandwidth_points`` do not
    apply).

    With ``position_window``, the measures are computed per distinct sample position (rounded to 3 decimals) and
    overall: at each position, the real reference and the training base are drawn from the slices within
    ``position_window`` of it, the reference as large as the samples there; overall pools the positions.

    Args:
        vqvae: the trained 2D :class:`~monai_vqvae2.networks.VQVAE2` (possibly wrapped) whose encoder gives the
            encoder features; the random CNN runs on the device of its parameters.
        real_test: real held-out slices: a tensor ``(N, 1, H, W)`` in [0, 1] or a dataset of dicts with an
            ``"image"`` (e.g. ``make_slice_dataset(split["test"], ...)``); at least 2.
        samples: generated slices in the same forms, or a folder written by ``write_samples`` (read with
            :func:`~monai_vqvae2.quality.images.load_sample_folder`); at least 2.
        training: the training slices, in the same forms (a dataset is read lazily); at least 2.
        output_dir: folder of the report files.
        sample_positions: normalised slice position of each sample (0 = inferior, 1 = superior); default: the
            folder's manifest, else the samples dataset's ``"slice_position"``, else unknown (no position figure).
        seed: seed of every subset and pair draw.
        batch_size: slices processed at once.
        max_pairs: most pairs compared per set for diversity.
        near_copy_threshold: nearest-training SSIM at or above which a slice counts as a near-copy.
        num_candidates: training slices compared by SSIM per slice (see
            :func:`~monai_vqvae2.quality.similarity.nearest_training_ssim`).
        candidate_size: thumbnail side used to pre-select them.
        max_bandwidth_points: most base feature vectors used for the median-heuristic bandwidth.
        num_figure_images: samples shown in the nearest-neighbour and label figures and per row of the position
            figure.
        position_window: when given, measure per sample position with the real and training slices whose
            ``"slice_position"`` lies within this distance of it (needs the positions of the samples, the real test
            slices and the training slices). ``None``: one comparison with slices from the whole brain.
        max_base_slices: most training slices in the base (per position with ``position_window``), drawn with
            ``seed``; ``None``: all of them.
        feature_seed: seed of the random CNN's weights (the same seed gives the same feature space).
        segmenter: a segmentation network trained on real pairs only, to measure the label agreement; the samples
            need label maps (a folder written with them, ``sample_labels``, or a dataset with ``"label"`` items), and
            ``real_test`` must be a dataset with ``"label"`` items.
        sample_labels: ``(N, 1, H, W)`` label maps of samples given as a tensor.

    Returns:
        the report as written to ``quality.json``.

    Raises:
        TypeError: inputs of the wrong kind.
        ValueError: bad arguments, images of the wrong shape or range, sets of different image sizes or with fewer
            than two slices, ``sample_positions`` of the wrong length, a ``position_window`` without known positions
            or that keeps no real test or training slice near a sample position.
        FileNotFoundError: ``samples`` is a folder without ``manifest.json``.
    """
    if isinstance(samples, (str, os.PathLike)) and is_volume_folder(samples):
        return volume_quality_report(
            real_test,
            samples,
            training,
            output_dir,
            seed=seed,
            batch_size=batch_size,
            max_pairs=max_pairs,
            near_copy_threshold=near_copy_threshold,
            num_candidates=num_candidates,
            candidate_size=candidate_size,
            num_figure_images=num_figure_images,
            feature_seed=feature_seed,
        )
    if not 0.0 < near_copy_threshold <= 1.0:
        raise ValueError(f"`near_copy_threshold` must be in (0, 1], got {near_copy_threshold!r}.")
    batch_size = positive_int(batch_size, "batch_size")
    max_pairs = positive_int(max_pairs, "max_pairs")
    num_candidates = positive_int(num_candidates, "num_candidates")
    candidate_size = positive_int(candidate_size, "candidate_size")
    num_figure_images = positive_int(num_figure_images, "num_figure_images")
    if positive_int(max_bandwidth_points, "max_bandwidth_points") < 2:
        raise ValueError(f"`max_bandwidth_points` must be >= 2, got {max_bandwidth_points}.")
    if max_base_slices is not None and positive_int(max_base_slices, "max_base_slices") < 2:
        raise ValueError(f"`max_base_slices` must be >= 2 or None, got {max_base_slices}.")
    if isinstance(samples, (str, os.PathLike)):
        samples_dir = samples
        folder = load_sample_folder(samples)
        samples = folder.images
        sample_positions = folder.positions if sample_positions is None else sample_positions
        if sample_labels is None and segmenter is not None:
            sample_labels = load_sample_labels(samples_dir)
    real, generated, train = (
        ImageSet(real_test, "real_test"),
        ImageSet(samples, "samples"),
        ImageSet(training, "training"),
    )
    check_same_size([real, generated, train])
    for images in (real, generated, train):
        if len(images) < 2:
            raise ValueError(f"`{images.name}` needs at least 2 slices, got {len(images)}.")
    if sample_positions is None:
        sample_positions = generated.positions()
    if sample_positions is not None:
        sample_positions = [float(p) for p in sample_positions]
        if len(sample_positions) != len(generated):
            raise ValueError(
                f"`sample_positions` needs one position per sample ({len(generated)}), got {len(sample_positions)}."
            )
    window = None if position_window is None else float(position_window)
    overall, groups, selection = plan_groups(generated, real, train, sample_positions, window, max_base_slices, seed)
    ms_ssim_metric(generated.spatial_shape)  # slices too small for MS-SSIM fail here, before any work
    output_dir = Path(output_dir)
    network = unwrap(vqvae)
    extract = RandomCNNFeatures(feature_seed, device=next(network.parameters()).device)

    # per-slice quantities, computed once: samples, real reference, training base
    sets = {"samples": generated, "real": real.subset(overall.real), "base": train.subset(overall.base)}
    encoder = {name: encoder_features(network, images, batch_size) for name, images in sets.items()}
    random_cnn = {name: _random_features(extract, images, batch_size) for name, images in sets.items()}
    scales = stage_scales(random_cnn["base"], extract.stage_channels)
    random_cnn = {name: features * scales for name, features in random_cnn.items()}
    thumbnails = thumbnail_vectors(train, candidate_size, batch_size)  # one pass over the whole training set
    per_slice = _PerSlice(
        images={name: sets[name] for name in SETS},
        encoder=encoder,
        random_cnn=random_cnn,
        histograms={name: _histograms(images, batch_size) for name, images in sets.items()},
        nearest={
            name: nearest_from_thumbnails(sets[name], train, thumbnails, num_candidates, candidate_size, batch_size)
            for name in SETS
        },
    )
    bandwidth = median_bandwidth(encoder["base"], max_points=max_bandwidth_points, seed=seed)

    def measures(group: Group) -> dict[str, Any]:
        return _measures(group, overall, per_slice, bandwidth, near_copy_threshold, max_pairs, seed, batch_size)

    # memorisation: which samples are near-copies, and of which training slice
    nearest = per_slice.nearest["samples"]
    flagged = [i for i in range(len(generated)) if float(nearest.ssim[i]) >= near_copy_threshold]
    flagged.sort(key=lambda i: (-float(nearest.ssim[i]), i))

    def neighbour(index: int) -> dict[str, Any]:
        training_index = int(nearest.index[index])
        return {
            "sample": index,
            "ssim": float(nearest.ssim[index]),
            "training_index": training_index,
            **train.describe(training_index),
        }

    memorisation: dict[str, Any] = {
        "threshold": near_copy_threshold,
        "num_candidates": num_candidates,
        "candidate_size": candidate_size,
        "num_near_copies": len(flagged),
        "near_copies": [neighbour(i) for i in flagged],
        "nearest": [neighbour(i) for i in range(len(generated))],
    }

    # figures
    by_similarity = sorted(range(len(generated)), key=lambda i: (-float(nearest.ssim[i]), i))
    figures: dict[str, str | None] = {"nearest_neighbours": "nearest_neighbours.png", "by_position": None}
    nearest_figure(
        generated,
        train,
        nearest,
        by_similarity[:num_figure_images],
        near_copy_threshold,
        output_dir / figures["nearest_neighbours"],
    )
    if sample_positions is not None:
        figures["by_position"] = "samples_by_position.png"
        position_figure(
            generated,
            sample_positions,
            real,
            real.positions(),
            num_figure_images,
            MAX_POSITION_ROWS,
            output_dir / figures["by_position"],
        )

    agreement = None
    if segmenter is not None:
        figures["label_pairs"] = "label_pairs.png"
        agreement = _label_agreement(
            segmenter,
            generated,
            sample_labels,
            real.subset(overall.real),
            batch_size,
            num_figure_images,
            output_dir / figures["label_pairs"],
        )

    report = {
        "seed": seed,
        "image_size": list(generated.spatial_shape),
        "reference": REFERENCE,
        "counts": {
            "samples": len(generated),
            "real_reference": len(overall.real),
            "real_test": len(real),
            "training_base": len(overall.base),
            "training": len(train),
        },
        "selection": {**selection, "max_base_slices": max_base_slices},
        "feature_spaces": {
            "encoder": {
                "description": FEATURE_SPACE,
                "dimension": int(encoder["base"].shape[1]),
                "channels_per_level": list(network.channels),
            },
            "random_cnn": {
                "description": RANDOM_FEATURE_SPACE,
                "dimension": extract.dimension,
                "stage_channels": list(extract.stage_channels),
                "seed": feature_seed,
                "digest": extract.digest,
            },
        },
        "histogram": {"bins": HISTOGRAM_BINS, "foreground_threshold": FOREGROUND_THRESHOLD},
        "diversity": {
            "measure": "MS-SSIM",
            "weights": list(ms_ssim_weights(min(generated.spatial_shape), kernel_size=SSIM_KERNEL_SIZE) or ()),
        },
        "mmd_bandwidth": bandwidth,
        "overall": measures(overall),
        "by_position": [{"position": group.position, **measures(group)} for group in groups],
        "memorisation": memorisation,
        "label_agreement": agreement,
        "sample_positions": sample_positions,
        "figures": figures,
        "settings": {
            "batch_size": batch_size,
            "max_pairs": max_pairs,
            "max_bandwidth_points": max_bandwidth_points,
            "num_figure_images": num_figure_images,
            "feature_seed": feature_seed,
        },
    }
    atomic_write(
        output_dir / "report.md", lambda temporary: temporary.write_text(report_markdown(report), encoding="utf-8")
    )
    atomic_write_json(output_dir / "quality.json", report)
    return report
