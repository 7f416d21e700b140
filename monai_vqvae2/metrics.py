"""Reconstruction metrics as defined once for the whole project (see the README's "Metrics" section).

- SSIM: MONAI ``SSIMMetric(spatial_dims=2, data_range=1.0)`` (Gaussian window 11, sigma 1.5) on images in [0, 1].
- PSNR: MONAI ``PSNRMetric(max_val=1.0)``.
- Brain SSIM / brain PSNR: the same quantities restricted to the target's foreground (``target > threshold``): the
  SSIM map is averaged over the mask, the squared error is averaged over the mask. Whole-slice scores flatter because
  the black background alone scores well.
- Label Dice: MONAI ``DiceMetric`` per foreground class between two class maps (:func:`class_dice`).
- Trivial references printed beside every evaluation: an all-zero prediction and a 4x downsample + bilinear
  upsample of the target (:class:`ReferencePrediction`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.metrics import CumulativeIterationMetric, DiceMetric
from monai.metrics.regression import RegressionMetric, compute_ssim_and_cs
from monai.metrics.utils import do_metric_reduction
from monai.networks.utils import one_hot
from monai.utils import MetricReduction

from monai_vqvae2.networks.quantizer import perplexity

__all__ = [
    "CodeAccuracyMetric",
    "CodeNLLMetric",
    "MaskedPSNRMetric",
    "MaskedSSIMMetric",
    "ReferencePrediction",
    "class_dice",
    "code_statistics",
    "codes_in_mask",
    "evaluation_metric_handlers",
    "ms_ssim_weights",
    "prior_metric_handlers",
    "reconstruction_pair",
    "ssim_metric_handler",
]

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # Wang et al. 2003


def reconstruction_pair(output: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Ignite ``output_transform``: ``(reconstruction, target)`` from an engine output dict."""
    return output["pred"], output["label"]


