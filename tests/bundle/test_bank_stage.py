"""A real `python -m monai.bundle run` of generate_bank.yaml, over tiny checkpoints laid out as the stages write them."""

from __future__ import annotations

import json

import numpy as np
import torch
from monai.bundle import ConfigParser

from monai_vqvae2.data.codes import file_digest
from monai_vqvae2.networks import prior_for_level
from tests.bundle.conftest import CONFIGS, TINY_OVERRIDES, run_bundle
from tests.bundle.test_bundle_stages import PRIOR_OVERRIDES

BANK = ["generate_bank.yaml"]
CODE_POSITIONS = [0.25, 0.25, 0.5, 0.75]


def overrides(pairs: list[str], prefix: str) -> dict[str, float]:
    values = dict(zip([o.lstrip("-") for o in pairs[::2]], pairs[1::2]))
    return {k[len(prefix) :]: float(v) if "." in v else int(v) for k, v in values.items() if k.startswith(prefix)}


def write_run(output_dir) -> list:
    """``models/model.pt``, ``models/prior_{top,bottom}/model.pt`` and ``codes/train.npz`` (positions only), as
    the autoencoder and prior stages write them, with untrained tiny networks."""
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "common.yaml"))
    for key, value in overrides(TINY_OVERRIDES, "network_def#").items():
        parser[f"network_def#{key}"] = value
    torch.manual_seed(0)
    network = parser.get_parsed_content("network_def")
    checkpoints = [output_dir / "models" / "model.pt"]
    checkpoints[0].parent.mkdir(parents=True)
    torch.save(network.state_dict(), checkpoints[0])
    prior_settings = {**parser.get_parsed_content("prior_settings"), **overrides(PRIOR_OVERRIDES, "prior_settings#")}
    for level, name in enumerate(("top", "bottom")):
        prior = prior_for_level(network.network, level, num_scalars=1, **prior_settings)
        path = output_dir / "models" / f"prior_{name}" / "model.pt"
        path.parent.mkdir(parents=True)
        torch.save(prior.state_dict(), path)
        checkpoints.append(path)
    (output_dir / "codes").mkdir()
    np.savez(output_dir / "codes" / "train.npz", slice_position=np.array(CODE_POSITIONS, dtype=np.float32))
    return checkpoints


def test_generate_bank_stage_draws_training_positions_and_resumes(tmp_path):
    checkpoints = write_run(tmp_path)
    common = ["--output_dir", str(tmp_path), *TINY_OVERRIDES, *PRIOR_OVERRIDES, "--bank_chunk_size", "2"]
    run_bundle(BANK, *common, "--num_samples", "5")
    bank = tmp_path / "bank"
    manifest = json.loads((bank / "manifest.json").read_text())
    assert manifest["num_samples"] == 5 and manifest["complete"] is True and len(manifest["chunks"]) == 3
    assert manifest["settings"]["slice_positions"]["mode"] == "real"
    assert manifest["settings"]["slice_positions"]["count"] == 4
    assert {entry["slice_position"] for entry in manifest["samples"]} <= set(CODE_POSITIONS)
    assert [c["sha256"] for c in manifest["checkpoints"]] == [file_digest(path) for path in checkpoints]
    assert json.loads((tmp_path / "run_generate_bank.json").read_text())["stage"] == "generate_bank"
    first_files = {name: (bank / name).read_bytes() for name in ("synthetic_000000.nii.gz", "synthetic_000003.nii.gz")}

    run_bundle(BANK, *common, "--num_samples", "7")  # extends the bank: chunk 2 again at full size, then chunk 3
    manifest = json.loads((bank / "manifest.json").read_text())
    assert manifest["num_samples"] == 7 and manifest["complete"] is True
    assert [entry["file"] for entry in manifest["samples"]] == [f"synthetic_{i:06d}.nii.gz" for i in range(7)]
    assert all((bank / name).read_bytes() == data for name, data in first_files.items())
    assert sorted(p.name for p in bank.glob("grid_*.png")) == [f"grid_{c:04d}.png" for c in range(4)]
