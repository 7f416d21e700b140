"""The tutorial notebook (``examples/tutorial.ipynb``) runs from top to bottom, here at tiny sizes on NIfTI files.

The ``parameters`` cell is replaced by tiny values (the sizes of the bundle stage tests), the notebook runs in a
real ``python3`` kernel from a folder outside the repository, and a cell appended at the end reports the kernel's
results as JSON for the assertions.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from tests.bundle.conftest import TINY_OVERRIDES, write_volume
from tests.bundle.test_bundle_stages import PRIOR_OVERRIDES

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "tutorial.ipynb"

#: the parameters the notebook names, with the values of the stage tests (32x32 slices, 4x4 top and 8x8 bottom codes)
TINY_PARAMETERS = {
    "DATASET_KIND": "nifti",
    "IMAGE_SIZE": 32,
    "MIN_BRAIN_FRACTION": 0.2,
    "CHANNELS": 8,
    "RES_CHANNELS": 4,
    "NUM_EMBEDDINGS": 16,
    "EMBEDDING_DIM": 4,
    "BATCH_SIZE": 8,
    "MAX_EPOCHS": 1,
    "PRIOR_CHANNELS": 8,
    "PRIOR_LAYERS": 2,
    "PRIOR_MAX_EPOCHS": 1,
    "NUM_SAMPLES": 4,
    "TEMPERATURE": [0.8, 0.5],
    "NUM_SYNTHETIC": 6,
    "SYNTHETIC_FRACTION": 0.5,
    "TRAIN_STEPS": 3,
    "SEED": 0,
}
#: the bundle config keys the named parameters set (the rest of the tiny overrides go to EXTRA_OVERRIDES)
NAMED_KEYS = {
    "image_size",
    "preprocessing#min_brain_fraction",
    "batch_size",
    "network_def#channels",
    "network_def#num_res_channels",
    "network_def#num_embeddings",
    "network_def#embedding_dim",
    "prior_settings#channels",
    "prior_settings#num_layers",
}

RESULTS_CELL = """
import json

first = mixed[int(np.flatnonzero(mixed.is_synthetic)[0])]
Path(RESULTS_FILE).write_text(json.dumps(
    {
        "num_volumes": len(items),
        "samples_shape": list(samples.shape),
        "samples_range": [float(samples.min()), float(samples.max())],
        "decoded_finite": bool(torch.isfinite(output.images).all()),
        "indices_shapes": [list(indices.shape) for indices in output.indices],
        "num_real": len(real),
        "num_mixed": len(mixed),
        "num_synthetic": mixed.num_synthetic,
        "synthetic_flags": int(mixed.is_synthetic.sum()),
        "bank_files": len(list(bank_dir.glob("synthetic_*.nii.gz"))),
        "synthetic_item": {"shape": list(first["image"].shape), "synthetic": bool(first["synthetic"])},
        "losses": losses,
        "synthetic_seen": synthetic_seen,
    }
))
"""


def tiny_extra_overrides() -> dict:
    """The tiny bundle overrides of the stage tests that no named parameter of the notebook sets."""
    pairs = [*zip(TINY_OVERRIDES[::2], TINY_OVERRIDES[1::2]), *zip(PRIOR_OVERRIDES[::2], PRIOR_OVERRIDES[1::2])]
    return {key[2:]: json.loads(value) for key, value in pairs if key[2:] not in NAMED_KEYS}


def parameters_cell(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The one code cell tagged ``parameters``."""
    (cell,) = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    return cell


def test_the_committed_notebook_has_no_outputs_and_its_first_code_cell_holds_the_parameters():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code)
    assert parameters_cell(notebook) is code[0]
    names = {line.split("=")[0].strip() for line in code[0].source.splitlines() if "=" in line}
    assert {*TINY_PARAMETERS, "OUTPUT_DIR", "DATASET_DIR", "EXTRA_OVERRIDES"} <= names


def test_tutorial_runs_end_to_end(tmp_path, monkeypatch):
    data = tmp_path / "scans"
    data.mkdir()
    for subject in range(6):
        write_volume(data / f"sub{subject:02d}_T1w.nii.gz", seed=subject)
    data_files = sorted((p.name, p.stat().st_mtime_ns) for p in data.iterdir())
    output_dir = tmp_path / "tutorial"
    results_file = tmp_path / "results.json"

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    parameters = {
        "OUTPUT_DIR": str(output_dir),
        "DATASET_DIR": str(data),
        **TINY_PARAMETERS,
        "EXTRA_OVERRIDES": tiny_extra_overrides(),
    }
    parameters_cell(notebook).source = "\n".join(f"{name} = {value!r}" for name, value in parameters.items())
    notebook.cells.append(nbformat.v4.new_code_cell(f"RESULTS_FILE = {str(results_file)!r}\n{RESULTS_CELL}"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    workdir = tmp_path / "elsewhere"  # not the repository: the notebook writes only under OUTPUT_DIR
    workdir.mkdir()
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    ).execute()

    results = json.loads(results_file.read_text())
    assert results["num_volumes"] == 6
    assert results["samples_shape"] == [4, 1, 32, 32]
    low, high = results["samples_range"]
    assert results["decoded_finite"] and 0 <= low < high <= 1  # not a constant image
    assert results["indices_shapes"] == [[4, 4, 4], [4, 8, 8]]
    real = results["num_real"]
    assert results["bank_files"] == 6
    assert results["num_synthetic"] == results["synthetic_flags"] == real  # fraction 0.5: one synthetic per real
    assert results["num_mixed"] == 2 * real
    assert results["synthetic_item"] == {"shape": [1, 32, 32], "synthetic": True}
    assert len(results["losses"]) == 3 and all(math.isfinite(loss) and loss >= 0 for loss in results["losses"])
    assert 0 < results["synthetic_seen"] < 3 * 8

    printed = "\n".join(output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", []))
    assert "6 volumes" in printed
    assert "bits per code" in printed  # the priors' held-out scores in the pipeline summary
    images = [
        output for cell in notebook.cells for output in cell.get("outputs", []) if "image/png" in output.get("data", {})
    ]
    assert len(images) == 2  # the real slices and the samples
    assert (output_dir / "models" / "prior_bottom" / "model.pt").is_file()
    assert (output_dir / "bank" / "manifest.json").is_file()
    assert list(workdir.iterdir()) == []
    assert sorted((p.name, p.stat().st_mtime_ns) for p in data.iterdir()) == data_files  # the data folder is only read
