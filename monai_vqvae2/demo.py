"""The main job on the embedded demo data: train the VQ-VAE-2, evaluate it on held-out slices, reconstruct a held-out
volume, train the top and bottom PixelCNN priors, sample new slices and report their quality — each stage a
``monai.bundle`` run of the bundle's stage configs with ``demo.yaml`` layered on top. The bundle is the one
installed with the package (:func:`monai_vqvae2.bundle_path`) unless ``--bundle_dir`` names another.

Usage (from any folder, after ``pip install "monai-vqvae2[demo]"``)::

    python -m monai_vqvae2.demo --output_dir outputs/demo

The demo data (pseudo-subjects derived from the one MNI152 template brain that nilearn ships) is written once to a
cache folder; see ``bundle/docs/data.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from monai_vqvae2.apps import check_demo_dependencies
from monai_vqvae2.bundle import bundle_path
from monai_vqvae2.io import atomic_write
from monai_vqvae2.pipeline import SLICE_STAGES, VOLUMES_OVERLAY, format_summary, parse_override, run_pipeline

__all__ = ["export_figures", "run_demo"]

STAGES = ("train", "evaluate", "inference", "codes", "prior_top", "prior_bottom", "sample", "quality")
DEFAULT_STAGES = STAGES
#: the stages of the whole-volume demo (``--volumes``)
VOLUME_STAGES = tuple(stage for stage in STAGES if stage not in SLICE_STAGES)


def run_demo(
    output_dir: str | Path = "outputs/demo",
    bundle_dir: str | Path | None = None,
    stages: tuple[str, ...] | None = None,
    volumes: bool = False,
    **overrides: Any,
) -> dict[str, Any]:
    """Run the demo stages and return the test-split metrics.

    With ``volumes`` the demo generates whole volumes instead of slices: ``volumes.yaml`` and then
    ``demo_volumes.yaml`` are layered over ``demo.yaml`` (64×64×64 volumes of 3 mm voxels, a 3D VQ-VAE-2, volume
    priors, a quality report per plane), and the slice stage ``inference`` is left out.

    Args:
        output_dir: folder of every output (checkpoints, logs, metrics, figures, reconstructions).
        bundle_dir: the bundle folder holding ``configs/``; ``None`` uses the one installed with the package
            (:func:`monai_vqvae2.bundle_path`).
        stages: which of ``"train"``, ``"evaluate"``, ``"inference"``, ``"codes"``, ``"prior_top"``,
            ``"prior_bottom"``, ``"sample"``, ``"quality"`` to run, in that order (``codes`` also runs whenever a
            prior is trained); ``None``: all of them (:data:`VOLUME_STAGES` with ``volumes``).
        volumes: generate whole volumes (NIfTI volumes and their orthogonal mid-slices) instead of slices.
        overrides: config overrides for every stage (e.g. ``max_epochs=2``).

    Returns:
        the evaluation record written to ``<output_dir>/evaluation/metrics.json`` (empty if not evaluated).

    Raises:
        ValueError: an unknown stage, or a slice stage with ``volumes``.
        FileNotFoundError: ``bundle_dir`` has no ``configs/demo.yaml`` (the message names the folder looked at).
        ImportError: the demo data is used and nilearn (the optional ``demo`` extra) is not installed.
    """
    stages = stages if stages is not None else (VOLUME_STAGES if volumes else DEFAULT_STAGES)
    unknown = set(stages) - set(STAGES)
    if unknown:
        raise ValueError(f"Unknown stages {sorted(unknown)}; choose from {STAGES}.")
    bundle_dir = bundle_path() if bundle_dir is None else Path(bundle_dir)
    config_dir = bundle_dir / "configs"
    if not (config_dir / "demo.yaml").is_file():
        raise FileNotFoundError(
            f"No bundle configs under {config_dir.resolve()} (looked for demo.yaml); pass --bundle_dir with the "
            "folder holding configs/, or leave it out to use the bundle installed with the package."
        )
    if overrides.get("dataset_kind", "demo") == "demo":
        check_demo_dependencies()  # fail before any stage runs, not deep inside the first one
    summary = run_pipeline(
        output_dir,
        stages=stages,
        overlays=["demo.yaml", VOLUMES_OVERLAY, "demo_volumes.yaml"] if volumes else ["demo.yaml"],
        bundle_dir=bundle_dir,
        summary_name="demo_summary.json",
        progress=logging.getLogger("monai_vqvae2.demo").info,
        **overrides,
    )
    return summary["evaluation"]


# the README's pictures: what the demo wrote -> the name under --figures_dir, and the stage that writes it
FIGURES = {
    "quality/samples_by_position.png": ("demo_samples.png", "quality"),
    "evaluation/reconstructions_epoch*.png": ("demo_reconstructions.png", "evaluate"),
}
#: figures copied when the run made them: the label pairs of a run with labels (``--override labels=True``)
OPTIONAL_FIGURES = {"quality/label_pairs.png": "demo_label_pairs.png"}
VOLUME_FIGURES = {
    "samples/sample_views.png": ("demo_volume_samples.png", "sample"),
    "evaluation/reconstructions_epoch*.png": ("demo_volume_reconstructions.png", "evaluate"),
}


def export_figures(output_dir: str | Path, figures_dir: str | Path, volumes: bool = False) -> list[Path]:
    """Copy the demo's sample grid (beside real test slices) and its reconstruction figure to ``figures_dir`` under
    stable names, as the README shows them (``docs/images``), and for a run with labels its label pairs figure
    (``demo_label_pairs.png``).

    Args:
        output_dir: a demo run's output folder.
        figures_dir: where the pictures go (created if missing).
        volumes: the run is one of whole volumes (``--volumes``): its sampled volumes' orthogonal views and its
            reconstruction figure.

    Returns:
        the written files.

    Raises:
        FileNotFoundError: a figure the run did not write (the message names the stage that writes it).
    """
    output_dir, figures_dir = Path(output_dir), Path(figures_dir)
    written = []
    for pattern, (name, stage) in (VOLUME_FIGURES if volumes else FIGURES).items():
        found = sorted(output_dir.glob(pattern), key=lambda path: (len(path.name), path.name))
        if not found:
            raise FileNotFoundError(f"{output_dir / pattern} not found: run the demo's '{stage}' stage first.")
        data = found[-1].read_bytes()  # the last epoch's figure
        written.append(atomic_write(figures_dir / name, lambda path, data=data: path.write_bytes(data)))
    for source, name in ({} if volumes else OPTIONAL_FIGURES).items():
        if (output_dir / source).is_file():
            data = (output_dir / source).read_bytes()
            written.append(atomic_write(figures_dir / name, lambda path, data=data: path.write_bytes(data)))
    return written


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", default="outputs/demo", help="where every output goes")
    parser.add_argument(
        "--bundle_dir",
        default=None,
        help="the bundle folder holding configs/ (default: the one installed with the package)",
    )
    parser.add_argument("--max_epochs", type=int, default=None, help="override the demo's number of epochs")
    parser.add_argument("--stages", nargs="+", default=None, choices=STAGES, help="default: every stage of the demo")
    parser.add_argument(
        "--volumes", action="store_true", help="generate whole volumes (3D) instead of slices; no slice stages"
    )
    parser.add_argument(
        "--override", action="append", type=parse_override, default=[], metavar="KEY=VALUE",
        help="a config value for every stage, e.g. image_size=64 or network_def#channels=16 (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--figures_dir", default=None, help="also copy the sample grid and reconstruction figure here (docs/images)"
    )
    args = parser.parse_args(argv)
    overrides = dict(args.override)
    if args.max_epochs is not None:
        overrides["max_epochs"] = args.max_epochs
    stages = tuple(args.stages) if args.stages else None
    run_demo(args.output_dir, args.bundle_dir, stages, volumes=args.volumes, **overrides)
    summary = json.loads((Path(args.output_dir) / "demo_summary.json").read_text())
    print("\n" + format_summary(summary, args.output_dir))
    if args.figures_dir is not None:
        for path in export_figures(args.output_dir, args.figures_dir, volumes=args.volumes):
            print(f"figure: {path}")


if __name__ == "__main__":
    main()