def clamped_reconstruction_pair(output: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Like :func:`reconstruction_pair` with the reconstruction clamped to [0, 1] (MS-SSIM needs non-negative
    contrast terms)."""
    return output["pred"].clamp(0, 1), output["label"]


class ReferencePrediction:
    """Ignite ``output_transform`` that replaces the prediction by a trivial reference computed from the target.

    Args:
        kind: ``"zeros"`` (an all-black prediction) or ``"downsample"`` (area downsampling by ``factor`` then bilinear
            upsampling back: what a code map at that resolution gives for free).
        factor: downsampling factor of ``"downsample"``.
    """

    KINDS = ("zeros", "downsample")

    def __init__(self, kind: str, factor: int = 4) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"`kind` must be one of {self.KINDS}, got {kind!r}.")
        if factor < 1:
            raise ValueError(f"`factor` must be >= 1, got {factor}.")
        self.kind = kind
        self.factor = factor

    def __call__(self, output: dict) -> tuple[torch.Tensor, torch.Tensor]:
        target = torch.as_tensor(output["label"])
        if self.kind == "zeros":
            return torch.zeros_like(target), target
        spatial = target.shape[2:]
        small = F.interpolate(target, scale_factor=1 / self.factor, mode="area")
        mode = "bilinear" if len(spatial) == 2 else "trilinear"
        return F.interpolate(small, size=spatial, mode=mode, align_corners=False), target


def ms_ssim_weights(image_size: int, kernel_size: int = 11) -> tuple[float, ...] | None:
    """The standard MS-SSIM weights truncated to the scales an ``image_size`` image allows (renormalised).

    MONAI's ``MultiScaleSSIMMetric`` needs ``image_size > (kernel_size - 1) * 2 ** (scales - 1)``.

    Returns:
        the weights, or ``None`` when fewer than two scales fit (MS-SSIM is then not reported).
    """
    scales = len(MS_SSIM_WEIGHTS)
    while scales > 1 and image_size <= (kernel_size - 1) * 2 ** (scales - 1):
        scales -= 1
    if scales < 2:
        return None
    weights = MS_SSIM_WEIGHTS[:scales]
    total = sum(weights)
    return tuple(w / total for w in weights)


def _foreground(target: torch.Tensor, threshold: float) -> torch.Tensor:
    return (target > threshold).to(target.dtype)


class MaskedSSIMMetric(RegressionMetric):
    """SSIM averaged over the target's foreground: MONAI's SSIM map (same window and constants as ``SSIMMetric``)
    averaged over the pixels where ``target > foreground_threshold``. Images without foreground give NaN and are
    left out of the mean.

    Args:
        spatial_dims: 2 or 3.
        data_range: intensity range.
        kernel_size: Gaussian window size.
        kernel_sigma: Gaussian window sigma.
        foreground_threshold: intensity above which a target pixel belongs to the brain.
        reduction: MONAI metric reduction.
        get_not_nans: also return the number of non-NaN values.
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        data_range: float = 1.0,
        kernel_size: int = 11,
        kernel_sigma: float = 1.5,
        foreground_threshold: float = 0.01,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        get_not_nans: bool = False,
    ) -> None:
        super().__init__(reduction=reduction, get_not_nans=get_not_nans)
        self.spatial_dims = spatial_dims
        self.data_range = data_range
        self.kernel_size = kernel_size
        self.kernel_sigma = kernel_sigma
        self.foreground_threshold = foreground_threshold

    def _compute_metric(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        ssim_map, _ = compute_ssim_and_cs(
            y_pred,
            y,
            self.spatial_dims,
            kernel_size=(self.kernel_size,) * self.spatial_dims,
            kernel_sigma=(self.kernel_sigma,) * self.spatial_dims,
            data_range=self.data_range,
        )
        margin = self.kernel_size // 2
        crop = (slice(None), slice(None)) + (slice(margin, -margin or None),) * self.spatial_dims
        mask = _foreground(y.float(), self.foreground_threshold)[crop]
        return _masked_mean(ssim_map, mask)


class MaskedPSNRMetric(RegressionMetric):
    """PSNR over the target's foreground: ``10 log10(max_val^2 / MSE)`` with the MSE averaged over the pixels where
    ``target > foreground_threshold``. Images without foreground give NaN and are left out of the mean.

    Args:
        max_val: peak intensity.
        foreground_threshold: intensity above which a target pixel belongs to the brain.
        reduction: MONAI metric reduction.
        get_not_nans: also return the number of non-NaN values.
    """

    def __init__(
        self,
        max_val: float = 1.0,
        foreground_threshold: float = 0.01,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        get_not_nans: bool = False,
    ) -> None:
        super().__init__(reduction=reduction, get_not_nans=get_not_nans)
        self.max_val = max_val
        self.foreground_threshold = foreground_threshold

    def _compute_metric(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        mask = _foreground(y.float(), self.foreground_threshold)
        mse = _masked_mean((y_pred.float() - y.float()) ** 2, mask)
        return 10.0 * torch.log10(self.max_val**2 / mse)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-image mean of ``values`` over ``mask``, shape ``(B, 1)``; NaN where the mask is empty."""
    dims: Sequence[int] = tuple(range(1, values.ndim))
    count = mask.sum(dim=dims)
    total = (values * mask).sum(dim=dims)
    mean = torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, float("nan")))
    return mean.unsqueeze(1)


def codes_in_mask(indices: torch.Tensor, mask: torch.Tensor, min_fraction: float = 0.5) -> torch.Tensor:
    """The codes of one level at the positions inside a mask (e.g. the brain).

    Args:
        indices: ``(B, *latent_shape)`` code indices of one level.
        mask: ``(B, 1, *spatial)`` or ``(B, *spatial)`` mask at image resolution (e.g. ``image > 0.01``).
        min_fraction: a code position is inside when at least this fraction of the pixels it covers are.

    Returns:
        a 1D long tensor of the codes found inside.
    """
    mask = torch.as_tensor(mask, device=indices.device).float()
    if mask.ndim == indices.ndim + 1:
        mask = mask[:, 0]
    pool = F.adaptive_avg_pool2d if indices.ndim == 3 else F.adaptive_avg_pool3d
    return indices[pool(mask, indices.shape[1:]) >= min_fraction].long()


def code_statistics(counts: torch.Tensor) -> dict[str, float]:
    """Perplexity ``2^H`` (1 = a single code, ``len(counts)`` = uniform) and number of distinct codes of a code
    histogram, e.g. ``torch.bincount(codes_in_mask(...), minlength=num_embeddings)``. Inside the brain these show what
    whole-map statistics hide: background and zero-padded border take codes of their own, so a top level with one
    code over the whole brain can still show a healthy whole-map perplexity. NaN perplexity for an empty histogram.
    """
    return {"perplexity": perplexity(counts), "distinct": float((counts > 0).sum())}


def class_dice(prediction: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Dice per item and foreground class (MONAI ``DiceMetric``, background excluded) of two class maps.

    Args:
        prediction: ``(B, 1, *spatial)`` class indices.
        target: same shape.
        num_classes: classes, background (0) included.

    Returns:
        ``(B, num_classes - 1)``: 1 where a class is absent from both maps of an item, 0 where it is in one only.

    Raises:
        ValueError: maps of different shapes.
    """
    if prediction.shape != target.shape:
        raise ValueError(f"`prediction` {tuple(prediction.shape)} and `target` {tuple(target.shape)} differ in shape.")
    metric = DiceMetric(include_background=False, reduction="none", ignore_empty=False)
    return metric(one_hot(prediction.long(), num_classes), one_hot(target.long(), num_classes))


def ssim_metric_handler(output_transform=reconstruction_pair, spatial_dims: int = 2):
    """The project's SSIM (MONAI ``SSIMMetric(spatial_dims=2, data_range=1.0)``; 3D windows for volumes) as an Ignite
    metric handler; the key metric of every evaluation, used to select the best checkpoint."""
    from monai.handlers import IgniteMetricHandler
    from monai.metrics import SSIMMetric

    return IgniteMetricHandler(SSIMMetric(spatial_dims=spatial_dims, data_range=1.0), output_transform=output_transform)


def evaluation_metric_handlers(image_size: int | Sequence[int], with_references: bool = True) -> dict:
    """Every reconstruction metric but the key SSIM, as Ignite metric handlers keyed by the names reported in logs,
    TensorBoard and metrics JSON files:

    ``psnr``, ``brain_ssim``, ``brain_psnr``, ``ms_ssim`` (only when ``image_size`` allows at least two scales), and
    with ``with_references`` the same SSIM/brain SSIM/PSNR for the two trivial references
    (``reference_zeros_*``, ``reference_downsample4_*``).

    Args:
        image_size: side of the square 2D slices evaluated, or the spatial shape of the images (two sizes for slices,
            three for whole volumes, whose SSIMs then use 3D windows).
        with_references: add the trivial reference scores.

    Returns:
        ``{name: IgniteMetricHandler}`` for ``SupervisedEvaluator(additional_metrics=...)``.
    """
    from monai.handlers import IgniteMetricHandler
    from monai.metrics import MultiScaleSSIMMetric, PSNRMetric

    shape = (int(image_size),) * 2 if isinstance(image_size, (int, float)) else tuple(int(s) for s in image_size)
    dims = len(shape)
    handlers = {
        "psnr": IgniteMetricHandler(PSNRMetric(max_val=1.0), output_transform=reconstruction_pair),
        "brain_ssim": IgniteMetricHandler(MaskedSSIMMetric(spatial_dims=dims), output_transform=reconstruction_pair),
        "brain_psnr": IgniteMetricHandler(MaskedPSNRMetric(), output_transform=reconstruction_pair),
    }
    weights = ms_ssim_weights(min(shape))
    if weights is not None:
        handlers["ms_ssim"] = IgniteMetricHandler(
            MultiScaleSSIMMetric(spatial_dims=dims, data_range=1.0, weights=weights),
            output_transform=clamped_reconstruction_pair,
        )
    if with_references:
        for name, reference in (
            ("zeros", ReferencePrediction("zeros")),
            ("downsample4", ReferencePrediction("downsample")),
        ):
            handlers[f"reference_{name}_ssim"] = ssim_metric_handler(output_transform=reference, spatial_dims=dims)
            handlers[f"reference_{name}_brain_ssim"] = IgniteMetricHandler(
                MaskedSSIMMetric(spatial_dims=dims), output_transform=reference
            )
            handlers[f"reference_{name}_psnr"] = IgniteMetricHandler(
                PSNRMetric(max_val=1.0), output_transform=reference
            )
    return handlers


class CodeNLLMetric(CumulativeIterationMetric):
    """Negative log-likelihood of code maps under a prior, in **bits per code position**: the per-map mean of
    ``-log2 softmax(logits)[target]``, averaged over maps by :meth:`aggregate`.

    ``y_pred`` are logits ``(B, K, *spatial)``, ``y`` the code indices ``(B, *spatial)``.
    """

    def __init__(self, reduction: MetricReduction | str = MetricReduction.MEAN) -> None:
        super().__init__()
        self.reduction = reduction

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        nats = F.cross_entropy(y_pred.float(), y.long(), reduction="none")
        return (nats.flatten(1).mean(1) / math.log(2)).unsqueeze(1)

    def aggregate(self, reduction: MetricReduction | str | None = None):  # type: ignore[override]
        return do_metric_reduction(self.get_buffer(), reduction or self.reduction)[0]


class CodeAccuracyMetric(CodeNLLMetric):
    """Top-1 accuracy of a prior's predictions of code maps (fraction of positions whose most likely code is the
    target), per map, averaged by :meth:`aggregate`."""

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:  # type: ignore[override]
        return (y_pred.argmax(1) == y.long()).float().flatten(1).mean(1, keepdim=True)


def prior_metric_handlers() -> tuple[dict, dict]:
    """The prior stage's validation metrics as Ignite handlers: ``({"nll_bits": ...}, {"accuracy": ...})`` for
    ``SupervisedEvaluator(key_val_metric=..., additional_metrics=...)``. Lower ``nll_bits`` is better."""
    from monai.handlers import IgniteMetricHandler, from_engine

    pair = from_engine(["pred", "label"])
    return (
        {"nll_bits": IgniteMetricHandler(CodeNLLMetric(), output_transform=pair)},
        {"accuracy": IgniteMetricHandler(CodeAccuracyMetric(), output_transform=pair)},
    )
