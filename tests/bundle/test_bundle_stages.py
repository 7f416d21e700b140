"""Real `python -m monai.bundle run` runs of the bundle's stages on a tiny generated NIfTI dataset."""

from __future__ import annotations

import json
import shutil
from importlib import metadata

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser, ckpt_export, load, verify_metadata, verify_net_in_out

from monai_vqvae2.networks import VQVAE2Reconstructor
from monai_vqvae2.networks.pixelcnn_blocks import principal_components
from tests.bundle.conftest import CONFIGS, SCHEMA, TINY_OVERRIDES, run_bundle

TRAIN = ["train_autoencoder.yaml"]


def data_overrides(dataset, output_dir, *extra):
    return ["--dataset_dir", str(dataset), "--dataset_kind", "nifti", "--output_dir", str(output_dir), *extra]


@pytest.fixture(scope="module")
def trained_run(nifti_dataset, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("run")
    run_bundle(TRAIN, *data_overrides(nifti_dataset, output_dir, "--max_epochs", "2", *TINY_OVERRIDES))
    return output_dir


def test_train_writes_checkpoints_metrics_figures_and_provenance(trained_run):
    models = trained_run / "models"
    assert sorted(p.name for p in models.iterdir()) == ["latest.pt", "model.pt"]
    latest = torch.load(models / "latest.pt", weights_only=True)
    assert set(latest) == {"network", "optimizer", "lr_scheduler", "trainer", "checkpointer"}
    assert latest["trainer"]["max_epochs"] == 2 and latest["lr_scheduler"]["last_epoch"] == 2
    best = torch.load(models / "model.pt", weights_only=True)
    assert "network.quantizers.0.embedding.weight" in best
    assert bool(best["network.quantizers.1.initialized"])
    split = json.loads((trained_run / "split.json").read_text())
    subjects = [{item["subject"] for item in split[name]} for name in ("train", "validation", "test")]
    assert sum(map(len, subjects)) == 6 and not (subjects[0] & subjects[1] or subjects[0] & subjects[2])
    for epoch in (1, 2):
        record = json.loads((trained_run / "validation" / f"metrics_epoch{epoch}.json").read_text())
        metrics = record["metrics"]
        assert record["epoch"] == epoch and record["split"] == "validation"
        assert 0 < metrics["ssim"] <= 1 and 0 < metrics["brain_ssim"] <= 1 and metrics["psnr"] > 0
        assert 0 < metrics["code_usage_top"] <= 1 and 0 < metrics["code_usage_bottom"] <= 1
        assert metrics["code_collapsed_top"] == metrics["code_collapsed_bottom"] == 0.0
        assert (trained_run / "validation" / f"reconstructions_epoch{epoch}.png").is_file()
    assert latest["checkpointer"]["best_epoch"] in (1, 2)
    assert list((trained_run / "logs").glob("events.out.tfevents.*"))
    provenance = json.loads((trained_run / "run_train_autoencoder.json").read_text())
    assert provenance["seed"] == 0 and provenance["stage"] == "train_autoencoder"
    assert provenance["versions"]["torch"] == metadata.version("torch")
    assert provenance["versions"]["monai"] == metadata.version("monai")


def test_evaluate_and_inference_stages(trained_run, nifti_dataset):
    run_bundle(["evaluate.yaml"], *data_overrides(nifti_dataset, trained_run, *TINY_OVERRIDES))
    record = json.loads((trained_run / "evaluation" / "metrics.json").read_text())
    metrics = record["metrics"]
    assert record["split"] == "test" and record["checkpoint"].endswith("model.pt")
    for name in ("ssim", "brain_ssim", "ms_ssim", "reference_zeros_ssim", "reference_downsample4_ssim"):
        assert 0 <= metrics[name] <= 1, name
    assert metrics["psnr"] > 0 and 0 < metrics["code_usage_bottom"] <= 1
    assert (trained_run / "evaluation" / "reconstructions_epoch1.png").is_file()

    volume = next(nifti_dataset.glob("sub03_*.nii.gz"))
    run_bundle(
        ["inference.json"],
        *data_overrides(nifti_dataset, trained_run, *TINY_OVERRIDES),
        "--input_dir",
        json.dumps([str(volume)]),
        "--input_kind",
        "list",
    )
    written = trained_run / "inference" / "sub03_T1w_recon.nii.gz"
    source, reconstruction = nib.load(volume), nib.load(written)
    assert reconstruction.shape == source.shape
    np.testing.assert_allclose(reconstruction.affine, source.affine, atol=1e-5)
    values = reconstruction.get_fdata()
    assert np.isfinite(values).all() and values.max() > 0.1
    assert (trained_run / "inference" / "sub03_T1w_preview.png").is_file()


def test_resume_continues_exactly_where_the_run_stopped(nifti_dataset, tmp_path):
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    schedule = ("--lr_schedule_epochs", "2", *TINY_OVERRIDES)  # the same LR schedule whatever max_epochs says
    run_bundle(TRAIN, *data_overrides(nifti_dataset, straight, "--max_epochs", "2", *schedule))
    run_bundle(TRAIN, *data_overrides(nifti_dataset, interrupted, "--max_epochs", "1", *schedule))
    first = torch.load(interrupted / "models" / "latest.pt", weights_only=True)
    assert first["trainer"]["iteration"] > 0
    result = run_bundle(
        TRAIN, *data_overrides(nifti_dataset, interrupted, "--max_epochs", "2", "--resume", "true", *schedule)
    )
    assert "Epoch: 2/2" in result.stdout + result.stderr or "Epoch[2]" in result.stdout + result.stderr
    resumed = torch.load(interrupted / "models" / "latest.pt", weights_only=True)
    reference = torch.load(straight / "models" / "latest.pt", weights_only=True)
    assert resumed["trainer"] == reference["trainer"]
    for key, value in reference["network"].items():
        assert torch.equal(resumed["network"][key], value), key
    assert resumed["optimizer"]["state"][0]["step"] == reference["optimizer"]["state"][0]["step"]
    for name in ("metrics_epoch1.json", "metrics_epoch2.json"):
        assert json.loads((interrupted / "validation" / name).read_text()) == json.loads(
            (straight / "validation" / name).read_text()
        )


def test_metadata_is_valid_against_the_offline_schema(tmp_path):
    if not SCHEMA.is_file():
        pytest.skip("the offline MONAI schema copy is not beside this checkout")
    verify_metadata(meta_file=str(CONFIGS / "metadata.json"), filepath=str(SCHEMA))


def test_network_def_passes_verify_net_in_out_with_the_inference_config():
    verify_net_in_out(
        net_id="network_def",
        meta_file=str(CONFIGS / "metadata.json"),
        config_file=str(CONFIGS / "inference.json"),
        device="cpu",
        n=4,
        **{"network_def#channels": 8, "network_def#num_res_channels": 4, "network_def#num_embeddings": 16},
    )


def _tiny_network_overrides() -> dict[str, int]:
    tiny = dict(zip([o.lstrip("-") for o in TINY_OVERRIDES[::2]], TINY_OVERRIDES[1::2]))
    return {k: int(v) for k, v in tiny.items() if k.startswith("network_def#")}


def _trained_network(trained_run):
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "inference.json"))
    for key, value in _tiny_network_overrides().items():
        parser[key] = value
    network = parser.get_parsed_content("network_def")
    network.load_state_dict(torch.load(trained_run / "models" / "model.pt", weights_only=True))
    return network.eval()


