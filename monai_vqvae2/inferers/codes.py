"""Code extraction: one pass of a trained VQ-VAE-2 over a slice dataset, written as the code file its priors train on.

The file layout and its reader, :class:`~monai_vqvae2.data.CodeDataset`, are in :mod:`monai_vqvae2.data.codes`.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from monai.data import DataLoader
from torch.utils.data import Dataset

from monai_vqvae2.data.codes import CODE_FILE_FORMAT, read_code_settings
from monai_vqvae2.io import atomic_write
from monai_vqvae2.networks import unwrap
from monai_vqvae2.provenance import file_digest

__all__ = ["extract_codes"]

logger = logging.getLogger(__name__)


def extract_codes(
    network: torch.nn.Module,
    dataset: Dataset,
    output_path: str | os.PathLike,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    checkpoint: str | os.PathLike | None = None,
    num_workers: int = 0,
) -> Path:
    """Encode every slice (or whole volume) of ``dataset`` to code indices and store them at ``output_path``
    (``.npz``).

    The network runs in evaluation mode with ``index_quantize``, which never changes the codebooks. The write is
    atomic; when ``output_path`` already holds codes of the same checkpoint (by SHA-256), the same number of slices
    and (for a :class:`~monai_vqvae2.data.SliceDataset` or a volume dataset) the same preprocessing and grid, nothing
    is recomputed, so a rerun of an interrupted pipeline continues where it stopped.

    Under ``torch.distributed`` (e.g. ``torchrun``) the call is collective: every rank must make it. Rank 0 alone
    encodes and writes the file while the other ranks wait for it, then every rank returns the path, so all of them
    read the one file rank 0 wrote. An error on rank 0 is raised on every rank (no rank is left waiting). The wait is
    bounded by the process group's timeout (``init_process_group(timeout=...)``).

    Args:
        network: a ``VQVAE2`` (or a view with a ``.network`` attribute holding one).
        dataset: slices as dicts with ``image`` ``(1, H, W)`` and, when available, ``subject``, ``source``,
            ``slice_index``, ``slice_position``; or whole volumes ``(1, X, Y, Z)``
            (:func:`~monai_vqvae2.data.make_volume_dataset`, whose grid is recorded too).
        output_path: destination ``.npz`` file.
        batch_size: slices per forward pass.
        device: device of the forward passes.
        checkpoint: the checkpoint ``network`` was loaded from, recorded (with its SHA-256) in the file.
        num_workers: ``DataLoader`` workers.

    Returns:
        ``output_path``.

    Raises:
        RuntimeError: on a rank other than 0, when rank 0 failed to write the codes.
    """
    arguments = (network, dataset, output_path, batch_size, device, checkpoint, num_workers)
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return _extract_codes(*arguments)
    outcome: list[str | None] = [None]  # rank 0's error, if any; the broadcast is the other ranks' wait
    if dist.get_rank() == 0:
        try:
            _extract_codes(*arguments)
        except Exception as error:
            dist.broadcast_object_list([f"{type(error).__name__}: {error}"], src=0)
            raise
    dist.broadcast_object_list(outcome, src=0)
    if outcome[0] is not None:
        raise RuntimeError(f"Rank 0 failed to extract the codes to {str(output_path)!r}: {outcome[0]}")
    return Path(output_path)


@torch.no_grad()
def _extract_codes(
    network: torch.nn.Module,
    dataset: Dataset,
    output_path: str | os.PathLike,
    batch_size: int,
    device: str | torch.device,
    checkpoint: str | os.PathLike | None,
    num_workers: int,
) -> Path:
    vqvae = unwrap(network)
    output_path = Path(output_path)
    settings = {
        "format": CODE_FILE_FORMAT,
        "num_slices": len(dataset),
        "num_embeddings": list(vqvae.num_embeddings),
        "checkpoint": str(checkpoint) if checkpoint is not None else None,
        "checkpoint_sha256": file_digest(checkpoint) if checkpoint is not None else None,
    }
    preprocessing = getattr(dataset, "preprocessing", None)  # a SliceDataset knows how its slices were made
    if preprocessing is not None:
        settings["preprocessing"] = preprocessing.to_dict()
    grid = getattr(dataset, "volume_grid", None)  # and a volume dataset its grid
    if grid is not None:
        settings["volume_grid"] = grid
    if checkpoint is not None and output_path.is_file() and read_code_settings(output_path) == settings:
        logger.info("Reusing the codes in %s (same checkpoint, same %d slices).", output_path, len(dataset))
        return output_path
    was_training = vqvae.training
    vqvae.eval().to(device)
    levels: list[list[np.ndarray]] = [[] for _ in range(vqvae.num_levels)]
    records: dict[str, list] = {"subject": [], "source": [], "slice_index": [], "slice_position": []}
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    for batch in loader:
        indices = vqvae.index_quantize(torch.as_tensor(batch["image"]).to(device))
        for store, level_indices in zip(levels, indices):
            store.append(level_indices.cpu().numpy().astype(np.uint16))
        count = len(indices[0])
        records["subject"] += [str(s) for s in batch.get("subject", [""] * count)]
        records["source"] += [str(s) for s in batch.get("source", [""] * count)]
        records["slice_index"] += [int(i) for i in batch.get("slice_index", [-1] * count)]
        records["slice_position"] += [float(p) for p in batch.get("slice_position", [float("nan")] * count)]
    vqvae.train(was_training)
    arrays = {f"level{level}": np.concatenate(store) for level, store in enumerate(levels)}
    arrays.update(
        subject=np.array(records["subject"], dtype=str),
        source=np.array(records["source"], dtype=str),
        slice_index=np.array(records["slice_index"], dtype=np.int32),
        slice_position=np.array(records["slice_position"], dtype=np.float32),
        settings=np.array(json.dumps(settings)),
    )

    def write(temporary: Path) -> None:
        with open(temporary, "wb") as stream:
            np.savez_compressed(stream, **arrays)

    atomic_write(output_path, write)
    logger.info("Wrote the codes of %d slices to %s.", len(dataset), output_path)
    return output_path
