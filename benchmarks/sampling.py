"""Prior sampling benchmark: naive (one full forward per position) vs fast (cached incremental) sampling.

Times, per level, on the current device: one full prior forward pass, naive sampling and fast sampling of one code
map, with realistic prior sizes (default: 12 gated layers of 128 channels, kernel 5; a 32×32 top map with attention
every 4 layers and a 64×64 bottom map conditioned on 32×32 top codes). Naive sampling is measured on the first
``--naive-positions`` positions and extrapolated linearly to the whole map (every naive step costs one full forward,
whatever the position); the output says so. The fast path samples the whole map. Both run the prior in ``--dtype``
(float64 is what :class:`monai_vqvae2.inferers.HierarchicalSampler` uses by default, for exact fast == naive codes);
the codes of the measured prefix are checked to be identical.

With ``--spatial-dims 3`` the priors model code volumes (``PixelCNNPrior(spatial_dims=3)``, raster order through the
slices): ``--top-size`` and ``--bottom-size`` are then cube edges (e.g. 8 and 16 for a 64³ volume), the bottom prior
is conditioned on a random top code volume, and the JSON goes to ``results/sampling_3d.json`` unless ``--output``.

Usage::

    python benchmarks/sampling.py --channels 128 --num-layers 12 --naive-positions 8 --threads 1
    python benchmarks/sampling.py --spatial-dims 3 --channels 32 --num-layers 6 --top-size 8 --bottom-size 16 \\
        --threads 1

On a small, busy CPU, many threads make the thousands of tiny per-position operations of the fast path wait on each
other (measured: 10× slower with 2 threads than with 1 on a loaded 2-core machine); ``--threads`` sets both methods.
"""

from __future__ import annotations

