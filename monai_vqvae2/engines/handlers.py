"""Ignite handlers of the training stages: validation every N epochs and after the last, codebook usage metrics,
reconstruction figures, metrics JSON files."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import ignite.distributed as idist
import numpy as np
import torch
import torch.nn.functional as F
from ignite.engine import Engine, Events
from ignite.handlers import TerminateOnNan
from monai.engines import Evaluator
from monai.handlers import ValidationHandler
from monai.metrics import SSIMMetric
from monai.utils import convert_to_tensor
from PIL import Image

from monai_vqvae2.io import atomic_write, atomic_write_json
from monai_vqvae2.metrics import MaskedSSIMMetric, class_dice, code_statistics, codes_in_mask
from monai_vqvae2.networks import level_names, unwrap
from monai_vqvae2.slice_io import orthogonal_views

__all__ = [
    "CodebookUsageHandler",
    "EpochValidationHandler",
    "HierarchyProbeHandler",
    "LabelDiceHandler",
    "MetricsJSONWriter",
    "NonFiniteLossHandler",
    "ReconstructionFigureHandler",
    "level_names",
    "unwrap",
]

logger = logging.getLogger(__name__)


def _loss(output: dict) -> torch.Tensor:
    return output["loss"]


class EpochValidationHandler(ValidationHandler):
    """MONAI's :class:`~monai.handlers.ValidationHandler` at epoch level that also validates after the last epoch.

    MONAI's handler validates every ``interval`` epochs only, so with ``interval=5`` a 12-epoch run never scores (or
    checkpoints, where a checkpoint handler follows the validation) its last two epochs, and a 1-epoch run never
    validates at all. This one validates at every ``interval``-th epoch and at the trainer's last epoch.

    Args:
        interval: validate every ``interval`` epochs (a positive integer).
        validator: the evaluator to run (``None``: set it later with ``set_validator``).
        exec_at_start: also validate once before training.

    Raises:
        ValueError: ``interval`` is not a positive integer.
    """

    def __init__(self, interval: int, validator: Evaluator | None = None, exec_at_start: bool = False) -> None:
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise ValueError(f"`interval` (epochs between validations) must be a positive integer, got {interval!r}.")
        super().__init__(interval, validator=validator, epoch_level=True, exec_at_start=exec_at_start)

    def _due(self, engine: Engine, epoch: int) -> bool:
        return epoch % self.interval == 0 or epoch == engine.state.max_epochs

    def attach(self, engine: Engine) -> None:
        """Validate after every ``interval``-th epoch of ``engine`` and after its last epoch."""
        engine.add_event_handler(Events.EPOCH_COMPLETED(event_filter=self._due), self)
        if self.exec_at_start:
            engine.add_event_handler(Events.STARTED, self)


class NonFiniteLossHandler:
    """Stops training at the first NaN/Inf loss with a ``FloatingPointError`` naming the iteration and epoch.

    Ignite's ``TerminateOnNan`` does the check but ends the run quietly (and has no ``attach``, so it cannot sit in a
    MONAI handler list); a run that silently stops looks finished. Raising also skips the end-of-epoch handlers, so
    no checkpoint of the broken weights is written: ``latest.pt`` and ``model.pt`` keep the last good state.

    Args:
        output_transform: picks the loss from the engine output.
    """

    def __init__(self, output_transform: Callable = _loss) -> None:
        self.output_transform = output_transform
        self._terminate_on_nan = TerminateOnNan(output_transform)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        self._terminate_on_nan(engine)
        if engine.should_terminate:
            loss = self.output_transform(engine.state.output)
            raise FloatingPointError(
                f"Non-finite loss {float(loss)} at iteration {engine.state.iteration} (epoch {engine.state.epoch}); "
                "training stopped and the last checkpoint written before it is kept."
            )


class CodebookUsageHandler:
    """Adds per-level codebook usage (fraction of codes used over the engine's epoch) and perplexity to
    ``engine.state.metrics`` as ``code_usage_<level>`` and ``code_perplexity_<level>``; when a level's usage falls
    below ``collapse_threshold`` (a collapsed codebook) it logs a warning and sets ``code_collapsed_<level>`` to 1
    (0 otherwise), so collapse shows in logs, TensorBoard and the metrics JSON files alike.

    Attach it to an evaluator before the handlers that log or save metrics. Under DDP every rank must run it (the
    counts are summed over ranks).

    Args:
        network: the VQ-VAE-2 (possibly wrapped in DDP or ``VQVAE2Reconstructor``).
        collapse_threshold: usage below this fraction of the codebook is reported as collapse; 0 disables.
    """

    def __init__(self, network: torch.nn.Module, collapse_threshold: float = 0.05) -> None:
        self.network = network
        self.collapse_threshold = collapse_threshold

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self.reset)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def reset(self, engine: Engine | None = None) -> None:
        unwrap(self.network).reset_codebook_usage()

    def __call__(self, engine: Engine) -> None:
        vqvae = unwrap(self.network)
        for name, statistics in zip(level_names(vqvae.num_levels), vqvae.codebook_usage()):
            engine.state.metrics[f"code_usage_{name}"] = statistics["usage"]
            engine.state.metrics[f"code_perplexity_{name}"] = statistics["perplexity"]
            collapsed = bool(statistics["num_quantized"]) and statistics["usage"] < self.collapse_threshold
            engine.state.metrics[f"code_collapsed_{name}"] = float(collapsed)
            if collapsed:
                logger.warning(
                    "Codebook collapse on the %s level: %.1f%% of the codes in use (threshold %.1f%%).",
                    name,
                    100 * statistics["usage"],
                    100 * self.collapse_threshold,
                )


class HierarchyProbeHandler:
    """Measures what each level of a VQ-VAE-2 carries, on an evaluator's images (``output["label"]``), and adds to
    ``engine.state.metrics``:

    - ``top_only_ssim`` and ``top_only_brain_ssim`` (when the VQ-VAE-2 has a top-only decoder, i.e.
      ``top_reconstruction_weight`` is set): the *top-only reconstruction* (``VQVAE2.decode_top``, the image decoded
      from the coarsest codes alone) scored like the reconstruction; high when the top level carries the anatomy,
      low when it only carries the outline;
    - ``brain_perplexity_<level>`` and ``brain_distinct_<level>``: perplexity and number of distinct codes at the
      code positions inside the brain (target above ``foreground_threshold``), where whole-map usage flatters.

    Slices and whole volumes alike (the SSIMs are 3D for volumes). Attach it to an evaluator before the handlers
    that log or save metrics. Under DDP every rank must run it (sums and counts are reduced over ranks).

    Args:
        network: the VQ-VAE-2 (possibly wrapped).
        foreground_threshold: intensity above which a pixel belongs to the brain (as ``MaskedSSIMMetric``).
    """

    def __init__(self, network: torch.nn.Module, foreground_threshold: float = 0.01) -> None:
        self.network = network
        self.foreground_threshold = foreground_threshold

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.update)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def reset(self, engine: Engine | None = None) -> None:
        self._ssims: tuple[SSIMMetric, MaskedSSIMMetric] | None = None  # made for the images' dimensions
        self._counts: list[torch.Tensor] = [
            torch.zeros(n, dtype=torch.long) for n in unwrap(self.network).num_embeddings
        ]

    @torch.no_grad()
    def update(self, engine: Engine) -> None:
        vqvae = unwrap(self.network)
        images = convert_to_tensor(engine.state.output["label"], track_meta=False).float()
        if images.ndim not in (4, 5):  # (B, C, H, W) slices or (B, C, X, Y, Z) volumes
            return
        if self._ssims is None:
            spatial_dims = images.ndim - 2
            self._ssims = (
                SSIMMetric(spatial_dims=spatial_dims, data_range=1.0),
                MaskedSSIMMetric(spatial_dims=spatial_dims, foreground_threshold=self.foreground_threshold),
            )
        indices = vqvae.index_quantize(images)
        if vqvae.top_decoder is not None:
            top_only = vqvae.decode_top(indices[0]).clamp(0, 1)
            for metric in self._ssims:
                metric(top_only, images)
        brain = images > self.foreground_threshold
        for level, level_indices in enumerate(indices):
            codes = codes_in_mask(level_indices, brain).cpu()
            self._counts[level] += torch.bincount(codes, minlength=len(self._counts[level]))

    def __call__(self, engine: Engine) -> None:
        vqvae = unwrap(self.network)
        totals = torch.zeros(4, dtype=torch.float64)  # sums and counts of both SSIMs, NaNs (no brain) left out
        for column, metric in enumerate(self._ssims or ()):
            values = metric.get_buffer()
            if values is not None:
                values = values[~values.isnan()].double().cpu()
                totals[2 * column], totals[2 * column + 1] = values.sum(), values.numel()
        totals = idist.all_reduce(totals)  # every rank evaluates a share of the images under DDP
        if totals[1] > 0:  # a top-only decoder (and images)
            engine.state.metrics["top_only_ssim"] = float(totals[0] / totals[1])
            engine.state.metrics["top_only_brain_ssim"] = float(totals[2] / totals[3]) if totals[3] else float("nan")
        for name, counts in zip(level_names(vqvae.num_levels), self._counts):
            statistics = code_statistics(idist.all_reduce(counts.clone()))
            engine.state.metrics[f"brain_perplexity_{name}"] = statistics["perplexity"]
            engine.state.metrics[f"brain_distinct_{name}"] = statistics["distinct"]


class LabelDiceHandler:
    """Measures how well a VQ-VAE-2's label decoder reads the tissue labels from the codes of an evaluator's images:
    the Dice (:func:`~monai_vqvae2.metrics.class_dice`) between ``VQVAE2.predict_labels`` of the images
    (``output["label"]``) and the batch's label maps, per foreground class. Adds ``label_dice`` (the mean over the
    classes) and ``label_dice_<class name>`` to ``engine.state.metrics``. Attach it to an evaluator before the handlers
    that log or save metrics; under DDP every rank must run it.

    Args:
        network: the VQ-VAE-2 (possibly wrapped), built with ``label_channels``.
        label_key: key of the class maps in the evaluator's batch dicts.
        class_names: names of the foreground classes 1, 2, ... in the metric names (spaces become underscores);
            default ``class_1``, ``class_2``, ...

    Raises:
        ValueError: the network has no label decoder, or ``class_names`` does not name every foreground class.
    """

    def __init__(
        self, network: torch.nn.Module, label_key: str = "label", class_names: Sequence[str] | None = None
    ) -> None:
        num_classes = unwrap(network).label_channels
        if num_classes is None:
            raise ValueError("LabelDiceHandler needs a VQ-VAE-2 with a label decoder (built with `label_channels`).")
        names = list(class_names) if class_names is not None else [f"class_{c}" for c in range(1, num_classes)]
        if len(names) != num_classes - 1:
            raise ValueError(
                f"`class_names` must name the {num_classes - 1} foreground classes of the label decoder, got {names}."
            )
        self.network = network
        self.label_key = label_key
        self.metric_names = [f"label_dice_{name.lower().replace(' ', '_')}" for name in names]

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self.reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self.update)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def reset(self, engine: Engine | None = None) -> None:
        self._sums = torch.zeros(len(self.metric_names) + 1, dtype=torch.float64)  # per class, then the item count

    @torch.no_grad()
    def update(self, engine: Engine) -> None:
        vqvae = unwrap(self.network)
        if not isinstance(engine.state.batch, dict) or self.label_key not in engine.state.batch:
            raise ValueError(f"LabelDiceHandler: the evaluator's batches have no {self.label_key!r} entry.")
        images = convert_to_tensor(engine.state.output["label"], track_meta=False).float()
        target = convert_to_tensor(engine.state.batch[self.label_key], track_meta=False).to(images.device)
        dice = class_dice(vqvae.predict_labels(images), target, vqvae.label_channels).double().cpu()
        self._sums[:-1] += dice.sum(dim=0)
        self._sums[-1] += dice.shape[0]

    def __call__(self, engine: Engine) -> None:
        sums = idist.all_reduce(self._sums.clone())
        if sums[-1] == 0:
            return
        means = sums[:-1] / sums[-1]
        engine.state.metrics["label_dice"] = float(means.mean())
        for name, value in zip(self.metric_names, means):
            engine.state.metrics[name] = float(value)


def _palette(num_codes: int) -> torch.Tensor:
    """A fixed, seeded colour per code index, shape ``(num_codes, 3)`` in [0, 1]."""
    return torch.rand(num_codes, 3, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.2


def reconstruction_figure(
    images: torch.Tensor,
    reconstructions: torch.Tensor,
    indices: list[torch.Tensor] | None,
    num_codes: list[int],
    top_only: torch.Tensor | None = None,
) -> np.ndarray:
    """A grid, one column per image: original, reconstruction, absolute error, the top-only reconstruction (when
    given), then one colour-coded code map per level (coarsest first, nearest-neighbour upsampled). 2D images
    ``(B, 1, H, W)``; returns ``(rows*H, B*W, 3)`` uint8."""
    size = images.shape[2:]
    rows = [images, reconstructions.clamp(0, 1), (reconstructions - images).abs().clamp(0, 1)]
    if top_only is not None:
        rows.append(top_only.clamp(0, 1))
    rows = [row[:, :1].repeat(1, 3, 1, 1) for row in rows]
    for level_indices, codes in zip(indices or [], num_codes):
        colours = _palette(codes)[level_indices.cpu()].permute(0, 3, 1, 2)
        rows.append(F.interpolate(colours, size=size, mode="nearest"))
    grid = torch.cat([torch.cat(list(row.cpu()), dim=2) for row in rows], dim=1)  # (3, rows*H, B*W)
    return (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def _volume_views(volumes: torch.Tensor) -> torch.Tensor:
    """Volumes ``(B, C, X, Y, Z)`` as pictures ``(B, C, N, 3N)`` of their axial, coronal and sagittal mid-slices
    (:func:`~monai_vqvae2.slice_io.orthogonal_views`)."""
    return torch.stack(
        [torch.stack([torch.from_numpy(orthogonal_views(channel.numpy())) for channel in item]) for item in volumes]
    )


class ReconstructionFigureHandler:
    """Saves a figure of ``num_images`` validation images spread evenly over the evaluated set (original,
    reconstruction, error, top-only reconstruction, code maps per level) at the end of every evaluator epoch, as PNG
    under ``output_dir`` and, when a TensorBoard ``summary_writer`` is given, as an image in TensorBoard. A volume is
    drawn as its axial, coronal and sagittal mid-slices side by side, its code maps upsampled to its grid first.

    Args:
        network: the VQ-VAE-2 (possibly wrapped), used to draw the code maps.
        output_dir: folder of the PNG files ``reconstructions_epoch<N>.png``; ``None`` writes no PNG.
        summary_writer: optional ``torch.utils.tensorboard.SummaryWriter``.
        num_images: images per figure.
        global_epoch_transform: maps the evaluator's epoch to the epoch shown (e.g. the trainer's epoch).
        tag: TensorBoard tag.
    """

    def __init__(
        self,
        network: torch.nn.Module,
        output_dir: str | Path | None = None,
        summary_writer=None,
        num_images: int = 8,
        global_epoch_transform: Callable[[int], int] = lambda epoch: epoch,
        tag: str = "reconstructions",
    ) -> None:
        self.network = network
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.summary_writer = summary_writer
        self.num_images = num_images
        self.global_epoch_transform = global_epoch_transform
        self.tag = tag
        self._images: list[torch.Tensor] = []
        self._reconstructions: list[torch.Tensor] = []
        self._warned = False

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._reset)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._collect)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def _reset(self, engine: Engine) -> None:
        self._images, self._reconstructions = [], []
        total = len(engine.data_loader.dataset) if hasattr(engine.data_loader, "dataset") else self.num_images
        count = min(self.num_images, total)
        # evenly spaced over the evaluated set, so the figure spans the brain rather than its first slices
        self._wanted = {round(i * (total - 1) / max(count - 1, 1)) for i in range(count)}
        self._seen = 0

    def _collect(self, engine: Engine) -> None:
        output = engine.state.output
        labels = convert_to_tensor(output["label"], track_meta=False)
        predictions = convert_to_tensor(output["pred"], track_meta=False)
        positions = [i for i in range(labels.shape[0]) if self._seen + i in self._wanted]
        self._seen += labels.shape[0]
        if positions:
            self._images.append(labels[positions].detach().float().cpu())
            self._reconstructions.append(predictions[positions].detach().float().cpu())

    def __call__(self, engine: Engine) -> Path | None:
        if not self._images:
            return None
        images, reconstructions = torch.cat(self._images), torch.cat(self._reconstructions)
        if images.ndim not in (4, 5):
            if not self._warned:
                logger.warning(
                    "ReconstructionFigureHandler draws slices and volumes only; got shape %s.", tuple(images.shape)
                )
                self._warned = True
            return None
        vqvae = unwrap(self.network)
        device = next(vqvae.parameters()).device
        with torch.no_grad():
            indices = [level.cpu() for level in vqvae.index_quantize(images.to(device))]
            top_only = vqvae.decode_top(indices[0].to(device)).cpu() if vqvae.top_decoder is not None else None
        if images.ndim == 5:
            grid = images.shape[2:]
            indices = [
                _volume_views(F.interpolate(level[:, None].float(), size=grid, mode="nearest"))[:, 0].round().long()
                for level in indices
            ]
            images, reconstructions = _volume_views(images), _volume_views(reconstructions)
            top_only = _volume_views(top_only) if top_only is not None else None
        figure = reconstruction_figure(images, reconstructions, indices, list(vqvae.num_embeddings), top_only)
        epoch = self.global_epoch_transform(engine.state.epoch)
        if self.summary_writer is not None:
            self.summary_writer.add_image(self.tag, figure, global_step=epoch, dataformats="HWC")
        if self.output_dir is None:
            return None
        path = self.output_dir / f"reconstructions_epoch{epoch}.png"
        return atomic_write(path, lambda temporary: Image.fromarray(figure).save(temporary, format="PNG"))


class MetricsJSONWriter:
    """Writes ``engine.state.metrics`` (plus epoch and iteration) as JSON after every evaluator epoch:
    ``<output_dir>/metrics_epoch<N>.json`` and a copy at ``<output_dir>/<latest_filename>``. Writes are atomic.

    Args:
        output_dir: destination folder.
        global_epoch_transform: maps the evaluator's epoch to the epoch recorded (e.g. the trainer's epoch).
        latest_filename: name of the always-current copy.
        extra: constant entries added to every file (e.g. the split evaluated).
    """

    def __init__(
        self,
        output_dir: str | Path,
        global_epoch_transform: Callable[[int], int] = lambda epoch: epoch,
        latest_filename: str = "metrics.json",
        extra: dict | None = None,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.global_epoch_transform = global_epoch_transform
        self.latest_filename = latest_filename
        self.extra = dict(extra or {})

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def __call__(self, engine: Engine) -> dict:
        epoch = self.global_epoch_transform(engine.state.epoch)
        metrics = {
            name: float(value) if isinstance(value, (int, float, torch.Tensor, np.floating)) else value
            for name, value in engine.state.metrics.items()
        }
        record = {
            **self.extra,
            "epoch": epoch,
            "metrics": {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()},
        }
        atomic_write_json(self.output_dir / f"metrics_epoch{epoch}.json", record)
        atomic_write_json(self.output_dir / self.latest_filename, record)
        return record
