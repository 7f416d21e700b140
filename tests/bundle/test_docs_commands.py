"""Every command in the ``bash`` blocks of ``bundle/docs/*.md`` runs as written.

The commands run in the order a reader meets them (``README.md`` first, then the other pages), from the repository
root as the docs say, with four changes only: the documented data folders (``/data/oasis1``, ``/data/new_scans``) are
small real-shaped folders, the output folders (``runs/oasis1``, ``outputs/demo``) live in a temporary folder, sizes
are tiny (the same overrides as the other bundle tests, appended or replacing the documented values) and
``--nproc_per_node`` is 2 (gloo on CPU).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.bundle.conftest import CONFIGS, ROOT, SCHEMA, TINY_OVERRIDES, write_volume
from tests.bundle.test_bundle_stages import PRIOR_OVERRIDES
from tests.bundle.test_data_folder_untouched import SESSIONS, snapshot
from tests.data.conftest import make_oasis1_tree

DOCS = ROOT / "bundle" / "docs"
# documented values replaced by tiny ones (the documented option stays, only its value changes)
TINY_VALUES = {
    "--max_epochs": "1",
    "--batch_size": "8",
    "--num_samples": "2",
    "--input_shape": "[1, 1, 32, 32]",
    "--volume_size": "[32, 32, 32]",
}

PRIOR_EPOCHS = ["--prior_max_epochs", "1", "--prior_batch_size", "8"]
# the augmentation example at a few steps
EXAMPLE_OVERRIDES = ["--steps", "2", "--batch_size", "4", "--num_synthetic", "4", "--low_data_subjects", "0"]


def documented_commands() -> list[tuple[str, str]]:
    """``(page, command)`` for every command in the bash blocks of the bundle docs, continuation lines joined and
    comments dropped; ``README.md`` first, then the other pages by name."""
    pages = sorted(DOCS.glob("*.md"), key=lambda page: (page.name != "README.md", page.name))
    commands = []
    for page in pages:
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(), flags=re.DOTALL):
            for command in block.replace("\\\n", " ").splitlines():
                if shlex.split(command, comments=True):
                    commands.append((page.name, command))
    return commands


def pairs(tokens: list[str]) -> list[tuple[str, str]]:
    return list(zip(tokens[::2], tokens[1::2]))


def with_values(tokens: list[str], overrides: list[tuple[str, str]]) -> list[str]:
    """``tokens`` with each ``--key value`` of ``overrides`` replacing the documented value, or appended."""
    tokens = list(tokens)
    for key, value in overrides:
        if key in tokens:
            tokens[tokens.index(key) + 1] = value
        else:
            tokens += [key, value]
    return tokens


def uses_priors(tokens: list[str]) -> bool:
    """Whether the command's bundle configs define the priors (and so take the tiny prior settings)."""
    files = re.findall(r"bundle/configs/[\w.]+", " ".join(tokens))
    return any("prior_settings:" in (CONFIGS / Path(name).name).read_text() for name in files)


def adapt(command: str, places: dict[str, Path]) -> list[str]:
    """The documented command as this test runs it (see the module docstring)."""
    tokens = shlex.split(command, comments=True)
    for documented, here in places.items():
        tokens = [token.replace(documented, str(here)) for token in tokens]
    tokens = [re.sub(r"^--nproc_per_node=\d+$", "--nproc_per_node=2", token) for token in tokens]
    launcher = {"python": [sys.executable], "torchrun": [sys.executable, "-m", "torch.distributed.run"]}
    assert tokens[0] in launcher, f"a documented command starts with {tokens[0]!r}: teach this test to run it"
    tokens = launcher[tokens[0]] + tokens[1:]
    for key, value in TINY_VALUES.items():
        if key in tokens:
            tokens[tokens.index(key) + 1] = value
    tiny = pairs(TINY_OVERRIDES)
    if "monai.bundle" in tokens:
        action = tokens[tokens.index("monai.bundle") + 1]
        if action == "run":
            extra = tiny + (pairs(PRIOR_OVERRIDES) + pairs(PRIOR_EPOCHS) if uses_priors(tokens) else [])
            if "volumes.yaml" in " ".join(tokens):  # a few whole volumes: batches of two
                extra += [("--batch_size", "2"), ("--prior_batch_size", "2")]
            return with_values(tokens, extra)
        if action in ("verify_net_in_out", "ckpt_export"):
            return with_values(tokens, [(key, value) for key, value in tiny if key.startswith("--network_def#")])
        return tokens
    if "monai_vqvae2.demo" in tokens:
        settings = tiny + pairs(PRIOR_OVERRIDES) + pairs(PRIOR_EPOCHS) + [("--num_samples", "2")]
        return tokens + [item for key, value in settings for item in ("--override", f"{key[2:]}={value}")]
    if tokens[1].endswith("synthetic_augmentation.py"):
        settings = tiny + pairs(PRIOR_OVERRIDES)
        overrides = [item for key, value in settings for item in ("--override", f"{key[2:]}={value}")]
        return tokens + EXAMPLE_OVERRIDES + ["--no_synthetic_only"] + overrides
    raise AssertionError(f"no tiny settings for documented command {command!r}: teach this test to run it")


