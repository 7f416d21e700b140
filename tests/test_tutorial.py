"""The tutorial notebook (``examples/tutorial.ipynb``) runs from top to bottom, here at tiny sizes on NIfTI files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from tests.bundle.conftest import TINY_OVERRIDES, write_volume
from tests.bundle.test_bundle_stages import PRIOR_OVERRIDES

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "tutorial.ipynb"


def tiny_settings() -> dict:
    pairs = [*zip(TINY_OVERRIDES[::2], TINY_OVERRIDES[1::2]), *zip(PRIOR_OVERRIDES[::2], PRIOR_OVERRIDES[1::2])]
    settings = {key[2:]: json.loads(value) for key, value in pairs}
    return {**settings, "max_epochs": 1, "prior_max_epochs": 1}


def test_the_committed_notebook_has_no_outputs_and_one_parameters_cell():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code)
    assert [cell for cell in code if "parameters" in cell.metadata.get("tags", [])] == [code[0]]


def test_tutorial_runs_end_to_end(tmp_path, monkeypatch):
    data = tmp_path / "scans"
    data.mkdir()
    for subject in range(6):
        write_volume(data / f"sub{subject:02d}_T1w.nii.gz", seed=subject)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    notebook.cells[1].source = "\n".join(
        [
            f"OUTPUT_DIR = {str(tmp_path / 'tutorial')!r}",
            f"DATASET_DIR = {str(data)!r}",
            'DATASET_KIND = "nifti"',
            f"SETTINGS = {tiny_settings()!r}",
            "NUM_SAMPLES = 4",
            "TEMPERATURE = [0.8, 0.5]",
            "SYNTHETIC_FRACTION = 0.5",
            "TRAIN_STEPS = 3",
            "SEED = 0",
        ]
    )
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    workdir = tmp_path / "elsewhere"  # not the repository: the notebook writes only under OUTPUT_DIR
    workdir.mkdir()
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    ).execute()

    printed = "\n".join(
        output.get("text", "") for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs
    )
    assert "6 volumes" in printed
    assert "samples (4, 1, 32, 32) top codes (4, 4, 4) bottom codes (4, 8, 8)" in printed
    real, total, synthetic = map(
        int, re.search(r"(\d+) real slices; mixed set of (\d+) with (\d+) synthetic", printed).groups()
    )
    assert total == 2 * real and synthetic == round(total * 0.5)
    first, last = map(float, re.search(r"first steps ([\d.]+), last steps ([\d.]+)", printed).groups())
    assert 0 <= first < 10 and 0 <= last < 10
    images = [
        output for cell in notebook.cells for output in cell.get("outputs", []) if "image/png" in output.get("data", {})
    ]
    assert len(images) == 2  # the real slices and the samples
    assert (tmp_path / "tutorial" / "models" / "prior_bottom" / "model.pt").is_file()
    assert list(workdir.iterdir()) == []
