"""VQ-VAE-2 training-step benchmark: forward + backward + Adam step, images/s and peak memory.

Compares the default 256×256 :class:`monai_vqvae2.networks.VQVAE2` with ``monai.networks.nets.VQVAE`` configured to the
same bottom latent size (hidden width 128, 2 residual blocks of 32 channels, two stride-2 4×4 stages, 512×64 codes),
in the same run, each model in its own subprocess so peak resident memory is measured per model.

Usage::

    python benchmarks/train_step.py --batch-sizes 8 16 --steps 5 --output benchmarks/results/train_step.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

from monai_vqvae2.io import atomic_write_json


def build(model: str) -> torch.nn.Module:
    if model == "monai_vqvae2.VQVAE2":
        from monai_vqvae2.networks import VQVAE2

        return VQVAE2(spatial_dims=2, in_channels=1, out_channels=1)
    if model == "monai.VQVAE":
        from monai.networks.nets import VQVAE

        return VQVAE(
            spatial_dims=2,
            in_channels=1,
            out_channels=1,
            channels=(128, 128),
            num_res_layers=2,
            num_res_channels=(32, 32),
            downsample_parameters=((2, 4, 1, 1), (2, 4, 1, 1)),
            upsample_parameters=((2, 4, 1, 1, 0), (2, 4, 1, 1, 0)),
            num_embeddings=512,
            embedding_dim=64,
        )
    raise ValueError(f"Unknown model {model!r}.")


def measure(model: str, batch_size: int, steps: int, warmup: int, size: int, device: str, bf16: bool) -> dict:
    """Time ``steps`` training steps after ``warmup`` steps; runs inside the worker subprocess."""
    torch.manual_seed(0)
    device = torch.device(device)
    network = build(model).to(device).train()
    optimizer = torch.optim.Adam(network.parameters(), lr=3e-4)
    images = torch.rand(batch_size, 1, size, size, device=device)
    baseline_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            reconstruction, quantization_loss = network(images)
            loss = torch.nn.functional.mse_loss(reconstruction.float(), images) + quantization_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def synchronise() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    synchronise()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronise()
    seconds = (time.perf_counter() - start) / steps
    memory = {"peak_gpu_memory_mib": torch.cuda.max_memory_allocated() / 2**20} if device.type == "cuda" else {}
    return {
        "device": str(device),
        "bf16_autocast": bf16,
        **memory,
        "model": model,
        "batch_size": batch_size,
        "image_size": size,
        "parameters": sum(p.numel() for p in network.parameters() if p.requires_grad),
        "seconds_per_step": seconds,
        "images_per_second": batch_size / seconds,
        "peak_rss_increase_mib": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline_kib) / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[8])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--models", nargs="+", default=["monai_vqvae2.VQVAE2", "monai.VQVAE"])
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/train_step.json"))
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast (for GPUs)")
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        row = measure(args.worker[0], int(args.worker[1]), args.steps, args.warmup, args.size, args.device, args.bf16)
        print(json.dumps(row))
        return

    rows = []
    for batch_size in args.batch_sizes:
        for model in args.models:
            command = [sys.executable, __file__, "--worker", model, str(batch_size)]
            command += ["--steps", str(args.steps), "--warmup", str(args.warmup), "--size", str(args.size)]
            command += ["--device", args.device] + ["--bf16"] * args.bf16
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(output.strip().splitlines()[-1]))
        ours, reference = rows[-len(args.models)], rows[-1]
        ours["speedup_vs_last_model"] = ours["images_per_second"] / reference["images_per_second"]

    header = f"{'model':<22}{'batch':>6}{'params':>11}{'s/step':>9}{'img/s':>8}{'peak MiB':>10}"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['model']:<22}{row['batch_size']:>6}{row['parameters']:>11,}{row['seconds_per_step']:>9.3f}"
            f"{row['images_per_second']:>8.2f}{row['peak_rss_increase_mib']:>10.0f}"
        )
    for row in rows:
        if "speedup_vs_last_model" in row:
            print(f"batch {row['batch_size']}: VQVAE2 / MONAI VQVAE images/s = {row['speedup_vs_last_model']:.2f}x")

    report = {
        "benchmark": "train_step",
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__},
        "threads": torch.get_num_threads(),
        "rows": rows,
    }
    atomic_write_json(args.output, report)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