def test_ckpt_export_gives_a_torchscript_model_that_reproduces_the_reconstruction(trained_run, tmp_path):
    # tracing is the supported export route (bundle/docs/README.md says why the networks are not scripted)
    exported = tmp_path / "model.ts"
    ckpt_export(
        net_id="network_def",
        filepath=str(exported),
        ckpt_file=str(trained_run / "models" / "model.pt"),
        meta_file=str(CONFIGS / "metadata.json"),
        config_file=str(CONFIGS / "inference.json"),
        use_trace=True,
        input_shape=[1, 1, 32, 32],
        **_tiny_network_overrides(),
    )
    scripted = torch.jit.load(str(exported))
    network = _trained_network(trained_run)
    images = torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(scripted(images), network(images), rtol=0, atol=1e-6)


def test_monai_bundle_load_returns_the_trained_network_from_models_model_pt(trained_run, tmp_path, monkeypatch):
    """The model-zoo layout: <bundle>/configs/inference.json and the weights at <bundle>/models/model.pt."""
    bundle = tmp_path / "brain_vqvae2"
    shutil.copytree(CONFIGS, bundle / "configs")
    (bundle / "models").mkdir()
    shutil.copy(trained_run / "models" / "model.pt", bundle / "models" / "model.pt")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    overrides = {key.removeprefix("network_def#"): value for key, value in _tiny_network_overrides().items()}
    loaded = load(
        "brain_vqvae2", bundle_dir=str(tmp_path), workflow_type="inference", device="cpu", net_override=overrides
    )
    assert isinstance(loaded, VQVAE2Reconstructor)
    expected = _trained_network(trained_run).state_dict()
    assert loaded.state_dict().keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert list(elsewhere.iterdir()) == []  # loading the network writes nothing


