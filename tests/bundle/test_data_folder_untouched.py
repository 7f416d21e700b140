"""A user's data folder is never written to: every stage config, run for real, leaves it byte-identical.

Before the fix, `common.yaml` defaulted to `dataset_kind: demo`, so a run given only `--dataset_dir` wrote demo volumes
under real OASIS-1 names into the user's folder, and the demo's clean-up could then delete the user's files.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from tests.bundle.conftest import TINY_OVERRIDES, bundle_command, run_bundle, write_volume
from tests.bundle.test_bundle_stages import PRIOR_OVERRIDES
from tests.data.conftest import make_oasis1_tree

SESSIONS = {f"OAS1_000{n}_MR1": 1 for n in range(1, 6)} | {"OAS1_0002_MR2": 1}


def snapshot(root: Path) -> dict[str, str]:
    """Every file and folder below ``root`` (hidden ones included) with the SHA-256 of each file."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "folder"
        for path in sorted(root.rglob("*"))
    }


@pytest.fixture(scope="module")
def oasis1_folder(tmp_path_factory) -> Path:
    """A real-shaped OASIS-1 tree: five subjects (one with MR2), RAW, SUBJ_111, T88_111, FSL_SEG, GIF previews."""
    root = tmp_path_factory.mktemp("oasis1") / "oasis_cross-sectional"
    make_oasis1_tree(root, SESSIONS)
    return root


def run_failing(configs: list[str], *overrides: str) -> str:
    result = subprocess.run(
        bundle_command(configs, *overrides), check=False, capture_output=True, text=True, timeout=300
    )
    assert result.returncode != 0, result.stdout[-2000:]
    return result.stdout + result.stderr


# the layout is decided once, when the first stage discovers the data and writes split.json (later stages read the
# split), so the named kind runs that stage only and auto-detection, the riskier case, runs every stage
@pytest.mark.parametrize(
    ("kind", "num_stages"), [(None, None), ("oasis1", 1)], ids=["no_dataset_kind", "dataset_kind_oasis1"]
)
def test_every_stage_leaves_an_oasis1_folder_byte_identical(oasis1_folder, tmp_path, kind, num_stages):
    before = snapshot(oasis1_folder)
    assert len(before) > 100  # the whole tree, decoys included
    output_dir = tmp_path / "run"
    common = ["--dataset_dir", str(oasis1_folder), "--output_dir", str(output_dir), *TINY_OVERRIDES]
    if kind is not None:
        common += ["--dataset_kind", kind]
    stages = [  # each stage config stands alone, so only the stages that build priors take prior settings
        (["train_autoencoder.yaml"], ["--max_epochs", "1"]),
        (["evaluate.yaml"], []),
        (["inference.json"], ["--input_dir", str(oasis1_folder)]),
        (["extract_codes.yaml"], []),
        (["train_prior.yaml"], [*PRIOR_OVERRIDES, "--prior_level", "top", "--prior_max_epochs", "1"]),
        (["train_prior.yaml"], [*PRIOR_OVERRIDES, "--prior_level", "bottom", "--prior_max_epochs", "1"]),
        (["sample.yaml"], [*PRIOR_OVERRIDES, "--num_samples", "2"]),
        (["generate_bank.yaml"], [*PRIOR_OVERRIDES, "--num_samples", "2"]),
        (["quality_report.yaml"], PRIOR_OVERRIDES),
    ]
    for configs, extra in stages[:num_stages]:
        run_bundle(configs, *common, *extra)
        assert snapshot(oasis1_folder) == before, configs[-1]

    # the run really read the user's scans (auto-discovered as OASIS-1), not demo data
    split = json.loads((output_dir / "split.json").read_text())
    sessions = sorted(item["session"] for part in split.values() for item in part)
    assert sessions == sorted(SESSIONS) and {item["dataset"] for item in split["train"]} == {"oasis1"}
    if num_stages is not None:
        return
    assert len(list((output_dir / "inference").glob("*_recon.nii.gz"))) == len(SESSIONS)
    assert (output_dir / "quality" / "quality.json").is_file() and (output_dir / "bank" / "manifest.json").is_file()


@pytest.mark.parametrize("kind", [None, "nifti"], ids=["no_dataset_kind", "dataset_kind_nifti"])
def test_a_folder_with_one_nifti_is_read_not_replaced_by_the_demo(tmp_path, kind):
    folder = tmp_path / "scans"
    folder.mkdir()
    write_volume(folder / "brain.nii.gz", seed=0)
    before = snapshot(folder)
    overrides = ["--dataset_dir", str(folder), "--output_dir", str(tmp_path / "run"), "--max_epochs", "1"]
    message = run_failing(["train_autoencoder.yaml"], *overrides, *(["--dataset_kind", kind] if kind else []))
    # one subject cannot fill train, validation and test: the run says so instead of training on demo data
    assert (
        f"1 subject(s) found in '{folder}' (kind='{kind or 'auto'}') leave the validation and test split empty"
        in message
    )
    assert snapshot(folder) == before
    assert not (tmp_path / "run" / "split.json").exists()


def test_demo_refuses_a_folder_it_did_not_create(oasis1_folder, tmp_path):
    before = snapshot(oasis1_folder)
    overrides = ["--dataset_dir", str(oasis1_folder), "--dataset_kind", "demo", "--output_dir", str(tmp_path / "run")]
    message = run_failing(["train_autoencoder.yaml"], *overrides, "--max_epochs", "1")
    assert "was not created by the demo" in message and str(oasis1_folder) in message
    assert snapshot(oasis1_folder) == before


def test_outputs_inside_the_data_folder_are_refused(tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    write_volume(folder / "brain.nii.gz", seed=0)
    before = snapshot(folder)
    overrides = ["--dataset_dir", str(folder), "--output_dir", str(folder / "runs" / "x"), "--max_epochs", "1"]
    message = run_failing(["train_autoencoder.yaml"], *overrides, *TINY_OVERRIDES)
    assert f"`output_dir` '{folder / 'runs' / 'x'}' is inside the dataset folder '{folder}'" in message
    assert snapshot(folder) == before


def test_auto_on_a_folder_without_images_names_it_and_the_layouts(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "readme.txt").write_text("no scans here")
    message = run_failing(
        ["train_autoencoder.yaml"], "--dataset_dir", str(folder), "--output_dir", str(tmp_path / "run")
    )
    assert f"no image found in '{folder}' (kind='auto'); layouts tried:" in message
    assert "oasis1" in message and "nifti" in message
    assert snapshot(folder) == {"readme.txt": hashlib.sha256(b"no scans here").hexdigest()}
