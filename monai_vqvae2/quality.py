"""Quality of generated slices: realism, diversity and memorisation, each beside what real unseen brains score.

The yardstick is the **real reference**: real slices of held-out (test split) subjects at the samples' slice
positions, as many as there are samples, scored against the training slices exactly the way the samples are. A
generator whose samples are distributed like real brains lands where that reference lands, so every number is read
against the one beside it. Every subset and pair is drawn with a seeded generator, so the same inputs always give the
same report. What each number means and how to read it: ``bundle/docs/quality.md``.

- **Base**: every set (samples, real reference) is compared with the same training base, a seeded subset of the
  training slices (per slice position when the samples have positions and ``position_window`` is set).
- **Encoder features** (:func:`encoder_features`): the trained VQ-VAE-2's own encoder. Each level's encoder output
  (before quantization) is global-average-pooled and the levels are concatenated, coarsest first: ``sum(channels)``
  numbers per slice; comparable only between reports made with the same autoencoder checkpoint. The Fréchet distance
  (Heusel et al. 2017, https://arxiv.org/abs/1706.08500; :func:`frechet_distance`) and the squared maximum mean
  discrepancy (Gretton et al. 2012, https://jmlr.org/papers/v13/gretton12a.html; :func:`maximum_mean_discrepancy`,
  bandwidth by :func:`median_bandwidth`) are computed there.
- **Random-CNN features** (:class:`~monai_vqvae2.quality_measures.RandomCNNFeatures`): a seeded, untrained MONAI
  ResNet, a feature space the generator did not shape; Fréchet distance there.
- **In-brain intensities** (:func:`~monai_vqvae2.quality_measures.histogram_wasserstein`): the Wasserstein distance
  between the pooled intensity histograms of the pixels above 0.01.
- **Diversity** (:func:`pairwise_ms_ssim`): mean MS-SSIM (Wang et al. 2003) over seeded random pairs within a set.
- **Memorisation** (:func:`nearest_training_ssim`): each slice's SSIM to its most similar training slice, searched
  over the whole training set (candidates pre-selected by pixel distance of small thumbnails).

:func:`quality_report` computes them all and writes ``quality.json``, ``report.md`` and PNG figures atomically.
"""

from __future__ import annotations

import functools
import json
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from monai.metrics import MultiScaleSSIMMetric, SSIMMetric
from monai.utils import convert_to_tensor
from PIL import Image, ImageDraw, ImageFont

from monai_vqvae2.engines.handlers import unwrap
from monai_vqvae2.inferers.writer import read_slice_nifti
from monai_vqvae2.io import atomic_write, atomic_write_json
from monai_vqvae2.metrics import ms_ssim_weights
from monai_vqvae2.networks import VQVAE2
from monai_vqvae2.quality_measures import (
    FOREGROUND_THRESHOLD,
    HISTOGRAM_BINS,
    RANDOM_FEATURE_SPACE,
    RandomCNNFeatures,
    foreground_histograms,
    histogram_wasserstein,
    stage_scales,
)

