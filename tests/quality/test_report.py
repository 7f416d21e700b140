from __future__ import annotations

import json

import pytest
import torch

from monai_vqvae2.inferers import write_samples
from monai_vqvae2.pipeline import quality_summary
from monai_vqvae2.quality.features import RandomCNNFeatures
from monai_vqvae2.quality.plan import REFERENCE
from monai_vqvae2.quality.report import quality_report
from tests.quality.conftest import flat_brains, textures, tiny_vqvae
from tests.tiny import single_thread  # noqa: F401 (autouse fixture)


def with_positions(images: torch.Tensor, positions: list[float]) -> list[dict]:
    return [{"image": image, "slice_position": position} for image, position in zip(images, positions)]


def test_quality_report_writes_json_markdown_and_figures(tmp_path):
    vqvae = tiny_vqvae()
    training = textures(30, seed=4)
    real = with_positions(textures(12, seed=5), [index / 11 for index in range(12)])
    samples = torch.cat([training[[3]], textures(5, seed=6)])
    positions = [0.25, 0.25, 0.5, 0.5, 0.75, 0.75]
    report = quality_report(vqvae, real, samples, training, tmp_path / "quality", sample_positions=positions)

    files = sorted(p.name for p in (tmp_path / "quality").iterdir())
    assert files == ["nearest_neighbours.png", "quality.json", "report.md", "samples_by_position.png"]
    assert json.loads((tmp_path / "quality" / "quality.json").read_text()) == report
    # the real reference: as many real test slices as samples (no window: from anywhere), the whole training base
    assert report["counts"] == {"samples": 6, "real_reference": 6, "real_test": 12, "training_base": 30, "training": 30}
    assert report["reference"] == REFERENCE and report["by_position"] == []
    assert report["feature_spaces"]["encoder"]["dimension"] == 16
    random_cnn = report["feature_spaces"]["random_cnn"]
    assert random_cnn["dimension"] == 1024 and random_cnn["digest"] == RandomCNNFeatures(seed=0).digest
    overall = report["overall"]
    assert overall["counts"] == {"samples": 6, "real": 6, "training_base": 30}
    for key in ("frechet_distance_encoder", "mmd2_encoder", "frechet_distance_random_cnn", "intensity_wasserstein"):
        assert overall[key]["samples"] > 0 and overall[key]["real"] > 0, key
    assert overall["pairwise_ms_ssim"]["num_pairs"] == 15
    assert set(overall["pairwise_ms_ssim"]["real"]) == {"min", "p5", "p25", "median", "p75", "p95", "max", "mean"}
    assert overall["near_copies"] == {"samples": 1, "real": 0}
    assert overall["nearest_training_ssim"]["samples"]["max"] == pytest.approx(1.0, abs=1e-6)
    assert overall["nearest_training_ssim"]["real"]["max"] < 0.95
    memorisation = report["memorisation"]
    assert memorisation["num_near_copies"] == 1 and len(memorisation["nearest"]) == 6
    assert memorisation["near_copies"][0]["sample"] == 0 and memorisation["near_copies"][0]["training_index"] == 3
    markdown = (tmp_path / "quality" / "report.md").read_text()
    assert REFERENCE in markdown and "| measure | samples | real reference | how to read |" in markdown
    assert "| near-copies (SSIM ≥ 0.95) | 1 / 6 | 0 / 6 |" in markdown
    fid = overall["frechet_distance_random_cnn"]
    assert f"| Fréchet distance, random-CNN features | {fid['samples']:.4g} | {fid['real']:.4g} |" in markdown
    assert "(nearest_neighbours.png)" in markdown and "(samples_by_position.png)" in markdown
    summary = quality_summary(report)  # the demo's headline numbers read the same keys
    assert summary["frechet_distance"] == overall["frechet_distance_encoder"]["samples"]
    assert summary["frechet_distance_real"] == overall["frechet_distance_encoder"]["real"]
    assert (summary["num_near_copies"], summary["num_near_copies_real"]) == (1, 0)

    again = quality_report(vqvae, real, samples, training, tmp_path / "again", sample_positions=positions)
    assert again == report  # seeded: the same inputs give the same numbers


def test_a_generator_that_draws_held_out_slices_lands_exactly_on_the_real_reference(tmp_path):
    vqvae = tiny_vqvae()
    held_out = textures(6, seed=5)
    report = quality_report(vqvae, held_out, held_out.clone(), textures(20, seed=4), tmp_path)
    overall = report["overall"]
    for key, value in overall.items():
        if key not in ("counts", "pairwise_ms_ssim"):
            assert value["samples"] == value["real"], key
    assert overall["pairwise_ms_ssim"]["samples"] == overall["pairwise_ms_ssim"]["real"]


def test_the_report_measures_the_known_in_brain_intensity_shift(tmp_path):
    training = flat_brains([0.25] * 6, sizes=[10, 12, 14, 16, 18, 20])
    real = flat_brains([0.25] * 4, sizes=[11, 13, 15, 17])
    samples = flat_brains([0.75] * 4, sizes=[11, 13, 15, 17])
    report = quality_report(tiny_vqvae(), real, samples, training, tmp_path, num_figure_images=2)
    assert report["overall"]["intensity_wasserstein"] == {"samples": 0.5, "real": 0.0}


