"""The code file reader: one level at a time, with its coarser level as condition, and only from the checkpoint in
use."""

from __future__ import annotations

import pytest
import torch

from monai_vqvae2.data.codes import CodeDataset, read_code_settings
from monai_vqvae2.inferers import extract_codes
from monai_vqvae2.networks import VQVAE2
from tests.inferers.test_code_extraction import TINY, slices


def test_code_dataset_errors(tmp_path):
    with pytest.raises(
        FileNotFoundError,
        match=r"missing.npz' does not exist; extract the codes first \(the bundle's extract_codes stage\)",
    ):
        CodeDataset(tmp_path / "missing.npz")
    path = extract_codes(VQVAE2(2, 1, 1, **TINY).eval(), slices(4), tmp_path / "codes.npz")
    with pytest.raises(ValueError, match=r"`level` must be in \[0, 1\] for codes.npz, got 2"):
        CodeDataset(path, level=2)
    with pytest.raises(ValueError, match="needs a coarser level"):
        CodeDataset(path, level=0, with_condition=True)


def test_codes_of_another_checkpoint_are_refused_naming_both_files(tmp_path):
    network = VQVAE2(2, 1, 1, **TINY).eval()
    checkpoint = tmp_path / "model.pt"
    torch.save(network.state_dict(), checkpoint)
    path = extract_codes(network, slices(4), tmp_path / "codes.npz", checkpoint=checkpoint)
    assert len(CodeDataset(path, level=1, checkpoint=checkpoint)) == 4
    assert read_code_settings(path)["num_slices"] == 4 and read_code_settings(tmp_path / "none.npz") is None
    other = tmp_path / "other.pt"
    torch.save({k: v + 1 if v.is_floating_point() else v for k, v in network.state_dict().items()}, other)
    with pytest.raises(
        ValueError, match=r"codes.npz' were extracted from '.*model.pt', not from '.*other.pt'; extract"
    ):
        CodeDataset(path, level=1, checkpoint=other)
    torch.save(torch.load(other, weights_only=True), checkpoint)
    with pytest.raises(ValueError, match=r"an earlier state of '.*model.pt' \(its SHA-256 has changed\); extract"):
        CodeDataset(path, level=1, checkpoint=checkpoint)
