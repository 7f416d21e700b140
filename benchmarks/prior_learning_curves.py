"""Prior learning curves: held-out bits per code position against training steps, for prior sizes and optimisation
settings, on the code maps of a trained run (``<output_dir>/codes/train.npz`` and ``validation.npz``, written by the
prior stage).

Every variant trains the prior of one level from the same seed on the same batches and is evaluated on every held-out
map every ``--eval-every`` steps, so the curves compare settings at equal steps, which is what a short (CPU or demo)
budget cares about. The table gives bits/code at the demo budget (``--budget`` steps) and at the end of the run.

Usage::

    python benchmarks/prior_learning_curves.py --codes-dir outputs/demo/codes --level bottom --steps 1160 \\
        --budget 290 --variants demo attention attention_cosine --output benchmarks/results/prior_curves_bottom.json
    python benchmarks/prior_learning_curves.py --codes-dir outputs/demo/codes --checkpoint outputs/demo/models/model.pt \\
        --level bottom --steps 406 --budget 406 --variants cosine_positions cosine_positions_codebook
    python benchmarks/prior_learning_curves.py --codes-dir outputs/demo/codes --checkpoint outputs/demo/models/model.pt \\
        --level bottom --budget 406 --threads 1 --variants bottom_lr2e-03_b16 bottom_lr4e-03_b16 bottom_lr2e-03_b8

The ``volume_*`` variants are for the codes of whole volumes (``volumes.yaml``): the priors model code volumes
(``spatial_dims=3``, no slice position) and attend within each slice, over the whole volume, or not at all.

The ``<level>_lr<rate>_b<batch>`` variants set their own steps (the demo budget's number of training maps) and
evaluation interval (one epoch's maps); each result also has its best held-out bits and its training seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from monai_vqvae2.data import CodeDataset
from monai_vqvae2.io import atomic_write_json
from monai_vqvae2.networks import PixelCNNPrior

#: the demo's priors (bundle/configs/demo.yaml) and what each variant changes: "prior" goes to the PixelCNNPrior,
#: the rest is optimisation (learning rate, batch, linear warm-up steps, cosine decay to the end of the run)
DEMO = {"prior": {"channels": 32, "num_layers": 6, "kernel_size": 5, "num_heads": 4, "dropout": 0.0}}
DEMO_OPTIMISATION = {"learning_rate": 1e-3, "batch_size": 16, "warmup": 0, "cosine": False}
VARIANTS: dict[str, dict[str, Any]] = {
    "demo": {},
    "attention": {"attention_every": 3},
    "cosine": {"warmup": 30, "cosine": True, "learning_rate": 2e-3},
    "attention_cosine": {"attention_every": 3, "warmup": 30, "cosine": True, "learning_rate": 2e-3},
    "wide": {"channels": 64},
    # the bundle's schedule (warm-up + cosine, 2e-3) with and without the position encoding of every code position
    "cosine_positions": {"warmup": 30, "cosine": True, "learning_rate": 2e-3, "position_frequencies": 4},
    # the same, code embeddings started from the autoencoder's codebooks (needs --checkpoint)
    "cosine_positions_codebook": {
        "warmup": 30,
        "cosine": True,
        "learning_rate": 2e-3,
        "position_frequencies": 4,
        "embedding_init": "codebook",
    },
}

# code volumes (a --codes-dir of volumes.yaml's codes), at the volume demo's recipe (demo_volumes.yaml): attention
# within each slice (the depth stack brings the earlier slices), over the whole volume, or none
VOLUME_RECIPE = {"warmup": 30, "cosine": True, "learning_rate": 3e-3, "batch_size": 4, "position_frequencies": 4}
VARIANTS.update(
    {
        "volume_slice_attention": {**VOLUME_RECIPE, "attention_every": 3, "attention_span": "slice"},
        "volume_volume_attention": {**VOLUME_RECIPE, "attention_every": 3, "attention_span": "volume"},
        "volume_no_attention": {**VOLUME_RECIPE, "attention_every": 0},
    }
)

# the demo's budget spent at other learning rates and batch sizes (the bundle's recipe: warm-up 30 steps, then cosine
# decay to 0 at the variant's own last step; code positions and the slice position at 4 frequencies): the same number
# of training maps as the demo's 7 bottom / 20 top epochs of batch 16, one evaluation per epoch of ~928 maps
RECIPE = {"warmup": 30, "cosine": True, "position_frequencies": 4, "scalar_frequencies": 4}
BUDGET_STEPS_AT_BATCH_16 = {"bottom": 406, "top": 1160}


def budget_variants() -> dict[str, dict[str, Any]]:
    """``<level>_lr<rate>_b<batch>``: the demo budget of each level at other learning rates and batch sizes."""
    variants = {}
    for level, embedding_init in (("bottom", "codebook"), ("top", "random")):
        for rate, batch in ((2e-3, 16), (4e-3, 16), (1e-3, 16), (2e-3, 8), (3e-3, 8), (3e-3, 32)):
            variants[f"{level}_lr{rate:.0e}_b{batch}"] = {
                **RECIPE,
                "embedding_init": embedding_init,
                "learning_rate": rate,
                "batch_size": batch,
                "steps": BUDGET_STEPS_AT_BATCH_16[level] * 16 // batch,
                "eval_every": 58 * 16 // batch,
            }
    return variants


VARIANTS.update(budget_variants())


def codebooks_of(checkpoint: Path) -> list[torch.Tensor]:
    """The code vectors of every level, coarsest first, from a VQ-VAE-2 checkpoint (the bundle's ``models/model.pt``,
    whose keys start with ``network.``, or a bare :class:`~monai_vqvae2.networks.VQVAE2` state dict)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    prefix = "network." if any(key.startswith("network.") for key in state) else ""
    codebooks, level = [], 0
    while f"{prefix}quantizers.{level}.embedding.weight" in state:
        codebooks.append(state[f"{prefix}quantizers.{level}.embedding.weight"])
        level += 1
    if not codebooks:
        raise ValueError(f"{checkpoint} holds no VQ-VAE-2 codebooks (no '{prefix}quantizers.0.embedding.weight').")
    return codebooks


