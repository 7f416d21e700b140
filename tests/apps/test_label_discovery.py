"""``labels=True``: every layout that ships tissue labels gives each image its label file as ``"label"``, and says
clearly which label is missing, or why a layout has none."""

from __future__ import annotations

import numpy as np
import pytest

from monai_vqvae2.apps import discover_dataset, discover_nifti_folder, discover_oasis1, discover_png_slices
from monai_vqvae2.data.errors import BadInputWarning


def fseg_path(image_path):
    session_dir = image_path.parents[3]
    return session_dir / "FSL_SEG" / f"{session_dir.name}_mpr_n4_anon_111_t88_masked_gfc_fseg.hdr"


def test_oasis1_labels_are_the_sessions_fsl_seg_volumes(oasis1_tree):
    root, images = oasis1_tree  # every session has FSL_SEG/<session>_..._fseg.hdr beside its T88 image
    items = discover_oasis1(root, labels=True)
    assert [item["label"] for item in items] == [str(fseg_path(images[item["session"]])) for item in items]
    assert all("label" not in item for item in discover_oasis1(root))
    unmasked = discover_oasis1(root, image="t88_gfc", labels=True)  # the same T88 grid
    assert [item["label"] for item in unmasked] == [item["label"] for item in items]


def test_oasis1_session_without_its_label(oasis1_tree):
    root, images = oasis1_tree
    missing = fseg_path(images["OAS1_0002_MR1"])
    missing.unlink()
    missing.with_suffix(".img").unlink()
    with pytest.raises(FileNotFoundError, match=r"OAS1_0002_MR1/FSL_SEG: no tissue label matching \*_fseg"):
        discover_oasis1(root, labels=True)
    with pytest.warns(BadInputWarning, match="OAS1_0002_MR1/FSL_SEG"):
        items = discover_oasis1(root, labels=True, on_error="skip")
    assert "OAS1_0002_MR1" not in [item["session"] for item in items] and len(items) == 3


def test_oasis1_labels_need_a_t88_image(oasis1_tree):
    root, _ = oasis1_tree
    with pytest.raises(ValueError, match="labels=True needs a T88 image .* oasis1_image='subj_111'"):
        discover_oasis1(root, image="subj_111", labels=True)


def test_png_labels_are_the_seg_folders_masks(tmp_path, build):
    pixels = np.zeros((8, 8), np.uint8)
    for k in range(3):
        build.write_png(tmp_path / "keras_png_slices_train" / f"case_001_slice_{k}.nii.png", pixels)
        build.write_png(tmp_path / "keras_png_slices_seg_train" / f"seg_001_slice_{k}.nii.png", pixels)
    items = discover_png_slices(tmp_path, labels=True)
    assert [item["label"] for item in items] == [
        str(tmp_path / "keras_png_slices_seg_train" / f"seg_001_slice_{k}.nii.png") for k in range(3)
    ]
    (tmp_path / "keras_png_slices_seg_train" / "seg_001_slice_1.nii.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"case_001_slice_1\.nii\.png: no tissue mask .*seg_001_slice_1"):
        discover_dataset(tmp_path, labels=True)


def test_nifti_labels_mirror_the_image_folder(tmp_path, build):
    volume = np.zeros((4, 4, 4), np.float32)
    for name in ("a/s1.nii.gz", "b/s2.nii.gz"):
        build.write_nifti(tmp_path / "images" / name, volume)
        build.write_nifti(tmp_path / "labels" / name, volume)
    items = discover_dataset(tmp_path / "images", "nifti", label_dir=tmp_path / "labels")
    assert [item["label"] for item in items] == [str(tmp_path / "labels" / n) for n in ("a/s1.nii.gz", "b/s2.nii.gz")]
    (tmp_path / "labels" / "b" / "s2.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"s2\.nii\.gz: no label .*labels/b/s2\.nii\.gz"):
        discover_nifti_folder(tmp_path / "images", label_dir=tmp_path / "labels")
    with pytest.raises(ValueError, match="`label_dir` .* lies inside `dataset_dir`"):
        discover_nifti_folder(tmp_path, label_dir=tmp_path / "labels")
    with pytest.raises(ValueError, match="say where the labels are with `label_dir`"):
        discover_dataset(tmp_path / "images", "nifti", labels=True)


def test_layouts_without_labels_and_misplaced_label_dir_are_refused(tmp_path, build, oasis1_tree):
    build.write_nifti(
        tmp_path / "oasis3" / "sub-OAS30001" / "ses-d0001" / "anat" / "sub-OAS30001_ses-d0001_T1w.nii.gz",
        np.ones((4, 4, 4)),
    )
    with pytest.raises(ValueError, match="OASIS-3 BIDS images, which come without tissue labels"):
        discover_dataset(tmp_path / "oasis3", "oasis3", labels=True)
    root, _ = oasis1_tree
    with pytest.raises(ValueError, match="`label_dir` is for kind='nifti'"):
        discover_dataset(root, "oasis1", label_dir=tmp_path)
    with pytest.raises(ValueError, match="`label_dir` is for a NIfTI folder, but .* holds the oasis1 layout"):
        discover_dataset(root, "auto", label_dir=tmp_path)


def test_file_lists_give_labels_in_a_label_column(tmp_path, build):
    build.write_nifti(tmp_path / "s1.nii.gz", np.zeros((4, 4, 4), np.float32))
    build.write_nifti(tmp_path / "s1_seg.nii.gz", np.zeros((4, 4, 4), np.float32))
    (tmp_path / "list.csv").write_text("image,label\ns1.nii.gz,s1_seg.nii.gz\n")
    items = discover_dataset(tmp_path / "list.csv", labels=True)
    assert items[0]["label"] == str(tmp_path / "s1_seg.nii.gz")  # resolved against the list's folder
    with pytest.raises(ValueError, match="a file list names its labels in a 'label' column"):
        discover_dataset(tmp_path / "list.csv", label_dir=tmp_path)
    (tmp_path / "plain.csv").write_text("image\ns1.nii.gz\n")
    with pytest.raises(ValueError, match=r"names no label for .*s1\.nii\.gz: give a 'label' column"):
        discover_dataset(tmp_path / "plain.csv", labels=True)
    (tmp_path / "broken.csv").write_text("image,label\ns1.nii.gz,gone.nii.gz\n")
    with pytest.raises(FileNotFoundError, match=r"gone\.nii\.gz: label of .*s1\.nii\.gz listed in"):
        discover_dataset(tmp_path / "broken.csv", labels=True)
