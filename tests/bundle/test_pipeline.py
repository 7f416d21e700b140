"""`python -m monai_vqvae2.pipeline`: every stage on your own data in one command (here tiny NIfTI data and sizes)."""

from __future__ import annotations

import json

import pytest

from monai_vqvae2.pipeline import collect_results, format_summary, main, run_pipeline
from tests.bundle.conftest import TINY_OVERRIDES


def test_the_pipeline_runs_its_stages_in_order_with_a_line_per_stage_and_a_summary(nifti_dataset, tmp_path, capsys):
    output_dir = tmp_path / "run"
    tiny = [f"{key.lstrip('-')}={value}" for key, value in zip(TINY_OVERRIDES[::2], TINY_OVERRIDES[1::2])]
    argv = ["--dataset_dir", str(nifti_dataset), "--output_dir", str(output_dir), "--stages", "evaluate", "train"]
    main([*argv, *(item for setting in tiny for item in ("--override", setting)), "--override", "max_epochs=1"])
    printed = capsys.readouterr().out
    assert "[1/2] train: train_autoencoder.yaml ..." in printed and "[2/2] evaluate done in" in printed
    assert printed.index("[1/2] train") < printed.index("[2/2] evaluate")  # the order of STAGES, not of --stages
    assert "VQ-VAE-2 reconstruction" in printed and "Stages: train" in printed
    summary = json.loads((output_dir / "pipeline_summary.json").read_text())
    assert sorted(summary["timings_s"]) == ["evaluate", "train"]
    assert summary["evaluation"]["split"] == "test" and 0 < summary["evaluation"]["metrics"]["ssim"] <= 1
    assert (output_dir / "models" / "model.pt").is_file() and summary["priors"] == {} and summary["quality"] == {}
    split = json.loads((output_dir / "split.json").read_text())
    images = [item["image"] for part in split.values() if isinstance(part, list) for item in part]
    assert len(images) == 6 and all(image.startswith(str(nifti_dataset)) for image in images)  # the user's data


def test_the_pipeline_names_unknown_stages_and_levels(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown stages \['sampling'\]"):
        run_pipeline(tmp_path, tmp_path, stages=["train", "sampling"])
    with pytest.raises(ValueError, match=r"Unknown stages \['prior_middle'\]; this network's priors are"):
        run_pipeline(tmp_path, tmp_path, stages=["prior_middle"])
    with pytest.raises(FileNotFoundError, match="No bundle configs"):
        run_pipeline(tmp_path, tmp_path, bundle_dir=tmp_path / "nowhere")
    assert list(tmp_path.iterdir()) == []  # nothing ran, nothing was written


def test_summary_reports_the_prior_epoch_that_was_kept(tmp_path):
    """The priors' figures are those of the best epoch (the checkpoint sampling uses), not of the last one."""
    folder = tmp_path / "validation_prior_top"
    folder.mkdir()
    for epoch, bits in ((1, 3.0), (2, 2.5), (3, 2.7), (4, 2.5)):
        record = {"epoch": epoch, "level": "top", "metrics": {"nll_bits": bits, "accuracy": epoch / 10}}
        (folder / f"metrics_epoch{epoch}.json").write_text(json.dumps(record))
    (folder / "metrics.json").write_text((folder / "metrics_epoch4.json").read_text())
    priors = collect_results(tmp_path)["priors"]
    assert priors == {"top": {"nll_bits": 2.5, "accuracy": 0.2, "epoch": 2}}
    assert "top prior: 2.500 bits per code on held-out codes, top-1 accuracy 0.200 (best epoch 2" in format_summary(
        {"priors": priors}, tmp_path
    )
