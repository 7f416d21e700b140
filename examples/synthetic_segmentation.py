"""Do synthetic image + label pairs help a segmentation network? A seeded study on a finished run with labels.

The task is tissue segmentation of axial slices (background, CSF, grey matter, white matter). The same MONAI ``UNet``
(:func:`~monai_vqvae2.quality.tissue_segmenter`) is trained with the same initial weights (per seed), number of
steps and batch size, with ``DiceCELoss``, on

- ``real``: the real training pairs only;
- ``real_augmented``: the same with MONAI's standard augmentation on every item (``RandAffined`` rotation, scaling and
  translation with nearest-neighbour labels, ``RandGaussianNoised``, ``RandScaleIntensityd``,
  ``RandAdjustContrastd``): the baseline that matters;
- ``real_synthetic``: the real pairs mixed with generated pairs (``MixedSliceDataset(..., keys=PAIRED_KEYS)``,
  ``synthetic_fraction`` of the items) from a bank written by :func:`~monai_vqvae2.synthetic.generate_bank` with a
  VQ-VAE-2 that decodes a label from the codes of each image;
- ``real_synthetic_augmented``: both;
- ``synthetic_only``: the generated pairs alone;

the first four at full data (every training subject) and at low data (the real pairs of the first
``low_data_subjects`` training subjects; the bank is the same: its models saw every training subject), for every
seed. Each network is scored on the real pairs of the held-out test subjects: Dice per class (MONAI ``DiceMetric``,
per slice, averaged). The table gives the mean and the spread (sample standard deviation) over the seeds.

Usage (from the repository root, on the output folder of a run with labels, e.g.
``python -m monai_vqvae2.demo --output_dir outputs/demo_labels --override labels=True``)::

    python examples/synthetic_segmentation.py --output_dir outputs/demo_labels --seeds 0 1 2 --num_threads 2

Writes ``<output_dir>/segmentation_study/results.json`` and the bank ``<output_dir>/segmentation_study/bank/``
(reused when the study runs again with the same settings), and prints the table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from monai.bundle import ConfigParser
from monai.transforms import (
    Compose,
    RandAdjustContrastd,
    RandAffined,
    RandGaussianNoised,
    RandScaleIntensityd,
)
from monai.utils import set_determinism

from monai_vqvae2.data import make_slice_dataset
from monai_vqvae2.data.splits import load_split
from monai_vqvae2.inferers import load_sampler, prior_checkpoints
from monai_vqvae2.io import atomic_write_json
from monai_vqvae2.metrics import class_dice
from monai_vqvae2.provenance import package_versions
from monai_vqvae2.quality import segment, tissue_segmenter, train_segmenter
from monai_vqvae2.synthetic import (
    PAIRED_KEYS,
    MixedSliceDataset,
    SyntheticSliceDataset,
    generate_bank,
    training_slice_positions,
)
from monai_vqvae2.transforms import TISSUE_CLASSES

__all__ = ["ARMS", "run_study", "standard_augmentation"]

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIGS = (ROOT / "bundle" / "configs" / "common.yaml", ROOT / "bundle" / "configs" / "demo.yaml")
ARMS = ("real", "real_augmented", "real_synthetic", "real_synthetic_augmented", "synthetic_only")
CLASS_NAMES = TISSUE_CLASSES[1:]


#: what :func:`standard_augmentation` does, for the results file
AUGMENTATION = (
    "RandAffined (p 0.8: rotation ±0.26 rad, scaling ±0.1, translation ±6 px; nearest neighbour for the label), "
    "RandScaleIntensityd (factors ±0.1, p 0.5), RandAdjustContrastd (gamma 0.8–1.25, p 0.5), "
    "RandGaussianNoised (std 0.02, p 0.5)"
)


def standard_augmentation(seed: int) -> Compose:
    """MONAI's usual geometric and intensity augmentation of image + label pairs, seeded."""
    augment = Compose(
        [
            RandAffined(
                keys=("image", "label"),
                prob=0.8,
                rotate_range=0.26,  # ±15°
                scale_range=0.1,
                translate_range=(6, 6),
                mode=("bilinear", "nearest"),
                padding_mode="zeros",
            ),
            RandScaleIntensityd(keys="image", factors=0.1, prob=0.5),
            RandAdjustContrastd(keys="image", gamma=(0.8, 1.25), prob=0.5),
            RandGaussianNoised(keys="image", std=0.02, prob=0.5),
        ]
    )
    return augment.set_random_state(seed=seed)


