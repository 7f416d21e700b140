"""Does mixing synthetic slices into training help a downstream model? A small, seeded experiment on a finished run.

The downstream task is slice-position regression: predict the normalised axial position of a slice (0 = inferior,
1 = superior) from its pixels. Real slices carry their position; synthetic slices carry the position the priors were
conditioned on when they were sampled, so both label themselves. The same MONAI ``Regressor`` is trained with the
same seed, number of steps and batch size on

- ``real``: the real training slices only;
- ``mixed``: the real training slices mixed with synthetic ones by :class:`~monai_vqvae2.synthetic.MixedSliceDataset`
  (``synthetic_fraction`` of the items), read from a bank written by :func:`~monai_vqvae2.synthetic.generate_bank`
  with positions drawn from the real training slices' positions;
- ``low_data_real`` / ``low_data_mixed``: the same two with the real slices of the first ``low_data_subjects``
  training subjects only (the bank is unchanged: its priors were trained on every training subject);
- ``synthetic_only``: the bank alone, a check that synthetic slices carry their conditioned position at all;

and each is scored on the real slices of the held-out test split: mean absolute error (MAE), root mean squared error
and R² of the predicted position, beside the MAE of always predicting the mean training position.

Usage (from the repository root, on the output folder of ``python -m monai_vqvae2.demo --stages train evaluate
inference prior_top prior_bottom sample``; the run's settings are read from the bundle configs, demo.yaml by default)::

    python examples/synthetic_augmentation.py --output_dir outputs/demo --num_threads 1

(``--num_threads 1`` avoids spinning OpenMP threads, which slow every step several times on a machine shared with
other jobs.) Writes ``<output_dir>/augmentation/results.json`` and the bank
``<output_dir>/augmentation/bank_seed<seed>/`` (reused when the example runs again with the same settings), and
prints a table. See ``bundle/docs/augmentation.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from ignite.engine import Events
from monai.bundle import ConfigParser
from monai.data import DataLoader
from monai.engines import SupervisedTrainer
from monai.networks.nets import Regressor
from monai.utils import set_determinism

from monai_vqvae2.data import make_slice_dataset
from monai_vqvae2.data.splits import load_split
from monai_vqvae2.inferers import load_sampler, prior_checkpoints
from monai_vqvae2.io import atomic_write_json
from monai_vqvae2.provenance import package_versions
from monai_vqvae2.synthetic import MixedSliceDataset, SyntheticSliceDataset, generate_bank, training_slice_positions

__all__ = ["RUN_NAMES", "run_experiment"]

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIGS = (ROOT / "bundle" / "configs" / "common.yaml", ROOT / "bundle" / "configs" / "demo.yaml")
RUN_NAMES = ("real", "mixed", "low_data_real", "low_data_mixed", "synthetic_only")
# the downstream regressor: four stride-2 stages of residual units, then one linear layer to the position
REGRESSOR_CHANNELS = (8, 16, 32, 64)
REGRESSOR_STRIDES = (2, 2, 2, 2)
LOSS_WINDOW = 20  # the final training loss is the mean over this many last steps
BANK_CHUNK_SIZE = 64


@contextlib.contextmanager
def torch_threads(num_threads: int | None) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(num_threads)`` (``None``: unchanged), then restore the setting."""
    previous = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _check_count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
    return value


def load_run_settings(configs: Sequence[str | os.PathLike], overrides: Mapping[str, Any] | None = None) -> dict:
    """The settings of the run that wrote the checkpoints, from its bundle configs (later files override earlier
    ones, then ``overrides`` as ``monai.bundle run`` applies command-line overrides, e.g. ``{"image_size": 256}``).

    Returns:
        ``image_size``, ``preprocessing`` (the run's ``SlicePreprocessing``), ``condition_on_slice_position``,
        ``prior_settings`` (dict) and
        ``network`` (the instantiated ``network_def``, untrained).
    """
    parser = ConfigParser()
    parser.read_config([str(path) for path in configs])
    for key, value in (overrides or {}).items():
        parser[key] = value
    return {
        "image_size": int(parser.get_parsed_content("image_size")),
        "preprocessing": parser.get_parsed_content("preprocessing"),
        "condition_on_slice_position": bool(parser.get_parsed_content("condition_on_slice_position")),
        "prior_settings": dict(parser.get_parsed_content("prior_settings")),
        "network": parser.get_parsed_content("network_def"),
    }


