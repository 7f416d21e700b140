"""One command for a whole run on your own data: train the VQ-VAE-2, evaluate it, train the PixelCNN prior of every
level, sample new slices and report their quality — each stage a ``monai.bundle`` run of the bundle's own stage
config, so the pipeline does nothing a user could not do stage by stage.

Usage::

    python -m monai_vqvae2.pipeline --dataset_dir /data/oasis1 --output_dir runs/oasis1
    python -m monai_vqvae2.pipeline --dataset_dir /data/oasis1 --output_dir runs/oasis1 --stages sample quality \\
        --override num_samples=64 --override "slice_position=[0.5]"
    python -m monai_vqvae2.pipeline --dataset_dir /data/oasis1 --output_dir runs/oasis1_3d --volumes

Every output goes under ``output_dir`` (``split.json``, ``models/``, ``evaluation/``, ``samples/``, ``quality/``, ...)
and ``pipeline_summary.json`` sums the run up; nothing is written under ``dataset_dir``.
"""

from __future__ import annotations

import argparse
import ast
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from monai.bundle import ConfigParser, run

from monai_vqvae2.bundle import bundle_path
from monai_vqvae2.io import atomic_write_json
from monai_vqvae2.networks import level_names

__all__ = [
    "DEFAULT_STAGES",
    "SLICE_STAGES",
    "STAGES",
    "VOLUMES_OVERLAY",
    "VOLUME_STAGES",
    "format_summary",
    "run_pipeline",
]

#: the stages in the order they run; ``codes`` encodes the train and validation slices for the priors (it also runs
#: whenever a prior is trained), ``priors`` trains one prior per level, coarsest first
STAGES = ("train", "evaluate", "inference", "codes", "priors", "sample", "quality")
#: what a run on your own data does unless told otherwise (``inference`` reconstructs the test subjects' volumes)
DEFAULT_STAGES = ("train", "evaluate", "codes", "priors", "sample", "quality")
#: the overlay that makes every stage work on whole volumes, and the stages that only work on slices
VOLUMES_OVERLAY = "volumes.yaml"
SLICE_STAGES = ("inference",)
VOLUME_STAGES = tuple(stage for stage in DEFAULT_STAGES if stage not in SLICE_STAGES)
STAGE_CONFIGS = {
    "train": "train_autoencoder.yaml",
    "evaluate": "evaluate.yaml",
    "inference": "inference.json",
    "codes": "extract_codes.yaml",
    "priors": "train_prior.yaml",
    "sample": "sample.yaml",
    "quality": "quality_report.yaml",
}

logger = logging.getLogger(__name__)


