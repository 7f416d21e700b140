"""SSIM-based measures of a set of slices: its diversity (MS-SSIM of pairs within the set) and its memorisation
(each slice's SSIM to its most similar training slice).

- **Diversity** (:func:`pairwise_ms_ssim`): mean MS-SSIM (Wang et al. 2003) over seeded random pairs within a set.
- **Memorisation** (:func:`nearest_training_ssim`): each slice's SSIM to its most similar training slice, searched
  over the whole training set (candidates pre-selected by pixel distance of small thumbnails).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from monai.metrics import MultiScaleSSIMMetric, SSIMMetric

from monai_vqvae2.metrics import ms_ssim_weights
from monai_vqvae2.quality.images import ImageSet, check_same_size
from monai_vqvae2.quality.measures import chunked_distances, positive_int

__all__ = [
    "SSIM_KERNEL_SIZE",
    "NearestTraining",
    "ms_ssim_metric",
    "nearest_from_thumbnails",
    "nearest_training_ssim",
    "pairwise_ms_ssim",
    "thumbnail_vectors",
]

# MONAI's SSIM window (SSIMMetric / MultiScaleSSIMMetric defaults): Gaussian, 11 pixels, sigma 1.5
SSIM_KERNEL_SIZE = 11


class NearestTraining(NamedTuple):
    """What :func:`nearest_training_ssim` returns.

    Attributes:
        ssim: ``(N,)`` float64, each image's SSIM to its most similar training slice.
        index: ``(N,)`` long, that training slice's index in the training set.
    """

    ssim: torch.Tensor
    index: torch.Tensor


# ------------------------------------------------------------------------------------------------------- diversity
def _seeded_pairs(count: int, num_pairs: int, seed: int) -> np.ndarray:
    """``num_pairs`` distinct unordered pairs ``(i, j)``, ``i < j < count``, drawn without replacement and sorted."""
    total = count * (count - 1) // 2
    if num_pairs > total:
        raise ValueError(f"`num_pairs` is {num_pairs} but {count} images give only {total} distinct pairs.")
    linear = np.sort(np.random.default_rng(seed).choice(total, size=num_pairs, replace=False)).astype(np.int64)

    def row_start(row: np.ndarray) -> np.ndarray:  # linear index of pair (row, row + 1)
        return row * (2 * count - row - 1) // 2

    rows = np.floor(((2 * count - 1) - np.sqrt((2 * count - 1) ** 2 - 8 * linear.astype(np.float64))) / 2)
    rows = rows.astype(np.int64).clip(0, count - 2)
    for _ in range(2):  # correct float rounding of the square root
        rows = np.where(row_start(rows) > linear, rows - 1, rows)
        rows = np.where(row_start(rows + 1) <= linear, rows + 1, rows)
    columns = linear - row_start(rows) + rows + 1
    return np.stack([rows, columns], axis=1)


def ms_ssim_metric(spatial_shape: Sequence[int]) -> MultiScaleSSIMMetric:
    """MONAI's ``MultiScaleSSIMMetric`` for slices of ``spatial_shape``, with the standard weights truncated to the
    scales that size allows.

    Raises:
        ValueError: slices too small for two scales of the SSIM window.
    """
    weights = ms_ssim_weights(min(spatial_shape), kernel_size=SSIM_KERNEL_SIZE)
    if weights is None:
        minimum = 2 * (SSIM_KERNEL_SIZE - 1) + 1
        raise ValueError(
            f"MS-SSIM needs slices of at least {minimum} pixels per side (two scales of an {SSIM_KERNEL_SIZE}-pixel "
            f"window), got {tuple(spatial_shape)}."
        )
    return MultiScaleSSIMMetric(spatial_dims=2, data_range=1.0, kernel_size=SSIM_KERNEL_SIZE, weights=weights)


def _metric_values(
    metric: SSIMMetric | MultiScaleSSIMMetric, first: torch.Tensor, second: torch.Tensor
) -> torch.Tensor:
    values = metric(y_pred=first, y=second)
    metric.reset()  # MONAI metrics keep a buffer of every call
    return values.reshape(-1).double()


def pairwise_ms_ssim(images: Any, num_pairs: int, seed: int = 0, batch_size: int = 64) -> torch.Tensor:
    """MS-SSIM of ``num_pairs`` distinct pairs of images drawn without replacement by a seeded generator: MONAI's
    ``MultiScaleSSIMMetric`` (Gaussian window 11, sigma 1.5, ``data_range=1``) with the standard weights truncated to
    the scales the image size allows (:func:`~monai_vqvae2.metrics.ms_ssim_weights`).

    A set of copies of one image gives 1 for every pair; the more varied the set, the lower the values.

    Args:
        images: a tensor ``(N, 1, H, W)`` in [0, 1] or a dataset of dicts with an ``"image"``; ``N >= 2``.
        num_pairs: pairs compared, at most ``N (N - 1) / 2``.
        seed: seed of the pair draw.
        batch_size: pairs compared at once.

    Returns:
        ``(num_pairs,)`` float64, one value per pair (pairs in increasing ``(i, j)`` order).

    Raises:
        ValueError: fewer than two images, more pairs than exist, or images smaller than two MS-SSIM scales allow.
    """
    source = ImageSet(images, "images")
    num_pairs = positive_int(num_pairs, "num_pairs")
    batch_size = positive_int(batch_size, "batch_size")
    if len(source) < 2:
        raise ValueError(f"`images` needs at least 2 slices to form pairs, got {len(source)}.")
    metric = ms_ssim_metric(source.spatial_shape)
    pairs = _seeded_pairs(len(source), num_pairs, seed)
    values = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        values.append(_metric_values(metric, source.get(chunk[:, 0].tolist()), source.get(chunk[:, 1].tolist())))
    return torch.cat(values)


# --------------------------------------------------------------------------------------------------- memorisation
def thumbnail_vectors(source: ImageSet, size: int, batch_size: int) -> torch.Tensor:
    """Every slice of ``source`` area-downsampled to a ``size`` x ``size`` thumbnail (kept as is when no side is
    larger) and flattened: the vectors :func:`nearest_training_ssim` pre-selects its candidates by.

    Returns:
        ``(N, size * size)``, or ``(N, H * W)`` when the slices are kept as they are.
    """
    rows = []
    for batch in source.batches(batch_size):
        if max(batch.shape[2:]) > size:
            batch = F.interpolate(batch, size=(size, size), mode="area")
        rows.append(batch.flatten(1))
    return torch.cat(rows)


def nearest_training_ssim(
    images: Any, training: Any, num_candidates: int = 16, candidate_size: int = 32, batch_size: int = 64
) -> NearestTraining:
    """Each image's most similar training slice by SSIM (MONAI ``SSIMMetric(spatial_dims=2, data_range=1.0)``),
    searched over the whole training set.

    Comparing every image with every training slice by SSIM would be slow, so candidates are pre-selected: every
    slice is area-downsampled to a ``candidate_size`` thumbnail (kept as is when smaller), the ``num_candidates``
    training slices with the smallest Euclidean thumbnail distance are kept, and SSIM is computed on those at full
    resolution. An exact copy has distance 0 and is always among the candidates; a near-copy has a small distance,
    so a near-copy missed by the pre-selection needs ``num_candidates`` closer training slices with a lower SSIM.

    Args:
        images: a tensor ``(N, 1, H, W)`` in [0, 1] or a dataset of dicts with an ``"image"``.
        training: the training slices, same forms and size.
        num_candidates: training slices compared by SSIM per image.
        candidate_size: side of the thumbnails used to pre-select them.
        batch_size: slices processed at once.

    Returns:
        a :class:`NearestTraining` ``(ssim, index)``, each ``(N,)``.

    Raises:
        ValueError: bad sizes or arguments.
    """
    queries, references = ImageSet(images, "images"), ImageSet(training, "training")
    check_same_size([queries, references])
    num_candidates = positive_int(num_candidates, "num_candidates")
    candidate_size = positive_int(candidate_size, "candidate_size")
    batch_size = positive_int(batch_size, "batch_size")
    if min(queries.spatial_shape) < SSIM_KERNEL_SIZE:
        raise ValueError(f"SSIM needs slices of at least {SSIM_KERNEL_SIZE} pixels, got {queries.spatial_shape}.")
    thumbnails = thumbnail_vectors(references, candidate_size, batch_size)
    return nearest_from_thumbnails(queries, references, thumbnails, num_candidates, candidate_size, batch_size)


def nearest_from_thumbnails(
    queries: ImageSet,
    references: ImageSet,
    reference_thumbnails: torch.Tensor,
    num_candidates: int,
    candidate_size: int,
    batch_size: int,
) -> NearestTraining:
    """:func:`nearest_training_ssim` with the training thumbnails computed once by the caller."""
    metric = SSIMMetric(spatial_dims=2, data_range=1.0, win_size=SSIM_KERNEL_SIZE)
    query_thumbnails = thumbnail_vectors(queries, candidate_size, batch_size)
    count = min(num_candidates, len(references))
    best_ssim, best_index = [], []
    for start in range(0, len(queries), batch_size):
        distances = torch.cat(
            list(chunked_distances(query_thumbnails[start : start + batch_size], reference_thumbnails))
        )
        candidates = distances.topk(count, dim=1, largest=False, sorted=True).indices  # (B, count), nearest first
        wanted = torch.unique(candidates)  # each training slice is loaded once per batch
        loaded = references.get(wanted.tolist())
        position = torch.searchsorted(wanted, candidates)
        batch = queries.get(range(start, start + len(candidates)))
        first = batch.repeat_interleave(count, dim=0)
        values = _metric_values(metric, first, loaded[position.reshape(-1)]).reshape(-1, count)
        best = values.argmax(dim=1)  # ties: the candidate nearest in thumbnail distance
        best_ssim.append(values.gather(1, best[:, None])[:, 0])
        best_index.append(candidates.gather(1, best[:, None])[:, 0])
    return NearestTraining(torch.cat(best_ssim), torch.cat(best_index))