def test_the_docs_have_the_commands_this_test_expects():
    commands = [command for _, command in documented_commands()]
    assert len(commands) >= 17
    documented_configs = set(re.findall(r"bundle/configs/([\w.]+)", " ".join(commands)))
    stage_configs = {path.name for path in CONFIGS.iterdir() if path.suffix in (".yaml", ".json")}
    # every stage config is documented as a command (common.yaml is the shared source, demo.yaml and
    # demo_volumes.yaml the demo's layers)
    assert stage_configs - documented_configs == {"common.yaml", "demo.yaml", "demo_volumes.yaml"}


def test_every_documented_command_runs(tmp_path):
    oasis1 = tmp_path / "data" / "oasis1"
    make_oasis1_tree(oasis1, SESSIONS)
    scans = tmp_path / "data" / "new_scans"
    scans.mkdir()
    write_volume(scans / "scan.nii.gz", seed=7)
    before = snapshot(tmp_path / "data")
    places = {
        "/data/oasis1": oasis1,
        "/data/new_scans": scans,
        "runs/oasis1": tmp_path / "runs" / "oasis1",
        "outputs/demo": tmp_path / "outputs" / "demo",
    }
    if SCHEMA.is_file():  # verify_metadata downloads the schema to --filepath unless it is there already
        (tmp_path / "runs" / "oasis1").mkdir(parents=True)
        shutil.copy(SCHEMA, tmp_path / "runs" / "oasis1" / "meta_schema.json")
    environment = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "MONAI_VQVAE2_CACHE": str(tmp_path / "cache"),  # the demo builds its data here, not in the user's cache
    }
    repository = snapshot(ROOT / "bundle")
    for page, command in documented_commands():
        if "verify_metadata" in command and not SCHEMA.is_file():
            continue  # needs the schema download; test_bundle_stages.py checks the metadata offline when it can
        tokens = adapt(command, places)
        result = subprocess.run(
            tokens, check=False, capture_output=True, text=True, timeout=600, env=environment, cwd=ROOT
        )
        assert result.returncode == 0, f"{page}: {command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"

    assert snapshot(tmp_path / "data") == before  # the data folders were only read
    assert snapshot(ROOT / "bundle") == repository  # and nothing was written into the bundle
    run = tmp_path / "runs" / "oasis1"
    for written in ["models/model.pt", "models/model.ts", "models/prior_top/model.pt", "models/prior_bottom/model.pt",
                    "samples/manifest.json", "quality/quality.json", "bank/manifest.json", "inference/scan_recon.nii.gz"]:  # fmt: skip
        assert (run / written).is_file(), written
    volumes = tmp_path / "runs" / "oasis1_3d"
    for written in ["models/prior_bottom/model.pt", "samples/sample_views.png", "quality/quality.json"]:
        assert (volumes / written).is_file(), written
    demo = tmp_path / "outputs" / "demo"
    assert (demo / "demo_summary.json").is_file() and (demo / "augmentation" / "results.json").is_file()


@pytest.mark.parametrize(
    "command, expected",
    [
        (
            (
                "python -m monai.bundle run --config_file bundle/configs/sample.yaml --output_dir runs/oasis1 "
                "--num_samples 64"
            ),
            ["--num_samples", "2", "--prior_settings#channels", "8"],
        ),
        (
            (
                "torchrun --standalone --nproc_per_node=4 -m monai.bundle run --config_file "
                "\"['bundle/configs/train_autoencoder.yaml','bundle/configs/multi_gpu.yaml']\""
            ),
            ["--standalone", "--nproc_per_node=2", "--image_size", "32"],
        ),
    ],
)
def test_adapt_keeps_the_command_and_makes_it_tiny(command, expected, tmp_path):
    tokens = adapt(command, {"runs/oasis1": tmp_path})
    assert tokens[0] == sys.executable
    for key, value in pairs(expected):
        assert tokens[tokens.index(key) + 1] == value, key
    assert "--prior_settings#channels" not in tokens or "sample.yaml" in " ".join(tokens)
