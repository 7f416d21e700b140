"""Every stage config runs on its own (as the MONAI model zoo runs bundles) and agrees with `common.yaml`."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from monai.bundle import ConfigParser

from tests.bundle.conftest import CONFIGS

STAGES = [
    "train_autoencoder.yaml",
    "evaluate.yaml",
    "inference.json",
    "extract_codes.yaml",
    "train_prior.yaml",
    "sample.yaml",
    "generate_bank.yaml",
    "quality_report.yaml",
]
COMMON = ConfigParser.load_config_file(CONFIGS / "common.yaml")


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_repeats_the_shared_definitions_it_uses_unchanged(stage):
    config = ConfigParser.load_config_file(CONFIGS / stage)
    shared = sorted(set(config) & set(COMMON) - {"imports", "initialize", "run", "finalize"})
    assert {"bundle_root", "output_dir", "ckpt_dir", "seed", "device", "network_def", "network"} <= set(shared)
    for key in shared:
        assert config[key] == COMMON[key], f"{stage}: '{key}' differs from common.yaml"
    assert set(COMMON["imports"]) <= set(config["imports"]), stage


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_alone_resolves_everything_and_layering_common_first_changes_nothing(stage):
    alone = ConfigParser()
    alone.read_config(str(CONFIGS / stage))
    layered = ConfigParser()
    layered.read_config([str(CONFIGS / "common.yaml"), str(CONFIGS / stage)])
    assert {key: layered[key] for key in alone.config} == alone.config
    # every reference of the stage's own file points at a key of that file
    for id_, value in _walk(alone.config):
        if isinstance(value, str) and "@" in value:
            for name in _references(value):
                assert name.split("#")[0] in alone.config, f"{stage}: '{id_}' refers to '@{name}', not in the file"


def _walk(config, prefix=""):
    if isinstance(config, dict):
        for key, value in config.items():
            yield from _walk(value, f"{prefix}#{key}" if prefix else str(key))
    elif isinstance(config, list):
        for index, value in enumerate(config):
            yield from _walk(value, f"{prefix}#{index}")
    else:
        yield prefix, config


def _references(value: str) -> list[str]:
    return re.findall(r"@([A-Za-z_][\w#]*)", value)


def test_zoo_ci_verify_net_in_out_runs_from_the_bundle_folder_with_the_inference_config_alone():
    result = subprocess.run(
        [sys.executable, "-m", "monai.bundle", "verify_net_in_out", "network_def"]
        + ["--meta_file", "configs/metadata.json", "--config_file", "configs/inference.json", "--device", "cpu"],
        check=False,
        cwd=CONFIGS.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "data shape of network is verified with no error" in result.stdout + result.stderr


def test_metadata_has_numeric_eval_metrics_the_priors_and_complete_references():
    meta = ConfigParser.load_config_file(CONFIGS / "metadata.json")
    assert meta["eval_metrics"] and all(isinstance(v, float) for v in meta["eval_metrics"].values())
    assert {"ssim", "brain_ssim", "prior_top_nll_bits", "prior_bottom_nll_bits"} <= set(meta["eval_metrics"])
    priors = meta["network_data_format"]["priors"]
    assert priors["bottom"]["inputs"]["condition"]["value_range"] == [0, 511]
    references = " ".join(meta["references"])
    for work in ("VQ-VAE-2", "PixelCNN Decoders", "PixelSNAIL", "OASIS", "OASIS-3"):
        assert work in references, work


@pytest.mark.parametrize(
    ("level", "overrides", "epochs", "batch", "rate", "dropout"),
    [
        ("top", {}, 18, 16, 0.004, 0.2),
        ("bottom", {}, 8, 8, 0.003, 0.0),
        ("top", {"prior_max_epochs": 3}, 3, 16, 0.004, 0.2),
        ("bottom", {"prior_max_epochs": 3, "prior_batch_size": 4}, 3, 4, 0.003, 0.0),
    ],
)
def test_demo_sets_its_prior_training_per_level_and_one_override_sets_both(
    level, overrides, epochs, batch, rate, dropout
):
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / "train_prior.yaml"), str(CONFIGS / "demo.yaml")])
    parser.update({"prior_level": level, **overrides})
    assert parser.get_parsed_content("prior_max_epochs") == epochs
    assert parser.get_parsed_content("prior_schedule_epochs") == epochs  # the learning-rate schedule follows
    assert parser.get_parsed_content("prior_batch_size") == batch
    assert parser.get_parsed_content("prior_learning_rate") == rate
    assert parser.get_parsed_content("prior").blocks[1].dropout.p == dropout