def prepare_position_batch(
    batchdata: Mapping[str, Any], device: str | torch.device | None = None, non_blocking: bool = False, **kwargs: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images (B, 1, H, W), positions (B, 1))`` of a slice batch, for ``SupervisedTrainer(prepare_batch=...)``."""
    images = torch.as_tensor(batchdata["image"]).float().to(device=device, non_blocking=non_blocking)
    positions = torch.as_tensor(batchdata["slice_position"], dtype=torch.float32).reshape(-1, 1)
    return images, positions.to(device=device, non_blocking=non_blocking)


def train_position_regressor(
    dataset: torch.utils.data.Dataset,
    image_size: int,
    steps: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
    device: torch.device,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Train a fresh ``monai.networks.nets.Regressor`` for exactly ``steps`` steps of ``batch_size`` items.

    Items are drawn as consecutive random permutations of ``dataset`` (every item once per pass), from a generator
    seeded by ``seed``; the network is initialised after ``set_determinism(seed)``, so two calls with the same seed
    start from the same weights.

    Returns:
        the trained network and ``steps``, ``items_seen``, ``synthetic_items_seen``, ``synthetic_fraction_seen``,
        ``passes`` (over the dataset), ``final_loss`` (mean squared error over the last steps) and ``wall_s``.
    """
    start = time.perf_counter()
    set_determinism(seed=seed)
    network = Regressor(
        in_shape=(1, image_size, image_size), out_shape=(1,), channels=REGRESSOR_CHANNELS, strides=REGRESSOR_STRIDES
    ).to(device)
    sampler = torch.utils.data.RandomSampler(
        dataset, num_samples=steps * batch_size, generator=torch.Generator().manual_seed(seed)
    )
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True, num_workers=0)
    trainer = SupervisedTrainer(
        device=device,
        max_epochs=1,
        train_data_loader=loader,
        network=network,
        optimizer=torch.optim.Adam(network.parameters(), lr=learning_rate),
        loss_function=torch.nn.MSELoss(),
        prepare_batch=prepare_position_batch,
        decollate=False,
    )
    seen = {"items": 0, "synthetic": 0, "losses": []}

    @trainer.on(Events.ITERATION_COMPLETED)
    def count(engine) -> None:
        flags = engine.state.batch.get("synthetic")
        flags = torch.zeros(0) if flags is None else torch.as_tensor(flags)
        seen["items"] += len(engine.state.batch["image"])
        seen["synthetic"] += int(flags.sum())
        seen["losses"].append(engine.state.output["loss"].item())

    trainer.run()
    return network.eval(), {
        "steps": trainer.state.iteration,
        "items_seen": seen["items"],
        "synthetic_items_seen": seen["synthetic"],
        "synthetic_fraction_seen": seen["synthetic"] / max(seen["items"], 1),
        "passes": seen["items"] / len(dataset),
        "final_loss": float(np.mean(seen["losses"][-LOSS_WINDOW:])),
        "wall_s": time.perf_counter() - start,
    }


@torch.no_grad()
def predict_positions(
    network: torch.nn.Module, dataset: torch.utils.data.Dataset, batch_size: int, device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """``(predicted, true)`` positions of every item of ``dataset``, float64 ``(N,)`` each."""
    predicted, true = [], []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0):
        images, positions = prepare_position_batch(batch, device)
        predicted.append(network(images).reshape(-1).double().cpu())
        true.append(positions.reshape(-1).double().cpu())
    return torch.cat(predicted).numpy(), torch.cat(true).numpy()


