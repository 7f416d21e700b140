"""Prior sampling benchmark: naive (one full forward per position) vs fast (cached incremental) sampling.

Times, per level, on the current device: one full prior forward pass, naive sampling and fast sampling of one code
map, with realistic prior sizes (default: 12 gated layers of 128 channels, kernel 5; a 32×32 top map with attention
every 4 layers and a 64×64 bottom map conditioned on 32×32 top codes). Naive sampling is measured on the first
``--naive-positions`` positions and extrapolated linearly to the whole map (every naive step costs one full forward,
whatever the position); the output says so. The fast path samples the whole map. Both run the prior in ``--dtype``
(float64 is what :class:`monai_vqvae2.inferers.HierarchicalSampler` uses by default, for exact fast == naive codes);
the codes of the measured prefix are checked to be identical.

Usage::

    python benchmarks/sampling.py --channels 128 --num-layers 12 --naive-positions 8 --threads 1

On a small, busy CPU, many threads make the thousands of tiny per-position operations of the fast path wait on each
other (measured: 10× slower with 2 threads than with 1 on a loaded 2-core machine); ``--threads`` sets both methods.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from monai_vqvae2.inferers.sampler import HierarchicalSampler, _choose
from monai_vqvae2.io import atomic_write_json
from monai_vqvae2.networks import PixelCNNPrior


def timed(function, repeats: int = 1) -> tuple[float, object]:
    result = None
    start = time.perf_counter()
    for _ in range(repeats):
        result = function()
    return (time.perf_counter() - start) / repeats, result


@torch.no_grad()
def measure_level(name: str, prior: PixelCNNPrior, size: int, condition: torch.Tensor | None, args) -> dict:
    batch = args.batch_size
    prior = prior.to(dtype=args.dtype).eval()
    generator = torch.Generator().manual_seed(0)
    num_positions = size * size
    uniforms = torch.rand((batch, num_positions), generator=generator, dtype=torch.float64)
    indices = torch.randint(prior.num_embeddings, (batch, size, size), generator=generator)

    prior(indices, condition)  # warm-up
    forward_s, _ = timed(lambda: prior(indices, condition), args.forward_repeats)

    prefix = min(args.naive_positions, num_positions)

    def naive_prefix() -> torch.Tensor:
        codes = torch.zeros((batch, size, size), dtype=torch.long)
        for position in range(prefix):
            row, column = divmod(position, size)
            logits = prior(codes, condition)[:, :, row, column]
            codes[:, row, column] = _choose(logits, uniforms[:, position], 1.0, None)
        return codes

    naive_prefix_s, naive_codes = timed(naive_prefix)
    fast_s, fast_codes = timed(
        lambda: HierarchicalSampler._sample_level(
            prior, (size, size), uniforms, condition, None, None, temperature=1.0, top_k=None, method="fast"
        )
    )
    same = torch.equal(naive_codes.view(batch, -1)[:, :prefix], fast_codes.view(batch, -1)[:, :prefix])
    naive_s = naive_prefix_s / prefix * num_positions
    return {
        "level": name,
        "map": f"{size}x{size}",
        "channels": prior.channels,
        "num_layers": prior.num_layers,
        "kernel_size": prior.kernel_size,
        "attention_every": prior.attention_every,
        "conditioned": condition is not None,
        "parameters": sum(p.numel() for p in prior.parameters()),
        "full_forward_s": forward_s,
        "naive_measured_positions": prefix,
        "naive_s_extrapolated": naive_s,
        "fast_s": fast_s,
        "speedup": naive_s / fast_s,
        "fast_over_full_forward": fast_s / forward_s,
        "prefix_codes_identical": same,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=128)
    parser.add_argument("--num-layers", type=int, default=12)
    parser.add_argument("--kernel-size", type=int, default=5)
    parser.add_argument("--num-embeddings", type=int, default=512)
    parser.add_argument("--top-size", type=int, default=32)
    parser.add_argument("--bottom-size", type=int, default=64)
    parser.add_argument("--attention-every", type=int, default=4, help="top prior only")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--naive-positions", type=int, default=8, help="naive positions timed, then extrapolated")
    parser.add_argument("--forward-repeats", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=0, help="torch intra-op threads for both methods; 0 keeps torch's default"
    )
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    parser.add_argument("--levels", nargs="+", choices=["top", "bottom"], default=["top", "bottom"])
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parent / "results" / "sampling.json")
    args = parser.parse_args()
    args.dtype = getattr(torch, args.dtype)
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    common = {
        "spatial_dims": 2,
        "num_embeddings": args.num_embeddings,
        "channels": args.channels,
        "num_layers": args.num_layers,
        "kernel_size": args.kernel_size,
    }
    rows = []
    if "top" in args.levels:
        top = PixelCNNPrior(**common, attention_every=args.attention_every, num_heads=4)
        rows.append(measure_level("top", top, args.top_size, None, args))
    if "bottom" in args.levels:
        factor = args.bottom_size // args.top_size
        bottom = PixelCNNPrior(**common, condition_num_embeddings=args.num_embeddings, condition_upsample=factor)
        condition = torch.randint(args.num_embeddings, (args.batch_size, args.top_size, args.top_size))
        rows.append(measure_level("bottom", bottom, args.bottom_size, condition, args))

    print(f"batch {args.batch_size}, {args.dtype}, {torch.get_num_threads()} threads")
    header = (
        f"{'level':<7}{'map':>6}{'C':>5}{'L':>4}{'attn':>5}{'forward s':>11}{'naive s*':>11}{'fast s':>9}"
        f"{'speed-up':>10}{'fast/fwd':>10}{'same':>6}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['level']:<7}{row['map']:>6}{row['channels']:>5}{row['num_layers']:>4}{row['attention_every']:>5}"
            f"{row['full_forward_s']:>11.3f}{row['naive_s_extrapolated']:>11.1f}{row['fast_s']:>9.2f}"
            f"{row['speedup']:>9.0f}x{row['fast_over_full_forward']:>10.1f}{row['prefix_codes_identical']!s:>6}"
        )
    print(
        f"* naive = time of the first {args.naive_positions} positions (one full forward each), extrapolated linearly "
        "to the whole map; 'same' = fast and naive codes identical on that prefix."
    )
    hierarchy = None
    if len(rows) == 2:
        naive_s = sum(row["naive_s_extrapolated"] for row in rows)
        fast_s = sum(row["fast_s"] for row in rows)
        hierarchy = {
            "maps": " + ".join(row["map"] for row in rows),
            "naive_s_extrapolated": naive_s,
            "fast_s": fast_s,
            "speedup": naive_s / fast_s,
            "naive_slices_per_second": args.batch_size / naive_s,
            "fast_slices_per_second": args.batch_size / fast_s,
        }
        print(
            f"hierarchy {hierarchy['maps']} (codes only, decoder excluded): naive {naive_s:.0f} s, fast {fast_s:.1f} s "
            f"per batch of {args.batch_size} -> {hierarchy['speedup']:.0f}x; "
            f"{hierarchy['naive_slices_per_second']:.2e} vs {hierarchy['fast_slices_per_second']:.3f} slices/s"
        )

    report = {
        "benchmark": "sampling",
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__},
        "threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "dtype": str(args.dtype),
        "naive_is_extrapolated_from_positions": args.naive_positions,
        "rows": rows,
        "hierarchy": hierarchy,
    }
    atomic_write_json(args.output, report)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
