"""`torchrun --nproc_per_node=2` runs both training stages with the one multi-GPU overlay, with gloo on CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from monai.bundle import ConfigParser
from monai.data import DataLoader

from monai_vqvae2.data import CodeDataset
from monai_vqvae2.data.codes import file_digest
from monai_vqvae2.engines import PriorBatch
from monai_vqvae2.metrics import CodeNLLMetric
from tests.bundle.conftest import CONFIGS, ROOT, TINY_OVERRIDES, run_bundle, write_volume

TRAINING_STAGES = ["train_autoencoder.yaml", "train_prior.yaml"]

# test-only layer: every rank saves the state of the module it trained before the process group ends, so the test
# can compare the ranks
RANK_STATE = """
distributed_teardown:
  - "$torch.save(@train_module.state_dict(), os.path.join(@output_dir, f'state_rank{torch.distributed.get_rank()}.pt'))"
  - "$torch.distributed.destroy_process_group()"
"""

# a prior small enough for CPU tests (as in test_bundle_stages.py), 1 epoch of batches of 8
PRIOR_SETTINGS = {"channels": 8, "num_layers": 2, "kernel_size": 3, "num_heads": 2, "top_attention_every": 1}
PRIOR_OVERRIDES = [
    *(item for key, value in PRIOR_SETTINGS.items() for item in (f"--prior_settings#{key}", str(value))),
    "--prior_settings#dropout",
    "0.0",
    "--prior_max_epochs",
    "1",
    "--prior_batch_size",
    "8",
]


def torchrun(stage: str, layer, dataset, output_dir, *overrides: str) -> str:
    """Run ``stage`` + ``multi_gpu.yaml`` + ``layer`` on two gloo ranks; returns what both ranks printed."""
    files = [CONFIGS / stage, CONFIGS / "multi_gpu.yaml", layer]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        "[" + ",".join(f"'{f}'" for f in files) + "]",
        "--meta_file",
        str(CONFIGS / "metadata.json"),
        "--logging_file",
        str(CONFIGS / "logging.conf"),
        "--dataset_dir",
        str(dataset),
        "--dataset_kind",
        "nifti",
        "--output_dir",
        str(output_dir),
        *TINY_OVERRIDES,
        *overrides,
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        command, check=False, capture_output=True, text=True, timeout=600, env=environment, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result.stdout + result.stderr


def rank_states(output_dir) -> list[dict[str, torch.Tensor]]:
    return [torch.load(output_dir / f"state_rank{rank}.pt", weights_only=True) for rank in range(2)]


@pytest.fixture(scope="module")
def rank_state_layer(tmp_path_factory):
    layer = tmp_path_factory.mktemp("layers") / "rank_state.yaml"
    layer.write_text(RANK_STATE)
    return layer


@pytest.fixture(scope="module")
def odd_dataset(tmp_path_factory):
    """Six subjects of 15 kept axial slices each: the validation split (one subject) does not divide over two ranks."""
    root = tmp_path_factory.mktemp("odd_dataset")
    for subject in range(6):
        write_volume(root / f"sub{subject:02d}_T1w.nii.gz", seed=subject, shape=(28, 32, 25))
    return root


@pytest.fixture(scope="module")
def ddp_autoencoder(odd_dataset, rank_state_layer, tmp_path_factory):
    """One epoch of the autoencoder on two ranks: its output folder (where the priors are trained next) and the
    VQ-VAE-2 state each rank ended with."""
    output_dir = tmp_path_factory.mktemp("ddp")
    torchrun("train_autoencoder.yaml", rank_state_layer, odd_dataset, output_dir, "--max_epochs", "1")
    return output_dir, rank_states(output_dir)


@pytest.mark.parametrize("stage", TRAINING_STAGES)
def test_the_overlay_replaces_only_names_each_training_stage_defines_for_it(stage):
    config = ConfigParser.load_config_file(CONFIGS / stage)
    parser = ConfigParser(config)
    overlay = ConfigParser.load_config_file(CONFIGS / "multi_gpu.yaml")
    for key in set(overlay) - {"backend"}:  # backend is the overlay's own
        assert key in parser, f"{stage} defines no '{key}' for multi_gpu.yaml to replace"
    # single process: the module itself, one replica, no process group, the same steps as before
    assert config["train_network"] == "@train_module" and config["world_size"] == 1
    assert config["distributed_setup"] == config["distributed_teardown"] == []
    assert config["initialize"][0] == "$@distributed_setup" and config["finalize"][-1] == "$@distributed_teardown"
    assert config["train"]["trainer"]["network"] == "@train_network"
    assert config["train"]["dataloader"]["sampler"] == "@train#sampler"
    assert config["validate"]["dataloader"]["sampler"] == "@validate#sampler" and config["validate"]["sampler"] is None


def test_two_gloo_ranks_train_with_identical_codebooks_and_rank0_writes(ddp_autoencoder):
    output_dir, states = ddp_autoencoder
    assert int(states[0]["quantizers.1.num_updates"]) > 0
    different = [key for key, value in states[0].items() if not torch.equal(value, states[1][key])]
    assert different == []
    assert sorted(p.name for p in (output_dir / "models").iterdir()) == ["latest.pt", "model.pt"]
    assert len(list((output_dir / "logs").glob("events.out.tfevents.*"))) == 1
    settings = json.loads((output_dir / "run_train_autoencoder.json").read_text())["settings"]
    assert settings["world_size"] == 2 and settings["preprocessing"]["image_size"] == [32, 32]
    assert sorted(p.name for p in (output_dir / "validation").glob("metrics_epoch*.json")) == ["metrics_epoch1.json"]


def single_process_nll_bits(output_dir, level: str) -> float:
    """Bits per code of ``models/prior_<level>/latest.pt`` on the whole validation code file, in this process."""
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train_prior.yaml"))
    tiny = dict(zip([o.lstrip("-") for o in TINY_OVERRIDES[::2]], TINY_OVERRIDES[1::2]))
    for key, value in tiny.items():
        if key.startswith("network_def#"):
            parser[key] = int(value)
    parser["prior_settings"] = {**parser["prior_settings"], **PRIOR_SETTINGS, "dropout": 0.0}
    parser["prior_level"] = level
    parser["device"] = "$torch.device('cpu')"
    prior = parser.get_parsed_content("prior")
    latest = torch.load(output_dir / "models" / f"prior_{level}" / "latest.pt", weights_only=True)
    prior.load_state_dict(latest["network"])
    prior.eval()
    index = parser.get_parsed_content("level_index")
    prepare = PriorBatch(use_condition=index > 0, use_slice_position=True)
    metric = CodeNLLMetric()
    with torch.no_grad():
        for batch in DataLoader(CodeDataset(output_dir / "codes" / "validation.npz", level=index), batch_size=5):
            inputs, targets, _, kwargs = prepare(batch)
            metric(prior(inputs, **kwargs), targets)
    return float(metric.aggregate())


def test_two_gloo_ranks_train_both_priors_over_codes_extracted_once(ddp_autoencoder, odd_dataset, rank_state_layer):
    output_dir = ddp_autoencoder[0]
    codes = output_dir / "codes"
    # one process encodes the slices once (the extraction stage); the ranks of both prior stages only read the files
    run_bundle(
        ["extract_codes.yaml"],
        *("--dataset_dir", str(odd_dataset), "--dataset_kind", "nifti", "--output_dir", str(output_dir)),
        *TINY_OVERRIDES,
    )
    written = {name: (codes / name).stat().st_ino for name in ("train.npz", "validation.npz")}
    logs = {}
    for level in ("top", "bottom"):
        logs[level] = torchrun(
            "train_prior.yaml", rank_state_layer, odd_dataset, output_dir, "--prior_level", level, *PRIOR_OVERRIDES
        )
        states = rank_states(output_dir)
        assert states[0].keys() == states[1].keys()
        for key, value in states[0].items():
            assert torch.equal(value, states[1][key]), f"{level}: {key}"
        models = output_dir / "models" / f"prior_{level}"
        assert sorted(p.name for p in models.iterdir()) == ["latest.pt", "model.pt"]
        latest = torch.load(models / "latest.pt", weights_only=True)
        assert latest["network"].keys() == states[0].keys()  # the unwrapped prior's state_dict, as the ranks end
        for key, value in latest["network"].items():
            assert torch.equal(value, states[0][key]), f"{level}: {key}"
        assert len(list((output_dir / "logs" / f"prior_{level}").glob("events.out.tfevents.*"))) == 1
        run = json.loads((output_dir / f"run_train_prior_{level}.json").read_text())
        assert run["settings"] == {"world_size": 2}
        folder = output_dir / f"validation_prior_{level}"
        assert sorted(p.name for p in folder.glob("metrics_epoch*.json")) == ["metrics_epoch1.json"]
        metrics = json.loads((folder / "metrics_epoch1.json").read_text())["metrics"]
        # every validation map counted exactly once over the two ranks' unequal shares (8 and 7 maps)
        assert len(CodeDataset(codes / "validation.npz")) % 2 == 1
        assert metrics["nll_bits"] == pytest.approx(single_process_nll_bits(output_dir, level), abs=1e-5)
        assert 0 <= metrics["accuracy"] <= 1

    # neither prior stage encoded anything: both read the files the extraction stage wrote
    assert all("Wrote the codes of" not in log and "Reusing the codes" not in log for log in logs.values())
    assert sorted(p.name for p in codes.iterdir()) == ["train.npz", "validation.npz"]
    assert {name: (codes / name).stat().st_ino for name in written} == written
    split = json.loads((output_dir / "split.json").read_text())
    for name, subset in (("train.npz", "train"), ("validation.npz", "validation")):
        stored = CodeDataset(codes / name, level=1)
        assert stored.settings["checkpoint_sha256"] == file_digest(output_dir / "models" / "model.pt")
        assert len(stored) == stored.settings["num_slices"] > 0
        assert stored.indices.shape[1:] == (8, 8) and stored.condition.shape[1:] == (4, 4)
        assert set(stored.subject) <= {str(item["subject"]) for item in split[subset]}
