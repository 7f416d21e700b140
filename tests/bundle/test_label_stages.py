"""Real `python -m monai.bundle run` runs with tissue labels (``--labels true``): the autoencoder learns a label
decoder, validation scores it, and sampling writes every slice with its label map."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from tests.bundle.conftest import TINY_OVERRIDES, run_bundle, write_volume
from tests.bundle.test_bundle_stages import PRIOR_OVERRIDES


@pytest.fixture(scope="module")
def labelled_dataset(tmp_path_factory):
    """Six NIfTI subjects and, in a folder beside them, their tissue labels: three intensity bands of the brain."""
    root = tmp_path_factory.mktemp("labelled")
    for subject in range(6):
        image_path = root / "images" / f"sub{subject:02d}_T1w.nii.gz"
        image_path.parent.mkdir(exist_ok=True)
        affine = write_volume(image_path, seed=subject)
        data = np.asarray(nib.load(image_path).dataobj)
        label = np.where(data > 0, np.digitize(data, [90, 120]) + 1, 0).astype(np.uint8)
        (root / "labels").mkdir(exist_ok=True)
        nib.save(nib.Nifti1Image(label, affine), root / "labels" / image_path.name)
    return root


def test_labels_true_trains_a_label_decoder_and_samples_come_as_pairs(labelled_dataset, tmp_path):
    data = [
        "--dataset_dir",
        str(labelled_dataset / "images"),
        "--dataset_kind",
        "nifti",
        "--labels",
        "true",
        "--label_dir",
        str(labelled_dataset / "labels"),
        "--output_dir",
        str(tmp_path),
        *TINY_OVERRIDES,
    ]
    run_bundle(["train_autoencoder.yaml"], *data, "--max_epochs", "2")
    metrics = json.loads((tmp_path / "validation" / "metrics_epoch2.json").read_text())["metrics"]
    for name in ("label_dice", "label_dice_csf", "label_dice_grey_matter", "label_dice_white_matter"):
        assert 0 <= metrics[name] <= 1
    split = json.loads((tmp_path / "split.json").read_text())
    assert all(item["label"].startswith(str(labelled_dataset / "labels")) for item in split["train"])

    run_bundle(["evaluate.yaml"], *data)
    evaluation = json.loads((tmp_path / "evaluation" / "metrics.json").read_text())["metrics"]
    assert 0 <= evaluation["label_dice_csf"] <= 1 and 0 <= evaluation["label_dice"] <= 1
    run_bundle(["extract_codes.yaml"], *data)
    for level in ("top", "bottom"):
        run_bundle(["train_prior.yaml"], *data, *PRIOR_OVERRIDES, "--prior_level", level, "--prior_max_epochs", "1")
    run_bundle(["sample.yaml"], *data, *PRIOR_OVERRIDES, "--num_samples", "2", "--slice_position", "0.5")
    manifest = json.loads((tmp_path / "samples" / "manifest.json").read_text())
    assert [entry["label"] for entry in manifest["samples"]] == ["sample_0000_label.nii.gz", "sample_0001_label.nii.gz"]
    label = nib.load(tmp_path / "samples" / "sample_0000_label.nii.gz")
    assert label.shape == (32, 32, 1) and label.get_data_dtype() == np.uint8
    assert set(np.unique(np.asarray(label.dataobj))) <= {0, 1, 2, 3}
    assert np.asarray(Image.open(tmp_path / "samples" / "sample_grid.png")).shape == (32, 64 * 2, 3)

    run_bundle(["quality_report.yaml"], *data, *PRIOR_OVERRIDES, "--segmenter_steps", "5")
    report = json.loads((tmp_path / "quality" / "quality.json").read_text())
    agreement = report["label_agreement"]
    for name in ("samples", "real"):
        assert list(agreement[name]["per_class"]) == ["CSF", "grey matter", "white matter"]
        assert 0 <= agreement[name]["per_slice"]["min"] <= agreement[name]["mean"] <= 1
    assert (tmp_path / "quality" / "label_pairs.png").is_file() and (tmp_path / "models" / "segmenter.pt").is_file()
    assert "## Label agreement" in (tmp_path / "quality" / "report.md").read_text()