def test_per_position_measures_use_the_real_and_training_slices_near_each_position(tmp_path):
    vqvae = tiny_vqvae()
    real = with_positions(textures(12, seed=5), [index / 11 for index in range(12)])
    training = with_positions(textures(20, seed=4), [(index % 10) / 9 for index in range(20)])
    samples, positions = textures(6, seed=6), [0.25, 0.25, 0.5, 0.5, 0.75, 0.75]
    report = quality_report(vqvae, real, samples, training, tmp_path, sample_positions=positions, position_window=0.1)
    # real 2/11, 3/11 are within 0.1 of 0.25; 5/11, 6/11 of 0.5; 8/11, 9/11 of 0.75; training 2/9 and 3/9 of 0.25,
    # 4/9 and 5/9 of 0.5, 6/9 and 7/9 of 0.75, each position twice
    assert report["selection"] == {
        "position_window": 0.1,
        "real_test_in_windows": 6,
        "training_in_windows": 12,
        "max_base_slices": 2000,
    }
    assert [entry["position"] for entry in report["by_position"]] == [0.25, 0.5, 0.75]
    for entry in report["by_position"]:
        assert entry["counts"] == {"samples": 2, "real": 2, "training_base": 4}
        assert entry["pairwise_ms_ssim"]["num_pairs"] == 1
        assert entry["frechet_distance_random_cnn"]["samples"] > 0 and entry["frechet_distance_random_cnn"]["real"] > 0
    assert report["overall"]["counts"] == {"samples": 6, "real": 6, "training_base": 12}
    markdown = (tmp_path / "report.md").read_text()
    assert "### Position 0.5 (±0.1): 2 samples, 2 real reference slices, 4 training base slices" in markdown

    capped = quality_report(
        vqvae, real, samples, training, tmp_path, sample_positions=positions, position_window=0.1, max_base_slices=3
    )
    assert [entry["counts"]["training_base"] for entry in capped["by_position"]] == [3, 3, 3]

    # within 0.06: one real slice near 0.25 (3/11) and near 0.75 (8/11), two near 0.5: those positions are skipped
    narrow = quality_report(vqvae, real, samples, training, tmp_path, sample_positions=positions, position_window=0.06)
    skipped = [entry.get("skipped") for entry in narrow["by_position"]]
    assert skipped == ["fewer than 2 slices in: real", None, "fewer than 2 slices in: real"]
    assert narrow["overall"]["counts"] == {"samples": 6, "real": 4, "training_base": 8}
    assert "Not computed: fewer than 2 slices in: real." in (tmp_path / "report.md").read_text()


def test_position_window_errors_say_what_is_missing(tmp_path):
    vqvae = tiny_vqvae()
    real = with_positions(textures(12, seed=5), [index / 11 for index in range(12)])
    training = with_positions(textures(8, seed=4), [index / 7 for index in range(8)])
    samples, positions = textures(4, seed=6), [0.25, 0.5, 0.5, 0.75]
    arguments = {"sample_positions": positions, "position_window": 0.001}
    with pytest.raises(ValueError, match=r"`position_window` 0.001 keeps no real test slice \(of 12\) near the sample"):
        quality_report(vqvae, real, samples, training, tmp_path, **arguments)
    arguments["position_window"] = 0.1
    with pytest.raises(ValueError, match=r"needs slice positions, but the real test slices' are unknown"):
        quality_report(vqvae, samples, samples, training, tmp_path, **arguments)
    with pytest.raises(ValueError, match=r"needs slice positions, but the training slices' are unknown"):
        quality_report(vqvae, real, samples, samples, tmp_path, **arguments)
    with pytest.raises(ValueError, match=r"needs slice positions, but the samples' are unknown"):
        quality_report(vqvae, real, samples, training, tmp_path, position_window=0.1)


def test_quality_report_reads_a_samples_folder_and_skips_the_position_figure_without_positions(tmp_path):
    vqvae = tiny_vqvae()
    samples = textures(4, seed=7)
    write_samples(samples, tmp_path / "samples", settings={"seed": 0})
    report = quality_report(
        vqvae, textures(6, seed=8), tmp_path / "samples", textures(10, seed=9), tmp_path / "quality", max_pairs=3
    )
    assert report["figures"]["by_position"] is None and report["sample_positions"] is None
    assert report["overall"]["pairwise_ms_ssim"]["num_pairs"] == 3 and report["counts"]["samples"] == 4
    assert report["counts"]["real_reference"] == 4  # as many real slices as samples
    assert not (tmp_path / "quality" / "samples_by_position.png").exists()
    assert "not drawn" in (tmp_path / "quality" / "report.md").read_text()


def test_quality_report_checks_its_arguments(tmp_path):
    vqvae = tiny_vqvae()
    images = textures(4, seed=0)
    with pytest.raises(ValueError, match=r"`sample_positions` needs one position per sample \(4\), got 2"):
        quality_report(vqvae, images, images, images, tmp_path, sample_positions=[0.1, 0.2])
    with pytest.raises(ValueError, match=r"`near_copy_threshold` must be in \(0, 1\], got 1.5"):
        quality_report(vqvae, images, images, images, tmp_path, near_copy_threshold=1.5)
    with pytest.raises(ValueError, match=r"`max_base_slices` must be >= 2 or None, got 1"):
        quality_report(vqvae, images, images, images, tmp_path, max_base_slices=1)
    with pytest.raises(ValueError, match=r"`samples` needs at least 2 slices, got 1"):
        quality_report(vqvae, images, images[:1], images, tmp_path)
    with pytest.raises(TypeError, match=r"`training\[0\]` must be a dict with an 'image', got Tensor"):
        quality_report(vqvae, images, images, list(images), tmp_path)
    with pytest.raises(FileNotFoundError, match=r"No manifest.json in the samples folder"):
        quality_report(vqvae, images, tmp_path, images, tmp_path)
