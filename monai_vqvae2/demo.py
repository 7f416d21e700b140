"""The main job on the embedded demo data: train the VQ-VAE-2, evaluate it on held-out slices, reconstruct a held-out
volume, train the top and bottom PixelCNN priors, sample new slices and report their quality — each stage a
``monai.bundle`` run of the configs in ``bundle/configs`` with ``demo.yaml`` layered on top.

Usage (from the repository root)::

    python -m monai_vqvae2.demo --output_dir outputs/demo

The demo data (pseudo-subjects derived from the one MNI152 template brain that nilearn ships) is written once to a
cache folder; see ``bundle/docs/data.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

from monai.bundle import run

from monai_vqvae2.io import atomic_write_json

__all__ = ["run_demo"]

STAGES = ("train", "evaluate", "inference", "prior_top", "prior_bottom", "sample", "quality")
DEFAULT_STAGES = STAGES


def _stage(bundle_dir: Path, configs: list[str], **overrides: Any) -> None:
    config_dir = bundle_dir / "configs"
    run(
        config_file=[str(config_dir / name) for name in configs],
        meta_file=str(config_dir / "metadata.json"),
        logging_file=str(config_dir / "logging.conf"),
        **overrides,
    )


def run_demo(
    output_dir: str | Path = "outputs/demo",
    bundle_dir: str | Path = "bundle",
    stages: tuple[str, ...] = DEFAULT_STAGES,
    **overrides: Any,
) -> dict[str, Any]:
    """Run the demo stages and return the test-split metrics.

    Args:
        output_dir: folder of every output (checkpoints, logs, metrics, figures, reconstructions).
        bundle_dir: the bundle folder holding ``configs/``.
        stages: which of ``"train"``, ``"evaluate"``, ``"inference"``, ``"prior_top"``, ``"prior_bottom"``,
            ``"sample"``, ``"quality"`` to run, in that order.
        overrides: config overrides for every stage (e.g. ``max_epochs=2``).

    Returns:
        the evaluation record written to ``<output_dir>/evaluation/metrics.json`` (empty if not evaluated).
    """
    unknown = set(stages) - set(STAGES)
    if unknown:
        raise ValueError(f"Unknown stages {sorted(unknown)}; choose from {STAGES}.")
    bundle_dir = Path(bundle_dir)
    if not (bundle_dir / "configs" / "demo.yaml").is_file():
        raise FileNotFoundError(
            f"No bundle configs under {bundle_dir}; run from the repository root or pass --bundle_dir."
        )
    output_dir = Path(output_dir)
    overrides = {"output_dir": str(output_dir), **overrides}
    logger = logging.getLogger("monai_vqvae2.demo")
    timings: dict[str, float] = {}
    for stage, configs in (
        ("train", ["common.yaml", "train_autoencoder.yaml", "demo.yaml"]),
        ("evaluate", ["common.yaml", "evaluate.yaml", "demo.yaml"]),
        ("inference", ["common.yaml", "inference.yaml", "demo.yaml"]),
        ("prior_top", ["common.yaml", "train_prior.yaml", "demo.yaml"]),
        ("prior_bottom", ["common.yaml", "train_prior.yaml", "demo.yaml"]),
        ("sample", ["common.yaml", "sample.yaml", "demo.yaml"]),
        ("quality", ["common.yaml", "quality_report.yaml", "demo.yaml"]),
    ):
        if stage not in stages:
            continue
        start = time.perf_counter()
        extra = {}
        if stage == "inference":
            split = json.loads((output_dir / "split.json").read_text())
            extra = {"input_dir": [item["image"] for item in split["test"]], "input_kind": "list"}
        elif stage.startswith("prior_"):
            extra = {"prior_level": stage.removeprefix("prior_")}
        _stage(bundle_dir, configs, **overrides, **extra)
        timings[stage] = time.perf_counter() - start
        logger.info("Demo stage %s finished in %.0f s.", stage, timings[stage])
    metrics_file = output_dir / "evaluation" / "metrics.json"
    record = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    priors = {}
    for level in ("top", "bottom"):
        prior_file = output_dir / f"validation_prior_{level}" / "metrics.json"
        if prior_file.is_file():
            priors[level] = json.loads(prior_file.read_text())["metrics"]
    quality_file = output_dir / "quality" / "quality.json"
    quality = json.loads(quality_file.read_text()) if quality_file.is_file() else {}
    summary = {"timings_s": timings, "evaluation": record, "priors": priors, "quality": _quality_summary(quality)}
    atomic_write_json(output_dir / "demo_summary.json", summary)
    return record


def _quality_summary(quality: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of a ``quality.json``, all positions pooled: each measure for the samples and, as
    ``*_real``, for the real reference (real slices of held-out subjects at the same positions, scored the same way)."""
    if not quality:
        return {}
    overall = quality["overall"]
    summary: dict[str, Any] = {"num_samples": quality["counts"]["samples"]}
    for key, name in (
        ("frechet_distance_encoder", "frechet_distance"),
        ("mmd2_encoder", "mmd2"),
        ("frechet_distance_random_cnn", "frechet_distance_random_cnn"),
        ("intensity_wasserstein", "intensity_wasserstein"),
    ):
        summary[name], summary[f"{name}_real"] = overall[key]["samples"], overall[key]["real"]
    summary["pairwise_ms_ssim_samples"] = overall["pairwise_ms_ssim"]["samples"]["mean"]
    summary["pairwise_ms_ssim_real"] = overall["pairwise_ms_ssim"]["real"]["mean"]
    summary["nearest_training_ssim_median"] = overall["nearest_training_ssim"]["samples"]["median"]
    summary["nearest_training_ssim_median_real"] = overall["nearest_training_ssim"]["real"]["median"]
    summary["num_near_copies"] = overall["near_copies"]["samples"]
    summary["num_near_copies_real"] = overall["near_copies"]["real"]
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", default="outputs/demo", help="where every output goes")
    parser.add_argument("--bundle_dir", default="bundle", help="the bundle folder holding configs/")
    parser.add_argument("--max_epochs", type=int, default=None, help="override the demo's number of epochs")
    parser.add_argument("--stages", nargs="+", default=list(DEFAULT_STAGES), choices=STAGES)
    args = parser.parse_args()
    overrides = {} if args.max_epochs is None else {"max_epochs": args.max_epochs}
    record = run_demo(args.output_dir, args.bundle_dir, tuple(args.stages), **overrides)
    metrics = record.get("metrics", {})
    if metrics:
        print("\nHeld-out test slices of the demo (SSIM on [0, 1] slices; brain = inside the brain mask):")
        print(f"{'':28}{'SSIM':>8}{'brain SSIM':>12}{'PSNR dB':>9}")
        for label, prefix in (
            ("VQ-VAE-2 reconstruction", ""),
            ("reference: all zeros", "reference_zeros_"),
            ("reference: 4x down + up", "reference_downsample4_"),
        ):
            values = [metrics.get(f"{prefix}{name}") for name in ("ssim", "brain_ssim", "psnr")]
            print(
                f"{label:28}"
                + "".join(f"{v:>{w}.3f}" if v is not None else f"{'-':>{w}}" for v, w in zip(values, (8, 12, 9)))
            )
    summary = json.loads((Path(args.output_dir) / "demo_summary.json").read_text())
    for level, prior in summary.get("priors", {}).items():
        print(
            f"{level} prior: {prior['nll_bits']:.3f} bits per code on held-out codes, top-1 accuracy {prior['accuracy']:.3f}"
        )
    quality = summary.get("quality") or {}
    if quality:
        print(
            f"\nQuality of {quality['num_samples']} samples (real: held-out subjects' slices at the same positions, "
            "scored the same way; see quality/report.md):"
        )
        for label, ours, real in (
            ("Frechet distance (encoder features)", "frechet_distance", "frechet_distance_real"),
            (
                "Frechet distance (random-CNN features)",
                "frechet_distance_random_cnn",
                "frechet_distance_random_cnn_real",
            ),
            ("in-brain intensity Wasserstein", "intensity_wasserstein", "intensity_wasserstein_real"),
            ("mean pairwise MS-SSIM", "pairwise_ms_ssim_samples", "pairwise_ms_ssim_real"),
            (
                "median SSIM to nearest training slice",
                "nearest_training_ssim_median",
                "nearest_training_ssim_median_real",
            ),
        ):
            value, reference = (quality.get(key) for key in (ours, real))
            print(
                f"  {label:<40}{'-' if value is None else f'{value:.3g}':>9}   "
                f"real: {'-' if reference is None else f'{reference:.3g}'}"
            )
        print(
            f"  near-copies of training slices: {quality['num_near_copies']}   real: {quality['num_near_copies_real']}"
        )
    folders = ", ".join(sorted(f"{p.name}/" for p in Path(args.output_dir).iterdir() if p.is_dir()))
    print(f"\nOutputs in {Path(args.output_dir).resolve()}: {folders}")


if __name__ == "__main__":
    main()
