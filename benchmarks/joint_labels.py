"""How should the VQ-VAE-2 carry tissue labels? Trains the ways of modelling image and label together on the embedded
demo's paired slices for the same number of steps, and measures them on the held-out test subject.

Variants (all on the demo autoencoder, ``bundle/configs/demo.yaml``):

- ``label_decoder``: ``VQVAE2(label_channels=4)``, a label decoder reads the same latents as the image decoder; its
  cross-entropy also shapes the codes (``label_weight=1``);
- ``label_decoder_detached``: the same decoder trained on detached latents (``label_weight=0``): the codes are the
  image-only model's, the label is read from them;
- ``label_channels``: the label as extra channels, one-hot in the input and logits in the output
  (``in_channels = out_channels = 1 + 4``), cross-entropy on the label channels.

For each: image reconstruction (brain SSIM, top-only brain SSIM), the Dice of the decoded label against the true
label, and the *agreement*: the Dice between the decoded label and a segmentation of the decoded image by a MONAI
``UNet`` trained on real pairs only (``monai_vqvae2.quality.segmentation``), beside the same segmenter's Dice on the
real test pairs. A figure per variant shows test slices, reconstructions and decoded labels.

Usage::

    python benchmarks/joint_labels.py --steps 600 --variants label_decoder label_channels \\
        --output benchmarks/results/joint_labels.json --figures benchmarks/results/joint_labels
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.networks.utils import one_hot
from monai.utils import set_determinism
from PIL import Image

from monai_vqvae2.apps import prepare_split
from monai_vqvae2.data import make_slice_dataset
from monai_vqvae2.io import atomic_write_json
from monai_vqvae2.metrics import MaskedSSIMMetric, class_dice
from monai_vqvae2.networks import VQVAE2
from monai_vqvae2.quality.segmentation import segment, tissue_segmenter, train_segmenter
from monai_vqvae2.slice_io import label_overlay
from monai_vqvae2.transforms import TISSUE_CLASSES

NUM_CLASSES = len(TISSUE_CLASSES)
#: the demo autoencoder (bundle/configs/demo.yaml)
BASE = {
    "channels": 64,
    "num_res_layers": 2,
    "num_res_channels": 16,
    "num_embeddings": (64, 512),
    "embedding_dim": 64,
    "top_reconstruction_weight": 0.25,
}
VARIANTS: dict[str, dict[str, Any]] = {
    "label_decoder": {"label_channels": NUM_CLASSES, "label_weight": 1.0},
    "label_decoder_detached": {"label_channels": NUM_CLASSES, "label_weight": 0.0},
    "label_channels": {"in_channels": 1 + NUM_CLASSES, "out_channels": 1 + NUM_CLASSES},
}


def pairs(items: list[dict[str, Any]], image_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    dataset = make_slice_dataset(items, image_size=image_size, min_brain_fraction=0.1, labels=True)
    images = torch.stack([torch.as_tensor(dataset[i]["image"]) for i in range(len(dataset))]).float()
    labels = torch.stack([torch.as_tensor(dataset[i]["label"]) for i in range(len(dataset))]).long()
    return images, labels


def _as_channels(images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return torch.cat([images, one_hot(labels, NUM_CLASSES)], dim=1)


def train(name: str, images: torch.Tensor, labels: torch.Tensor, steps: int, batch_size: int, lr: float) -> VQVAE2:
    set_determinism(seed=0)
    settings = {"in_channels": 1, "out_channels": 1, **BASE, **VARIANTS[name]}
    network = VQVAE2(spatial_dims=2, seed=0, **settings)
    optimizer = torch.optim.Adam(network.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(0)
    network.train()
    for _ in range(steps):
        chosen = torch.randint(len(images), (batch_size,), generator=generator)
        batch, batch_labels = images[chosen], labels[chosen]
        if name == "label_channels":
            output, latent_loss = network(_as_channels(batch, batch_labels))
            loss = F.mse_loss(output[:, :1], batch) + F.cross_entropy(output[:, 1:], batch_labels[:, 0])
        else:
            output, latent_loss = network(batch, batch_labels)
            loss = F.mse_loss(output, batch)
        loss = loss + latent_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return network


@torch.no_grad()
def decode(name: str, network: VQVAE2, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Reconstructed images, decoded label maps and top-only reconstructions of the test pairs."""
    network.eval()
    parts: list[tuple[torch.Tensor, ...]] = []
    for start in range(0, len(images), 32):
        batch, batch_labels = images[start : start + 32], labels[start : start + 32]
        if name == "label_channels":
            indices = network.index_quantize(_as_channels(batch, batch_labels))
            output = network.decode_samples(indices)
            image, label = output[:, :1], output[:, 1:].argmax(dim=1, keepdim=True)
            top = network.decode_top(indices[0])[:, :1]
        else:
            indices = network.index_quantize(batch)
            image, label = network.decode_samples(indices), network.decode_label_samples(indices)
            top = network.decode_top(indices[0])
        parts.append((image.clamp(0, 1), label, top.clamp(0, 1)))
    return tuple(torch.cat(column) for column in zip(*parts))