def build(
    variant: str, level: int, train: CodeDataset, checkpoint: Path | None = None
) -> tuple[PixelCNNPrior, dict[str, Any]]:
    settings = {**DEMO["prior"], **DEMO_OPTIMISATION, **VARIANTS[variant]}
    if level == 0 and "attention_every" not in VARIANTS[variant]:
        settings["attention_every"] = 4  # the top prior always has attention (prior_for_level's default)
    codebooks = train.settings["num_embeddings"]  # per level, coarsest first, as extract_codes records them
    conditioned = train.condition is not None
    prior = PixelCNNPrior(
        spatial_dims=train.indices.ndim - 1,  # code maps or code volumes
        num_embeddings=codebooks[level],
        channels=settings["channels"],
        num_layers=settings["num_layers"],
        kernel_size=settings["kernel_size"],
        num_heads=settings["num_heads"],
        dropout=settings["dropout"],
        attention_every=settings.get("attention_every", 0),
        condition_num_embeddings=codebooks[level - 1] if conditioned else None,
        condition_upsample=train.indices.shape[-1] // train.condition.shape[-1] if conditioned else 2,
        num_scalars=int(has_positions(train)),
        position_frequencies=settings.get("position_frequencies", 0),
        scalar_frequencies=settings.get("scalar_frequencies", 0),
        attention_span=settings.get("attention_span", "slice"),
    )
    if settings.get("embedding_init") == "codebook":
        if checkpoint is None:
            raise SystemExit(f"variant {variant!r} starts the embeddings from the codebooks: pass --checkpoint.")
        codebooks = codebooks_of(checkpoint)
        prior.init_embeddings(codebooks[level], codebooks[level - 1] if conditioned else None)
    return prior, settings


def learning_rate(step: int, steps: int, settings: dict[str, Any]) -> float:
    base = settings["learning_rate"]
    if step < settings["warmup"]:
        return base * (step + 1) / settings["warmup"]
    if settings["cosine"]:
        progress = (step - settings["warmup"]) / max(steps - settings["warmup"], 1)
        return base * 0.5 * (1 + math.cos(math.pi * progress))
    return base


def has_positions(dataset: CodeDataset) -> bool:
    """Whether the codes are of slices with positions (the priors are conditioned on them); volumes have none."""
    return bool(torch.isfinite(dataset.slice_position).all())


def batch_of(dataset: CodeDataset, index: torch.Tensor) -> dict[str, torch.Tensor]:
    kwargs = {"scalars": dataset.slice_position[index, None]} if has_positions(dataset) else {}
    if dataset.condition is not None:
        kwargs["condition"] = dataset.condition[index]
    return {"indices": dataset.indices[index], **kwargs}


