"""The examples under ``examples/`` run end to end on tiny checkpoints laid out as the bundle stages write them."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

from monai_vqvae2.apps import discover_dataset
from monai_vqvae2.data.splits import save_split
from monai_vqvae2.networks import prior_for_level
from tests.bundle.conftest import write_volume

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = [ROOT / "bundle" / "configs" / "common.yaml"]
# 32x32 slices (4x4 top and 8x8 bottom codes), a tiny network and tiny priors
TINY = {
    "image_size": 32,
    "preprocessing#min_brain_fraction": 0.2,
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
    "prior_settings#dropout": 0.0,
}


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: the tiny convolutions gain nothing from more, and spinning OpenMP threads slow them down
    by an order of magnitude on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def load_example(name: str):
    path = ROOT / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"examples_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and pickling look modules up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """``split.json`` over five NIfTI subjects (three for training), ``models/model.pt``,
    ``models/prior_{top,bottom}/model.pt`` (untrained tiny networks) and ``codes/train.npz`` (positions only)."""
    data_dir, output_dir = tmp_path_factory.mktemp("nifti"), tmp_path_factory.mktemp("run")
    for subject in range(5):
        write_volume(data_dir / f"sub{subject:02d}_T1w.nii.gz", seed=subject)
    write_tiny_run(output_dir, discover_dataset(data_dir, "nifti"), TINY, [0.125, 0.25, 0.5, 0.75])
    return output_dir


def write_tiny_run(output_dir: Path, items: list, overrides: dict, positions: list[float]) -> None:
    """What the bundle stages leave in ``output_dir``: the split (three training subjects, one validation, the rest
    test), the untrained ``network_def`` and priors of ``overrides`` as checkpoints, and training slice positions."""
    save_split({"train": items[:3], "validation": items[3:4], "test": items[4:]}, output_dir / "split.json")
    parser = ConfigParser()
    parser.read_config([str(path) for path in CONFIGS])
    for key, value in overrides.items():
        parser[key] = value
    torch.manual_seed(0)
    network = parser.get_parsed_content("network_def")
    (output_dir / "models").mkdir()
    torch.save(network.state_dict(), output_dir / "models" / "model.pt")
    prior_settings = parser.get_parsed_content("prior_settings")
    for level, name in enumerate(("top", "bottom")):
        prior = prior_for_level(network.network, level, num_scalars=1, **prior_settings)
        (output_dir / "models" / f"prior_{name}").mkdir()
        torch.save(prior.state_dict(), output_dir / "models" / f"prior_{name}" / "model.pt")
    (output_dir / "codes").mkdir()
    np.savez(output_dir / "codes" / "train.npz", slice_position=np.array(positions, dtype=np.float32))


def test_synthetic_augmentation_compares_real_and_mixed_training_at_the_same_budget(finished_run):
    example = load_example("synthetic_augmentation")
    settings = {"steps": 3, "batch_size": 4, "synthetic_fraction": 0.5, "num_synthetic": 6, "low_data_subjects": 1}
    results = example.run_experiment(finished_run, configs=CONFIGS, overrides=TINY, **settings)

    stored = json.loads((finished_run / "augmentation" / "results.json").read_text())
    assert stored == json.loads(json.dumps(results))
    assert set(stored) == {"settings", "data", "bank", "runs", "references", "versions", "wall_s"}
    assert sorted(stored["runs"]) == sorted(example.RUN_NAMES)
    assert {key: stored["settings"][key] for key in settings} == settings
    assert stored["data"]["train_subjects"] == ["sub00_T1w", "sub01_T1w", "sub02_T1w"]
    assert stored["data"]["test_subjects"] == ["sub04_T1w"] and stored["data"]["low_data_subjects"] == ["sub00_T1w"]
    assert stored["bank"]["dir"] == str(Path("augmentation") / "bank_seed0")
    bank = json.loads((finished_run / "augmentation" / "bank_seed0" / "manifest.json").read_text())
    assert bank["complete"] is True and len(bank["samples"]) == 6
    assert {entry["slice_position"] for entry in bank["samples"]} <= {0.125, 0.25, 0.5, 0.75}

    runs = stored["runs"]
    for name, run in runs.items():
        assert run["steps"] == 3 and run["items_seen"] == 3 * 4, name
        assert all(math.isfinite(run["test"][key]) for key in ("mae", "rmse", "r2")), name
    num_real = stored["data"]["num_train_slices"]
    assert runs["real"]["num_items"] == num_real and runs["real"]["synthetic_items_seen"] == 0
    assert runs["real"]["synthetic_fraction"] == 0.0 and runs["synthetic_only"]["synthetic_fraction_seen"] == 1.0
    for name, real in (("mixed", num_real), ("low_data_mixed", stored["data"]["num_low_data_slices"])):
        assert runs[name]["synthetic_fraction"] == 0.5
        assert runs[name]["num_synthetic_items"] == real and runs[name]["num_items"] == 2 * real
        assert 0 < runs[name]["synthetic_items_seen"] < runs[name]["items_seen"]
    assert 0 < stored["data"]["num_low_data_slices"] < num_real
    assert math.isfinite(stored["references"]["mean_training_position"]["test"]["mae"])

    again = example.run_experiment(finished_run, configs=CONFIGS, overrides=TINY, **settings)  # the bank is reused
    assert {name: run["test"] for name, run in again["runs"].items()} == {n: r["test"] for n, r in runs.items()}
    assert "| real + synthetic |" in example.format_table(results)


def test_synthetic_augmentation_rejects_bad_arguments(finished_run, tmp_path):
    example = load_example("synthetic_augmentation")
    with pytest.raises(ValueError, match=r"`synthetic_fraction` must be a number in \(0, 1\), got 1.0"):
        example.run_experiment(finished_run, synthetic_fraction=1.0, configs=CONFIGS, overrides=TINY)
    with pytest.raises(ValueError, match="`low_data_subjects` must be smaller than the 3 training subjects, got 3"):
        example.run_experiment(finished_run, low_data_subjects=3, configs=CONFIGS, overrides=TINY)
    with pytest.raises(ValueError, match="not conditioned on the slice position"):
        example.run_experiment(finished_run, configs=CONFIGS, overrides={**TINY, "condition_on_slice_position": False})
    with pytest.raises(FileNotFoundError, match="must hold a run with trained priors"):
        example.run_experiment(tmp_path, configs=CONFIGS, overrides=TINY)


@pytest.fixture(scope="module")
def labelled_run(tmp_path_factory) -> Path:
    """A finished run with labels: five NIfTI subjects and their tissue labels (three intensity bands of the brain),
    a tiny VQ-VAE-2 with a label decoder and tiny priors (untrained), and ``codes/train.npz`` (positions only)."""
    data_dir, output_dir = tmp_path_factory.mktemp("labelled"), tmp_path_factory.mktemp("labelled_run")
    for subject in range(5):
        path = data_dir / "images" / f"sub{subject:02d}_T1w.nii.gz"
        path.parent.mkdir(exist_ok=True)
        affine = write_volume(path, seed=subject)
        values = np.asarray(nib.load(path).dataobj)
        (data_dir / "labels").mkdir(exist_ok=True)
        label = np.where(values > 0, np.digitize(values, [90, 120]) + 1, 0).astype(np.uint8)
        nib.save(nib.Nifti1Image(label, affine), data_dir / "labels" / path.name)
    items = discover_dataset(data_dir / "images", "nifti", label_dir=data_dir / "labels")
    write_tiny_run(output_dir, items, {**TINY, "labels": True}, [0.25, 0.5, 0.75])
    return output_dir


def test_synthetic_segmentation_trains_every_arm_with_the_same_budget_and_seeds(labelled_run):
    example = load_example("synthetic_segmentation")
    settings = {"seeds": [0, 1], "steps": 2, "batch_size": 4, "num_synthetic": 4, "low_data_subjects": 1}
    results = example.run_study(labelled_run, configs=CONFIGS, overrides=TINY, **settings)

    stored = json.loads((labelled_run / "segmentation_study" / "results.json").read_text())
    assert stored == json.loads(json.dumps(results))
    assert list(stored["runs"]["full"]) == list(example.ARMS)
    assert list(stored["runs"]["low"]) == [arm for arm in example.ARMS if arm != "synthetic_only"]
    assert stored["data"]["low_data_subjects"] == ["sub00_T1w"] and stored["data"]["test_subjects"] == ["sub04_T1w"]
    assert 0 < stored["data"]["num_low_data_pairs"] < stored["data"]["num_train_pairs"]
    for regime in stored["runs"].values():
        for arm in regime.values():
            assert [row["seed"] for row in arm["per_seed"]] == [0, 1]
            for row in arm["per_seed"]:
                assert all(0 <= row[name] <= 1 for name in ("CSF", "grey matter", "white matter"))
            mean = arm["summary"]["mean"]
            assert mean["min"] <= mean["mean"] <= mean["max"] and mean["sd"] >= 0
    bank = json.loads((labelled_run / "segmentation_study" / "bank" / "manifest.json").read_text())
    assert bank["settings"]["label_maps"] is True and len(bank["samples"]) == 4
    assert all((labelled_run / "segmentation_study" / "bank" / e["label_file"]).is_file() for e in bank["samples"])
    # one seed, one budget, one initial network: the arms differ only by their training data
    full = stored["runs"]["full"]
    assert full["real"]["per_seed"][0] != full["real_augmented"]["per_seed"][0]
    again = example.run_study(labelled_run, configs=CONFIGS, overrides=TINY, **{**settings, "seeds": [0]})
    assert again["runs"]["full"]["real"]["per_seed"][0] == full["real"]["per_seed"][0]
    assert "| full | (b) real + standard augmentation |" in example.format_table(results)


def test_synthetic_segmentation_needs_a_run_with_labels(finished_run, labelled_run):
    example = load_example("synthetic_segmentation")
    with pytest.raises(ValueError, match="the study needs a run made with labels"):
        example.run_study(finished_run, configs=CONFIGS, overrides=TINY, steps=1)
    with pytest.raises(ValueError, match=r"`low_data_subjects` must be between 1 and 2"):
        example.run_study(labelled_run, configs=CONFIGS, overrides=TINY, low_data_subjects=3, steps=1)