def position_errors(predicted: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """Mean absolute error, root mean squared error and R² (1 - residual / total sum of squares)."""
    residual = predicted - true
    total = float(((true - true.mean()) ** 2).sum())
    return {
        "mae": float(np.abs(residual).mean()),
        "rmse": float(np.sqrt((residual**2).mean())),
        "r2": 1.0 - float((residual**2).sum()) / total if total > 0 else math.nan,
    }


def run_experiment(
    output_dir: str | os.PathLike,
    steps: int = 300,
    batch_size: int = 32,
    synthetic_fraction: float = 0.5,
    num_synthetic: int = 256,
    low_data_subjects: int | None = 1,
    synthetic_only: bool = True,
    learning_rate: float = 1e-3,
    seed: int = 0,
    configs: Sequence[str | os.PathLike] = DEFAULT_CONFIGS,
    overrides: Mapping[str, Any] | None = None,
    device: str | torch.device = "cpu",
    num_threads: int | None = None,
    bank_dir: str | os.PathLike | None = None,
    results_file: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Train the position regressor on real, mixed (and low-data, synthetic-only) training sets and score each on
    the real test slices of a finished run.

    Args:
        output_dir: a run's output folder: ``split.json``, ``models/model.pt``, ``models/prior_<level>/model.pt``
            and (optionally) ``codes/train.npz``.
        steps: training steps of every run (the same budget for all).
        batch_size: items per step.
        synthetic_fraction: fraction of synthetic items in the mixed training sets, in (0, 1).
        num_synthetic: slices in the bank (synthetic items cycle through them).
        low_data_subjects: also train with the real slices of only this many training subjects (the first in sorted
            order), with and without synthetic slices; ``None`` skips it.
        synthetic_only: also train on the bank alone.
        learning_rate: Adam learning rate.
        seed: seed of the bank, the mixing plan, the network initialisation and the item order.
        configs: the bundle configs the run used, later ones overriding earlier ones.
        overrides: config overrides the run used (``{"image_size": 256, "network_def#channels": 64}``).
        device: where the sampler and the regressor run.
        num_threads: CPU threads of PyTorch (``torch.set_num_threads``) for this call; ``None`` keeps the current
            setting. On a busy machine one thread can be several times faster than spinning OpenMP threads.
        bank_dir: bank folder; default ``<output_dir>/augmentation/bank_seed<seed>`` (reused when it exists with the
            same settings, extended for a larger ``num_synthetic``).
        results_file: default ``<output_dir>/augmentation/results.json``.

    Returns:
        the record written to ``results_file``: ``settings``, ``data``, ``bank``, ``runs`` (per run name of
        :data:`RUN_NAMES` that ran: ``test`` errors and training counts), ``references``, ``versions``, ``wall_s``.

    Raises:
        FileNotFoundError: a checkpoint or the split file is missing.
        ValueError: invalid arguments, priors not conditioned on the slice position, or ``low_data_subjects`` not
            smaller than the number of training subjects.
    """
    started = time.perf_counter()
    steps, batch_size = _check_count(steps, "steps"), _check_count(batch_size, "batch_size")
    num_synthetic = _check_count(num_synthetic, "num_synthetic")
    if isinstance(synthetic_fraction, bool) or not (
        isinstance(synthetic_fraction, (int, float)) and 0 < synthetic_fraction < 1
    ):
        raise ValueError(f"`synthetic_fraction` must be a number in (0, 1), got {synthetic_fraction!r}.")
    if low_data_subjects is not None:
        _check_count(low_data_subjects, "low_data_subjects")
    if num_threads is not None:
        _check_count(num_threads, "num_threads")
    with torch_threads(num_threads):
        output_dir = Path(output_dir)
        bank_dir = Path(bank_dir) if bank_dir is not None else output_dir / "augmentation" / f"bank_seed{seed}"
        results_file = Path(results_file) if results_file is not None else output_dir / "augmentation" / "results.json"
        device = torch.device(device)
        settings = load_run_settings(configs, overrides)
        if not settings["condition_on_slice_position"]:
            raise ValueError(
                "the run's priors are not conditioned on the slice position (`condition_on_slice_position: false`): "
                "synthetic slices would carry no position label for this experiment."
            )
        vqvae_file = output_dir / "models" / "model.pt"
        vqvae = settings["network"].network
        prior_files = prior_checkpoints(output_dir / "models", vqvae.num_levels)
        for path in (vqvae_file, *prior_files, output_dir / "split.json"):
            if not Path(path).is_file():
                raise FileNotFoundError(
                    f"{str(path)!r} does not exist; `output_dir` must hold a run with trained priors."
                )

        image_size, preprocessing = settings["image_size"], settings["preprocessing"]
        split = load_split(output_dir / "split.json")
        train = make_slice_dataset(split["train"], preprocessing)
        test = make_slice_dataset(split["test"], preprocessing)
        subjects = list(train.subjects)
        if low_data_subjects is not None and low_data_subjects >= len(subjects):
            raise ValueError(
                f"`low_data_subjects` must be smaller than the {len(subjects)} training subjects, got {low_data_subjects}."
            )

        bank_start = time.perf_counter()
        settings["network"].load_state_dict(torch.load(vqvae_file, map_location=device, weights_only=True))
        sampler = load_sampler(
            settings["network"].to(device),
            prior_files,
            [image_size, image_size],
            device=device,
            num_scalars=1,
            **settings["prior_settings"],
        )
        real_positions = training_slice_positions(
            output_dir / "codes" / "train.npz", output_dir / "split.json", preprocessing=preprocessing
        )
        generate_bank(
            sampler,
            bank_dir,
            num_synthetic,
            seed=seed,
            chunk_size=min(BANK_CHUNK_SIZE, num_synthetic),
            real_positions=real_positions,
            checkpoints=[vqvae_file, *prior_files],
        )
        bank_wall_s = time.perf_counter() - bank_start
        synthetic = SyntheticSliceDataset(bank_dir, num_synthetic)

        training_sets: dict[str, torch.utils.data.Dataset] = {
            "real": MixedSliceDataset(train, [], 0.0, seed=seed),  # same pipeline and keys as the mixed set
            "mixed": MixedSliceDataset(train, synthetic, synthetic_fraction, seed=seed),
        }
        few_subjects: list[str] = []
        if low_data_subjects is not None:
            few_subjects = subjects[:low_data_subjects]
            keep = [i for i, item in enumerate(train.slice_items) if str(item["subject"]) in few_subjects]
            few = torch.utils.data.Subset(train, keep)
            training_sets["low_data_real"] = MixedSliceDataset(few, [], 0.0, seed=seed)
            training_sets["low_data_mixed"] = MixedSliceDataset(few, synthetic, synthetic_fraction, seed=seed)
        if synthetic_only:
            training_sets["synthetic_only"] = synthetic

        runs: dict[str, dict[str, Any]] = {}
        for name, dataset in training_sets.items():
            network, record = train_position_regressor(
                dataset, image_size, steps, batch_size, learning_rate, seed, device
            )
            predicted, true = predict_positions(network, test, batch_size, device)
            runs[name] = {
                **record,
                "num_items": len(dataset),
                "synthetic_fraction": getattr(dataset, "synthetic_fraction", 1.0),
                "num_synthetic_items": getattr(dataset, "num_synthetic", len(dataset)),
                "distinct_synthetic_slices": min(getattr(dataset, "num_synthetic", len(dataset)), len(synthetic)),
                "test": position_errors(predicted, true),
            }
        train_positions = np.array([item["slice_position"] for item in train.slice_items], dtype=np.float64)
        test_positions = np.array([item["slice_position"] for item in test.slice_items], dtype=np.float64)
        results = {
            "settings": {
                "steps": steps,
                "batch_size": batch_size,
                "synthetic_fraction": float(synthetic_fraction),
                "num_synthetic": num_synthetic,
                "low_data_subjects": low_data_subjects,
                "learning_rate": learning_rate,
                "seed": seed,
                "device": device.type,
                "num_threads": torch.get_num_threads(),
                "image_size": image_size,
                "preprocessing": preprocessing.to_dict(),
                "prior_settings": settings["prior_settings"],
                "configs": [Path(path).name for path in configs],
                "overrides": dict(overrides or {}),
                "regressor": {
                    "class": "monai.networks.nets.Regressor",
                    "channels": list(REGRESSOR_CHANNELS),
                    "strides": list(REGRESSOR_STRIDES),
                    "parameters": sum(p.numel() for p in network.parameters()),
                },
                "loss": "mean squared error of the normalised slice position",
            },
            "data": {
                "train_subjects": subjects,
                "test_subjects": list(test.subjects),
                "num_train_slices": len(train),
                "num_test_slices": len(test),
                "low_data_subjects": few_subjects,
                "num_low_data_slices": len(training_sets["low_data_real"]) if few_subjects else 0,
            },
            "bank": {
                "dir": os.path.relpath(bank_dir, output_dir),
                "num_samples": num_synthetic,
                "positions": "drawn from the real training slices' positions",
                "wall_s": bank_wall_s,
            },
            "runs": runs,
            "references": {
                "mean_training_position": {
                    "value": float(train_positions.mean()),
                    "test": position_errors(np.full_like(test_positions, train_positions.mean()), test_positions),
                }
            },
            "versions": package_versions(),
            "wall_s": time.perf_counter() - started,
        }

    atomic_write_json(results_file, results)
    return results


RUN_LABELS = {
    "real": "real only",
    "mixed": "real + synthetic",
    "low_data_real": "low data: real only",
    "low_data_mixed": "low data: real + synthetic",
    "synthetic_only": "synthetic only",
}


def format_table(results: Mapping[str, Any]) -> str:
    """The runs of a :func:`run_experiment` record as a Markdown table (train RMSE: over the last training steps'
    batches, as the network was being trained)."""
    lines = [
        "| training data | real slices | synthetic share | steps | train RMSE | test MAE | test RMSE | test R² |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in (name for name in RUN_NAMES if name in results["runs"]):  # a JSON file holds them sorted
        run = results["runs"][name]
        real = run["num_items"] - run["num_synthetic_items"]
        errors = run["test"]
        lines.append(
            f"| {RUN_LABELS[name]} | {real} | {run['synthetic_fraction_seen']:.2f} | {run['steps']} | "
            f"{math.sqrt(run['final_loss']):.4f} | {errors['mae']:.4f} | {errors['rmse']:.4f} | {errors['r2']:.3f} |"
        )
    reference = results["references"]["mean_training_position"]["test"]
    lines.append(
        f"| reference: always the mean training position | - | - | - | - | {reference['mae']:.4f} | "
        f"{reference['rmse']:.4f} | {reference['r2']:.3f} |"
    )
    return "\n".join(lines)


def _override(text: str) -> tuple[str, Any]:
    key, separator, value = text.partition("=")
    if not separator or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. image_size=256), got {text!r}")
    return key, yaml.safe_load(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", required=True, help="a finished run's output folder (checkpoints, split)")
    parser.add_argument("--steps", type=int, default=300, help="training steps of every run")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--synthetic_fraction", type=float, default=0.5, help="synthetic share of the mixed sets")
    parser.add_argument("--num_synthetic", type=int, default=256, help="slices in the bank")
    parser.add_argument("--low_data_subjects", type=int, default=1, help="0 skips the low-data runs")
    parser.add_argument("--no_synthetic_only", action="store_true", help="skip the synthetic-only run")
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--configs", nargs="+", default=[str(path) for path in DEFAULT_CONFIGS], help="the run's bundle configs"
    )
    parser.add_argument(
        "--override", type=_override, action="append", default=[], metavar="KEY=VALUE", help="a config override"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--num_threads", type=int, default=None, help="torch.set_num_threads (default: unchanged)")
    parser.add_argument("--bank_dir", default=None, help="default: <output_dir>/augmentation/bank_seed<seed>")
    parser.add_argument("--results_file", default=None, help="default: <output_dir>/augmentation/results.json")
    args = parser.parse_args()
    results = run_experiment(
        args.output_dir,
        steps=args.steps,
        batch_size=args.batch_size,
        synthetic_fraction=args.synthetic_fraction,
        num_synthetic=args.num_synthetic,
        low_data_subjects=args.low_data_subjects or None,
        synthetic_only=not args.no_synthetic_only,
        learning_rate=args.learning_rate,
        seed=args.seed,
        configs=args.configs,
        overrides=dict(args.override),
        device=args.device,
        num_threads=args.num_threads,
        bank_dir=args.bank_dir,
        results_file=args.results_file,
    )
    data = results["data"]
    print(
        f"\nSlice-position regression, scored on the {data['num_test_slices']} real test slices of "
        f"{', '.join(data['test_subjects'])} (positions in [0, 1]); {len(data['train_subjects'])} training subjects "
        f"({data['num_train_slices']} slices), low data: {', '.join(data['low_data_subjects']) or '-'}; "
        f"bank of {results['bank']['num_samples']} synthetic slices.\n"
    )
    print(format_table(results))
    print(f"\nWall time {results['wall_s']:.0f} s (bank {results['bank']['wall_s']:.0f} s).")


if __name__ == "__main__":
    main()
