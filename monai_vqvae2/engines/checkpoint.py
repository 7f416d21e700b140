"""Crash-safe checkpoints: a rolling "latest" checkpoint for resuming and a "best" network by a validation metric."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from ignite.engine import Engine, Events

from monai_vqvae2.io import atomic_torch_save, remove_stale_temporaries

__all__ = ["CheckpointHandler", "latest_checkpoint"]

logger = logging.getLogger(__name__)


def _state_dict(obj: Any) -> Any:
    if isinstance(obj, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)):
        obj = obj.module
    return obj.state_dict()


def latest_checkpoint(checkpoint_dir: str | Path, filename: str = "latest.pt") -> str | None:
    """Path of the rolling checkpoint in ``checkpoint_dir`` if it exists, else ``None`` (used to make resuming
    conditional in bundle configs)."""
    path = Path(checkpoint_dir) / filename
    return str(path) if path.is_file() else None


class CheckpointHandler:
    """Saves, with atomic writes (temporary file + rename, so a kill mid-save never corrupts the previous file):

    - ``latest.pt`` every ``save_interval`` trainer epochs (and, when ``iteration_interval > 0``, every that many
      iterations): every object in ``save_dict`` (network, optimizer, LR scheduler, trainer, ...) plus this handler's
      own state, so MONAI's ``CheckpointLoader`` resumes the run exactly where it stopped;
    - ``model.pt`` whenever the evaluator's ``key_metric_name`` improves: the network's ``state_dict`` only, the file
      MONAI bundles load for evaluation, inference and ``ckpt_export``.

    MONAI's ``CheckpointSaver`` (and ignite's ``Checkpoint`` under it) deletes the previous file before writing the
    new one and writes non-atomically, so a kill at the wrong moment loses the run; this handler never does that.

    Args:
        save_dir: destination folder.
        save_dict: objects with ``state_dict``/``load_state_dict``; must contain ``network_key``.
        network_key: key of the network in ``save_dict``.
        key_metric_name: evaluator metric that selects the best network; ``None`` disables ``model.pt``.
        greater_is_better: whether a higher ``key_metric_name`` is better (SSIM) or a lower one (prior NLL).
        save_interval: epochs between ``latest.pt`` saves; 0 disables epoch saves.
        iteration_interval: iterations between ``latest.pt`` saves; 0 disables iteration saves.
        latest_filename: name of the rolling checkpoint.
        best_filename: name of the best network checkpoint.
        enabled: ``False`` makes the handler write nothing (e.g. on DDP ranks other than 0); it still tracks the best
            metric so every rank holds the same state.
        evaluator: the validation engine; when given, :meth:`attach` also attaches :meth:`save_best` to it, so the
            handler can sit in a trainer's ``train_handlers`` list. Put it after the ``ValidationHandler`` so
            ``latest.pt`` records the validation that just ran.

    Example::

        handler = CheckpointHandler("models", {"network": net, "optimizer": opt, "trainer": trainer}, evaluator=ev)
        handler.attach(trainer)
    """

    def __init__(
        self,
        save_dir: str | Path,
        save_dict: Mapping[str, Any],
        network_key: str = "network",
        key_metric_name: str | None = "ssim",
        greater_is_better: bool = True,
        save_interval: int = 1,
        iteration_interval: int = 0,
        latest_filename: str = "latest.pt",
        best_filename: str = "model.pt",
        enabled: bool = True,
        evaluator: Engine | None = None,
    ) -> None:
        if network_key not in save_dict:
            raise ValueError(f"`save_dict` must contain the network under {network_key!r}, got keys {list(save_dict)}.")
        if "checkpointer" in save_dict:
            raise ValueError("`save_dict` must not use the key 'checkpointer': the handler stores its own state there.")
        self.save_dir = Path(save_dir)
        self.save_dict = dict(save_dict)
        self.network_key = network_key
        self.key_metric_name = key_metric_name
        self.sign = 1.0 if greater_is_better else -1.0
        self.save_interval = save_interval
        self.iteration_interval = iteration_interval
        self.latest_filename = latest_filename
        self.best_filename = best_filename
        self.enabled = enabled
        self.best_metric = -math.inf
        self.best_epoch = 0
        self.evaluator = evaluator
        self._trainer: Engine | None = None

    def state_dict(self) -> dict[str, float | int]:
        """``best_metric`` is stored sign-adjusted (higher is better), with the epoch it was reached."""
        return {"best_metric": self.best_metric, "best_epoch": self.best_epoch}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        self.best_metric = float(state_dict["best_metric"])
        self.best_epoch = int(state_dict["best_epoch"])

    def attach(self, trainer: Engine) -> None:
        """Save ``latest.pt`` from ``trainer`` on its epoch (and iteration) schedule; remove temporary files that a
        killed earlier run left in ``save_dir``."""
        self._trainer = trainer
        if self.enabled:
            for filename in (self.latest_filename, self.best_filename):
                for stale in remove_stale_temporaries(self.save_dir / filename):
                    logger.warning("Removed %s, left by a run killed while saving.", stale)
        if self.save_interval > 0:
            trainer.add_event_handler(Events.EPOCH_COMPLETED(every=self.save_interval), self.save_latest)
        if self.iteration_interval > 0:
            trainer.add_event_handler(Events.ITERATION_COMPLETED(every=self.iteration_interval), self.save_latest)
        if self.evaluator is not None:
            self.attach_evaluator(self.evaluator)

    def attach_evaluator(self, evaluator: Engine) -> None:
        """Save ``model.pt`` when ``evaluator``'s key metric improves."""
        if self.key_metric_name is not None:
            evaluator.add_event_handler(Events.EPOCH_COMPLETED, self.save_best)

    def save_latest(self, engine: Engine | None = None) -> Path | None:
        if not self.enabled:
            return None
        checkpoint = {key: _state_dict(obj) for key, obj in self.save_dict.items()}
        checkpoint["checkpointer"] = self.state_dict()
        return atomic_torch_save(checkpoint, self.save_dir / self.latest_filename)

    def save_best(self, evaluator: Engine) -> Path | None:
        value = float(evaluator.state.metrics[self.key_metric_name])
        if math.isnan(value) or self.sign * value <= self.best_metric:
            return None
        self.best_metric = self.sign * value
        self.best_epoch = self._trainer.state.epoch if self._trainer is not None else evaluator.state.epoch
        logger.info("New best %s = %.4f at epoch %d.", self.key_metric_name, value, self.best_epoch)
        if not self.enabled:
            return None
        return atomic_torch_save(_state_dict(self.save_dict[self.network_key]), self.save_dir / self.best_filename)
