"""bundle_path() finds the MONAI Bundle in a source checkout (editable install), and says where it looked otherwise.
The installed (wheel) case is in tests/test_packaging.py."""

from __future__ import annotations

from pathlib import Path

import pytest

import monai_vqvae2.bundle
from monai_vqvae2 import bundle_path

ROOT = Path(__file__).resolve().parents[2]


def test_bundle_path_in_a_checkout():
    folder = bundle_path()
    assert folder.is_absolute() and (folder / "configs" / "metadata.json").is_file()
    if Path(monai_vqvae2.__file__).resolve().parents[1] == ROOT:  # imported from this checkout
        assert folder == ROOT / "bundle"


def test_bundle_path_names_the_folders_it_looked_at(tmp_path, monkeypatch):
    monkeypatch.setattr(monai_vqvae2.bundle, "_PACKAGE_DIR", tmp_path / "site" / "monai_vqvae2")
    looked_at = [tmp_path / "site" / "monai_vqvae2" / "bundle" / "configs", tmp_path / "site" / "bundle" / "configs"]
    with pytest.raises(FileNotFoundError, match="No MONAI Bundle configs found") as error:
        bundle_path()
    assert all(str(folder) in str(error.value) for folder in looked_at)
