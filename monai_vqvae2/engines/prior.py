"""Prior training on MONAI engines: code maps in, logits over the codebook out, cross-entropy."""

from __future__ import annotations

from typing import Any

import torch
from monai.engines.utils import PrepareBatch

__all__ = ["PriorBatch"]


class PriorBatch(PrepareBatch):
    """``prepare_batch`` for ``SupervisedTrainer``/``SupervisedEvaluator`` training a
    :class:`~monai_vqvae2.networks.PixelCNNPrior` on batches of :class:`~monai_vqvae2.data.CodeDataset`.

    The index map is both the network input (the prior masks it causally) and the target; the coarser level's map and
    the slice position are passed to the network as the ``condition`` and ``scalars`` keyword arguments, so MONAI's
    stock iteration (``inferer(inputs, network, condition=..., scalars=...)``, then ``loss_function(logits,
    targets)``) trains the prior with ``torch.nn.CrossEntropyLoss``.

    Args:
        use_condition: pass ``batch["condition"]`` (the coarser level's codes) to the prior.
        use_slice_position: pass ``batch["slice_position"]`` as the prior's global scalars.
    """

    def __init__(self, use_condition: bool = False, use_slice_position: bool = False) -> None:
        self.use_condition = use_condition
        self.use_slice_position = use_slice_position

    def __call__(
        self,
        batchdata: dict[str, Any],
        device: str | torch.device | None = None,
        non_blocking: bool = False,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor, tuple, dict[str, torch.Tensor]]:
        required = ["indices"] + ["condition"] * self.use_condition + ["slice_position"] * self.use_slice_position
        missing = [key for key in required if key not in batchdata]
        if missing:
            raise ValueError(f"Prior batches need the keys {required}; missing {missing} in {sorted(batchdata)}.")
        indices = batchdata["indices"].to(device=device, non_blocking=non_blocking, **kwargs)
        network_kwargs = {}
        if self.use_condition:
            network_kwargs["condition"] = batchdata["condition"].to(device=device, non_blocking=non_blocking, **kwargs)
        if self.use_slice_position:
            positions = batchdata["slice_position"].to(device=device, non_blocking=non_blocking, **kwargs)
            network_kwargs["scalars"] = positions.float().reshape(len(indices), -1)
        return indices, indices, (), network_kwargs
