"""Measures of the quality report that the trained model did not shape: the intensity distribution inside the brain,
and a fixed, seeded, randomly initialised MONAI CNN as a second feature space.

- **In-brain intensity distance** (:func:`foreground_histograms`, :func:`histogram_wasserstein`,
  :func:`intensity_wasserstein`): the 1-D Wasserstein distance between the pooled histograms of the pixels above a
  small foreground threshold (0.01, the brain mask of :class:`~monai_vqvae2.metrics.MaskedSSIMMetric`). It reads in
  intensity units: 0.02 means the in-brain intensities would have to move by 2 % of the [0, 1] range on average to
  match. The Wasserstein distance is chosen over the Jensen-Shannon divergence because it respects the order of the
  bins: a histogram shifted by one bin is close, whereas the Jensen-Shannon divergence of two histograms that do not
  overlap is maximal (log 2) however small the shift.
- **Random-CNN features** (:class:`RandomCNNFeatures`): MONAI's ``ResNetFeatures("resnet10")`` in 2D with one input
  channel, its weights drawn with a fixed seed (MONAI's own Kaiming initialisation) and never trained; each of its
  five stages is global-average-pooled and the stages are concatenated (64 + 64 + 128 + 256 + 512 = 1024 numbers per
  slice). Randomly initialised networks are a known evaluation embedding when no pretrained network fits the data
  (Naeem et al. 2020, https://arxiv.org/abs/2002.09797; Lee, Kim and Lee 2023, https://arxiv.org/abs/2208.09218):
  their pooled activations are multi-scale statistics of local filter responses (texture, edges, blob sizes), and
  unlike the VQ-VAE-2 encoder they were not fitted to the training slices, so a generator cannot have learned to
  satisfy them. Nothing is downloaded. :func:`stage_scales` gives every stage the same weight in a distance.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import torch
from monai.networks.nets import ResNetFeatures

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

# intensity above which a pixel belongs to the brain (MaskedSSIMMetric's default foreground_threshold)
FOREGROUND_THRESHOLD = 0.01
# equal bins over [0, 1]: a resolution of 1/256, below what 8-bit display can show
HISTOGRAM_BINS = 256
RANDOM_FEATURE_MODEL = "resnet10"
RANDOM_FEATURE_SPACE = (
    f"a seeded random CNN, never trained: MONAI ResNetFeatures('{RANDOM_FEATURE_MODEL}', pretrained=False, "
    "spatial_dims=2, in_channels=1) in evaluation mode; each of its five stages global-average-pooled, the stages "
    "concatenated, each stage scaled to total variance 1 over the training base"
)


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


class RandomCNNFeatures:
    """A fixed feature space that no training has shaped: MONAI ``ResNetFeatures("resnet10", pretrained=False,
    spatial_dims=2, in_channels=1)`` with weights drawn by MONAI's Kaiming initialisation from
    ``torch.manual_seed(seed)`` (in a forked random state: the global generator is left as it was), in evaluation mode
    (batch norms are then the identity up to ``1 / sqrt(1 + eps)``). Each of its five stages (the stem and the four residual layers) is
    global-average-pooled over space and the stages are concatenated, finest first.

    The same seed and the same MONAI and PyTorch versions give the same weights on every machine; :attr:`digest`
    identifies them, so two reports can check that they used the same feature space.

    Args:
        seed: seed of the weights.
        device: where the network runs (default CPU).

    Raises:
        ValueError: a seed that is not a non-negative integer.

    Example::

        extract = RandomCNNFeatures(seed=0)
        features = extract(images)  # (N, 1024) float64
    """

    def __init__(self, seed: int = 0, device: str | torch.device | None = None) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"`seed` must be a non-negative integer, got {seed!r}.")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            network = ResNetFeatures(RANDOM_FEATURE_MODEL, pretrained=False, spatial_dims=2, in_channels=1)
        network.requires_grad_(False).eval()
        digest = hashlib.sha256()
        for name, tensor in sorted(network.state_dict().items()):
            value = tensor.detach().cpu().contiguous()
            digest.update(f"{name}:{value.dtype}:{tuple(value.shape)}".encode())
            digest.update(value.numpy().tobytes())
        self.seed = seed
        self.digest = digest.hexdigest()
        self.network = network.to(device if device is not None else "cpu")
        self.stage_channels = tuple(int(c) for c in self._stage_channels(network))

    @staticmethod
    def _stage_channels(network: ResNetFeatures) -> list[int]:
        with torch.no_grad():
            return [stage.shape[1] for stage in network(torch.zeros(1, 1, 32, 32))]

    @property
    def dimension(self) -> int:
        """Numbers per image: the sum of the stages' channels."""
        return sum(self.stage_channels)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Features of a batch.

        Args:
            images: ``(B, 1, H, W)`` intensities in [0, 1].

        Returns:
            ``(B, dimension)`` float64 on the CPU.

        Raises:
            ValueError: images that are not ``(B, 1, H, W)``.
        """
        images = torch.as_tensor(images)
        if images.ndim != 4 or images.shape[1] != 1:
            raise ValueError(f"`images` must have shape (B, 1, H, W), got {tuple(images.shape)}.")
        device = next(self.network.parameters()).device
        stages = self.network(images.to(device=device, dtype=torch.float32))
        return torch.cat([stage.mean(dim=(2, 3)) for stage in stages], dim=1).double().cpu()


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
