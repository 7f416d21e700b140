"""Quality of generated slices: realism, diversity and memorisation, computed the same way on every run.

Every number compares the samples with real slices of a fixed split (test slices for realism and diversity, training
slices for memorisation) and every subset is drawn with a seeded generator, so the same inputs always give the same
report. What each number means and how to read it: ``bundle/docs/quality.md``.

- **Feature space** (:func:`encoder_features`): the trained VQ-VAE-2's own encoder. Each level's encoder output
  (before quantization) is global-average-pooled and the levels are concatenated, coarsest first: ``sum(channels)``
  numbers per slice. Nothing is downloaded; the numbers are only comparable between reports made with the same
  autoencoder checkpoint.
- **Realism**: the Fréchet distance (Heusel et al. 2017, https://arxiv.org/abs/1706.08500) between Gaussians fitted
  to the real and the sample features (:func:`frechet_distance`), and the squared maximum mean discrepancy (Gretton et
  al. 2012, https://jmlr.org/papers/v13/gretton12a.html) with an RBF kernel whose bandwidth is the median pairwise
  distance (:func:`maximum_mean_discrepancy`, :func:`median_bandwidth`).
- **Diversity** (:func:`pairwise_ms_ssim`): mean MS-SSIM (Wang et al. 2003) over seeded random pairs of samples,
  beside the same number of pairs of real test slices.
- **Memorisation** (:func:`nearest_training_ssim`): each sample's SSIM to its most similar training slice, searched
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

__all__ = [
    "FEATURE_SPACE",
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

    ``tr((S_a S_b)^(1/2))`` is the sum of the singular values of ``S_a^(1/2) S_b^(1/2)`` (symmetric square roots by
    eigendecomposition), which stays exact when the covariances are singular (fewer slices than features): identical
    sets give 0 to rounding (about 1e-15 relative). Computed in float64; tiny negative rounding is clamped to 0.

    Args:
        features_a: ``(N_a, D)``, ``N_a >= 2``.
        features_b: ``(N_b, D)``, ``N_b >= 2``.

    Returns:
        the distance (squared feature units); lower means closer distributions.

    Raises:
        ValueError: not two 2D sets with the same ``D`` and at least two rows each, or non-finite values.
    """
    features_a, features_b = _check_pair(features_a, features_b)
    size = features_a.shape[1]
    mean_a, mean_b = features_a.mean(0), features_b.mean(0)
    covariance_a = torch.cov(features_a.T).reshape(size, size)
    covariance_b = torch.cov(features_b.T).reshape(size, size)
    trace_sqrt = torch.linalg.svdvals(_psd_sqrt(covariance_a) @ _psd_sqrt(covariance_b)).sum()
    distance = (mean_a - mean_b).square().sum() + covariance_a.trace() + covariance_b.trace() - 2 * trace_sqrt
    return max(float(distance), 0.0)


def _distances(features_a: torch.Tensor, features_b: torch.Tensor) -> Iterator[torch.Tensor]:
    """Euclidean distances, ``_CHUNK`` rows of ``features_a`` at a time (exact: zero for identical rows)."""
    for start in range(0, len(features_a), _CHUNK):
        yield torch.cdist(features_a[start : start + _CHUNK], features_b, compute_mode="donot_use_mm_for_euclid_dist")


def median_bandwidth(
    features_a: torch.Tensor, features_b: torch.Tensor, max_points: int = 1000, seed: int = 0
) -> float:
    """RBF bandwidth by the median heuristic: the median Euclidean distance between distinct points of the pooled
    sets (a seeded subset of ``max_points`` points when they are more). When that median is 0 (mostly repeated
    points) the median of the non-zero distances is used, and 1.0 when all points coincide.

    Args:
        features_a: ``(N_a, D)``.
        features_b: ``(N_b, D)``.
        max_points: largest pooled set used.
        seed: seed of the subset.

    Returns:
        the bandwidth ``sigma`` (feature units).

    Raises:
        ValueError: bad feature sets or ``max_points < 2``.
    """
    features_a, features_b = _check_pair(features_a, features_b)
    if _positive_int(max_points, "max_points") < 2:
        raise ValueError(f"`max_points` must be >= 2, got {max_points}.")
    pooled = torch.cat([features_a, features_b])
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
def _realism(real_features: torch.Tensor, sample_features: torch.Tensor, bandwidth: float) -> dict[str, float]:
    return {
        "frechet_distance": frechet_distance(real_features, sample_features),
        "mmd2": maximum_mean_discrepancy(real_features, sample_features, bandwidth),
        "mmd2_unbiased": maximum_mean_discrepancy(real_features, sample_features, bandwidth, unbiased=True),
    }


