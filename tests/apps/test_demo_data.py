"""The embedded demo: OASIS-1 layout, Analyze 7.5, pseudo-subjects that differ, idempotent, honest notice."""

from __future__ import annotations

import hashlib
import json
import sys
import time

import nibabel as nib
import numpy as np
import pytest

from monai_vqvae2.apps import (
    DEMO_MARKER,
    MNI_NOTICE,
    demo_label_path,
    demo_session_paths,
    discover_dataset,
    prepare_demo_dataset,
)
from monai_vqvae2.data import check_no_subject_overlap, make_slice_dataset, split_by_subject

SESSIONS = ["OAS1_0001_MR1", "OAS1_0001_MR2", "OAS1_0002_MR1"]


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    return prepare_demo_dataset(tmp_path_factory.mktemp("demo"), num_subjects=2, seed=0)


def _volume(path) -> np.ndarray:
    return np.asarray(nib.load(str(path)).dataobj)


def test_layout_format_and_notice(demo_root):
    paths = demo_session_paths(demo_root, num_subjects=2)
    assert [p.parent.parent.parent.parent.name for p in paths] == ["OAS1_0001_MR1", "OAS1_0002_MR1", "OAS1_0001_MR2"]
    for path in paths:
        assert path.relative_to(demo_root).parts[:-1] == ("disc1", path.name[:13], "PROCESSED", "MPRAGE", "T88_111")
        assert path.name.endswith("_mpr_n4_anon_111_t88_masked_gfc.hdr") and path.with_suffix(".img").is_file()
        image = nib.load(str(path))
        assert isinstance(image, nib.AnalyzeImage) and nib.aff2axcodes(image.affine) == ("L", "A", "S")
        assert image.shape == (176, 208, 176, 1) and image.get_data_dtype() == np.int16
        # the tissue segmentation where OASIS-1 keeps it, on the image's grid: 0 exactly outside the brain
        label = nib.load(str(demo_label_path(path)))
        assert demo_label_path(path).parent == path.parents[3] / "FSL_SEG"
        assert label.shape == image.shape and np.array_equal(label.affine, image.affine)
        classes, voxels = (np.asarray(label.dataobj) > 0), (np.asarray(image.dataobj) > 0)
        assert set(np.unique(np.asarray(label.dataobj)).tolist()) == {0, 1, 2, 3}
        assert not (voxels & ~classes).any()  # every brain voxel is labelled (CSF, grey or white matter)
    notice = (demo_root / "MNI152_NOTICE.txt").read_text()
    assert notice == MNI_NOTICE
    assert "Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging Centre" in notice
    assert "ONE average brain" in notice
    manifest = json.loads((demo_root / "demo_manifest.json").read_text())
    # .hdr and .img of the image and of the label, per session
    assert manifest["settings"]["num_subjects"] == 2 and len(manifest["files"]) == 12


def test_goes_through_the_oasis1_path(demo_root):
    items = discover_dataset(demo_root)  # auto-detected as OASIS-1
    assert [i["session"] for i in items] == SESSIONS
    assert {i["dataset"] for i in items} == {"oasis1"}
    assert [i["session"] for i in discover_dataset(demo_root, kind="demo", demo_subjects=2)] == SESSIONS
    split = split_by_subject(items, fractions=(0.5, 0.5, 0.0), seed=0)
    check_no_subject_overlap(split)
    with_mr2 = [name for name, part in split.items() if any(i["session"] == "OAS1_0001_MR2" for i in part)]
    assert [i["session"] for i in split[with_mr2[0]]][:2] == ["OAS1_0001_MR1", "OAS1_0001_MR2"]


def test_pseudo_subjects_differ_but_rescan_is_close(demo_root):
    first, rescan, second = (
        _volume(p)[..., 0].astype(np.float32)
        for p in demo_session_paths(demo_root, 2)[:1]
        + demo_session_paths(demo_root, 2)[2:]
        + demo_session_paths(demo_root, 2)[1:2]
    )
    brain = [(v > 0).mean() for v in (first, rescan, second)]
    assert all(0.15 < b < 0.35 for b in brain)  # a masked brain fills about a quarter of the OASIS box
    assert first.max() <= 1500 and first.min() == 0

    def correlation(a, b):
        return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])

    assert correlation(first, rescan) > correlation(first, second)
    assert not np.array_equal(first, rescan)


