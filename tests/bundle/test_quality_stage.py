"""A real `python -m monai.bundle run` of quality_report.yaml on a tiny generated NIfTI dataset."""

from __future__ import annotations

import json

import torch
import torch.nn.functional as F
from monai.bundle import ConfigParser

from monai_vqvae2.apps import prepare_split
from monai_vqvae2.data import make_slice_dataset
from monai_vqvae2.inferers import write_samples
from tests.bundle.conftest import CONFIGS, TINY_OVERRIDES, run_bundle


def tiny_network_def() -> torch.nn.Module:
    """common.yaml's ``network_def`` with the tiny test sizes (an untrained model is enough to wire the stage)."""
    tiny = dict(zip([o.lstrip("-") for o in TINY_OVERRIDES[::2]], TINY_OVERRIDES[1::2]))
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "common.yaml"))
    for key, value in tiny.items():
        if key.startswith("network_def#"):
            parser[key] = int(value)
    return parser.get_parsed_content("network_def")


def test_quality_report_stage_flags_copied_training_slices(nifti_dataset, tmp_path):
    output_dir = tmp_path / "run"
    # the split and the slices exactly as the bundle builds them (common.yaml defaults, TINY_OVERRIDES sizes)
    split = prepare_split(nifti_dataset, "nifti", output_dir / "split.json", fractions=(0.8, 0.1, 0.1), seed=0)
    training = make_slice_dataset(split["train"], image_size=32, min_brain_fraction=0.2)
    (output_dir / "models").mkdir(parents=True)
    torch.save(tiny_network_def().state_dict(), output_dir / "models" / "model.pt")
    copies = torch.stack([torch.as_tensor(training[index]["image"]) for index in (2, 9)])
    noise = torch.rand(3, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    others = F.avg_pool2d(noise, 3, stride=1, padding=1, count_include_pad=False)
    positions = [0.3, 0.3, 0.5, 0.5, 0.7]  # as sample.yaml writes them for several slice positions
    write_samples(torch.cat([copies, others]), output_dir / "samples", {"seed": 0}, slice_positions=positions)

    run_bundle(
        ["quality_report.yaml"],
        "--dataset_dir", str(nifti_dataset), "--dataset_kind", "nifti", "--output_dir", str(output_dir),
        *TINY_OVERRIDES,
    )  # fmt: skip

    quality = output_dir / "quality"
    report = json.loads((quality / "quality.json").read_text())
    assert report["counts"]["samples"] == 5 and report["counts"]["training"] == len(training)
    assert report["feature_spaces"]["encoder"]["dimension"] == 16  # 8 channels per level, 2 levels
    assert report["feature_spaces"]["random_cnn"]["dimension"] == 1024
    copied = [(entry["sample"], entry["training_index"]) for entry in report["memorisation"]["near_copies"]]
    assert sorted(copied) == [(0, 2), (1, 9)]
    assert all(entry["ssim"] > 0.999 for entry in report["memorisation"]["near_copies"])
    assert report["memorisation"]["near_copies"][0]["subject"] in {item["subject"] for item in split["train"]}
    assert report["sample_positions"] == positions
    # the config measures per position, with real test and training slices within 0.1 of each
    selection = report["selection"]
    assert selection["position_window"] == 0.1 and selection["max_base_slices"] == 2000
    assert 2 <= selection["real_test_in_windows"] < report["counts"]["real_test"]
    assert report["counts"]["training_base"] == selection["training_in_windows"] < len(training)
    by_position = {entry["position"]: entry for entry in report["by_position"]}
    assert sorted(by_position) == [0.3, 0.5, 0.7]
    for position in (0.3, 0.5):
        counts = by_position[position]["counts"]
        assert counts["samples"] == counts["real"] == 2 and counts["training_base"] >= 2  # a real slice per sample
        for key in ("frechet_distance_encoder", "frechet_distance_random_cnn", "intensity_wasserstein"):
            assert by_position[position][key]["samples"] > 0 and by_position[position][key]["real"] >= 0, key
    assert by_position[0.7]["skipped"] == "fewer than 2 slices in: samples, real"  # one sample there
    overall = report["overall"]
    assert overall["counts"]["samples"] == 5 and overall["counts"]["real"] == 5
    assert overall["near_copies"]["samples"] == 2
    assert report["figures"] == {
        "nearest_neighbours": "nearest_neighbours.png",
        "by_position": "samples_by_position.png",
    }
    for name in ("report.md", "nearest_neighbours.png", "samples_by_position.png"):
        assert (quality / name).is_file(), name
    assert "| measure | samples | real reference | how to read |" in (quality / "report.md").read_text()
    recorded = json.loads((output_dir / "run_quality_report.json").read_text())
    assert recorded["stage"] == "quality_report" and recorded["settings"]["feature_seed"] == 0
