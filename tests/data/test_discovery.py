"""Discovery finds exactly the expected files in each real layout, and says what it tried when nothing matches."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from monai_vqvae2.data import (
    LAYOUTS,
    discover_dataset,
    discover_nifti_folder,
    discover_oasis1,
    discover_oasis3,
    discover_png_slices,
    join_clinical_data,
    read_file_list,
)


def test_oasis1_finds_masked_gfc_only(oasis1_tree):
    root, expected = oasis1_tree
    items = discover_dataset(root)
    assert [item["image"] for item in items] == [str(expected[s]) for s in sorted(expected)]
    assert [(item["subject"], item["session"]) for item in items] == [
        ("OAS1_0001", "OAS1_0001_MR1"),
        ("OAS1_0002", "OAS1_0002_MR1"),
        ("OAS1_0002", "OAS1_0002_MR2"),
        ("OAS1_0042", "OAS1_0042_MR1"),
    ]
    assert {item["dataset"] for item in items} == {"oasis1"}
    # pointing at one disc, or at a folder above the discs, works too
    assert [i["session"] for i in discover_oasis1(root / "disc2")] == ["OAS1_0042_MR1"]
    assert len(discover_dataset(root.parent, kind="oasis1")) == 4


@pytest.mark.parametrize(
    "choice, folder, ending",
    [
        ("t88_gfc", "T88_111", "_mpr_n4_anon_111_t88_gfc.hdr"),
        ("SUBJ_111", "SUBJ_111", "_mpr_n4_anon_sbj_111.hdr"),
        ("mpr-2", "RAW", "_mpr-2_anon.hdr"),
    ],
)
def test_oasis1_image_choices(oasis1_tree, choice, folder, ending):
    root, expected = oasis1_tree
    items = discover_dataset(root, kind="oasis1", oasis1_image=choice)
    assert len(items) == 4
    for item, session in zip(items, sorted(expected)):
        path = Path(item["image"])
        assert path.name == session + ending
        assert folder in path.parts


def test_oasis1_bad_choice_and_missing_scan(oasis1_tree):
    root, _ = oasis1_tree
    with pytest.raises(ValueError, match=r"`oasis1_image` must be one of .* got 'T99'"):
        discover_oasis1(root, image="T99")
    with pytest.raises(FileNotFoundError, match=r"OAS1_0001_MR1: no file matching RAW/\*_mpr-4_anon"):
        discover_oasis1(root, image="mpr-4")
    # skipping every session must not fall through to a generic NIfTI search of the OASIS tree
    with pytest.warns(UserWarning), pytest.raises(FileNotFoundError, match=r"oasis1 folders are present but no file"):
        discover_dataset(root, oasis1_image="mpr-4", on_error="skip")


def test_oasis3_bids_t1w_only(tmp_path, build):
    root = tmp_path / "oasis3"
    expected = []
    for subject, session, run in [
        ("OAS30001", "d0129", None),
        ("OAS30001", "d0757", "01"),
        ("OAS30001", "d0757", "02"),
        ("OAS30002", "d0653", None),
    ]:
        anat = root / f"sub-{subject}" / f"ses-{session}" / "anat"
        entity = f"_run-{run}" if run else ""
        expected.append(build.touch(anat / f"sub-{subject}_ses-{session}{entity}_T1w.nii.gz"))
        build.touch(anat / f"sub-{subject}_ses-{session}{entity}_T1w.json")
        build.touch(anat / f"sub-{subject}_ses-{session}_T2w.nii.gz")
        build.touch(anat / f"sub-{subject}_ses-{session}_FLAIR.nii.gz")
        build.touch(root / f"sub-{subject}" / f"ses-{session}" / "func" / f"sub-{subject}_ses-{session}_bold.nii.gz")
    build.touch(root / "sub-OAS30003" / "ses-d0001" / "anat" / "._sub-OAS30003_ses-d0001_T1w.nii.gz")
    items = discover_dataset(root)
    assert [i["image"] for i in items] == [str(p) for p in sorted(expected)]
    assert [(i["subject"], i["session"], i["run"]) for i in items] == [
        ("OAS30001", "OAS30001_d0129", ""),
        ("OAS30001", "OAS30001_d0757", "01"),
        ("OAS30001", "OAS30001_d0757", "02"),
        ("OAS30002", "OAS30002_d0653", ""),
    ]
    both = discover_oasis3(root, modalities=("T1w", "T2w"))
    assert len(both) == 7 and sorted({i["modality"] for i in both}) == ["T1w", "T2w"]
    with pytest.raises(ValueError, match="`modalities` must name at least one"):
        discover_oasis3(root, modalities=())


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


def test_clinical_join(oasis1_tree, tmp_path):
    root, _ = oasis1_tree
    clinical = tmp_path / "oasis_cross-sectional.csv"
    clinical.write_text(
        "ID,M/F,Hand,Age,Educ,SES,MMSE,CDR,eTIV,nWBV,ASF,Delay\n"
        "OAS1_0001_MR1,F,R,74,2,3,29,0,1344,0.743,1.306,N/A\n"
        "OAS1_0002_MR1,F,R,55,4,1,29,0,1147,0.81,1.531,\n"
        "OAS1_0002_MR2,F,R,55,4,1,30,0,1150,0.81,1.529,23\n"
    )
    with pytest.warns(UserWarning, match=r"1 of 4 item\(s\) have no row in"):
        items = discover_dataset(root, clinical_csv=clinical)
    first, mr2, unmatched = items[0], items[2], items[3]
    assert (first["sex"], first["age"], first["mmse"], first["cdr"], first["etiv"]) == ("F", 74.0, 29.0, 0.0, 1344.0)
    assert first["delay"] == "N/A" and mr2["delay"] == "23"  # mixed column stays text
    assert mr2["mmse"] == 30.0 and mr2["subject"] == "OAS1_0002"
    assert unmatched["sex"] == "" and math.isnan(unmatched["age"])
    with pytest.raises(ValueError, match=r"expected a \.csv file"):
        join_clinical_data(items, clinical.with_suffix(".xlsx").write_text("x") and clinical.with_suffix(".xlsx"))
