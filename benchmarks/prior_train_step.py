"""PixelCNN prior training-step benchmark: forward + backward + Adam step, code tokens/s.

Times one training step (cross-entropy over every position, as the prior stage trains) of the top prior (a ``T×T``
map with causal attention every 4 layers, conditioned on the slice position) and of the bottom prior (a ``2T×2T`` map
conditioned on the top codes and the slice position), with the bundle's default prior sizes, in several execution
variants measured in the same run so their ratios can be compared on a noisy machine:

- ``eager``: the default;
- ``channels_last``: network and activations in ``torch.channels_last`` memory format;
- ``compile``: ``torch.compile`` of the network (its compilation time is reported separately, not in the step time);
- ``bf16``: ``torch.autocast`` to bfloat16 (meant for GPUs; on CPUs without bf16 units it is usually slower).

Usage::

    python benchmarks/prior_train_step.py --top-size 32 --batch-size 16 --variants eager channels_last compile
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from monai_vqvae2.io import atomic_write_json
from monai_vqvae2.networks import PixelCNNPrior

VARIANTS = ("eager", "channels_last", "compile", "bf16")


def build(level: str, args: argparse.Namespace) -> PixelCNNPrior:
    common = {
        "spatial_dims": 2,
        "num_embeddings": args.num_embeddings,
        "channels": args.channels,
        "num_layers": args.num_layers,
        "kernel_size": args.kernel_size,
        "num_heads": 4,
        "dropout": args.dropout,
        "num_scalars": 1,
    }
    if level == "top":
        return PixelCNNPrior(**common, attention_every=args.attention_every)
    return PixelCNNPrior(**common, condition_num_embeddings=args.num_embeddings, condition_upsample=2)


def measure(level: str, variant: str, args: argparse.Namespace, device: torch.device) -> dict:
    torch.manual_seed(0)
    size = args.top_size if level == "top" else 2 * args.top_size
    prior = build(level, args).to(device).train()
    generator = torch.Generator().manual_seed(0)
    indices = torch.randint(args.num_embeddings, (args.batch_size, size, size), generator=generator).to(device)
    condition = None
    if level == "bottom":
        condition = torch.randint(args.num_embeddings, (args.batch_size, args.top_size, args.top_size)).to(device)
    scalars = torch.rand(args.batch_size, 1, generator=generator).to(device)
    if variant == "channels_last":
        prior = prior.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(prior.parameters(), lr=3e-4)
    network = torch.compile(prior) if variant == "compile" else prior
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=variant == "bf16")

    def step() -> float:
        with autocast:
            logits = network(indices, condition, scalars=scalars)
            loss = F.cross_entropy(logits.float(), indices)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    def synchronise() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    start = time.perf_counter()
    step()  # warm-up (and compilation)
    synchronise()
    first_step_s = time.perf_counter() - start
    for _ in range(args.warmup - 1):
        step()
    synchronise()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    synchronise()
    seconds = (time.perf_counter() - start) / args.steps
    tokens = args.batch_size * size * size
    return {
        "level": level,
        "variant": variant,
        "map": f"{size}x{size}",
        "batch_size": args.batch_size,
        "parameters": sum(p.numel() for p in prior.parameters()),
        "seconds_per_step": seconds,
        "tokens_per_second": tokens / seconds,
        "first_step_s": first_step_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=128)
    parser.add_argument("--num-layers", type=int, default=12)
    parser.add_argument("--kernel-size", type=int, default=5)
    parser.add_argument("--num-embeddings", type=int, default=512)
    parser.add_argument("--attention-every", type=int, default=4)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--top-size", type=int, default=32, help="top map side; the bottom map is twice as large")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--levels", nargs="+", choices=["top", "bottom"], default=["top", "bottom"])
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=["eager", "channels_last"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).resolve().parent / "results" / "prior_train_step.json"
    )
    args = parser.parse_args()
    device = torch.device(args.device)

    rows = []
    for level in args.levels:
        for variant in args.variants:
            rows.append(measure(level, variant, args, device))
            eager = next((row for row in rows if row["level"] == level and row["variant"] == "eager"), None)
            if eager is not None:
                rows[-1]["speedup_vs_eager"] = rows[-1]["tokens_per_second"] / eager["tokens_per_second"]

    print(
        f"{device}, batch {args.batch_size}, {args.channels} channels, {args.num_layers} layers, {torch.get_num_threads()} threads"
    )
    header = f"{'level':<8}{'variant':<15}{'map':>7}{'params':>11}{'s/step':>9}{'tokens/s':>11}{'vs eager':>10}{'1st step s':>12}"
    print(header)
    print("-" * len(header))
    for row in rows:
        ratio = row.get("speedup_vs_eager")
        print(
            f"{row['level']:<8}{row['variant']:<15}{row['map']:>7}{row['parameters']:>11,}{row['seconds_per_step']:>9.3f}"
            f"{row['tokens_per_second']:>11,.0f}{(f'{ratio:.2f}x' if ratio else '-'):>10}{row['first_step_s']:>12.1f}"
        )
    report = {
        "benchmark": "prior_train_step",
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        },
        "threads": torch.get_num_threads(),
        "settings": {key: value for key, value in vars(args).items() if key != "output"},
        "rows": rows,
    }
    atomic_write_json(args.output, report)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
