"""Run by ``torchrun --nproc_per_node=2`` from test_quantizer.py: trains a quantizer on rank-specific data."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist

from monai_vqvae2.networks import RestartEMAQuantizer


def main(output_dir: str) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    torch.manual_seed(100 + rank)  # different data and k-means draws on each rank
    quantizer = RestartEMAQuantizer(2, num_embeddings=32, embedding_dim=4, restart_interval=4)
    for step in range(16):
        inputs = torch.randn(4, 4, 8, 8) * (1 + rank) * (0.2 if step else 1.0) + step  # narrowing: codes die
        quantizer(inputs)
    state = {k: v for k, v in quantizer.state_dict().items()}
    state["num_restarted"] = quantizer.num_restarted
    torch.save(state, Path(output_dir) / f"rank{rank}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
