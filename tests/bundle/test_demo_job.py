"""The README's main job (`python -m monai_vqvae2.demo`) runs every stage; here on tiny data and sizes."""

from __future__ import annotations

import json
import sys

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from monai_vqvae2.data.codes import read_code_settings
from monai_vqvae2.demo import STAGES, VOLUME_STAGES, export_figures, run_demo
from tests.bundle.conftest import ROOT, TINY_OVERRIDES


def test_demo_job_runs_every_stage(nifti_dataset, tmp_path):
    overrides = {key.lstrip("-"): value for key, value in zip(TINY_OVERRIDES[::2], TINY_OVERRIDES[1::2])}
    overrides = {key: float(value) if "." in value else int(value) for key, value in overrides.items()}
    overrides.update(
        {
            "prior_settings#channels": 8,
            "prior_settings#num_layers": 2,
            "prior_settings#kernel_size": 3,
            "prior_settings#num_heads": 2,
            "prior_settings#top_attention_every": 1,
        }
    )
    output_dir = tmp_path / "demo"
    record = run_demo(
        output_dir,
        ROOT / "bundle",
        dataset_kind="nifti",
        dataset_dir=str(nifti_dataset),
        max_epochs=1,
        stages=STAGES,
        prior_max_epochs=1,
        num_samples=4,
        **overrides,
    )
    assert record["split"] == "test" and 0 < record["metrics"]["ssim"] <= 1
    summary = json.loads((output_dir / "demo_summary.json").read_text())
    assert set(summary["timings_s"]) == set(STAGES)
    assert set(summary["priors"]) == {"top", "bottom"} and summary["priors"]["bottom"]["nll_bits"] > 0
    assert len(list((output_dir / "samples").glob("sample_*.nii.gz"))) == 12  # 4 at each of 3 slice positions
    quality = summary["quality"]
    assert (
        quality["num_samples"] == 12
        and quality["frechet_distance"] >= 0
        and 0 < quality["pairwise_ms_ssim_samples"] <= 1
    )
    assert (output_dir / "quality" / "report.md").is_file()
    test_volumes = [item["image"] for item in json.loads((output_dir / "split.json").read_text())["test"]]
    written = sorted((output_dir / "inference").glob("*_recon.nii.gz"))
    assert len(written) == len(test_volumes) >= 1
    assert nib.load(written[0]).shape == nib.load(test_volumes[0]).shape

    # the README's pictures, copied under stable names
    figures = export_figures(output_dir, tmp_path / "images")
    assert [path.name for path in figures] == ["demo_samples.png", "demo_reconstructions.png"]
    assert figures[0].read_bytes() == (output_dir / "quality" / "samples_by_position.png").read_bytes()
    assert figures[1].read_bytes() == (output_dir / "evaluation" / "reconstructions_epoch1.png").read_bytes()
    with pytest.raises(FileNotFoundError, match=r"quality.samples_by_position.png not found: run the demo's 'quality'"):
        export_figures(tmp_path / "images", tmp_path / "nowhere")
    # a run with labels also has its label pairs figure
    (output_dir / "quality" / "label_pairs.png").write_bytes(b"pairs")
    figures = export_figures(output_dir, tmp_path / "labelled")
    assert [path.name for path in figures][-1] == "demo_label_pairs.png" and figures[-1].read_bytes() == b"pairs"


def test_demo_rejects_unknown_stages_and_missing_bundle(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown stages \[.sampling.\]"):
        run_demo(tmp_path, ROOT / "bundle", stages=("train", "sampling"))
    with pytest.raises(FileNotFoundError, match=r"No bundle configs under \S*nowhere.configs \(looked for demo.yaml\)"):
        run_demo(tmp_path, tmp_path / "nowhere")


def test_demo_without_nilearn_says_how_to_install_it_before_any_stage(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "nilearn", None)  # as if nilearn were not installed
    with pytest.raises(ImportError, match=r'nilearn is not installed: pip install "monai-vqvae2\[demo\]"'):
        run_demo(tmp_path / "demo")  # the bundle installed with the package, the demo data
    assert not (tmp_path / "demo").exists()


def test_volume_demo_trains_and_samples_whole_volumes(nifti_dataset, tmp_path):
    output_dir = tmp_path / "demo3d"
    tiny = {
        "volume_size": [32, 32, 32],
        "voxel_size": 1.0,
        "network_def#channels": 8,
        "network_def#num_res_layers": 1,
        "network_def#num_res_channels": 4,
        "network_def#num_embeddings": 16,
        "network_def#embedding_dim": 4,
        "prior_settings#channels": 8,
        "prior_settings#num_layers": 2,
        "prior_settings#kernel_size": 3,
        "prior_settings#num_heads": 2,
        "prior_settings#top_attention_every": 1,
    }
    record = run_demo(
        output_dir,
        ROOT / "bundle",
        volumes=True,
        dataset_kind="nifti",
        dataset_dir=str(nifti_dataset),
        max_epochs=1,
        prior_max_epochs=1,
        num_samples=2,
        **tiny,
    )
    assert record["split"] == "test" and 0 < record["metrics"]["ssim"] <= 1  # 3D SSIM of the test volume
    assert 0 <= record["metrics"]["top_only_brain_ssim"] <= 1 and record["metrics"]["brain_perplexity_top"] >= 1
    summary = json.loads((output_dir / "demo_summary.json").read_text())
    assert VOLUME_STAGES == ("train", "evaluate", "codes", "prior_top", "prior_bottom", "sample", "quality")
    assert set(summary["timings_s"]) == set(VOLUME_STAGES)
    assert summary["priors"]["top"]["nll_bits"] > 0 and summary["priors"]["bottom"]["nll_bits"] > 0
    codes = read_code_settings(output_dir / "codes" / "train.npz")
    assert codes["volume_grid"] == {"volume_size": [32, 32, 32], "voxel_size": [1.0, 1.0, 1.0]}
    with np.load(output_dir / "codes" / "train.npz") as stored:
        assert stored["level0"].shape[1:] == (4, 4, 4) and stored["level1"].shape[1:] == (8, 8, 8)
    samples = sorted((output_dir / "samples").glob("sample_*.nii.gz"))
    assert len(samples) == 2
    volume = nib.load(samples[0])
    assert volume.shape == (32, 32, 32) and nib.aff2axcodes(volume.affine) == ("R", "A", "S")
    assert volume.header.get_zooms() == (1.0, 1.0, 1.0)
    quality = json.loads((output_dir / "quality" / "quality.json").read_text())
    assert quality["kind"] == "volumes" and set(quality["planes"]) == {"axial", "coronal", "sagittal"}
    axial = summary["quality"]["planes"]["axial"]
    assert axial["frechet_distance_random_cnn"] >= 0 and axial["frechet_distance_random_cnn_real"] >= 0
    assert 0 < axial["nearest_training_ssim_median_real"] <= 1 and (output_dir / "quality" / "volumes.png").is_file()
    figures = export_figures(output_dir, tmp_path / "images", volumes=True)
    assert [path.name for path in figures] == ["demo_volume_samples.png", "demo_volume_reconstructions.png"]
    assert np.asarray(Image.open(figures[0])).shape == (2 * 32, 3 * 32)  # two volumes, three views each
    with pytest.raises(ValueError, match=r"The stages \['inference'\] work on slices; with volumes.yaml run"):
        run_demo(tmp_path / "other", ROOT / "bundle", stages=("train", "inference"), volumes=True)
