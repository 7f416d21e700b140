from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "bundle" / "configs"
SCHEMA = ROOT.parent / "shared" / "monai" / "meta_schema_20240725.json"

# a network and data small enough for CPU tests: 32x32 slices, 4x4 top and 8x8 bottom codes
TINY_OVERRIDES = [
    "--image_size",
    "32",
    "--batch_size",
    "8",
    "--preprocessing#min_brain_fraction",
    "0.2",
    "--network_def#channels",
    "8",
    "--network_def#num_res_layers",
    "1",
    "--network_def#num_res_channels",
    "4",
    "--network_def#num_embeddings",
    "16",
    "--network_def#embedding_dim",
    "4",
    "--network_def#restart_interval",
    "5",
]


def write_volume(path: Path, seed: int, shape=(28, 32, 24)) -> np.ndarray:
    """An ellipsoid 'brain' with texture on a black background, 1 mm voxels, a non-trivial affine."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij"))
    radii = np.array([0.8, 0.85, 0.75]) * (1 + 0.05 * rng.standard_normal(3))
    inside = ((grid / radii[:, None, None, None]) ** 2).sum(0) < 1
    data = np.where(inside, 100 + 40 * np.sin(6 * grid[0] + seed) + 10 * rng.standard_normal(shape), 0)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = [-14.0, -16.0 + seed, -12.0]
    nib.save(nib.Nifti1Image(data.astype(np.float32), affine), path)
    return affine


@pytest.fixture(scope="session")
def nifti_dataset(tmp_path_factory) -> Path:
    """Six subjects as a generic NIfTI folder."""
    root = tmp_path_factory.mktemp("nifti_dataset")
    for subject in range(6):
        write_volume(root / f"sub{subject:02d}_T1w.nii.gz", seed=subject)
    return root


def bundle_command(configs: list[str], *overrides: str) -> list[str]:
    files = "[" + ",".join(f"'{CONFIGS / name}'" for name in configs) + "]"
    return [
        sys.executable,
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        files,
        "--meta_file",
        str(CONFIGS / "metadata.json"),
        "--logging_file",
        str(CONFIGS / "logging.conf"),
        *overrides,
    ]


def run_bundle(configs: list[str], *overrides: str, timeout: int = 600) -> subprocess.CompletedProcess:
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    result = subprocess.run(
        bundle_command(configs, *overrides),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return result