def run_pipeline(
    output_dir: str | Path,
    dataset_dir: str | Path | None = None,
    dataset_kind: str | None = None,
    stages: Sequence[str] = DEFAULT_STAGES,
    overlays: Sequence[str] = (),
    bundle_dir: str | Path | None = None,
    summary_name: str = "pipeline_summary.json",
    progress: Callable[[str], None] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Run ``stages`` of the bundle in order and return (and write) the run's summary.

    Args:
        output_dir: folder of every output of the run.
        dataset_dir: the data folder (read only); ``None`` only with ``dataset_kind="demo"``.
        dataset_kind: ``auto`` (discover the layout), ``oasis1``, ``oasis3``, ``png``, ``nifti``, ``list`` or
            ``demo`` (see ``bundle/docs/data.md``); ``None`` keeps the configs' value (``auto``, or an overlay's).
        stages: which of :data:`STAGES` to run (always in the order of :data:`STAGES`); ``prior_<level>`` (e.g.
            ``prior_top``) runs the prior of one level only. Training a prior also runs ``codes`` first (it reuses
            the code files while the autoencoder checkpoint and the slices are unchanged).
        overlays: config files of the bundle layered over every stage config, e.g. ``["demo.yaml"]``;
            ``volumes.yaml`` (:data:`VOLUMES_OVERLAY`) makes the run one of whole volumes (:data:`VOLUME_STAGES`).
        bundle_dir: the bundle folder holding ``configs/``; default: the bundle installed with the package.
        summary_name: file name of the summary written to ``output_dir``.
        progress: called with one line when a stage starts and when it ends (default: the module's logger).
        overrides: config values for every stage, e.g. ``max_epochs=2`` or ``**{"network_def#channels": 64}``.

    Returns:
        the summary: seconds per stage, the test-split metrics of ``evaluate``, the priors' held-out bits per code
        and the quality report's headline numbers (each part empty when its stage has not run).

    Raises:
        ValueError: an unknown stage, or a slice stage (:data:`SLICE_STAGES`) in a run of volumes.
        FileNotFoundError: ``bundle_dir`` holds no stage configs.
    """
    unknown = sorted(s for s in stages if s not in STAGES and not s.startswith("prior_"))
    if unknown:
        raise ValueError(f"Unknown stages {unknown}; choose from {list(STAGES)}.")
    if VOLUMES_OVERLAY in overlays and set(stages) & set(SLICE_STAGES):
        raise ValueError(
            f"The stages {sorted(set(stages) & set(SLICE_STAGES))} work on slices; with {VOLUMES_OVERLAY} run "
            f"{[s for s in STAGES if s not in SLICE_STAGES]}."
        )
    config_dir = Path(bundle_dir if bundle_dir is not None else bundle_path()) / "configs"
    missing = [name for name in (*STAGE_CONFIGS.values(), *overlays) if not (config_dir / name).is_file()]
    if missing:
        raise FileNotFoundError(f"No bundle configs {missing} in '{config_dir}'; pass the bundle folder as bundle_dir.")
    progress = progress or logger.info
    output_dir = Path(output_dir)
    settings = {"output_dir": str(output_dir), **overrides}
    if dataset_kind is not None:
        settings["dataset_kind"] = dataset_kind
    if dataset_dir is not None:
        settings["dataset_dir"] = str(dataset_dir)

    trains_a_prior = any(s == "priors" or s.startswith("prior_") for s in stages)
    steps: list[tuple[str, str, dict[str, Any]]] = []
    for stage in STAGES:
        if stage == "priors":
            levels = [f"prior_{level}" for level in level_names(_num_levels(config_dir, overlays, settings))]
            unknown_levels = sorted(s for s in stages if s.startswith("prior_") and s not in levels)
            if unknown_levels:
                raise ValueError(f"Unknown stages {unknown_levels}; this network's priors are {levels}.")
            chosen = [name for name in levels if "priors" in stages or name in stages]
            steps += [(name, STAGE_CONFIGS[stage], {"prior_level": name.removeprefix("prior_")}) for name in chosen]
        elif stage in stages or (stage == "codes" and trains_a_prior):
            steps.append((stage, STAGE_CONFIGS[stage], {}))
    timings: dict[str, float] = {}
    for number, (name, config, extra) in enumerate(steps, start=1):
        if name == "inference":  # reconstruct the volumes of the held-out test subjects
            split = json.loads((output_dir / "split.json").read_text())
            extra = {"input_dir": [item["image"] for item in split["test"]], "input_kind": "list"}
        progress(f"[{number}/{len(steps)}] {name}: {config} ...")
        start = time.perf_counter()
        run(
            config_file=[str(config_dir / config), *(str(config_dir / overlay) for overlay in overlays)],
            meta_file=str(config_dir / "metadata.json"),
            logging_file=str(config_dir / "logging.conf"),
            **settings,
            **extra,
        )
        timings[name] = time.perf_counter() - start
        progress(f"[{number}/{len(steps)}] {name} done in {timings[name]:.0f} s")
    summary = {"timings_s": timings, **collect_results(output_dir)}
    atomic_write_json(output_dir / summary_name, summary)
    return summary


def _num_levels(config_dir: Path, overlays: Sequence[str], settings: dict[str, Any]) -> int:
    parser = ConfigParser()
    parser.read_config([str(config_dir / STAGE_CONFIGS["train"]), *(str(config_dir / o) for o in overlays)])
    parser.update({k: v for k, v in settings.items() if k.startswith("network_def")})
    return int(parser.get_parsed_content("network_def#num_levels"))


def collect_results(output_dir: str | Path) -> dict[str, Any]:
    """The results a run left in ``output_dir``: test-split metrics, priors' held-out metrics, quality headline."""
    output_dir = Path(output_dir)
    metrics_file = output_dir / "evaluation" / "metrics.json"
    evaluation = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    priors = {}
    for folder in sorted(output_dir.glob("validation_prior_*/")):
        # the epoch whose prior the stage kept as models/prior_<level>/model.pt (lowest held-out bits, earliest on a
        # tie), which is the one sampling uses; not the last epoch's
        records = [json.loads(path.read_text()) for path in folder.glob("metrics_epoch*.json")]
        if records:
            best = min(records, key=lambda record: (record["metrics"]["nll_bits"], record["epoch"]))
            priors[folder.name.removeprefix("validation_prior_")] = {**best["metrics"], "epoch": best["epoch"]}
    quality_file = output_dir / "quality" / "quality.json"
    quality = json.loads(quality_file.read_text()) if quality_file.is_file() else {}
    return {"evaluation": evaluation, "priors": priors, "quality": quality_summary(quality)}


def quality_summary(quality: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of a ``quality.json``, all positions pooled: each measure for the samples and, as
    ``*_real``, for the real reference (real slices of held-out subjects at the same positions, scored the same way)."""
    if not quality:
        return {}
    if quality.get("kind") == "volumes":  # per plane, from the slices of every volume
        return {
            "num_samples": quality["num_volumes"]["samples"],
            "planes": {plane: _headline(measures) for plane, measures in quality["planes"].items()},
        }
    summary = {"num_samples": quality["counts"]["samples"], **_headline(quality["overall"])}
    agreement = quality.get("label_agreement")
    if agreement:
        summary["label_agreement"] = agreement["samples"]["per_class"]
        summary["label_agreement_real"] = agreement["real"]["per_class"]
    return summary


def _headline(overall: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers of one comparison: each measure for the samples and, as ``*_real``, the real reference."""
    summary: dict[str, Any] = {}
    for key, name in (
        ("frechet_distance_encoder", "frechet_distance"),
        ("mmd2_encoder", "mmd2"),
        ("frechet_distance_random_cnn", "frechet_distance_random_cnn"),
        ("intensity_wasserstein", "intensity_wasserstein"),
    ):
        if key in overall:  # a volume report has no encoder features
            summary[name], summary[f"{name}_real"] = overall[key]["samples"], overall[key]["real"]
    summary["pairwise_ms_ssim_samples"] = overall["pairwise_ms_ssim"]["samples"]["mean"]
    summary["pairwise_ms_ssim_real"] = overall["pairwise_ms_ssim"]["real"]["mean"]
    summary["nearest_training_ssim_median"] = overall["nearest_training_ssim"]["samples"]["median"]
    summary["nearest_training_ssim_median_real"] = overall["nearest_training_ssim"]["real"]["median"]
    summary["num_near_copies"] = overall["near_copies"]["samples"]
    summary["num_near_copies_real"] = overall["near_copies"]["real"]
    return summary


def format_summary(summary: dict[str, Any], output_dir: str | Path) -> str:
    """A run's summary as the few lines printed at the end of the command."""
    lines = []
    timings = summary.get("timings_s", {})
    if timings:
        lines.append("Stages: " + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timings.items()))
    metrics = summary.get("evaluation", {}).get("metrics", {})
    if metrics:
        lines += [
            "",
            "Held-out test slices (SSIM on [0, 1] slices; brain = inside the brain mask):",
            f"{'':28}{'SSIM':>8}{'brain SSIM':>12}{'PSNR dB':>9}",
        ]
        for label, prefix in (
            ("VQ-VAE-2 reconstruction", ""),
            ("reference: all zeros", "reference_zeros_"),
            ("reference: 4x down + up", "reference_downsample4_"),
        ):
            values = [metrics.get(f"{prefix}{name}") for name in ("ssim", "brain_ssim", "psnr")]
            lines.append(
                f"{label:28}"
                + "".join(f"{v:>{w}.3f}" if v is not None else f"{'-':>{w}}" for v, w in zip(values, (8, 12, 9)))
            )
        if metrics.get("top_only_brain_ssim") is not None:
            lines.append(
                f"{'top codes alone':28}{metrics['top_only_ssim']:>8.3f}{metrics['top_only_brain_ssim']:>12.3f}"
            )
    for level, prior in summary.get("priors", {}).items():
        lines.append(
            f"{level} prior: {prior['nll_bits']:.3f} bits per code on held-out codes, "
            f"top-1 accuracy {prior['accuracy']:.3f} (best epoch {prior['epoch']}, the checkpoint sampled)"
        )
    quality = summary.get("quality") or {}
    if quality.get("planes"):
        lines += ["", f"Quality of {quality['num_samples']} sampled volumes, per plane (samples / real held-out):"]
        for plane, headline in quality["planes"].items():
            lines.append(
                f"  {plane:<9} FD random CNN {headline['frechet_distance_random_cnn']:.3g} / "
                f"{headline['frechet_distance_random_cnn_real']:.3g}, pairwise MS-SSIM "
                f"{headline['pairwise_ms_ssim_samples']:.3f} / {headline['pairwise_ms_ssim_real']:.3f}, nearest "
                f"training SSIM {headline['nearest_training_ssim_median']:.3f} / "
                f"{headline['nearest_training_ssim_median_real']:.3f}, near-copies {headline['num_near_copies']} / "
                f"{headline['num_near_copies_real']}"
            )
    elif quality:
        lines += [
            "",
            (
                f"Quality of {quality['num_samples']} samples (real: held-out subjects' slices at the same "
                "positions, scored the same way; see quality/report.md):"
            ),
        ]
        for label, key in (
            ("Frechet distance (encoder features)", "frechet_distance"),
            ("Frechet distance (random-CNN features)", "frechet_distance_random_cnn"),
            ("in-brain intensity Wasserstein", "intensity_wasserstein"),
            ("mean pairwise MS-SSIM", "pairwise_ms_ssim_samples"),
            ("median SSIM to nearest training slice", "nearest_training_ssim_median"),
        ):
            value = quality.get(key)
            reference = quality.get(key.removesuffix("_samples") + "_real")
            lines.append(
                f"  {label:<40}{'-' if value is None else f'{value:.3g}':>9}   "
                f"real: {'-' if reference is None else f'{reference:.3g}'}"
            )
        lines.append(
            f"  near-copies of training slices: {quality['num_near_copies']}   real: {quality['num_near_copies_real']}"
        )
        if quality.get("label_agreement"):
            pairs = ", ".join(
                f"{name} {value:.3f} / {quality['label_agreement_real'][name]:.3f}"
                for name, value in quality["label_agreement"].items()
            )
            lines.append(f"  label agreement, Dice per class (samples / real): {pairs}")
    output_dir = Path(output_dir)
    if output_dir.is_dir():
        folders = ", ".join(sorted(f"{p.name}/" for p in output_dir.iterdir() if p.is_dir()))
        lines += ["", f"Outputs in {output_dir.resolve()}: {folders}"]
    return "\n".join(lines)


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` from the command line; the value is read as a Python literal when it is one (``2``, ``0.5``,
    ``[0.3, 0.7]``, ``None``), else kept as a string."""
    key, separator, value = text.partition("=")
    if not separator or not key:
        raise argparse.ArgumentTypeError(f"--override expects key=value, got '{text}'.")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset_dir", required=True, help="your data folder (read, never written)")
    parser.add_argument("--dataset_kind", default="auto", help="auto, oasis1, oasis3, png, nifti or list")
    parser.add_argument("--output_dir", required=True, help="where every output of the run goes")
    parser.add_argument("--stages", nargs="+", default=None, choices=STAGES, help="default: every stage of the run")
    parser.add_argument(
        "--volumes", action="store_true", help=f"whole volumes instead of slices ({VOLUMES_OVERLAY}; no slice stages)"
    )
    parser.add_argument("--bundle_dir", default=None, help="a bundle folder holding configs/ (default: installed)")
    parser.add_argument(
        "--override", action="append", type=parse_override, default=[], metavar="KEY=VALUE",
        help="a config value for every stage, e.g. max_epochs=50 or network_def#channels=64 (repeatable)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    summary = run_pipeline(
        args.output_dir,
        args.dataset_dir,
        args.dataset_kind,
        stages=args.stages or (VOLUME_STAGES if args.volumes else DEFAULT_STAGES),
        overlays=[VOLUMES_OVERLAY] if args.volumes else [],
        bundle_dir=args.bundle_dir,
        progress=lambda line: print(line, flush=True),
        **dict(args.override),
    )
    print("\n" + format_summary(summary, args.output_dir))


if __name__ == "__main__":
    main()
