"""Where does the anatomy live? Trains VQ-VAE-2 variants on the embedded demo for the same number of steps and
measures, on the held-out test subject's slices, how the information is split between the levels.

For each variant: reconstruction SSIM / brain SSIM / brain PSNR (all levels), the *top-only reconstruction*
(``VQVAE2.decode_top``: a decoder of the coarsest codes alone, trained as a detached probe when
``top_reconstruction_weight == 0``) with its SSIM / brain SSIM, and per level the code perplexity and the number of
distinct codes *inside the brain* (whole-map statistics flatter: background and border take codes of their own).
A figure per variant shows test slices, their reconstruction and their top-only reconstruction.

Usage::

    python benchmarks/information_split.py --steps 300 --variants default top_weight_1 \\
        --output benchmarks/results/information_split.json --figures benchmarks/results/information_split
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.metrics import SSIMMetric
from monai.utils import set_determinism
from PIL import Image

from monai_vqvae2.apps import prepare_split
from monai_vqvae2.data import make_slice_dataset
from monai_vqvae2.io import atomic_write_json
from monai_vqvae2.metrics import MaskedPSNRMetric, MaskedSSIMMetric, code_statistics, codes_in_mask
from monai_vqvae2.networks import VQVAE2

#: the demo autoencoder (bundle/configs/demo.yaml) plus what each variant changes
BASE = {"channels": 64, "num_res_layers": 2, "num_res_channels": 16, "num_embeddings": 512, "embedding_dim": 64}
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {"top_reconstruction_weight": 0.0},  # the top-only decoder as a probe only
    "top_weight_0.25": {"top_reconstruction_weight": 0.25},
    "top_weight_1": {"top_reconstruction_weight": 1.0},
    "top_weight_4": {"top_reconstruction_weight": 4.0},
    "top_weight_0.1": {"top_reconstruction_weight": 0.1},
    # the weight falls to 0 (cosine) over the first `decay` fraction of the steps; the top-only decoder is a probe after
    "top_weight_0.25_decay": {"top_reconstruction_weight": 0.25, "decay": 1.0},
    "top_weight_1_decay_half": {"top_reconstruction_weight": 1.0, "decay": 0.5},
    "bottom_8x8": {"num_embeddings": (512, 8), "embedding_dim": (64, 8)},
}


def slices(items: list[dict[str, Any]], image_size: int) -> torch.Tensor:
    dataset = make_slice_dataset(items, image_size=image_size, min_brain_fraction=0.1)
    return torch.stack([torch.as_tensor(dataset[i]["image"]) for i in range(len(dataset))]).float()


def train(name: str, train_images: torch.Tensor, steps: int, batch_size: int, learning_rate: float) -> VQVAE2:
    set_determinism(seed=0)
    settings = {**BASE, **VARIANTS[name]}
    decay = settings.pop("decay", None)
    network = VQVAE2(spatial_dims=2, in_channels=1, out_channels=1, seed=0, **settings)
    optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(0)
    network.train()
    for step in range(steps):
        if decay is not None:
            progress = min(step / (decay * steps), 1.0)
            network.top_reconstruction_weight = (
                settings["top_reconstruction_weight"] * 0.5 * (1 + math.cos(math.pi * progress))
            )
        batch = train_images[torch.randint(len(train_images), (batch_size,), generator=generator)]
        reconstruction, latent_loss = network(batch)
        loss = F.mse_loss(reconstruction, batch) + latent_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return network


@torch.no_grad()
def evaluate(network: VQVAE2, images: torch.Tensor) -> tuple[dict[str, float], torch.Tensor, torch.Tensor]:
    network.eval()
    indices = [torch.cat(level) for level in zip(*(network.index_quantize(b) for b in images.split(32)))]
    reconstruction = torch.cat([network.decode_samples([i[s] for i in indices]) for s in _batches(len(images))])
    top_only = torch.cat([network.decode_top(indices[0][s]) for s in _batches(len(images))])
    reconstruction, top_only = reconstruction.clamp(0, 1), top_only.clamp(0, 1)
    record: dict[str, float] = {}
    for prefix, prediction in (("", reconstruction), ("top_only_", top_only)):
        record[f"{prefix}ssim"] = float(SSIMMetric(spatial_dims=2, data_range=1.0)(prediction, images).mean())
        record[f"{prefix}brain_ssim"] = float(MaskedSSIMMetric()(prediction, images).nanmean())
        record[f"{prefix}brain_psnr"] = float(MaskedPSNRMetric()(prediction, images).nanmean())
    brain = images > 0.01
    for level, name in enumerate(("top", "bottom")):
        codes = codes_in_mask(indices[level], brain)
        statistics = code_statistics(torch.bincount(codes, minlength=network.num_embeddings[level]))
        record[f"brain_perplexity_{name}"] = statistics["perplexity"]
        record[f"brain_distinct_{name}"] = statistics["distinct"]
    return record, reconstruction, top_only


def _batches(count: int, size: int = 32) -> list[slice]:
    return [slice(start, min(start + size, count)) for start in range(0, count, size)]


def figure(path: Path, images: torch.Tensor, reconstruction: torch.Tensor, top_only: torch.Tensor) -> None:
    """Rows: test slices, reconstruction, top-only reconstruction; 8 evenly spaced slices (display: anterior up)."""
    chosen = np.linspace(len(images) * 0.15, len(images) * 0.85, 8).astype(int)
    rows = [torch.cat([stack[i, 0].T.flip(0) for i in chosen], dim=1) for stack in (images, reconstruction, top_only)]
    grid = (torch.cat(rows, dim=0).clamp(0, 1) * 255).round().byte().numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid, mode="L").save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["default", "top_weight_1"], choices=sorted(VARIANTS))
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=6e-4)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/information_split.json"))
    parser.add_argument("--figures", type=Path, default=Path("benchmarks/results/information_split"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as folder:
        split = prepare_split(None, "demo", Path(folder) / "split.json")
    train_images, test_images = slices(split["train"], args.image_size), slices(split["test"], args.image_size)
    results = []
    for name in args.variants:
        start = time.perf_counter()
        network = train(name, train_images, args.steps, args.batch_size, args.learning_rate)
        seconds = time.perf_counter() - start
        record, reconstruction, top_only = evaluate(network, test_images)
        figure(args.figures / f"{name}.png", test_images, reconstruction, top_only)
        results.append({"variant": name, "settings": VARIANTS[name], "train_seconds": seconds, **record})
        print(json.dumps(results[-1]), flush=True)

    columns = ["ssim", "brain_ssim", "top_only_ssim", "top_only_brain_ssim", "brain_perplexity_top"]
    columns += ["brain_distinct_top", "brain_perplexity_bottom", "train_seconds"]
    print(f"\n{args.steps} steps of batch {args.batch_size} at {args.image_size}², {len(test_images)} test slices")
    print(f"{'variant':<18}" + "".join(f"{c:>24}" for c in columns))
    for row in results:
        print(f"{row['variant']:<18}" + "".join(f"{row[c]:>24.3f}" for c in columns))
    record = {
        "benchmark": "information_split",
        "steps": args.steps,
        "batch_size": args.batch_size,
        "image_size": args.image_size,
        "test_slices": len(test_images),
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "results": results,
    }
    atomic_write_json(args.output, record)


if __name__ == "__main__":
    main()