@torch.no_grad()
def bits_per_code(prior: PixelCNNPrior, dataset: CodeDataset, batch_size: int = 64) -> float:
    prior.eval()
    total, count = 0.0, 0
    for start in range(0, len(dataset), batch_size):
        batch = batch_of(dataset, torch.arange(start, min(start + batch_size, len(dataset))))
        indices = batch.pop("indices")
        logits = prior(indices, **batch)
        total += float(F.cross_entropy(logits, indices, reduction="sum")) / math.log(2)
        count += indices.numel()
    prior.train()
    return total / count


def run(variant: str, level: int, train: CodeDataset, validation: CodeDataset, args) -> dict[str, Any]:
    torch.manual_seed(0)
    prior, settings = build(variant, level, train, args.checkpoint)
    optimizer = torch.optim.Adam(prior.parameters(), lr=settings["learning_rate"])
    generator = torch.Generator().manual_seed(0)
    steps = settings.get("steps", args.steps)
    eval_every = settings.get("eval_every", args.eval_every)
    curve = [{"step": 0, "bits": bits_per_code(prior, validation)}]
    start = time.perf_counter()
    train_seconds = 0.0  # training steps only (batch assembly, forward, backward, optimiser), no evaluation
    prior.train()
    for step in range(steps):
        tic = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, steps, settings)
        batch = batch_of(train, torch.randint(len(train), (settings["batch_size"],), generator=generator))
        indices = batch.pop("indices")
        loss = F.cross_entropy(prior(indices, **batch), indices)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        train_seconds += time.perf_counter() - tic
        if (step + 1) % eval_every == 0 or step + 1 == steps:
            curve.append(
                {
                    "step": step + 1,
                    "bits": bits_per_code(prior, validation),
                    "seconds": time.perf_counter() - start,
                    "train_seconds": train_seconds,
                }
            )
            print(f"{variant:<18} step {step + 1:>5}  {curve[-1]['bits']:.3f} bits/code", flush=True)
    at_budget = min(curve, key=lambda point: abs(point["step"] - args.budget))
    return {
        "variant": variant,
        "settings": settings,
        "parameters": sum(p.numel() for p in prior.parameters()),
        "bits_at_budget": at_budget["bits"],
        "budget_step": at_budget["step"],
        "bits_final": curve[-1]["bits"],
        "bits_best": min(point["bits"] for point in curve[1:]),
        "best_step": min(curve[1:], key=lambda point: point["bits"])["step"],
        "steps": steps,
        "train_seconds": train_seconds,
        "seconds": time.perf_counter() - start,
        "curve": curve,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codes-dir", type=Path, required=True)
    parser.add_argument(
        "--checkpoint", type=Path, default=None, help="the run's models/model.pt, for the *_codebook variants"
    )
    parser.add_argument("--level", choices=["top", "bottom"], default="bottom")
    parser.add_argument("--variants", nargs="+", default=["demo", "attention"], choices=sorted(VARIANTS))
    parser.add_argument("--steps", type=int, default=1160)
    parser.add_argument("--budget", type=int, default=290, help="steps of the demo budget (5 epochs of batch 16)")
    parser.add_argument("--eval-every", type=int, default=145)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    level = {"top": 0, "bottom": 1}[args.level]
    train = CodeDataset(args.codes_dir / "train.npz", level=level)
    validation = CodeDataset(args.codes_dir / "validation.npz", level=level)
    results = [run(variant, level, train, validation, args) for variant in args.variants]

    print(
        f"\n{args.level} prior, {tuple(train.indices.shape[1:])} maps, {len(train)} train / {len(validation)} held-out"
    )
    print(
        f"{'variant':<18}{'parameters':>12}{'bits @ ' + str(args.budget):>14}{'bits @ ' + str(args.steps):>14}{'s':>8}"
    )
    for row in results:
        print(
            f"{row['variant']:<18}{row['parameters']:>12,}{row['bits_at_budget']:>14.3f}{row['bits_final']:>14.3f}"
            f"{row['seconds']:>8.0f}"
        )
    output = args.output or Path(f"benchmarks/results/prior_curves_{args.level}.json")
    record = {
        "benchmark": "prior_learning_curves",
        "level": args.level,
        "steps": args.steps,
        "budget": args.budget,
        "train_maps": len(train),
        "validation_maps": len(validation),
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "results": results,
    }
    atomic_write_json(output, json.loads(json.dumps(record, default=float)))


if __name__ == "__main__":
    main()
