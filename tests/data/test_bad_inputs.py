"""Every bad input gives an error naming the file and the problem, or, with on_error="skip", one warning each."""

from __future__ import annotations

import gzip
import re
import warnings

import nibabel as nib
import numpy as np
import pytest

from monai_vqvae2.apps import discover_dataset, discover_oasis1, read_file_list
from monai_vqvae2.data import BadInputWarning, InvalidImageError, check_image_file, make_slice_dataset


def _load(path, **kwargs):
    return make_slice_dataset([{"image": str(path)}], image_size=32, min_brain_fraction=0.1, **kwargs)


def _bad_files(tmp_path, build) -> dict[str, tuple]:
    """name -> (path, expected message regex)."""
    volume = build.known_volume()
    cases = {}

    corrupt = tmp_path / "corrupt.nii"
    corrupt.write_bytes(b"this is not an image" * 40)
    cases["corrupt"] = (corrupt, r"corrupt.nii: not a readable NIfTI file")

    full = build.write_nifti(tmp_path / "full.nii", volume)
    truncated = tmp_path / "truncated.nii"
    truncated.write_bytes(full.read_bytes()[:5000])
    cases["truncated nii"] = (truncated, r"truncated.nii: truncated: header declares shape \(20, 24, 20\) of float32")

    packed = build.write_nifti(tmp_path / "packed.nii.gz", volume)
    truncated_gz = tmp_path / "truncated.nii.gz"
    truncated_gz.write_bytes(packed.read_bytes()[: len(packed.read_bytes()) // 2])
    cases["truncated nii.gz"] = (
        truncated_gz,
        (
            r"truncated.nii.gz: truncated: the compressed data ends before its end-of-stream marker \(EOFError: .*\); "
            r"was it cut short\?"
        ),
    )

    short_img = build.write_analyze(tmp_path / "short.hdr", volume)
    img = short_img.with_suffix(".img")
    img.write_bytes(img.read_bytes()[:1000])
    cases["truncated analyze"] = (
        short_img,
        (
            r"short.img: truncated: short.hdr declares shape \(20, 24, 20, 1\) of int16 \(19200 bytes\), "
            r"but short.img has 1000 bytes"
        ),
    )

    other = build.write_analyze(tmp_path / "other.hdr", np.zeros((30, 30, 30), np.float32) + 1)
    swapped = build.write_analyze(tmp_path / "swapped.hdr", volume)
    swapped.with_suffix(".img").write_bytes(other.with_suffix(".img").read_bytes())
    cases["mismatched pair"] = (
        swapped,
        (
            r"swapped.img: mismatched Analyze .hdr/.img pair: swapped.hdr declares shape \(20, 24, 20, 1\) of int16 "
            r"\(19200 bytes\), but swapped.img has 54000 bytes"
        ),
    )

    lonely = build.write_analyze(tmp_path / "lonely.hdr", volume)
    lonely.with_suffix(".img").unlink()
    cases["missing img"] = (
        lonely,
        r"lonely.hdr: mismatched Analyze .hdr/.img pair: lonely.img is missing beside lonely.hdr",
    )

    with_nan = volume.copy()
    with_nan[5, 5, 5] = with_nan[6, 6, 6] = with_nan[7, 7, 7] = np.nan
    cases["nan"] = (
        build.write_nifti(tmp_path / "nan.nii.gz", with_nan),
        r"nan.nii.gz: contains 3 NaN and 0 infinite voxel\(s\) of 9600",
    )
    with_inf = volume.copy()
    with_inf[5, 5, 5], with_inf[6, 6, 6] = np.inf, -np.inf
    cases["inf"] = (
        build.write_nifti(tmp_path / "inf.nii.gz", with_inf),
        r"inf.nii.gz: contains 0 NaN and 2 infinite voxel\(s\)",
    )

    cases["all zero"] = (
        build.write_nifti(tmp_path / "zero.nii.gz", np.zeros((20, 24, 20), np.float32)),
        r"zero.nii.gz: is all zeros: no image content",
    )
    cases["constant"] = (
        build.write_nifti(tmp_path / "seven.nii.gz", np.full((20, 24, 20), 7, np.float32)),
        r"seven.nii.gz: is constant \(every voxel = 7\)",
    )
    cases["2d"] = (
        build.write_nifti(tmp_path / "flat.nii.gz", np.ones((32, 32), np.float32)),
        r"flat.nii.gz: is 2D \(shape \(32, 32\)\); expected a single 3D volume",
    )
    cases["2d as 3d"] = (
        build.write_nifti(tmp_path / "thin.nii.gz", np.ones((32, 32, 1), np.float32)),
        r"thin.nii.gz: has a singleton axis \(shape \(32, 32, 1\)\): a 2D image stored as 3D",
    )
    series = np.stack([volume] * 3, axis=-1)
    cases["4d series"] = (
        build.write_nifti(tmp_path / "series.nii.gz", series),
        r"series.nii.gz: holds 3 volumes/channels \(shape \(3, 20, 24, 20\)",
    )

    empty = tmp_path / "empty.nii.gz"
    empty.write_bytes(b"")
    cases["empty"] = (empty, r"empty.nii.gz: is empty \(0 bytes\)")
    cases["missing"] = (tmp_path / "gone.nii.gz", r"gone.nii.gz: does not exist")
    broken_png = tmp_path / "case_001_slice_0.nii.png"
    broken_png.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    cases["corrupt png"] = (broken_png, r"case_001_slice_0.nii.png: not a readable PNG image \(UnidentifiedImageError")
    good_png = build.write_png(tmp_path / "case_002_slice_0.nii.png", (np.arange(64 * 64) % 251).reshape(64, 64))
    cut_png = tmp_path / "case_003_slice_0.nii.png"
    cut_png.write_bytes(good_png.read_bytes()[: good_png.stat().st_size // 2])
    cases["truncated png"] = (
        cut_png,
        r"case_003_slice_0.nii.png: not a readable PNG image \(OSError: Truncated File Read",
    )
    return cases


CASES = [
    "corrupt",
    "truncated nii",
    "truncated nii.gz",
    "truncated analyze",
    "mismatched pair",
    "missing img",
    "nan",
    "inf",
    "all zero",
    "constant",
    "2d",
    "2d as 3d",
    "4d series",
    "empty",
    "missing",
    "corrupt png",
    "truncated png",
]


@pytest.mark.parametrize("case", CASES)
def test_each_bad_file_raises_naming_it(tmp_path, build, case):
    path, message = _bad_files(tmp_path, build)[case]
    with pytest.raises(InvalidImageError, match=message) as caught:
        _load(path)
    assert str(caught.value).startswith(str(tmp_path))
    assert isinstance(caught.value, ValueError)


def test_skip_warns_once_per_file_and_counts(tmp_path, build):
    cases = _bad_files(tmp_path, build)
    good = [build.write_nifti(tmp_path / f"good{i}.nii.gz", build.known_volume()) for i in range(2)]
    bad = [cases[name][0] for name in CASES]
    items = [{"image": str(p)} for p in [good[0], *bad, good[1]]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dataset = make_slice_dataset(items, image_size=32, min_brain_fraction=0.1, on_error="skip")
    messages = [str(w.message) for w in caught if issubclass(w.category, BadInputWarning)]
    assert len(messages) == len(bad) + 1
    for path, message in zip(bad, messages):
        assert re.search(re.escape(str(path).rsplit(".", 2)[0]), message) and message.startswith("skipping bad input")
    assert messages[-1] == f"loading: skipped {len(bad)} of {len(bad) + 2} file(s) with bad input (on_error='skip')."
    assert len(dataset) == 20 and dataset.subjects == ["good0", "good1"]
    assert [p for p, _ in dataset.skipped] == [str(p) for p in bad]


def test_check_image_file_alone(tmp_path, build):
    good = build.write_analyze(tmp_path / "ok.hdr", build.known_volume())
    check_image_file(good)
    check_image_file(good.with_suffix(".img"))  # the .img of a good pair is fine too
    header = good.read_bytes()
    good.write_bytes(header[:100])
    with pytest.raises(
        InvalidImageError, match=r"ok.hdr: truncated Analyze header: 100 bytes, an Analyze 7.5 header has 348"
    ):
        check_image_file(good)


def test_discovery_bad_input(tmp_path, build, oasis1_tree):
    root, expected = oasis1_tree
    expected["OAS1_0002_MR2"].unlink()  # the .img is left alone: a mismatched pair
    with pytest.raises(
        ValueError, match=r"OAS1_0002_MR2_mpr_n4_anon_111_t88_masked_gfc.img: Analyze .img without its .hdr"
    ):
        discover_oasis1(root)
    expected["OAS1_0002_MR2"].with_suffix(".img").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"OAS1_0002_MR2: no file matching PROCESSED/MPRAGE/T88_111/\*_t88_masked_gfc"
    ):
        discover_oasis1(root)
    with pytest.warns(BadInputWarning) as caught:
        items = discover_dataset(root, on_error="skip")
    assert [i["session"] for i in items] == ["OAS1_0001_MR1", "OAS1_0002_MR1", "OAS1_0042_MR1"]
    assert [str(w.message) for w in caught][
        -1
    ] == "OASIS-1 discovery: skipped 1 of 4 file(s) with bad input (on_error='skip')."

    lone = build.touch(tmp_path / "folder" / "scan.img")
    with pytest.raises(ValueError, match=r"scan.img: Analyze .img without its .hdr header \(mismatched pair\)"):
        discover_dataset(lone.parent, kind="nifti")
    listing = tmp_path / "list.txt"
    listing.write_text("folder/scan.img\nfolder/absent.nii.gz\n")
    with pytest.raises(FileNotFoundError, match=r"absent.nii.gz: listed in .*list.txt but does not exist"):
        read_file_list(listing)
    with pytest.warns(BadInputWarning) as caught:
        assert [i["subject"] for i in read_file_list(listing, on_error="skip")] == ["scan"]
    assert [str(w.message).split(": ", 1)[1] for w in caught] == [
        f"{tmp_path / 'folder' / 'absent.nii.gz'}: listed in {listing} but does not exist.",
        "skipped 1 of 2 file(s) with bad input (on_error='skip').",
    ]


def test_gzip_of_garbage(tmp_path):
    path = tmp_path / "garbage.nii.gz"
    with gzip.open(path, "wb") as stream:
        stream.write(b"\0" * 100)
    with pytest.raises(InvalidImageError, match=r"garbage.nii.gz: not a readable NIfTI file"):
        _load(path)


def test_nibabel_reads_what_we_write(tmp_path, build):
    """Guard for the fixtures: the OASIS-style Analyze pair is what nibabel reports for real OASIS files."""
    path = build.write_analyze(tmp_path / "oasis.hdr", build.known_volume())
    image = nib.load(str(path))
    assert image.shape == (20, 24, 20, 1) and nib.aff2axcodes(image.affine) == ("L", "A", "S")
