"""Ignite/MONAI engines and handlers for training and evaluating the VQ-VAE-2."""

from __future__ import annotations

from monai_vqvae2.engines.autoencoder import (
    QUANTIZATION_LOSS,
    RECONSTRUCTION_LOSS,
    ReconstructionBatch,
    VQVAE2Evaluator,
    VQVAE2Trainer,
    loss_terms,
    unpack_network_output,
)
from monai_vqvae2.engines.checkpoint import CheckpointHandler, latest_checkpoint
from monai_vqvae2.engines.handlers import (
    CodebookUsageHandler,
    EpochValidationHandler,
    HierarchyProbeHandler,
    LabelDiceHandler,
    MetricsJSONWriter,
    NonFiniteLossHandler,
    ReconstructionFigureHandler,
)
from monai_vqvae2.engines.prior import PriorBatch
from monai_vqvae2.engines.provenance import package_versions, record_run
from monai_vqvae2.networks import level_names

__all__ = [
    "QUANTIZATION_LOSS",
    "RECONSTRUCTION_LOSS",
    "CheckpointHandler",
    "CodebookUsageHandler",
    "EpochValidationHandler",
    "HierarchyProbeHandler",
    "LabelDiceHandler",
    "MetricsJSONWriter",
    "NonFiniteLossHandler",
    "PriorBatch",
    "ReconstructionBatch",
    "ReconstructionFigureHandler",
    "VQVAE2Evaluator",
    "VQVAE2Trainer",
    "latest_checkpoint",
    "level_names",
    "loss_terms",
    "package_versions",
    "record_run",
    "unpack_network_output",
]