PRIOR_OVERRIDES = [
    "--prior_settings#channels",
    "8",
    "--prior_settings#num_layers",
    "2",
    "--prior_settings#kernel_size",
    "3",
    "--prior_settings#num_heads",
    "2",
    "--prior_settings#top_attention_every",
    "1",
    "--prior_settings#dropout",
    "0.0",
]


def extract_codes(dataset, output_dir) -> None:
    run_bundle(["extract_codes.yaml"], *data_overrides(dataset, output_dir, *TINY_OVERRIDES))


def test_code_extraction_is_a_stage_of_its_own_and_priors_refuse_codes_of_another_checkpoint(
    trained_run, nifti_dataset, tmp_path
):
    run = tmp_path / "run"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("codes", "prior_*", "validation_prior_*"))
    extract_codes(nifti_dataset, run)
    files = {name: run / "codes" / f"{name}.npz" for name in ("train", "validation")}
    stamps = {name: path.stat().st_mtime_ns for name, path in files.items()}
    record = json.loads((run / "run_extract_codes.json").read_text())
    assert record["settings"]["preprocessing"]["min_brain_fraction"] == 0.2  # TINY_OVERRIDES
    assert record["settings"]["preprocessing"]["image_size"] == [32, 32]
    extract_codes(nifti_dataset, run)  # same checkpoint, same slices: the files are reused
    assert {name: path.stat().st_mtime_ns for name, path in files.items()} == stamps

    state = torch.load(run / "models" / "model.pt", weights_only=True)
    torch.save({k: v + 1 if v.is_floating_point() else v for k, v in state.items()}, run / "models" / "model.pt")
    with pytest.raises(AssertionError, match=r"npz' were extracted from an earlier state of '.*model.pt' \(its SHA-256 has changed\); extract the codes again"):
        run_bundle(
            ["train_prior.yaml"],
            *data_overrides(nifti_dataset, run, *TINY_OVERRIDES, *PRIOR_OVERRIDES),
            *("--prior_level", "top", "--prior_max_epochs", "1"),
        )