import argparse
import math
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
def measure_level(
    name: str, prior: PixelCNNPrior, shape: tuple[int, ...], condition: torch.Tensor | None, args
) -> dict:
    batch = args.batch_size
    prior = prior.to(dtype=args.dtype).eval()
    generator = torch.Generator().manual_seed(0)
    num_positions = math.prod(shape)
    uniforms = torch.rand((batch, num_positions), generator=generator, dtype=torch.float64)
    indices = torch.randint(prior.num_embeddings, (batch, *shape), generator=generator)

    prior(indices, condition)  # warm-up
    forward_s, _ = timed(lambda: prior(indices, condition), args.forward_repeats)

    prefix = min(args.naive_positions, num_positions)

    def naive_prefix() -> torch.Tensor:
        codes = torch.zeros((batch, *shape), dtype=torch.long)
        flat = codes.view(batch, -1)
        for position in range(prefix):
            logits = prior(codes, condition).flatten(2)[:, :, position]
            flat[:, position] = _choose(logits, uniforms[:, position], 1.0, None)
        return codes

    naive_prefix_s, naive_codes = timed(naive_prefix)
    fast_s, fast_codes = timed(
        lambda: HierarchicalSampler._sample_level(
            prior, shape, uniforms, condition, None, None, temperature=1.0, top_k=None, method="fast"
        )
    )
    same = torch.equal(naive_codes.view(batch, -1)[:, :prefix], fast_codes.view(batch, -1)[:, :prefix])
    naive_s = naive_prefix_s / prefix * num_positions
    return {
        "level": name,
        "map": "x".join(str(s) for s in shape),
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
    parser.add_argument("--spatial-dims", type=int, choices=[2, 3], default=2, help="2: code maps, 3: code volumes")
    parser.add_argument("--channels", type=int, default=128)
    parser.add_argument("--num-layers", type=int, default=12)
    parser.add_argument("--kernel-size", type=int, default=5)
    parser.add_argument("--num-embeddings", type=int, default=512)
    parser.add_argument("--top-size", type=int, default=32, help="edge of the top code map (or cube)")
    parser.add_argument("--bottom-size", type=int, default=64, help="edge of the bottom code map (or cube)")
    parser.add_argument("--attention-every", type=int, default=4, help="top prior only")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--naive-positions", type=int, default=8, help="naive positions timed, then extrapolated")
    parser.add_argument("--forward-repeats", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=0, help="torch intra-op threads for both methods; 0 keeps torch's default"
    )
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    parser.add_argument("--levels", nargs="+", choices=["top", "bottom"], default=["top", "bottom"])
    parser.add_argument("--output", type=Path, default=None, help="default: results/sampling.json (sampling_3d.json)")
    args = parser.parse_args()
    if args.output is None:
        name = "sampling.json" if args.spatial_dims == 2 else f"sampling_{args.spatial_dims}d.json"
        args.output = Path(__file__).resolve().parent / "results" / name
    args.dtype = getattr(torch, args.dtype)
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    common = {
        "spatial_dims": args.spatial_dims,
        "num_embeddings": args.num_embeddings,
        "channels": args.channels,
        "num_layers": args.num_layers,
        "kernel_size": args.kernel_size,
    }
    rows = []
    if "top" in args.levels:
        top = PixelCNNPrior(**common, attention_every=args.attention_every, num_heads=4)
        rows.append(measure_level("top", top, (args.top_size,) * args.spatial_dims, None, args))
    if "bottom" in args.levels:
        factor = args.bottom_size // args.top_size
        bottom = PixelCNNPrior(**common, condition_num_embeddings=args.num_embeddings, condition_upsample=factor)
        top_shape = (args.top_size,) * args.spatial_dims
        condition = torch.randint(args.num_embeddings, (args.batch_size, *top_shape))
        rows.append(measure_level("bottom", bottom, (args.bottom_size,) * args.spatial_dims, condition, args))

    print(f"batch {args.batch_size}, {args.dtype}, {torch.get_num_threads()} threads")
    map_width = max(6, 1 + max((len(row["map"]) for row in rows), default=0))
    header = (
        f"{'level':<7}{'map':>{map_width}}{'C':>5}{'L':>4}{'attn':>5}{'forward s':>11}{'naive s*':>11}{'fast s':>9}"
        f"{'speed-up':>10}{'fast/fwd':>10}{'same':>6}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['level']:<7}{row['map']:>{map_width}}{row['channels']:>5}{row['num_layers']:>4}"
            f"{row['attention_every']:>5}"
            f"{row['full_forward_s']:>11.3f}{row['naive_s_extrapolated']:>11.1f}{row['fast_s']:>9.2f}"
            f"{row['speedup']:>9.0f}x{row['fast_over_full_forward']:>10.1f}{row['prefix_codes_identical']!s:>6}"
        )
    print(
        f"* naive = time of the first {args.naive_positions} positions (one full forward each), extrapolated linearly "
        "to the whole map; 'same' = fast and naive codes identical on that prefix."
    )
    hierarchy = None
    unit = "slices" if args.spatial_dims == 2 else "volumes"
    if len(rows) == 2:
        naive_s = sum(row["naive_s_extrapolated"] for row in rows)
        fast_s = sum(row["fast_s"] for row in rows)
        hierarchy = {
            "maps": " + ".join(row["map"] for row in rows),
            "naive_s_extrapolated": naive_s,
            "fast_s": fast_s,
            "speedup": naive_s / fast_s,
            f"naive_{unit}_per_second": args.batch_size / naive_s,
            f"fast_{unit}_per_second": args.batch_size / fast_s,
        }
        print(
            f"hierarchy {hierarchy['maps']} (codes only, decoder excluded): naive {naive_s:.0f} s, fast {fast_s:.1f} s "
            f"per batch of {args.batch_size} -> {hierarchy['speedup']:.0f}x; "
            f"{hierarchy[f'naive_{unit}_per_second']:.2e} vs {hierarchy[f'fast_{unit}_per_second']:.3f} {unit}/s"
        )

    report = {
        "benchmark": "sampling",
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch": torch.__version__},
        "threads": torch.get_num_threads(),
        "spatial_dims": args.spatial_dims,
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
