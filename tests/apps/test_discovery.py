"""Discovery says what it tried when nothing matches; the split of a run is created once, then read back."""

from __future__ import annotations

import pytest

from monai_vqvae2.apps import LAYOUTS, discover_dataset, prepare_split
from monai_vqvae2.data import check_no_subject_overlap, load_split


def test_auto_lists_the_layouts_tried(tmp_path, build):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="layouts tried") as caught:
        discover_dataset(empty)
    for name, pattern in LAYOUTS.items():
        assert f"- {name}: {pattern}" in str(caught.value)
    build.touch(tmp_path / "unrelated" / "readme.txt")
    with pytest.raises(FileNotFoundError, match=r"no image found in .*unrelated.*kind='auto'"):
        discover_dataset(tmp_path / "unrelated")
    with pytest.raises(FileNotFoundError, match=r"kind='oasis3'\); layouts tried:\n  - oasis3: sub-\*"):
        discover_dataset(empty, kind="oasis3")
    with pytest.raises(FileNotFoundError, match=r"`dataset_dir` '.*missing' does not exist"):
        discover_dataset(tmp_path / "missing")
    with pytest.raises(ValueError, match=r"`kind` must be one of .* got 'oasis2'"):
        discover_dataset(empty, kind="oasis2")


def test_prepare_split_creates_the_split_once_and_then_reads_it_back(oasis1_tree, tmp_path):
    root, _ = oasis1_tree
    split_file = tmp_path / "run" / "split.json"
    first = prepare_split(root, "oasis1", split_file, fractions=(0.34, 0.33, 0.33), seed=1)
    assert split_file.is_file()
    assert sorted(item["session"] for part in first.values() for item in part) == [
        "OAS1_0001_MR1",
        "OAS1_0002_MR1",
        "OAS1_0002_MR2",
        "OAS1_0042_MR1",
    ]
    check_no_subject_overlap(first)
    # later stages read the file: a different seed, or the data gone, changes nothing
    assert prepare_split(tmp_path / "gone", "oasis1", split_file, seed=99) == load_split(split_file) == first