__all__ = [
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

FEATURE_SPACE = (
    "VQ-VAE-2 encoder features: each level's encoder output (before quantization), global-average-pooled over "
    "space, levels concatenated coarsest first"
)
REFERENCE = (
    "Real reference: real slices of held-out (test) subjects at the same slice positions, as many as there are "
    "samples, scored against the same training slices exactly like the samples; a perfect generator lands there."
)
# MONAI's SSIM window (SSIMMetric / MultiScaleSSIMMetric defaults): Gaussian, 11 pixels, sigma 1.5
SSIM_KERNEL_SIZE = 11
# image values may exceed [0, 1] by this much (interpolation round-off) before an input is refused
RANGE_TOLERANCE = 1e-3
PERCENTILES = (5, 25, 50, 75, 95)
# chunk of rows of the kernel and distance matrices held in memory at once
_CHUNK = 1024
_MIN_TILE = 64  # figure tiles are enlarged (nearest neighbour, integer factor) to at least this many pixels
_GAP = 2
_NEAR_COPY_COLOUR = (220, 40, 40)
_MAX_POSITION_ROWS = 8  # rows of the slice-position figure (positions are grouped beyond that)
_REAL_PER_POSITION = 4  # real test slices shown beside each row of the slice-position figure


class SampleFolder(NamedTuple):
    """What :func:`load_sample_folder` returns.

    Attributes:
        images: ``(N, 1, H, W)`` float32 in [0, 1], display order (anterior up), as given to ``write_samples``.
        positions: the normalised slice position of each sample (0 = inferior, 1 = superior), or ``None`` when the
            manifest records none (absent or ``null``).
    """

    images: torch.Tensor
    positions: list[float] | None


class NearestTraining(NamedTuple):
    """What :func:`nearest_training_ssim` returns.

    Attributes:
        ssim: ``(N,)`` float64, each image's SSIM to its most similar training slice.
        index: ``(N,)`` long, that training slice's index in the training set.
    """

    ssim: torch.Tensor
    index: torch.Tensor


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
    return int(value)


class _Images:
    """Random and batched access to 2D slices ``(1, H, W)`` in [0, 1] held in a tensor ``(N, 1, H, W)`` or in a
    dataset of dict items with an ``"image"`` (e.g. :func:`~monai_vqvae2.data.make_slice_dataset`)."""

    def __init__(self, source: Any, name: str) -> None:
        self.name = name
        self._tensor: torch.Tensor | None = None
        self._dataset: Any = None
        if isinstance(source, _Images):  # a view keeps the name used in error messages
            self.name, self._tensor, self._dataset = source.name, source._tensor, source._dataset
            self.spatial_shape = source.spatial_shape
            return
        if isinstance(source, torch.Tensor):
            tensor = convert_to_tensor(source, track_meta=False).detach().float().cpu()
            if tensor.ndim != 4 or tensor.shape[1] != 1:
                raise ValueError(
                    f"`{name}` must have shape (N, 1, H, W) (single-channel 2D slices), got {tuple(tensor.shape)}."
                )
            if tensor.shape[0] == 0:
                raise ValueError(f"`{name}` is empty: no slices to compare.")
            self._check_range(tensor, name)
            self._tensor = tensor.clamp(0, 1)
            self.spatial_shape = tuple(tensor.shape[2:])
            return
        if isinstance(source, (str, os.PathLike, dict)) or not hasattr(source, "__getitem__"):
            raise TypeError(
                f"`{name}` must be a tensor (N, 1, H, W) or a dataset of dicts with an 'image', "
                f"got {type(source).__name__}."
            )
        if len(source) == 0:
            raise ValueError(f"`{name}` is empty: no slices to compare.")
        self._dataset = source
        self.spatial_shape = tuple(self._item(0).shape[1:])

    @staticmethod
    def _check_range(tensor: torch.Tensor, name: str) -> None:
        low, high = float(tensor.min()), float(tensor.max())
        if not (math.isfinite(low) and math.isfinite(high)) or low < -RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
            raise ValueError(f"`{name}` must hold intensities in [0, 1], got values in [{low:.4g}, {high:.4g}].")

    def _item(self, index: int) -> torch.Tensor:
        item = self._dataset[index]
        if not isinstance(item, dict) or "image" not in item:
            raise TypeError(f"`{self.name}[{index}]` must be a dict with an 'image', got {type(item).__name__}.")
        image = convert_to_tensor(item["image"], track_meta=False, dtype=torch.float32)
        expected = getattr(self, "spatial_shape", None)
        if image.ndim != 3 or image.shape[0] != 1 or (expected is not None and tuple(image.shape[1:]) != expected):
            wanted = f"(1, {expected[0]}, {expected[1]})" if expected is not None else "(1, H, W)"
            raise ValueError(f"`{self.name}[{index}]['image']` must have shape {wanted}, got {tuple(image.shape)}.")
        self._check_range(image, f"{self.name}[{index}]['image']")
        return image.clamp(0, 1)

    def __len__(self) -> int:
        return len(self._tensor) if self._tensor is not None else len(self._dataset)

    def get(self, indices: Sequence[int]) -> torch.Tensor:
        """Slices ``indices`` as ``(len(indices), 1, H, W)``."""
        if self._tensor is not None:
            return self._tensor[torch.as_tensor(list(indices), dtype=torch.long)]
        if not len(indices):
            return torch.zeros((0, 1, *self.spatial_shape))
        return torch.stack([self._item(int(index)) for index in indices])

    def batches(self, batch_size: int) -> Iterator[torch.Tensor]:
        """All slices in order, ``batch_size`` at a time."""
        for start in range(0, len(self), batch_size):
            yield self.get(range(start, min(start + batch_size, len(self))))

    def positions(self) -> list[float] | None:
        """The ``"slice_position"`` of every slice when the dataset records it for all of them, else ``None``."""
        if self._dataset is None:
            return None
        items = getattr(self._dataset, "slice_items", None)  # SliceDataset: metadata without decoding pixels
        if items is None:
            items = [self._dataset[index] for index in range(len(self))]
        positions = [item.get("slice_position") if isinstance(item, dict) else None for item in items]
        return None if any(p is None for p in positions) else [float(p) for p in positions]

    def subset(self, indices: Sequence[int]) -> _Images:
        """A view of slices ``indices`` (same name, lazy for datasets)."""
        view = _Images(self, self.name)
        if self._tensor is not None:
            view._tensor = self._tensor[torch.as_tensor(list(indices), dtype=torch.long)]
        else:
            view._dataset = _DatasetView(self._dataset, indices)
        return view

    def describe(self, index: int) -> dict[str, Any]:
        """Subject and slice index of slice ``index`` where the dataset records them (for the report)."""
        items = getattr(self._dataset, "slice_items", None)
        if items is None:
            return {}
        return {key: items[index][key] for key in ("subject", "slice_index") if key in items[index]}


class _DatasetView:
    """Items ``indices`` of a dataset, keeping a :class:`~monai_vqvae2.data.SliceDataset`'s ``slice_items``."""

    def __init__(self, dataset: Any, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = [int(i) for i in indices]
        items = getattr(dataset, "slice_items", None)
        if items is not None:
            self.slice_items = [items[i] for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[self.indices[index]]


def _same_size(images: Sequence[_Images]) -> None:
    shapes = {tuple(i.spatial_shape) for i in images}
    if len(shapes) > 1:
        sizes = ", ".join(f"`{i.name}` {tuple(i.spatial_shape)}" for i in images)
        raise ValueError(f"All slices must have the same size to be compared, got {sizes}.")


# --------------------------------------------------------------------------------------------------------- samples
def load_sample_folder(path: str | os.PathLike) -> SampleFolder:
    """Read a folder written by :func:`~monai_vqvae2.inferers.write_samples` (or ``sample.yaml``) back into the
    images it was given: reads ``manifest.json``, then every listed ``(X, Y, 1)`` RAS NIfTI file, and undoes the
    writer's ``rot90(k=-1)`` to return display order (anterior up).

    Args:
        path: the samples folder.

    Returns:
        a :class:`SampleFolder` ``(images, positions)``: images ``(N, 1, H, W)`` float32, positions from the manifest
        (``None`` when it records none).

    Raises:
        FileNotFoundError: no ``manifest.json`` in ``path``, or a listed file is missing.
        ValueError: a malformed manifest, a file that is not one ``(X, Y, 1)`` slice, slices of different sizes, or
            slice positions recorded for some samples only.
    """
    folder = Path(path)
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise FileNotFoundError(
            f"No manifest.json in the samples folder {folder}: expected a folder written by "
            "monai_vqvae2.inferers.write_samples (sample.yaml)."
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{manifest_path} is not valid JSON: {error}.") from error
    entries = manifest.get("samples") if isinstance(manifest, dict) else None
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) and "file" in e for e in entries):
        raise ValueError(
            f"{manifest_path} must list the samples as 'samples': [{{'file': ...}}, ...], got {entries!r}."
        )
    pictures = []
    for entry in entries:
        file = folder / entry["file"]
        if not file.is_file():
            raise FileNotFoundError(f"{file} is listed in {manifest_path} but does not exist.")
        pictures.append(read_slice_nifti(file))
    shapes = {p.shape for p in pictures}
    if len(shapes) > 1:
        raise ValueError(f"The samples listed in {manifest_path} have different sizes: {sorted(shapes)}.")
    images = torch.from_numpy(np.ascontiguousarray(np.stack(pictures)))[:, None]
    recorded = [entry.get("slice_position") for entry in entries]  # absent or null: unknown
    known = [value is not None for value in recorded]
    if any(known) and not all(known):
        raise ValueError(f"{manifest_path} records a 'slice_position' for some samples only.")
    positions = [float(value) for value in recorded] if all(known) else None
    return SampleFolder(images, positions)


# -------------------------------------------------------------------------------------------------------- features
@torch.no_grad()
def encoder_features(vqvae: torch.nn.Module, images: Any, batch_size: int = 64) -> torch.Tensor:
    """Features of slices in the VQ-VAE-2's own encoder space (nothing to download): each level's encoder output
    (before quantization) global-average-pooled over space, the levels concatenated coarsest first.

    The network runs in evaluation mode (its mode is restored afterwards) on the device of its parameters; the
    codebooks are not touched.

    Args:
        vqvae: a 2D :class:`~monai_vqvae2.networks.VQVAE2` (possibly wrapped in ``VQVAE2Reconstructor`` or DDP).
        images: a tensor ``(N, 1, H, W)`` in [0, 1] or a dataset of dicts with an ``"image"`` ``(1, H, W)``.
        batch_size: slices encoded at once.

    Returns:
        ``(N, sum(vqvae.channels))`` float64 on the CPU.

    Raises:
        TypeError: ``vqvae`` is not a VQVAE2, or ``images`` is neither a tensor nor a dataset of image dicts.
        ValueError: a 3D network, images of the wrong shape or range, or sizes the network cannot encode.
    """
    network = unwrap(vqvae)
    if not isinstance(network, VQVAE2):
        raise TypeError(f"`vqvae` must be a monai_vqvae2.networks.VQVAE2, got {type(network).__name__}.")
    if network.spatial_dims != 2:
        raise ValueError(f"`vqvae` must be a 2D VQVAE2 (slices), got spatial_dims={network.spatial_dims}.")
    batch_size = _positive_int(batch_size, "batch_size")
    source = _Images(images, "images")
    network.latent_shapes(source.spatial_shape)  # a clear error for sizes the network cannot encode
    device = next(network.parameters()).device
    was_training = network.training
    network.eval()
    features = []
    try:
        for batch in source.batches(batch_size):
            hidden = batch.to(device)
            pooled: list[torch.Tensor] = []
            for level in reversed(range(network.num_levels)):  # finest level first, as VQVAE2 encodes
                hidden = network.encoders[level](hidden)
                pooled.insert(0, hidden.mean(dim=(2, 3)))
            features.append(torch.cat(pooled, dim=1).double().cpu())
    finally:
        network.train(was_training)
    return torch.cat(features)


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


def _distances(features_a: torch.Tensor, features_b: torch.Tensor) -> Iterator[torch.Tensor]:
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
    if _positive_int(max_points, "max_points") < 2:
        raise ValueError(f"`max_points` must be >= 2, got {max_points}.")
    if len(pooled) > max_points:
        chosen = np.sort(np.random.default_rng(seed).choice(len(pooled), size=max_points, replace=False))
        pooled = pooled[torch.from_numpy(chosen)]
    upper = torch.triu_indices(len(pooled), len(pooled), offset=1)
    distances = torch.cat(list(_distances(pooled, pooled)))[upper[0], upper[1]].numpy()
    median = float(np.median(distances))
    if median > 0:
        return median
    positive = distances[distances > 0]
    return float(np.median(positive)) if positive.size else 1.0


def _kernel_sum(features_a: torch.Tensor, features_b: torch.Tensor, bandwidth: float) -> float:
    total = 0.0
    for distances in _distances(features_a, features_b):
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


def _ms_ssim_metric(spatial_shape: Sequence[int]) -> MultiScaleSSIMMetric:
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
    source = _Images(images, "images")
    num_pairs = _positive_int(num_pairs, "num_pairs")
    batch_size = _positive_int(batch_size, "batch_size")
    if len(source) < 2:
        raise ValueError(f"`images` needs at least 2 slices to form pairs, got {len(source)}.")
    metric = _ms_ssim_metric(source.spatial_shape)
    pairs = _seeded_pairs(len(source), num_pairs, seed)
    values = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        values.append(_metric_values(metric, source.get(chunk[:, 0].tolist()), source.get(chunk[:, 1].tolist())))
    return torch.cat(values)


# --------------------------------------------------------------------------------------------------- memorisation
def _thumbnails(source: _Images, size: int, batch_size: int) -> torch.Tensor:
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
    queries, references = _Images(images, "images"), _Images(training, "training")
    _same_size([queries, references])
    num_candidates = _positive_int(num_candidates, "num_candidates")
    candidate_size = _positive_int(candidate_size, "candidate_size")
    batch_size = _positive_int(batch_size, "batch_size")
    if min(queries.spatial_shape) < SSIM_KERNEL_SIZE:
        raise ValueError(f"SSIM needs slices of at least {SSIM_KERNEL_SIZE} pixels, got {queries.spatial_shape}.")
    thumbnails = _thumbnails(references, candidate_size, batch_size)
    return _nearest(queries, references, thumbnails, num_candidates, candidate_size, batch_size)


def _nearest(
    queries: _Images,
    references: _Images,
    reference_thumbnails: torch.Tensor,
    num_candidates: int,
    candidate_size: int,
    batch_size: int,
) -> NearestTraining:
    """:func:`nearest_training_ssim` with the training thumbnails computed once by the caller."""
    metric = SSIMMetric(spatial_dims=2, data_range=1.0, win_size=SSIM_KERNEL_SIZE)
    query_thumbnails = _thumbnails(queries, candidate_size, batch_size)
    count = min(num_candidates, len(references))
    best_ssim, best_index = [], []
    for start in range(0, len(queries), batch_size):
        distances = torch.cat(list(_distances(query_thumbnails[start : start + batch_size], reference_thumbnails)))
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


def _distribution(values: torch.Tensor | Sequence[float]) -> dict[str, float]:
    array = np.asarray(values, dtype=np.float64)
    summary = {"min": float(array.min()), "mean": float(array.mean()), "max": float(array.max())}
    for percentile, value in zip(PERCENTILES, np.percentile(array, PERCENTILES)):
        summary["median" if percentile == 50 else f"p{percentile}"] = float(value)
    return summary


# -------------------------------------------------------------------------------------------------------- figures
@functools.lru_cache(maxsize=1)
def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default()


def _tile(image: torch.Tensor, scale: int) -> np.ndarray:
    """``(1, H, W)`` in [0, 1] -> ``(H*scale, W*scale, 3)`` uint8."""
    picture = (image[0].clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    picture = np.kron(picture, np.ones((scale, scale), dtype=np.uint8))
    return np.repeat(picture[:, :, None], 3, axis=2)


def _scale(spatial_shape: Sequence[int]) -> int:
    return max(1, math.ceil(_MIN_TILE / max(spatial_shape)))


def _text_width(draw: ImageDraw.ImageDraw, text: str) -> int:
    left, _, right, _ = draw.textbbox((0, 0), text, font=_font())
    return int(right - left)


def _save_png(path: Path, canvas: Image.Image) -> Path:
    return atomic_write(path, lambda temporary: canvas.save(temporary, format="PNG"))


def _nearest_figure(
    samples: _Images, training: _Images, nearest: NearestTraining, shown: Sequence[int], threshold: float, path: Path
) -> Path:
    """Columns: samples (most similar to the training set first); rows: sample, nearest training slice, |difference|;
    the SSIM above each column, in red for near-copies."""
    scale = _scale(samples.spatial_shape)
    height, width = (s * scale for s in samples.spatial_shape)
    labels = ("sample", "nearest training", "|difference|")
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    margin = max(_text_width(probe, label) for label in labels) + 8
    header = 16
    canvas = Image.new("RGB", (margin + len(shown) * (width + _GAP), header + 3 * (height + _GAP)), "white")
    draw = ImageDraw.Draw(canvas)
    for row, label in enumerate(labels):
        draw.text((2, header + row * (height + _GAP) + height // 2 - 6), label, fill="black", font=_font())
    sample_images = samples.get(list(shown))
    neighbour_images = training.get([int(nearest.index[i]) for i in shown])
    for column, (index, sample, neighbour) in enumerate(zip(shown, sample_images, neighbour_images)):
        left = margin + column * (width + _GAP)
        value = float(nearest.ssim[index])
        colour = _NEAR_COPY_COLOUR if value >= threshold else (0, 0, 0)
        draw.text((left + 2, 2), f"#{index} {value:.3f}", fill=colour, font=_font())
        for row, picture in enumerate((sample, neighbour, (sample - neighbour).abs())):
            canvas.paste(Image.fromarray(_tile(picture, scale)), (left, header + row * (height + _GAP)))
    return _save_png(path, canvas)


def _position_groups(positions: Sequence[float], max_rows: int) -> list[list[int]]:
    """Sample indices grouped by slice position, lowest first: one group per distinct position (3 decimals), or
    ``max_rows`` groups of consecutive positions when there are more."""
    order = sorted(range(len(positions)), key=lambda i: (positions[i], i))
    distinct = sorted({round(p, 3) for p in positions})
    if len(distinct) <= max_rows:
        return [[i for i in order if round(positions[i], 3) == value] for value in distinct]
    return [chunk.tolist() for chunk in np.array_split(np.asarray(order), max_rows) if len(chunk)]


def _position_figure(
    samples: _Images,
    positions: Sequence[float],
    real: _Images,
    real_positions: Sequence[float] | None,
    per_row: int,
    max_rows: int,
    path: Path,
) -> Path:
    """One row per slice-position group: up to ``per_row`` samples, then (when real positions are known) the real
    test slices nearest that position."""
    scale = _scale(samples.spatial_shape)
    height, width = (s * scale for s in samples.spatial_shape)
    groups = _position_groups(positions, max_rows)
    num_real = min(_REAL_PER_POSITION, len(real_positions)) if real_positions is not None else 0
    labels = []
    for group in groups:
        low, high = min(positions[i] for i in group), max(positions[i] for i in group)
        span = f"{low:.2f}" if round(low, 2) == round(high, 2) else f"{low:.2f}-{high:.2f}"
        labels.append(f"position {span} (n={len(group)})")
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    margin = max(_text_width(probe, label) for label in labels) + 8
    header, separator = 16, 12
    columns = min(per_row, max(len(g) for g in groups))
    real_left = margin + columns * (width + _GAP) + separator
    canvas = Image.new("RGB", (real_left + num_real * (width + _GAP), header + len(groups) * (height + _GAP)), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((margin, 2), "samples", fill="black", font=_font())
    if num_real:
        draw.text((real_left, 2), "real test slices at the nearest positions", fill="black", font=_font())
    for row, (group, label) in enumerate(zip(groups, labels)):
        top = header + row * (height + _GAP)
        draw.text((2, top + height // 2 - 6), label, fill="black", font=_font())
        for column, image in enumerate(samples.get(group[:per_row])):
            canvas.paste(Image.fromarray(_tile(image, scale)), (margin + column * (width + _GAP), top))
        if num_real:
            centre = float(np.median([positions[i] for i in group]))
            closest = sorted(range(len(real_positions)), key=lambda i: (abs(real_positions[i] - centre), i))
            for column, image in enumerate(real.get(closest[:num_real])):
                canvas.paste(Image.fromarray(_tile(image, scale)), (real_left + column * (width + _GAP), top))
    return _save_png(path, canvas)


# --------------------------------------------------------------------------------------------------------- report
_SETS = ("samples", "real")
_POSITION_TOLERANCE = 1e-9  # a slice exactly `position_window` away from a position is kept despite float rounding


class _Group(NamedTuple):
    """One comparison: sample indices, real reference slices (indices into the real test set) and the training base
    (indices into the training set), at one slice position (``None``: every position pooled)."""

    position: float | None
    samples: list[int]
    real: list[int]
    base: list[int]


def _draw(rng: np.random.Generator, candidates: Sequence[int], count: int | None) -> list[int]:
    """``count`` of ``candidates`` drawn without replacement (all of them when ``count`` is None or not smaller),
    sorted."""
    candidates = [int(i) for i in candidates]
    if count is None or count >= len(candidates):
        return sorted(candidates)
    return sorted(int(i) for i in rng.choice(np.asarray(candidates), size=count, replace=False))


def _plan(
    samples: _Images,
    real: _Images,
    training: _Images,
    sample_positions: Sequence[float] | None,
    window: float | None,
    max_base: int | None,
    seed: int,
) -> tuple[_Group, list[_Group], dict[str, Any]]:
    """The slices each comparison uses: overall, and per distinct sample position (3 decimals) when ``window`` is
    given. At each position the real reference is a seeded draw of as many real test slices within ``window`` as there
    are samples there, and the training base a seeded draw of at most ``max_base`` training slices within ``window``;
    overall pools them. Without ``window``: all samples, as many real test slices as samples, ``max_base`` training
    slices, from anywhere in the brain."""
    rng = np.random.default_rng(seed)
    if window is None:
        overall = _Group(
            None,
            list(range(len(samples))),
            _draw(rng, range(len(real)), len(samples)),
            _draw(rng, range(len(training)), max_base),
        )
        return overall, [], {"position_window": None, "real_test_in_windows": len(real), "training_in_windows": None}
    if not (math.isfinite(window) and window >= 0):
        raise ValueError(f"`position_window` must be a number >= 0 or None, got {window!r}.")
    known = {
        "the samples'": sample_positions,
        "the real test slices'": real.positions(),
        "the training slices'": training.positions(),
    }
    for what, positions in known.items():
        if positions is None:
            raise ValueError(f"`position_window` needs slice positions, but {what} are unknown; set it to None.")
    real_positions = np.asarray(known["the real test slices'"], dtype=np.float64)
    training_positions = np.asarray(known["the training slices'"], dtype=np.float64)
    groups: list[_Group] = []
    near_real_all: set[int] = set()
    near_training_all: set[int] = set()
    for position in sorted({round(p, 3) for p in sample_positions}):
        members = [i for i, p in enumerate(sample_positions) if round(p, 3) == position]
        near_real = np.flatnonzero(np.abs(real_positions - position) <= window + _POSITION_TOLERANCE).tolist()
        near_training = np.flatnonzero(np.abs(training_positions - position) <= window + _POSITION_TOLERANCE).tolist()
        for name, near, total in (("real test", near_real, len(real)), ("training", near_training, len(training))):
            if not near:
                raise ValueError(
                    f"`position_window` {window:g} keeps no {name} slice (of {total}) near the sample position "
                    f"{position:g}; widen it or set it to None."
                )
        near_real_all.update(near_real)
        near_training_all.update(near_training)
        groups.append(
            _Group(position, members, _draw(rng, near_real, len(members)), _draw(rng, near_training, max_base))
        )
    overall = _Group(
        None,
        list(range(len(samples))),
        sorted({i for group in groups for i in group.real}),
        sorted({i for group in groups for i in group.base}),
    )
    for name, kept, total in (("real test", overall.real, len(real)), ("training", overall.base, len(training))):
        if len(kept) < 2:
            raise ValueError(
                f"`position_window` {window:g} keeps {len(kept)} of {total} {name} slices near the sample positions "
                f"{[g.position for g in groups]}; at least 2 are needed: widen it or set it to None."
            )
    selection = {
        "position_window": window,
        "real_test_in_windows": len(near_real_all),
        "training_in_windows": len(near_training_all),
    }
    return overall, groups, selection


def _random_features(extract: RandomCNNFeatures, source: _Images, batch_size: int) -> torch.Tensor:
    return torch.cat([extract(batch) for batch in source.batches(batch_size)])


def _histograms(source: _Images, batch_size: int) -> torch.Tensor:
    return torch.cat([foreground_histograms(batch) for batch in source.batches(batch_size)])


class _PerSlice(NamedTuple):
    """Everything computed once per slice, for the samples, the real reference and the training base (rows in the
    order of the overall group's index lists)."""

    images: dict[str, _Images]  # "samples", "real"
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
    group: _Group,
    overall: _Group,
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
        return {name: function(name, rows[name]) for name in _SETS}

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


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _format(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _table(measures: dict[str, Any], threshold: float, with_reading: bool) -> list[str]:
    """Markdown table of one comparison: a row per measure, samples beside the real reference."""
    if "skipped" in measures:
        return [f"Not computed: {measures['skipped']}."]
    counts = measures["counts"]

    def pair(key: str, field: str | None = None) -> tuple[Any, Any]:
        values = measures[key]
        return tuple(values[n] if field is None else values[n][field] for n in _SETS)

    copies = measures["near_copies"]
    rows = [
        (
            "Fréchet distance, encoder features",
            *pair("frechet_distance_encoder"),
            "lower = closer to the training slices",
        ),
        ("MMD² (RBF, V-statistic), encoder features", *pair("mmd2_encoder"), "lower = closer; 0 = identical sets"),
        ("MMD² (RBF, unbiased), encoder features", *pair("mmd2_unbiased_encoder"), "about 0 = same distribution"),
        (
            "Fréchet distance, random-CNN features",
            *pair("frechet_distance_random_cnn"),
            "lower = closer, in a space no model was fitted to",
        ),
        ("in-brain intensity Wasserstein distance", *pair("intensity_wasserstein"), "intensity units; lower = closer"),
        (
            f"mean pairwise MS-SSIM ({_count(measures['pairwise_ms_ssim']['num_pairs'], 'pair')})",
            *pair("pairwise_ms_ssim", "mean"),
            "diversity: higher = less varied",
        ),
        (
            "nearest-training SSIM, median",
            *pair("nearest_training_ssim", "median"),
            "above the real reference = closer to copying",
        ),
        ("nearest-training SSIM, max", *pair("nearest_training_ssim", "max"), "1.0 = an exact training slice"),
        (
            f"near-copies (SSIM ≥ {threshold:g})",
            f"{copies['samples']} / {counts['samples']}",
            f"{copies['real']} / {counts['real']}",
            "should not exceed the real reference",
        ),
    ]
    header = "| measure | samples | real reference |" + (" how to read |" if with_reading else "")
    lines = [header, "|---|---|---|" + ("---|" if with_reading else "")]
    for label, samples, real, reading in rows:
        lines.append(f"| {label} | {_format(samples)} | {_format(real)} |" + (f" {reading} |" if with_reading else ""))
    return lines


def _markdown(report: dict[str, Any]) -> str:
    counts, selection, threshold = report["counts"], report["selection"], report["memorisation"]["threshold"]
    window = selection["position_window"]
    positions = report["sample_positions"]
    if positions is None:
        where = "slice positions unknown"
    else:
        distinct = sorted({round(p, 3) for p in positions})
        where = "at slice position" + ("s " if len(distinct) > 1 else " ") + ", ".join(f"{p:g}" for p in distinct)
    base = f"{counts['training_base']} training slices (of {counts['training']}"
    if window is None:
        real = f"{counts['real_reference']} real slices of held-out subjects (of {counts['real_test']} test slices)"
        base += ")"
    else:
        real = (
            f"{counts['real_reference']} real slices of held-out subjects within ±{window:g} of those positions (of "
            f"{selection['real_test_in_windows']} there, {counts['real_test']} test slices in all)"
        )
        base += f"; {selection['training_in_windows']} within ±{window:g})"
    summary = (
        f"{counts['samples']} samples {where}; {real}; base: {base}; {report['image_size'][0]}×"
        f"{report['image_size'][1]} pixels, seed {report['seed']}."
    )
    lines = ["# Quality of generated slices", "", summary, "", REFERENCE, "", "## All positions", ""]
    lines += _table(report["overall"], threshold, with_reading=True)
    if report["by_position"]:
        lines += ["", "## By slice position", ""]
        for entry in report["by_position"]:
            entry_counts = entry["counts"]
            lines += [
                (
                    f"### Position {entry['position']:g} (±{window:g}): {_count(entry_counts['samples'], 'sample')}, "
                    f"{_count(entry_counts['real'], 'real reference slice')}, "
                    f"{_count(entry_counts['training_base'], 'training base slice')}"
                ),
                "",
                *_table(entry, threshold, with_reading=False),
                "",
            ]
        lines.pop()
    encoder, random_cnn = report["feature_spaces"]["encoder"], report["feature_spaces"]["random_cnn"]
    diversity, memorisation, histogram = report["diversity"], report["memorisation"], report["histogram"]
    weights = ", ".join(f"{w:.3f}" for w in diversity["weights"])
    method = [
        (
            "Every measure compares a set (the samples, or the real reference) with the same training base; the real "
            "reference is what real, unseen brains score, so read each sample value against the value beside it."
        ),
        "",
        (
            f"- Encoder space: {encoder['description']} ({encoder['dimension']} numbers per slice); comparable "
            "only between reports made with the same autoencoder checkpoint."
        ),
        (
            f"- Independent space: {random_cnn['description']} ({random_cnn['dimension']} numbers per slice, seed "
            f"{random_cnn['seed']}, weights SHA-256 `{random_cnn['digest'][:16]}…`); no model was fitted in this space."
        ),
        (
            "- Fréchet distance: `‖mu_b - mu_x‖² + tr(S_b) + tr(S_x) - 2 tr((S_b S_x)^½)` between Gaussians fitted to "
            "the training base (b) and the set (x). It grows as sets shrink, which is why the real reference has as "
            "many slices as the samples."
        ),
        (
            f"- MMD²: RBF kernel `exp(-d² / (2σ²))`, σ = {_format(report['mmd_bandwidth'])} (median pairwise distance "
            "of the training base's encoder features); V-statistic and unbiased U-statistic."
        ),
        (
            "- In-brain intensity distance: 1-D Wasserstein distance between the pooled histograms "
            f"({histogram['bins']} bins on [0, 1]) of the pixels above {histogram['foreground_threshold']:g}."
        ),
        (
            f"- Diversity: mean {diversity['measure']} (MONAI `MultiScaleSSIMMetric`, weights {weights}) over seeded "
            "random pairs within the set, as many pairs for the samples as for the real reference."
        ),
        (
            "- Memorisation: SSIM (MONAI `SSIMMetric`) of each slice to its nearest slice of the whole training set; "
            f"candidates are the {memorisation['num_candidates']} training slices nearest in "
            f"{memorisation['candidate_size']}-pixel thumbnail distance. Exact copies are always found."
        ),
    ]
    figure = (
        f"- [Samples beside their nearest training slices]({report['figures']['nearest_neighbours']}) (most "
        "similar first; the number is the SSIM, red for near-copies)"
    )
    lines += ["", "## How these were computed", "", *method, "", "## Figures", "", figure]
    if report["figures"].get("by_position"):
        lines.append(f"- [Samples by slice position]({report['figures']['by_position']})")
    else:
        lines.append("- Samples by slice position: not drawn (the samples' slice positions are unknown)")
    return "\n".join(lines) + "\n"


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
) -> dict[str, Any]:
    """Measure generated slices against the training slices, beside real slices of held-out subjects measured the
    same way, and write ``quality.json``, ``report.md``, ``nearest_neighbours.png`` and (when slice positions are
    known) ``samples_by_position.png`` under ``output_dir``, each atomically (``quality.json`` last).

    Two sets are scored, each against the same **training base** (a seeded subset of at most ``max_base_slices``
    training slices): the samples, and the **real reference**, a seeded draw of as many real test slices (held-out
    subjects) as there are samples. A generator whose samples are distributed like real brains scores what the real
    reference scores; every measure is reported for both, side by side:

    - Fréchet distance and MMD² (V- and U-statistic, RBF kernel with the median distance of the base as bandwidth) in
      the VQ-VAE-2 encoder features (:func:`encoder_features`);
    - Fréchet distance in the features of a seeded random CNN that no training shaped
      (:class:`~monai_vqvae2.quality_measures.RandomCNNFeatures`, each stage scaled to total variance 1 over the base
      by :func:`~monai_vqvae2.quality_measures.stage_scales`);
    - the Wasserstein distance between the pooled in-brain intensity histograms
      (:func:`~monai_vqvae2.quality_measures.histogram_wasserstein`);
    - diversity: MS-SSIM over seeded pairs within the set (as many pairs for both sets);
    - memorisation: each slice's SSIM to its nearest slice of the **whole** training set (:func:`nearest_training_ssim`)
      and how many reach ``near_copy_threshold`` (the samples that do are listed).

    With ``position_window``, the measures are computed per distinct sample position (rounded to 3 decimals) and
    overall: at each position, the real reference and the training base are drawn from the slices within
    ``position_window`` of it, the reference as large as the samples there; overall pools the positions.

    Args:
        vqvae: the trained 2D :class:`~monai_vqvae2.networks.VQVAE2` (possibly wrapped) whose encoder gives the
            encoder features; the random CNN runs on the device of its parameters.
        real_test: real held-out slices: a tensor ``(N, 1, H, W)`` in [0, 1] or a dataset of dicts with an
            ``"image"`` (e.g. ``make_slice_dataset(split["test"], ...)``); at least 2.
        samples: generated slices in the same forms, or a folder written by ``write_samples`` (read with
            :func:`load_sample_folder`); at least 2.
        training: the training slices, in the same forms (a dataset is read lazily); at least 2.
        output_dir: folder of the report files.
        sample_positions: normalised slice position of each sample (0 = inferior, 1 = superior); default: the
            folder's manifest, else the samples dataset's ``"slice_position"``, else unknown (no position figure).
        seed: seed of every subset and pair draw.
        batch_size: slices processed at once.
        max_pairs: most pairs compared per set for diversity.
        near_copy_threshold: nearest-training SSIM at or above which a slice counts as a near-copy.
        num_candidates: training slices compared by SSIM per slice (see :func:`nearest_training_ssim`).
        candidate_size: thumbnail side used to pre-select them.
        max_bandwidth_points: most base feature vectors used for the median-heuristic bandwidth.
        num_figure_images: samples shown in the nearest-neighbour figure and per row of the position figure.
        position_window: when given, measure per sample position with the real and training slices whose
            ``"slice_position"`` lies within this distance of it (needs the positions of the samples, the real test
            slices and the training slices). ``None``: one comparison with slices from the whole brain.
        max_base_slices: most training slices in the base (per position with ``position_window``), drawn with
            ``seed``; ``None``: all of them.
        feature_seed: seed of the random CNN's weights (the same seed gives the same feature space).

    Returns:
        the report as written to ``quality.json``.

    Raises:
        TypeError: inputs of the wrong kind.
        ValueError: bad arguments, images of the wrong shape or range, sets of different image sizes or with fewer
            than two slices, ``sample_positions`` of the wrong length, a ``position_window`` without known positions
            or that keeps no real test or training slice near a sample position.
        FileNotFoundError: ``samples`` is a folder without ``manifest.json``.
    """
    if not 0.0 < near_copy_threshold <= 1.0:
        raise ValueError(f"`near_copy_threshold` must be in (0, 1], got {near_copy_threshold!r}.")
    batch_size = _positive_int(batch_size, "batch_size")
    max_pairs = _positive_int(max_pairs, "max_pairs")
    num_candidates = _positive_int(num_candidates, "num_candidates")
    candidate_size = _positive_int(candidate_size, "candidate_size")
    num_figure_images = _positive_int(num_figure_images, "num_figure_images")
    if _positive_int(max_bandwidth_points, "max_bandwidth_points") < 2:
        raise ValueError(f"`max_bandwidth_points` must be >= 2, got {max_bandwidth_points}.")
    if max_base_slices is not None and _positive_int(max_base_slices, "max_base_slices") < 2:
        raise ValueError(f"`max_base_slices` must be >= 2 or None, got {max_base_slices}.")
    if isinstance(samples, (str, os.PathLike)):
        folder = load_sample_folder(samples)
        samples = folder.images
        sample_positions = folder.positions if sample_positions is None else sample_positions
    real, generated, train = _Images(real_test, "real_test"), _Images(samples, "samples"), _Images(training, "training")
    _same_size([real, generated, train])
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
    overall, groups, selection = _plan(generated, real, train, sample_positions, window, max_base_slices, seed)
    _ms_ssim_metric(generated.spatial_shape)  # slices too small for MS-SSIM fail here, before any work
    output_dir = Path(output_dir)
    network = unwrap(vqvae)
    extract = RandomCNNFeatures(feature_seed, device=next(network.parameters()).device)

    # per-slice quantities, computed once: samples, real reference, training base
    sets = {"samples": generated, "real": real.subset(overall.real), "base": train.subset(overall.base)}
    encoder = {name: encoder_features(network, images, batch_size) for name, images in sets.items()}
    random_cnn = {name: _random_features(extract, images, batch_size) for name, images in sets.items()}
    scales = stage_scales(random_cnn["base"], extract.stage_channels)
    random_cnn = {name: features * scales for name, features in random_cnn.items()}
    thumbnails = _thumbnails(train, candidate_size, batch_size)  # one pass over the whole training set
    per_slice = _PerSlice(
        images={name: sets[name] for name in _SETS},
        encoder=encoder,
        random_cnn=random_cnn,
        histograms={name: _histograms(images, batch_size) for name, images in sets.items()},
        nearest={
            name: _nearest(sets[name], train, thumbnails, num_candidates, candidate_size, batch_size) for name in _SETS
        },
    )
    bandwidth = median_bandwidth(encoder["base"], max_points=max_bandwidth_points, seed=seed)

    def measures(group: _Group) -> dict[str, Any]:
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
    _nearest_figure(
        generated,
        train,
        nearest,
        by_similarity[:num_figure_images],
        near_copy_threshold,
        output_dir / figures["nearest_neighbours"],
    )
    if sample_positions is not None:
        figures["by_position"] = "samples_by_position.png"
        _position_figure(
            generated,
            sample_positions,
            real,
            real.positions(),
            num_figure_images,
            _MAX_POSITION_ROWS,
            output_dir / figures["by_position"],
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
    atomic_write(output_dir / "report.md", lambda temporary: temporary.write_text(_markdown(report), encoding="utf-8"))
    atomic_write_json(output_dir / "quality.json", report)
    return report
