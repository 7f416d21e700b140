"""Builders of small datasets in the real OASIS-1, OASIS-3, PNG and NIfTI layouts (written into ``tmp_path``)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

SHAPE = (20, 24, 20)  # RAS voxel order: x (left->right), y (posterior->anterior), z (inferior->superior)
FULL_SLICES = range(5, 15)  # z with a 12 x 16 brain (fraction 0.6 of the cropped 16 x 20 slice)
SMALL_SLICES = (3, 4, 15, 16)  # z with a 4 x 4 brain (fraction 0.05)
NOTCH_SLICE = 14  # top full slice: the patient-left, anterior corner of the brain is missing


def known_volume(value: float = 100.0) -> np.ndarray:
    """A 20 x 24 x 20 volume in RAS order with known brain content.

    The brain bounding box is x 4..15, y 4..19, z 3..16; with a 2-voxel crop margin the cropped volume is
    x 2..17, y 2..21, z 1..18 (16 x 20 x 18). Slices z 5..14 hold a 12 x 16 block (brain fraction 0.6), slices
    z 3, 4, 15, 16 a 4 x 4 block (0.05). On the top full slice (z 14) the voxel at the patient's left-anterior
    corner of the block (x 4, y 19) is empty, to check orientation.
    """
    volume = np.zeros(SHAPE, dtype=np.float32)
    volume[4:16, 4:20, 5:15] = value
    for z in SMALL_SLICES:
        volume[8:12, 10:14, z] = value
    volume[4, 19, NOTCH_SLICE] = 0.0
    return volume


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    """Write a NIfTI file (RAS 1 mm affine by default)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), str(path))
    return path


def write_analyze(path: Path, ras: np.ndarray, trailing_singleton: bool = True) -> Path:
    """Write an Analyze 7.5 pair the OASIS way: radiological storage (x flipped), int16, shape (X, Y, Z, 1)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    stored = np.ascontiguousarray(ras[::-1]).astype(np.int16)
    if trailing_singleton:
        stored = stored[..., None]
    image = nib.AnalyzeImage(stored, affine=None)
    image.header.set_zooms((1.0,) * stored.ndim)
    nib.save(image, str(path))
    return path


def write_png(path: Path, pixels: np.ndarray) -> Path:
    """Write an 8-bit grey PNG; ``pixels`` is ``(H, W)`` in display order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.astype(np.uint8), mode="L").save(path)
    return path


def touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def oasis1_image_path(root: Path, session: str, disc: int = 1, kind: str = "t88_masked_gfc") -> Path:
    folder = {"t88_masked_gfc": "T88_111", "t88_gfc": "T88_111", "sbj_111": "SUBJ_111"}[kind]
    suffix = {"t88_masked_gfc": "111_t88_masked_gfc", "t88_gfc": "111_t88_gfc", "sbj_111": "sbj_111"}[kind]
    return root / f"disc{disc}" / session / "PROCESSED" / "MPRAGE" / folder / f"{session}_mpr_n4_anon_{suffix}.hdr"


def make_oasis1_tree(root: Path, sessions: dict[str, int], real_images: bool = True) -> dict[str, Path]:
    """An OASIS-1 tree: ``sessions`` maps session name -> disc number. Returns session -> masked_gfc ``.hdr``.

    Every session also gets the decoys of a real session (unmasked T88, SUBJ_111, RAW scans, FSL_SEG, GIF
    previews, a macOS ``._`` resource fork).
    """
    found = {}
    for session, disc in sessions.items():
        target = oasis1_image_path(root, session, disc)
        if real_images:
            write_analyze(target, known_volume())
        else:
            touch(target), touch(target.with_suffix(".img"))
        found[session] = target
        for kind in ("t88_gfc", "sbj_111"):
            decoy = oasis1_image_path(root, session, disc, kind)
            touch(decoy), touch(decoy.with_suffix(".img"))
        session_dir = root / f"disc{disc}" / session
        for scan in (1, 2, 3):
            touch(session_dir / "RAW" / f"{session}_mpr-{scan}_anon.hdr")
            touch(session_dir / "RAW" / f"{session}_mpr-{scan}_anon.img")
        touch(session_dir / "FSL_SEG" / f"{session}_mpr_n4_anon_111_t88_masked_gfc_fseg.hdr")
        touch(session_dir / "FSL_SEG" / f"{session}_mpr_n4_anon_111_t88_masked_gfc_fseg.img")
        touch(target.parent / f"{session}_mpr_n4_anon_111_t88_masked_gfc_tra_90.gif")
        touch(target.parent / f"._{target.name}")
    return found


@pytest.fixture
def oasis1_tree(tmp_path: Path) -> tuple[Path, dict[str, Path]]:
    """Three subjects on two discs; OAS1_0002 has MR1 and MR2."""
    root = tmp_path / "oasis1"
    sessions = {"OAS1_0001_MR1": 1, "OAS1_0002_MR1": 1, "OAS1_0002_MR2": 1, "OAS1_0042_MR1": 2}
    return root, make_oasis1_tree(root, sessions)


@pytest.fixture
def build() -> SimpleNamespace:
    """The builders above, for test modules (importing ``conftest`` by name is ambiguous across test folders)."""
    return SimpleNamespace(
        SHAPE=SHAPE,
        FULL_SLICES=FULL_SLICES,
        SMALL_SLICES=SMALL_SLICES,
        NOTCH_SLICE=NOTCH_SLICE,
        known_volume=known_volume,
        write_nifti=write_nifti,
        write_analyze=write_analyze,
        write_png=write_png,
        touch=touch,
        oasis1_image_path=oasis1_image_path,
        make_oasis1_tree=make_oasis1_tree,
    )
