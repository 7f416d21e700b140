"""OASIS-1 and OASIS-3 discovery finds exactly the expected files; OASIS clinical data joins the items."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from monai_vqvae2.apps import discover_dataset, discover_oasis1, discover_oasis3, join_clinical_data


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
