"""Data-pipeline throughput: slices/s for cold loading (decode + transforms) and cached epochs.

For each cache mode of :func:`monai_vqvae2.data.make_slice_dataset` this measures

- ``cold``: building the dataset (every volume decoded and transformed once, slices cached) plus the first epoch
  through a shuffling ``monai.data.DataLoader``: what the first epoch of a training run costs;
- ``cached``: the median of the later epochs (volumes are not decoded again);
- ``restart`` (disk only): a new process-like rebuild on the same cache folder (read from ``index.json``, nothing
  decoded) plus one epoch;
- ``none``: random access without a cache (every access decodes its volume again), on a few slices only.

Runs on the embedded demo by default (built once in the demo cache folder) or on any ``--dataset-dir``.
Prints a table and writes JSON (default ``benchmarks/results/data_pipeline.json`` beside this script).

Example::

    python benchmarks/data_pipeline.py --image-size 128 --epochs 4
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import monai
import torch
from monai.data import DataLoader

from monai_vqvae2.apps import default_demo_dir, discover_dataset, prepare_demo_dataset
from monai_vqvae2.data import make_slice_dataset
from monai_vqvae2.io import atomic_write_json

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _epoch(dataset: Any, batch_size: int, num_workers: int, seed: int) -> float:
    """Seconds for one shuffled pass over ``dataset`` (touching every batch)."""
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(seed),
    )
    start = time.perf_counter()
    total = 0.0
    for batch in loader:
        total += float(batch["image"].sum())  # make sure the data is really materialised
    return time.perf_counter() - start


def _measure(items: list[dict], cache: str, args: argparse.Namespace, cache_dir: Path | None) -> dict[str, Any]:
    options = {
        "image_size": args.image_size,
        "min_brain_fraction": args.min_brain_fraction,
        "num_workers": args.num_workers,
    }
    start = time.perf_counter()
    dataset = make_slice_dataset(items, cache=cache, cache_dir=cache_dir, **options)
    build = time.perf_counter() - start
    count = len(dataset)
    epochs = [_epoch(dataset, args.batch_size, args.loader_workers, seed) for seed in range(args.epochs)]
    cached = statistics.median(epochs[1:]) if len(epochs) > 1 else float("nan")
    row: dict[str, Any] = {
        "cache": cache,
        "slices": count,
        "volumes": len(items),
        "build_s": build,
        "epoch_s": epochs,
        "cold_slices_per_s": count / (build + epochs[0]),
        "decode_volumes_per_s": len(items) / build,
        "cached_slices_per_s": count / cached,
    }
    if cache == "disk":
        start = time.perf_counter()
        again = make_slice_dataset(items, cache=cache, cache_dir=cache_dir, **options)
        rebuild = time.perf_counter() - start
        epoch = _epoch(again, args.batch_size, args.loader_workers, 0)
        row.update(restart_build_s=rebuild, restart_slices_per_s=count / (rebuild + epoch))
    return row


def _measure_uncached(items: list[dict], args: argparse.Namespace, num_slices: int) -> dict[str, Any]:
    dataset = make_slice_dataset(
        items, cache=None, image_size=args.image_size, min_brain_fraction=args.min_brain_fraction
    )
    picks = random.Random(0).sample(range(len(dataset)), min(num_slices, len(dataset)))
    start = time.perf_counter()
    for index in picks:
        dataset[index]
    elapsed = time.perf_counter() - start
    return {
        "cache": "none",
        "slices": len(picks),
        "random_access_s": elapsed,
        "random_access_slices_per_s": len(picks) / elapsed,
    }


def _training_consumption(args: argparse.Namespace) -> dict[str, Any]:
    """Slices/s that training the bundle's default VQ-VAE-2 consumes at ``--image-size`` (forward, backward, Adam)."""
    from monai_vqvae2.networks import VQVAE2

    torch.manual_seed(0)
    network = VQVAE2(spatial_dims=2, in_channels=1, out_channels=1).train()
    optimizer = torch.optim.Adam(network.parameters(), lr=3e-4)
    images = torch.rand(args.batch_size, 1, args.image_size, args.image_size)

    def step() -> None:
        reconstruction, quantization_loss = network(images)
        loss = torch.nn.functional.mse_loss(reconstruction, images) + quantization_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up (and the codebooks' k-means initialisation)
    start = time.perf_counter()
    for _ in range(args.train_steps):
        step()
    seconds = (time.perf_counter() - start) / args.train_steps
    return {"seconds_per_step": seconds, "slices_per_s": args.batch_size / seconds}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset-dir", default=None, help="dataset folder (default: the embedded demo)")
    parser.add_argument("--kind", default="auto", help="dataset kind for --dataset-dir (default: auto)")
    parser.add_argument("--demo-dir", default=None, help="where to build the demo (default: the demo cache folder)")
    parser.add_argument("--demo-subjects", type=int, default=8)
    parser.add_argument("--max-volumes", type=int, default=None, help="use only the first N volumes")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--min-brain-fraction", type=float, default=0.15)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=4, help="epochs per cache mode (first = cold)")
    parser.add_argument("--num-workers", type=int, default=0, help="processes that decode volumes once")
    parser.add_argument("--loader-workers", type=int, default=0, help="DataLoader workers for the epochs")
    parser.add_argument("--uncached-slices", type=int, default=8, help="random accesses measured without cache")
    parser.add_argument(
        "--train-steps", type=int, default=3, help="training steps timed for the consumption rate (0 skips it)"
    )
    parser.add_argument("--cache-dir", default=None, help="disk cache folder (default: a fresh temporary folder)")
    parser.add_argument("--output", default=str(RESULTS_DIR / "data_pipeline.json"))
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be >= 2 (one cold epoch, then cached ones)")

    warnings.simplefilter("ignore", DeprecationWarning)
    start = time.perf_counter()
    if args.dataset_dir is None:
        root = prepare_demo_dataset(args.demo_dir or default_demo_dir(), num_subjects=args.demo_subjects)
        items = discover_dataset(root, kind="oasis1")
        source = f"demo ({args.demo_subjects} pseudo-subjects from MNI152, OASIS-1 Analyze layout)"
    else:
        items = discover_dataset(args.dataset_dir, kind=args.kind)
        source = str(args.dataset_dir)
    prepare_s = time.perf_counter() - start
    items = items[: args.max_volumes] if args.max_volumes else items

    with tempfile.TemporaryDirectory(prefix="slice-cache-") as temporary:
        cache_dir = Path(args.cache_dir) if args.cache_dir else Path(temporary)
        rows = [_measure(items, "memory", args, None), _measure(items, "disk", args, cache_dir)]
    if args.uncached_slices > 0:
        rows.append(_measure_uncached(items, args, args.uncached_slices))

    print(
        f"\nData pipeline on {source}: {len(items)} volumes, {rows[0]['slices']} slices at "
        f"{args.image_size}x{args.image_size}, batch {args.batch_size}, decode workers {args.num_workers}, "
        f"loader workers {args.loader_workers}, torch threads {torch.get_num_threads()}"
    )
    print(f"(dataset preparation/discovery: {prepare_s:.1f} s)\n")
    header = ("cache", "build s", "volumes/s", "cold slices/s", "cached slices/s", "restart slices/s")
    print(f"{header[0]:<8}{header[1]:>9}{header[2]:>11}{header[3]:>15}{header[4]:>17}{header[5]:>18}")
    for row in rows:
        if row["cache"] == "none":
            print(
                f"{'none':<8}{'':>9}{'':>11}{row['random_access_slices_per_s']:>15.1f}{'(random access, no cache)':>35}"
            )
            continue
        restart = f"{row['restart_slices_per_s']:>18.0f}" if "restart_slices_per_s" in row else f"{'-':>18}"
        print(
            f"{row['cache']:<8}{row['build_s']:>9.1f}{row['decode_volumes_per_s']:>11.2f}"
            f"{row['cold_slices_per_s']:>15.0f}{row['cached_slices_per_s']:>17.0f}{restart}"
        )

    consumption = _training_consumption(args) if args.train_steps > 0 else None
    if consumption is not None:
        rate = consumption["slices_per_s"]
        print(
            f"\ntraining the default VQ-VAE-2 at {args.image_size}x{args.image_size}, batch {args.batch_size}, consumes "
            f"{rate:.1f} slices/s ({consumption['seconds_per_step']:.2f} s/step): the pipeline delivers"
        )
        for row in rows:
            if row["cache"] == "none":
                continue
            row["cold_over_consumption"] = row["cold_slices_per_s"] / rate
            row["cached_over_consumption"] = row["cached_slices_per_s"] / rate
            print(
                f"  {row['cache']:<7} cache: {row['cold_over_consumption']:>8.1f}x cold (first epoch), "
                f"{row['cached_over_consumption']:>8.0f}x cached"
            )
    report = {
        "benchmark": "data_pipeline",
        "training_consumption": consumption,
        "dataset": source,
        "volumes": len(items),
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "num_workers": args.num_workers,
        "loader_workers": args.loader_workers,
        "prepare_s": prepare_s,
        "results": rows,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
        "versions": {"torch": torch.__version__, "monai": monai.__version__},
    }
    output = atomic_write_json(args.output, report)
    print(f"\nwrote {output}")
    return report


if __name__ == "__main__":
    main()
