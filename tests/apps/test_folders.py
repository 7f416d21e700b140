"""PNG slice folders, NIfTI folders and file lists: discovery finds exactly the expected files."""

from __future__ import annotations

import numpy as np
import pytest

from monai_vqvae2.apps import discover_dataset, discover_nifti_folder, discover_png_slices, read_file_list


def test_png_folders_keep_their_split_and_positions(tmp_path, build):
    root = tmp_path / "keras_png_slices_data"
    pixels = np.zeros((8, 8), np.uint8)
    for folder, cases in [("train", ("case_001", "case_002")), ("validate", ("case_402",)), ("test", ("case_501",))]:
        for case in cases:
            for k in range(5):
                build.write_png(root / f"keras_png_slices_{folder}" / f"{case}_slice_{k}.nii.png", pixels)
                build.write_png(root / f"keras_png_slices_seg_{folder}" / f"seg_{case[5:]}_slice_{k}.nii.png", pixels)
    items = discover_dataset(root)
    assert len(items) == 20
    assert {i["split"] for i in items} == {"train", "validation", "test"}
    assert sum(i["split"] == "train" for i in items) == 10
    assert all("_seg_" not in i["image"] for i in items)
    case = [i for i in items if i["subject"] == "case_402"]
    assert [i["slice_index"] for i in case] == [0, 1, 2, 3, 4]
    assert [i["slice_position"] for i in case] == [0.0, 0.25, 0.5, 0.75, 1.0]
    # the folder of one split can be given directly
    assert len(discover_png_slices(root / "keras_png_slices_test")) == 5


def test_png_unparsable_names_warn(tmp_path, build):
    build.write_png(tmp_path / "keras_png_slices_train" / "brain.png", np.zeros((4, 4), np.uint8))
    with pytest.warns(UserWarning, match="1 PNG name.*'brain.png'.*slice_position 0.5"):
        items = discover_png_slices(tmp_path)
    assert items[0]["subject"] == "brain" and items[0]["slice_position"] == 0.5


def test_nifti_folder_generic(tmp_path, build):
    root = tmp_path / "scans"
    expected = [
        build.touch(root / "site_a" / "patient1_t1.nii.gz"),
        build.touch(root / "site_a" / "patient2_t1.nii"),
        build.touch(root / "site_b" / "patient3_t1.hdr"),
    ]
    build.touch(root / "site_b" / "patient3_t1.img")
    build.touch(root / "site_b" / "notes.txt")
    build.touch(root / ".hidden" / "ignored.nii.gz")
    items = discover_dataset(root)
    assert [i["image"] for i in items] == [str(p) for p in sorted(expected)]
    assert [i["subject"] for i in items] == ["patient1_t1", "patient2_t1", "patient3_t1"]
    patterned = discover_nifti_folder(root, subject_pattern=r"(?P<session>site_\w)/(?P<subject>patient\d)")
    assert [(i["subject"], i["session"]) for i in patterned] == [
        ("patient1", "patient1_site_a"),
        ("patient2", "patient2_site_a"),
        ("patient3", "patient3_site_b"),
    ]
    with pytest.raises(ValueError, match=r"`subject_pattern` needs a named group \(\?P<subject>"):
        discover_nifti_folder(root, subject_pattern=r"patient\d")
    with pytest.raises(ValueError, match=r"patient1_t1.nii.gz: path does not match `subject_pattern`"):
        discover_nifti_folder(root, subject_pattern=r"(?P<subject>site_b)")


def test_file_lists_csv_txt_and_sequence(tmp_path, build):
    a = build.touch(tmp_path / "data" / "a.nii.gz")
    b = build.touch(tmp_path / "data" / "b.nii.gz")
    csv_file = tmp_path / "lists" / "files.csv"
    csv_file.parent.mkdir()
    csv_file.write_text("image,subject,site\n../data/a.nii.gz,S1,x\n" + f"{b},S2,y\n")
    items = discover_dataset(csv_file)
    assert [(i["image"], i["subject"], i["session"], i["site"]) for i in items] == [
        (str(a), "S1", "S1", "x"),
        (str(b), "S2", "S2", "y"),
    ]
    txt_file = tmp_path / "lists" / "files.txt"
    txt_file.write_text("# comment\n../data/a.nii.gz\n\n../data/b.nii.gz\n")
    assert [i["subject"] for i in discover_dataset(txt_file, kind="list")] == ["a", "b"]
    assert [i["image"] for i in read_file_list([a, {"image": str(b), "subject": "S9"}])] == [str(a), str(b)]
    bad_csv = tmp_path / "lists" / "bad.csv"
    bad_csv.write_text("path,subject\nx.nii,1\n")
    with pytest.raises(ValueError, match=r"bad.csv: needs an 'image' column .* found columns \['path', 'subject'\]"):
        read_file_list(bad_csv)
    with pytest.raises(ValueError, match=r"expected a \.csv, \.tsv or \.txt file, got '\.json'"):
        read_file_list(build.touch(tmp_path / "lists" / "files.json"))