def test_slices_look_like_brain_slices(demo_root):
    items = discover_dataset(demo_root)[:1]
    dataset = make_slice_dataset(items, image_size=64, min_brain_fraction=0.15)
    assert 100 <= len(dataset) <= 150
    positions = [item["slice_position"] for item in dataset.slice_items]
    assert positions == sorted(positions) and positions[0] < 0.25 and positions[-1] > 0.85
    middle = dataset[len(dataset) // 2]["image"][0].numpy()
    assert middle.shape == (64, 64) and middle.min() == 0.0 and 0.9 < middle.max() <= 1.0
    assert middle[:3, :3].max() == 0.0 and middle[-3:, -3:].max() == 0.0  # black background around the brain
    assert 0.3 < (middle > 0.05).mean() < 0.8


def test_idempotent_and_resizable(demo_root, tmp_path):
    stamps = {p: p.stat().st_mtime_ns for p in demo_root.rglob("*") if p.is_file()}
    start = time.perf_counter()
    assert prepare_demo_dataset(demo_root, num_subjects=2, seed=0) == demo_root
    assert time.perf_counter() - start < 1.0
    assert {p: p.stat().st_mtime_ns for p in demo_root.rglob("*") if p.is_file()} == stamps

    small = prepare_demo_dataset(tmp_path / "small", num_subjects=1, with_mr2=False)
    assert [i["session"] for i in discover_dataset(small)] == ["OAS1_0001_MR1"]
    first = demo_session_paths(small, 1, with_mr2=False)[0]
    reference = demo_session_paths(demo_root, 2)[0]
    assert np.array_equal(_volume(first), _volume(reference))  # a session depends on seed and ids only
    prepare_demo_dataset(small, num_subjects=2, with_mr2=False)
    assert [i["session"] for i in discover_dataset(small)] == ["OAS1_0001_MR1", "OAS1_0002_MR1"]
    prepare_demo_dataset(small, num_subjects=1, with_mr2=False)
    assert [i["session"] for i in discover_dataset(small)] == ["OAS1_0001_MR1"]
    assert not (small / "disc1" / "OAS1_0002_MR1").exists()
    with pytest.raises(ValueError, match=r"`num_subjects` must be an int in \[1, 9999\], got 0"):
        prepare_demo_dataset(small, num_subjects=0)


def test_refuses_a_folder_it_did_not_create(tmp_path, build):
    users = tmp_path / "oasis1"
    build.make_oasis1_tree(users, {"OAS1_0001_MR1": 1}, real_images=False)
    before = {p: p.read_bytes() for p in users.rglob("*") if p.is_file()}
    with pytest.raises(FileExistsError, match=r"demo folder '.*oasis1' exists and was not created by the demo"):
        prepare_demo_dataset(users, num_subjects=1)
    with pytest.raises(FileExistsError, match=r"was not created by the demo"):
        discover_dataset(users, kind="demo", demo_subjects=1)
    assert {p: p.read_bytes() for p in users.rglob("*") if p.is_file()} == before
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(FileExistsError, match=r"demo folder '.*a_file' exists"):
        prepare_demo_dataset(tmp_path / "a_file", num_subjects=1)


def test_marks_its_folder_and_records_a_digest_per_file(demo_root):
    assert "created by monai_vqvae2's embedded demo" in (demo_root / DEMO_MARKER).read_text()
    files = json.loads((demo_root / "demo_manifest.json").read_text())["files"]
    assert len(files) == 12  # three sessions, .hdr and .img of the image and of the label each
    for relative, digest in files.items():
        assert hashlib.sha256((demo_root / relative).read_bytes()).hexdigest() == digest


def test_clean_up_removes_only_files_whose_content_it_wrote(tmp_path):
    folder = prepare_demo_dataset(tmp_path / "demo", num_subjects=2, with_mr2=False)
    second, third = demo_session_paths(folder, 3, with_mr2=False)[1:]
    # a file the demo never wrote, under a name it uses, and a file it wrote whose content changed since
    third.parent.mkdir(parents=True)
    third.write_bytes(b"not the demo's")
    third.with_suffix(".img").write_bytes(b"not the demo's either")
    second.write_bytes(second.read_bytes() + b"edited")
    prepare_demo_dataset(folder, num_subjects=1, with_mr2=False)
    assert third.read_bytes() == b"not the demo's" and third.with_suffix(".img").is_file()
    assert second.is_file() and not second.with_suffix(".img").exists()  # the edited header stays, the image goes
    first = demo_session_paths(folder, 1, with_mr2=False)[0]
    assert first.is_file() and first.with_suffix(".img").is_file()


def test_demo_data_without_nilearn_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "nilearn", None)  # as if nilearn were not installed
    with pytest.raises(ImportError, match=r'nilearn is not installed: pip install "monai-vqvae2\[demo\]"'):
        prepare_demo_dataset(tmp_path / "demo", num_subjects=1)