def _mean_dice(dice: torch.Tensor) -> list[float]:
    return [float(value) for value in dice.nanmean(dim=0)]


def figure(path: Path, images: torch.Tensor, labels: torch.Tensor, reconstruction: torch.Tensor, decoded: torch.Tensor):
    """Rows: test slices with their true label, reconstructions with the decoded label (display: anterior up)."""
    chosen = np.linspace(len(images) * 0.15, len(images) * 0.85, 8).astype(int)
    rows = []
    for stack, label in ((images, labels), (reconstruction, decoded)):
        rows.append(np.concatenate([label_overlay(stack[i, 0].T.flip(0), label[i, 0].T.flip(0)) for i in chosen], 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(rows, axis=0), mode="RGB").save(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=sorted(VARIANTS))
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--segmenter-steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=6e-4)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/joint_labels.json"))
    parser.add_argument("--figures", type=Path, default=Path("benchmarks/results/joint_labels"))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as folder:
        split = prepare_split(None, "demo", Path(folder) / "split.json", labels=True)
    train_images, train_labels = pairs(split["train"], args.image_size)
    test_images, test_labels = pairs(split["test"], args.image_size)
    start = time.perf_counter()
    segmenter = tissue_segmenter(NUM_CLASSES)
    train_segmenter(
        segmenter,
        [{"image": i, "label": lab} for i, lab in zip(train_images, train_labels)],
        steps=args.segmenter_steps,
        batch_size=args.batch_size,
    )
    segmenter_seconds = time.perf_counter() - start
    real_agreement = _mean_dice(class_dice(segment(segmenter, test_images), test_labels, NUM_CLASSES))
    print(f"segmenter: {segmenter_seconds:.0f} s, Dice on real test pairs {real_agreement}", flush=True)

    results = []
    for name in args.variants:
        start = time.perf_counter()
        network = train(name, train_images, train_labels, args.steps, args.batch_size, args.learning_rate)
        seconds = time.perf_counter() - start
        reconstruction, decoded, top_only = decode(name, network, test_images, test_labels)
        record = {
            "variant": name,
            "settings": VARIANTS[name],
            "train_seconds": seconds,
            "brain_ssim": float(MaskedSSIMMetric()(reconstruction, test_images).nanmean()),
            "top_only_brain_ssim": float(MaskedSSIMMetric()(top_only, test_images).nanmean()),
            "dice_vs_truth": _mean_dice(class_dice(decoded, test_labels, NUM_CLASSES)),
            "agreement": _mean_dice(class_dice(decoded, segment(segmenter, reconstruction), NUM_CLASSES)),
        }
        figure(args.figures / f"{name}.png", test_images, test_labels, reconstruction, decoded)
        results.append(record)
        print(json.dumps(record), flush=True)

    print(f"\n{args.steps} steps of batch {args.batch_size} at {args.image_size}², {len(test_images)} test pairs")
    print(
        f"Dice per class ({', '.join(TISSUE_CLASSES[1:])}); the segmenter on real test pairs: "
        + " / ".join(f"{v:.3f}" for v in real_agreement)
    )
    print(f"{'variant':<24}{'brain SSIM':>12}{'top-only':>10}{'Dice vs truth':>24}{'agreement':>24}{'s':>8}")
    for row in results:
        truth = " / ".join(f"{v:.3f}" for v in row["dice_vs_truth"])
        agreement = " / ".join(f"{v:.3f}" for v in row["agreement"])
        print(
            f"{row['variant']:<24}{row['brain_ssim']:>12.3f}{row['top_only_brain_ssim']:>10.3f}{truth:>24}"
            f"{agreement:>24}{row['train_seconds']:>8.0f}"
        )
    atomic_write_json(
        args.output,
        {
            "benchmark": "joint_labels",
            "steps": args.steps,
            "segmenter_steps": args.segmenter_steps,
            "batch_size": args.batch_size,
            "image_size": args.image_size,
            "test_pairs": len(test_images),
            "threads": torch.get_num_threads(),
            "machine": platform.processor() or platform.machine(),
            "segmenter_dice_on_real_test_pairs": real_agreement,
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