def _format(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _markdown(report: dict[str, Any]) -> str:
    realism, diversity, memorisation = report["realism"], report["diversity"], report["memorisation"]
    halves = realism.get("reference_real_halves") or {}
    real_memory = memorisation.get("reference_real_test") or {}
    counts = report["counts"]
    threshold = memorisation["threshold"]
    rows = [
        (
            "Fréchet distance (encoder features)",
            realism["frechet_distance"],
            halves.get("frechet_distance"),
            "lower is better",
        ),
        ("MMD² (RBF, V-statistic)", realism["mmd2"], halves.get("mmd2"), "lower is better; 0 = identical sets"),
        (
            "MMD² (RBF, unbiased)",
            realism["mmd2_unbiased"],
            halves.get("mmd2_unbiased"),
            "about 0 when samples match real slices",
        ),
        (
            f"mean pairwise {diversity['measure']}",
            diversity["samples"]["mean"],
            diversity["real"]["mean"],
            "close to real is best; higher = less diverse",
        ),
        (
            "nearest-training SSIM, median",
            memorisation["samples"]["median"],
            (real_memory.get("distribution") or {}).get("median"),
            "close to real is best; higher = copying",
        ),
        (
            "nearest-training SSIM, max",
            memorisation["samples"]["max"],
            (real_memory.get("distribution") or {}).get("max"),
            "1.0 = an exact training slice",
        ),
        (
            f"near-copies (SSIM ≥ {threshold:g})",
            f"{memorisation['num_near_copies']} / {counts['samples']}",
            f"{real_memory['num_near_copies']} / {real_memory['count']}" if real_memory else None,
            "should be 0",
        ),
    ]
    weights = ", ".join(f"{w:.3f}" for w in diversity["weights"])
    selection = report["real_test_selection"]
    real_test = f"{counts['real_test']} real test slices"
    if selection["position_window"] is not None:
        real_test += (
            f" (those within ±{selection['position_window']:g} of a sample's slice position, of "
            f"{selection['num_total']})"
        )
    summary = (
        f"{counts['samples']} samples, {real_test}, {counts['training']} training slices, "
        f"{report['image_size'][0]}×{report['image_size'][1]} pixels, seed {report['seed']}."
    )
    references = (
        "Real references: realism between two seeded halves of the real test slices "
        f"({halves.get('num_per_half', '–')} each; smaller sets inflate these numbers a little); diversity over the "
        "same number of pairs of real test slices; memorisation for a seeded subset of real test slices (held-out "
        "subjects: how close genuinely new slices come to the training set)."
    )
    method = [
        (
            f"- Feature space: {report['feature_space']['description']} ({report['feature_space']['dimension']} "
            "numbers per slice). Values are comparable only between reports made with the same autoencoder "
            "checkpoint and the same numbers of slices."
        ),
        (
            "- Fréchet distance: `‖mu_r - mu_s‖² + tr(S_r) + tr(S_s) - 2 tr((S_r S_s)^½)` between Gaussians fitted "
            "to the real test and the sample features."
        ),
        (
            f"- MMD²: RBF kernel `exp(-d² / (2σ²))`, σ = {_format(realism['bandwidth'])} (median pairwise distance "
            "of the pooled features); V-statistic (never negative, 0 for identical sets) and unbiased U-statistic."
        ),
        (
            f"- Diversity: mean {diversity['measure']} (MONAI `MultiScaleSSIMMetric`, weights {weights}) over "
            f"{diversity['num_pairs']} seeded random pairs of samples, and as many pairs of real test slices."
        ),
        (
            "- Memorisation: SSIM (MONAI `SSIMMetric`) of each sample to its nearest training slice; candidates are "
            f"the {memorisation['num_candidates']} training slices nearest in {memorisation['candidate_size']}-pixel "
            "thumbnail distance, searched over the whole training set. Exact copies are always found."
        ),
    ]
    figure = (
        f"- [Samples beside their nearest training slices]({report['figures']['nearest_neighbours']}) (most "
        "similar first; the number is the SSIM, red for near-copies)"
    )
    lines = ["# Quality of generated slices", "", summary, "", "| quantity | samples | real reference | how to read |"]
    lines.append("|---|---|---|---|")
    lines += [
        f"| {name} | {_format(value)} | {_format(reference)} | {reading} |" for name, value, reference, reading in rows
    ]
    lines += ["", references, "", "## How these were computed", "", *method, "", "## Figures", "", figure]
    if report["figures"].get("by_position"):
        lines.append(f"- [Samples by slice position]({report['figures']['by_position']})")
    else:
        lines.append("- Samples by slice position: not drawn (the samples' slice positions are unknown)")
    return "\n".join(lines) + "\n"


def _select_by_position(real: _Images, sample_positions: Sequence[float] | None, window: float) -> _Images:
    """The real test slices within ``window`` of a sample position."""
    if not (math.isfinite(window) and window >= 0):
        raise ValueError(f"`position_window` must be a number >= 0 or None, got {window!r}.")
    real_positions = real.positions()
    if sample_positions is None or real_positions is None:
        missing = "the samples'" if sample_positions is None else "the real test slices'"
        raise ValueError(f"`position_window` needs slice positions, but {missing} are unknown; set it to None.")
    targets = np.asarray(sample_positions, dtype=np.float64)
    kept = [i for i, p in enumerate(real_positions) if np.abs(targets - p).min() <= window]
    if len(kept) < 2:
        raise ValueError(
            f"`position_window` {window} keeps {len(kept)} of {len(real)} real test slices (sample positions "
            f"{sorted(set(np.round(targets, 3).tolist()))}); at least 2 are needed: widen it or set it to None."
        )
    return real.subset(kept)


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
    with_references: bool = True,
    position_window: float | None = None,
) -> dict[str, Any]:
    """Measure generated slices against real ones and write ``quality.json``, ``report.md``,
    ``nearest_neighbours.png`` and (when slice positions are known) ``samples_by_position.png`` under
    ``output_dir``, each atomically (``quality.json`` last).

    - realism: Fréchet distance and MMD² (V- and U-statistic, median-heuristic RBF bandwidth) between the real test
      slices and the samples in the VQ-VAE-2 encoder feature space (:func:`encoder_features`);
    - diversity: mean pairwise MS-SSIM of the samples and of the real test slices, over the same number of seeded
      pairs (``min(max_pairs, pairs available in either set)``);
    - memorisation: distribution of each sample's SSIM to its nearest training slice (:func:`nearest_training_ssim`)
      and the samples at or above ``near_copy_threshold``;
    - with ``with_references``, the same numbers for real data: realism between two seeded halves of the real test
      slices, memorisation of a seeded subset of as many real test slices as there are samples.

    Args:
        vqvae: the trained 2D :class:`~monai_vqvae2.networks.VQVAE2` (possibly wrapped) whose encoder gives the
            features.
        real_test: real held-out slices: a tensor ``(N, 1, H, W)`` in [0, 1] or a dataset of dicts with an
            ``"image"`` (e.g. ``make_slice_dataset(split["test"], ...)``); at least 2.
        samples: generated slices in the same forms, or a folder written by ``write_samples`` (read with
            :func:`load_sample_folder`); at least 2.
        training: the training slices, in the same forms (a dataset is read lazily).
        output_dir: folder of the report files.
        sample_positions: normalised slice position of each sample (0 = inferior, 1 = superior); default: the
            folder's manifest, else the samples dataset's ``"slice_position"``, else unknown (no position figure).
        seed: seed of every subset and pair draw.
        batch_size: slices processed at once.
        max_pairs: most pairs compared per set for diversity.
        near_copy_threshold: nearest-training SSIM at or above which a sample is flagged as a near-copy.
        num_candidates: training slices compared by SSIM per sample (see :func:`nearest_training_ssim`).
        candidate_size: thumbnail side used to pre-select them.
        max_bandwidth_points: most pooled feature vectors used for the median-heuristic bandwidth.
        num_figure_images: samples shown in the nearest-neighbour figure and per row of the position figure.
        with_references: also compute the real-data references.
        position_window: when given, only the real test slices whose ``"slice_position"`` lies within this distance
            of a sample's position are used (realism, diversity and their references): samples drawn at one position
            are then compared with real slices from that part of the brain rather than with all of it. Needs the
            positions of the samples and of the real test slices. ``None``: every real test slice.

    Returns:
        the report as written to ``quality.json``.

    Raises:
        TypeError: inputs of the wrong kind.
        ValueError: bad arguments, images of the wrong shape or range, sets of different image sizes or with fewer
            than two slices, ``sample_positions`` of the wrong length, a ``position_window`` without known positions
            or that keeps fewer than two real test slices.
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
    if isinstance(samples, (str, os.PathLike)):
        folder = load_sample_folder(samples)
        samples = folder.images
        sample_positions = folder.positions if sample_positions is None else sample_positions
    real, generated, train = _Images(real_test, "real_test"), _Images(samples, "samples"), _Images(training, "training")
    _same_size([real, generated, train])
    for images in (real, generated):
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
    selection: dict[str, Any] = {"position_window": position_window, "num_total": len(real)}
    if position_window is not None:
        real = _select_by_position(real, sample_positions, float(position_window))
    selection["num_selected"] = len(real)
    _ms_ssim_metric(generated.spatial_shape)  # slices too small for MS-SSIM fail here, before any work
    output_dir = Path(output_dir)
    network = unwrap(vqvae)

    # realism
    real_features = encoder_features(network, real, batch_size)
    sample_features = encoder_features(network, generated, batch_size)
    bandwidth = median_bandwidth(real_features, sample_features, max_points=max_bandwidth_points, seed=seed)
    realism: dict[str, Any] = {**_realism(real_features, sample_features, bandwidth), "bandwidth": bandwidth}
    realism["reference_real_halves"] = None
    if with_references and len(real) >= 4:
        order = torch.from_numpy(np.random.default_rng(seed).permutation(len(real)))
        half = len(real) // 2
        first, second = real_features[order[:half]], real_features[order[half : 2 * half]]
        realism["reference_real_halves"] = {**_realism(first, second, bandwidth), "num_per_half": half}

    # diversity
    def pairs(count: int) -> int:
        return count * (count - 1) // 2

    num_pairs = min(max_pairs, pairs(len(generated)), pairs(len(real)))
    weights = ms_ssim_weights(min(generated.spatial_shape), kernel_size=SSIM_KERNEL_SIZE)
    diversity = {
        "measure": "MS-SSIM",
        "weights": list(weights or ()),
        "num_pairs": num_pairs,
        "samples": _distribution(pairwise_ms_ssim(generated, num_pairs, seed=seed, batch_size=batch_size)),
        "real": _distribution(pairwise_ms_ssim(real, num_pairs, seed=seed, batch_size=batch_size)),
    }

    # memorisation
    thumbnails = _thumbnails(train, candidate_size, batch_size)  # one pass over the training set
    nearest = _nearest(generated, train, thumbnails, num_candidates, candidate_size, batch_size)
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
        "samples": _distribution(nearest.ssim),
        "num_near_copies": len(flagged),
        "near_copies": [neighbour(i) for i in flagged],
        "nearest": [neighbour(i) for i in range(len(generated))],
        "reference_real_test": None,
    }
    if with_references:
        count = min(len(real), len(generated))
        chosen = np.sort(np.random.default_rng(seed).choice(len(real), size=count, replace=False)).tolist()
        real_subset = _Images(real.get(chosen), "real_test")
        real_nearest = _nearest(real_subset, train, thumbnails, num_candidates, candidate_size, batch_size)
        memorisation["reference_real_test"] = {
            "count": count,
            "distribution": _distribution(real_nearest.ssim),
            "num_near_copies": int((real_nearest.ssim >= near_copy_threshold).sum()),
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
        real_positions = real.positions()
        _position_figure(
            generated,
            sample_positions,
            real,
            real_positions,
            num_figure_images,
            _MAX_POSITION_ROWS,
            output_dir / figures["by_position"],
        )

    report = {
        "seed": seed,
        "image_size": list(generated.spatial_shape),
        "counts": {"samples": len(generated), "real_test": len(real), "training": len(train)},
        "real_test_selection": selection,
        "feature_space": {
            "description": FEATURE_SPACE,
            "dimension": int(real_features.shape[1]),
            "channels_per_level": list(network.channels),
        },
        "realism": realism,
        "diversity": diversity,
        "memorisation": memorisation,
        "sample_positions": sample_positions,
        "figures": figures,
        "settings": {
            "batch_size": batch_size,
            "max_pairs": max_pairs,
            "max_bandwidth_points": max_bandwidth_points,
            "num_figure_images": num_figure_images,
            "with_references": with_references,
        },
    }
    atomic_write(output_dir / "report.md", lambda temporary: temporary.write_text(_markdown(report), encoding="utf-8"))
    atomic_write_json(output_dir / "quality.json", report)
    return report