def _run_settings(configs: Sequence[str | os.PathLike], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """What the run used (its bundle configs, later files and then ``overrides`` winning), as the stages read it."""
    parser = ConfigParser()
    parser.read_config([str(path) for path in configs])
    for key, value in overrides.items():
        parser[key] = value
    return {
        "image_size": int(parser.get_parsed_content("image_size")),
        "preprocessing": parser.get_parsed_content("preprocessing"),
        "prior_settings": dict(parser.get_parsed_content("prior_settings")),
        "network": parser.get_parsed_content("network_def"),
    }


def _pairs(dataset: Any) -> tuple[torch.Tensor, torch.Tensor]:
    items = [dataset[index] for index in range(len(dataset))]
    images = torch.stack([torch.as_tensor(item["image"]).float() for item in items])
    return images, torch.stack([torch.as_tensor(item["label"]).long() for item in items])


def _summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def run_study(
    output_dir: str | os.PathLike,
    seeds: Sequence[int] = (0, 1, 2),
    steps: int = 300,
    batch_size: int = 16,
    learning_rate: float = 1e-3,
    synthetic_fraction: float = 0.5,
    num_synthetic: int = 512,
    low_data_subjects: int = 1,
    temperature: float | Sequence[float] = (0.6, 0.5),
    configs: Sequence[str | os.PathLike] = DEFAULT_CONFIGS,
    overrides: Mapping[str, Any] | None = None,
    device: str | torch.device = "cpu",
    bank_dir: str | os.PathLike | None = None,
    results_file: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Train the tissue segmenter on every arm of :data:`ARMS` at full and low data for every seed, and score each on
    the real test pairs of a finished run with labels.

    Args:
        output_dir: a run's output folder with labels: ``split.json`` (items with ``label``), ``models/model.pt`` (a
            VQ-VAE-2 with a label decoder), ``models/prior_<level>/model.pt`` and ``codes/train.npz``.
        seeds: one training (initial weights, item order, augmentation draws, mixing plan) per arm and seed.
        steps: training steps of every network.
        batch_size: items per step.
        learning_rate: Adam's learning rate.
        synthetic_fraction: share of generated pairs in the mixed training sets, in (0, 1).
        num_synthetic: generated pairs in the bank.
        low_data_subjects: training subjects of the low-data arms (the first in sorted order).
        temperature: sampling temperature per level of the bank.
        configs: the bundle configs the run used, later ones overriding earlier ones.
        overrides: config overrides the run used; ``labels`` is set to true.
        device: where the sampler and the segmenters run.
        bank_dir: default ``<output_dir>/segmentation_study/bank``.
        results_file: default ``<output_dir>/segmentation_study/results.json``.

    Returns:
        the record written to ``results_file``: ``settings``, ``data``, ``bank``, ``runs`` (per regime and arm: Dice
        per class and seed, and their summary) and ``versions``.

    Raises:
        FileNotFoundError: a checkpoint or the split is missing.
        ValueError: bad arguments, a run without labels, or ``low_data_subjects`` not below the training subjects.
    """
    started = time.perf_counter()
    seeds = [int(seed) for seed in seeds]
    if not seeds:
        raise ValueError("`seeds` must name at least one seed.")
    if not 0 < synthetic_fraction < 1:
        raise ValueError(f"`synthetic_fraction` must be in (0, 1), got {synthetic_fraction!r}.")
    output_dir = Path(output_dir)
    study_dir = output_dir / "segmentation_study"
    bank_dir = Path(bank_dir) if bank_dir is not None else study_dir / "bank"
    results_file = Path(results_file) if results_file is not None else study_dir / "results.json"
    device = torch.device(device)
    settings = _run_settings(configs, {**(overrides or {}), "labels": True})
    vqvae_file = output_dir / "models" / "model.pt"
    prior_files = prior_checkpoints(output_dir / "models", settings["network"].network.num_levels)
    for path in (vqvae_file, *prior_files, output_dir / "split.json"):
        if not Path(path).is_file():
            raise FileNotFoundError(f"{str(path)!r} does not exist; `output_dir` must hold a run with trained priors.")
    split = load_split(output_dir / "split.json")
    if any("label" not in item for item in split["train"] + split["test"]):
        raise ValueError(
            f"the split of {str(output_dir)!r} has no label files: the study needs a run made with labels (--labels "
            "true)."
        )
    preprocessing, image_size = settings["preprocessing"], settings["image_size"]
    train = make_slice_dataset(split["train"], preprocessing, labels=True)
    test_images, test_labels = _pairs(make_slice_dataset(split["test"], preprocessing, labels=True))
    subjects = list(train.subjects)
    if not 0 < low_data_subjects < len(subjects):
        raise ValueError(
            f"`low_data_subjects` must be between 1 and {len(subjects) - 1} (the training subjects less one), "
            f"got {low_data_subjects}."
        )
    few_subjects = subjects[:low_data_subjects]
    few = torch.utils.data.Subset(
        train, [i for i, item in enumerate(train.slice_items) if str(item["subject"]) in few_subjects]
    )

    bank_started = time.perf_counter()
    settings["network"].load_state_dict(torch.load(vqvae_file, map_location=device, weights_only=True))
    sampler = load_sampler(
        settings["network"].to(device),
        prior_files,
        [image_size, image_size],
        device=device,
        num_scalars=1,
        **settings["prior_settings"],
    )
    generate_bank(
        sampler,
        bank_dir,
        num_synthetic,
        chunk_size=min(64, num_synthetic),
        real_positions=training_slice_positions(
            output_dir / "codes" / "train.npz", output_dir / "split.json", preprocessing=preprocessing
        ),
        temperature=list(temperature) if isinstance(temperature, (list, tuple)) else temperature,
        checkpoints=[vqvae_file, *prior_files],
    )
    bank_seconds = time.perf_counter() - bank_started
    synthetic = SyntheticSliceDataset(bank_dir, num_synthetic)

    def training_set(arm: str, real: Any, seed: int) -> Any:
        augment = standard_augmentation(seed) if arm.endswith("augmented") else None
        if arm == "synthetic_only":
            return MixedSliceDataset(synthetic, [], 0.0, seed=seed, keys=PAIRED_KEYS)
        generated = synthetic if "synthetic" in arm else []
        fraction = synthetic_fraction if generated else 0.0
        return MixedSliceDataset(real, generated, fraction, seed=seed, keys=PAIRED_KEYS, transform=augment)

    runs: dict[str, dict[str, Any]] = {}
    for regime, real in (("full", train), ("low", few)):
        for arm in ARMS:
            if arm == "synthetic_only" and regime == "low":
                continue  # the bank does not depend on the regime
            per_seed = []
            for seed in seeds:
                set_determinism(seed=seed)
                network = tissue_segmenter(len(TISSUE_CLASSES))  # the same initial weights for every arm
                train_segmenter(network, training_set(arm, real, seed), steps, batch_size, learning_rate, seed, device)
                dice = class_dice(segment(network, test_images), test_labels, len(TISSUE_CLASSES)).mean(dim=0)
                per_seed.append({"seed": seed, **{name: float(value) for name, value in zip(CLASS_NAMES, dice)}})
                print(
                    f"{regime:>4} {arm:<26} seed {seed}: " + " / ".join(f"{v:.3f}" for v in dice.tolist()), flush=True
                )
            runs.setdefault(regime, {})[arm] = {"per_seed": per_seed, "summary": _arm_summary(per_seed)}
    set_determinism(seed=None)
    results = {
        "settings": {
            "seeds": seeds,
            "steps": steps,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "synthetic_fraction": synthetic_fraction,
            "num_synthetic": num_synthetic,
            "low_data_subjects": low_data_subjects,
            "temperature": temperature,
            "image_size": image_size,
            "device": device.type,
            "num_threads": torch.get_num_threads(),
            "segmenter": "monai.networks.nets.UNet (monai_vqvae2.quality.tissue_segmenter), DiceCELoss, Adam",
            "augmentation": AUGMENTATION,
            "configs": [Path(path).name for path in configs],
            "overrides": dict(overrides or {}),
        },
        "data": {
            "train_subjects": subjects,
            "low_data_subjects": few_subjects,
            "test_subjects": sorted({str(item["subject"]) for item in split["test"]}),
            "num_train_pairs": len(train),
            "num_low_data_pairs": len(few),
            "num_test_pairs": len(test_images),
        },
        "bank": {"dir": os.path.relpath(bank_dir, output_dir), "num_samples": num_synthetic, "wall_s": bank_seconds},
        "runs": runs,
        "versions": package_versions(),
        "wall_s": time.perf_counter() - started,
    }
    atomic_write_json(results_file, results)
    return results


def _arm_summary(per_seed: Sequence[Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Mean, spread, min and max over the seeds of each class's Dice and of their mean."""
    means = [statistics.fmean(row[name] for name in CLASS_NAMES) for row in per_seed]
    summary = {name: _summary([row[name] for row in per_seed]) for name in CLASS_NAMES}
    summary["mean"] = _summary(means)
    return summary


ARM_LABELS = {
    "real": "(a) real only",
    "real_augmented": "(b) real + standard augmentation",
    "real_synthetic": "(c) real + synthetic pairs",
    "real_synthetic_augmented": "(d) real + both",
    "synthetic_only": "(e) synthetic only",
}


def format_table(results: Mapping[str, Any]) -> str:
    """The study as a Markdown table: Dice per class and their mean, mean ± sample SD over the seeds."""
    lines = [
        "| data | training set | " + " | ".join(CLASS_NAMES) + " | mean |",
        "|---|---|" + "---|" * (len(CLASS_NAMES) + 1),
    ]
    for regime, arms in results["runs"].items():
        for arm in ARMS:
            if arm not in arms:
                continue
            summary = arms[arm]["summary"]
            cells = " | ".join(f"{summary[n]['mean']:.3f} ± {summary[n]['sd']:.3f}" for n in (*CLASS_NAMES, "mean"))
            lines.append(f"| {regime} | {ARM_LABELS[arm]} | {cells} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", required=True, help="a finished run's output folder, made with labels")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--synthetic_fraction", type=float, default=0.5)
    parser.add_argument("--num_synthetic", type=int, default=512)
    parser.add_argument("--low_data_subjects", type=int, default=1)
    parser.add_argument("--temperature", type=float, nargs="+", default=[0.6, 0.5])
    parser.add_argument("--configs", nargs="+", default=[str(path) for path in DEFAULT_CONFIGS])
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE", help="a config override")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num_threads", type=int, default=None)
    args = parser.parse_args()
    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    overrides = {}
    for text in args.override:
        key, _, value = text.partition("=")
        overrides[key] = yaml.safe_load(value)
    results = run_study(
        args.output_dir,
        seeds=args.seeds,
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        synthetic_fraction=args.synthetic_fraction,
        num_synthetic=args.num_synthetic,
        low_data_subjects=args.low_data_subjects,
        temperature=args.temperature if len(args.temperature) > 1 else args.temperature[0],
        configs=args.configs,
        overrides=overrides,
        device=args.device,
    )
    data = results["data"]
    print(
        f"\nTissue segmentation (Dice on the {data['num_test_pairs']} real test pairs of "
        f"{', '.join(data['test_subjects'])}; mean ± SD over seeds {results['settings']['seeds']}); full data: "
        f"{data['num_train_pairs']} pairs of {len(data['train_subjects'])} subjects, low data: "
        f"{data['num_low_data_pairs']} pairs of {', '.join(data['low_data_subjects'])}; "
        f"{results['settings']['steps']} steps of {results['settings']['batch_size']} for every network.\n"
    )
    print(format_table(results))
    print(f"\nWall time {results['wall_s']:.0f} s (bank {results['bank']['wall_s']:.0f} s).")


if __name__ == "__main__":
    main()