def test_prior_stage_starts_its_embeddings_from_the_trained_codebooks(trained_run, nifti_dataset, tmp_path):
    """The stage loads the autoencoder's weights before it sets the embeddings (with a zero learning rate the saved
    prior is the initial one)."""
    run = tmp_path / "run"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("prior_*", "validation_prior_*"))
    extract_codes(nifti_dataset, run)
    for mode in ("codebook", "random"):
        run_bundle(
            ["train_prior.yaml"],
            *data_overrides(nifti_dataset, run, *TINY_OVERRIDES, *PRIOR_OVERRIDES, "--prior_settings#channels", "16"),
            *("--prior_level", "bottom", "--prior_max_epochs", "1", "--prior_learning_rate", "0.0"),
            *("--prior_embedding_init", mode),
        )
        prior = torch.load(run / "models" / "prior_bottom" / "model.pt", weights_only=True)
        codebooks = [
            torch.load(run / "models" / "model.pt", weights_only=True)[f"network.quantizers.{level}.embedding.weight"]
            for level in (0, 1)
        ]
        for name, codebook in (("condition_embedding", codebooks[0]), ("embedding", codebooks[1])):
            expected = principal_components(codebook, 16).float()
            assert expected.shape == (16, 4)  # 16 codes of 4 dimensions (TINY_OVERRIDES)
            assert torch.allclose(prior[f"{name}.weight"][:, :4], expected, atol=1e-5) == (mode == "codebook")
        shutil.rmtree(run / "models" / "prior_bottom")


def test_prior_stages_reduce_validation_nll_and_sampling_writes_slices(trained_run, nifti_dataset):
    extract_codes(nifti_dataset, trained_run)
    for level in ("top", "bottom"):
        run_bundle(
            ["train_prior.yaml"],
            *data_overrides(nifti_dataset, trained_run, *TINY_OVERRIDES, *PRIOR_OVERRIDES),
            "--prior_level",
            level,
            "--prior_max_epochs",
            "3",
            "--prior_learning_rate",
            "0.003",
        )
        folder = trained_run / f"validation_prior_{level}"
        first, last = (json.loads((folder / f"metrics_epoch{e}.json").read_text())["metrics"] for e in (1, 3))
        assert 0 < last["nll_bits"] < first["nll_bits"] <= 4.0 + 0.5  # 16 codes: 4 bits is the uniform guess
        assert 0 <= last["accuracy"] <= 1
        models = trained_run / "models" / f"prior_{level}"
        assert sorted(p.name for p in models.iterdir()) == ["latest.pt", "model.pt"]
        latest = torch.load(models / "latest.pt", weights_only=True)
        # warm-up then cosine decay, stepped every iteration and saved for resuming
        assert latest["lr_scheduler"]["last_epoch"] == latest["trainer"]["iteration"] > 0
    with np.load(trained_run / "codes" / "train.npz") as codes:
        assert codes["level0"].shape[1:] == (4, 4) and codes["level1"].shape[1:] == (8, 8)

    run_bundle(
        ["sample.yaml"],
        *data_overrides(nifti_dataset, trained_run, *TINY_OVERRIDES, *PRIOR_OVERRIDES),
        "--num_samples",
        "2",
    )
    samples = trained_run / "samples"
    manifest = json.loads((samples / "manifest.json").read_text())
    # sample.yaml's default positions [0.3, 0.5, 0.7], num_samples slices at each
    assert manifest["settings"]["slice_position"] == [0.3, 0.5, 0.7]
    assert manifest["settings"]["num_samples"] == 6 and manifest["settings"]["num_samples_per_position"] == 2
    assert [entry["file"] for entry in manifest["samples"]] == [f"sample_{i:04d}.nii.gz" for i in range(6)]
    assert [entry["slice_position"] for entry in manifest["samples"]] == [0.3, 0.3, 0.5, 0.5, 0.7, 0.7]
    assert len(manifest["checkpoints"]) == 3 and all(len(c["sha256"]) == 64 for c in manifest["checkpoints"])
    first = nib.load(samples / "sample_0000.nii.gz")
    assert first.shape == (32, 32, 1)
    np.testing.assert_allclose(np.diag(first.affine), [1, 1, 1, 1])
    np.testing.assert_allclose(first.affine[:3, 3], [-15.5, -15.5, 0.0])
    values = first.get_fdata()
    assert values.min() >= 0 and values.max() <= 1
    assert (samples / "sample_grid.png").is_file()
