"""Embedded demo data: pseudo-subjects derived from the MNI152 template that nilearn ships (no network).

The MNI ICBM152 2009 T1 template (Fonov et al. 2011, https://doi.org/10.1016/j.neuroimage.2010.07.033) is *one
average brain*. A subject-level split of copies of it would be meaningless, so each pseudo-subject is the
template under a seeded, realistic variation: a small random affine (rotation of a few degrees, per-axis scaling
of a few percent, shift), a smooth random deformation, a gamma change of contrast, a smooth multiplicative bias
field and noise, then masked by the equally warped brain mask so that it looks like an OASIS-1
``t88_masked_gfc`` image. Like an OASIS-1 session it also has a tissue segmentation in ``FSL_SEG`` (0 background,
1 CSF, 2 grey matter, 3 white matter, as FSL FAST labels them): the most likely class inside the warped brain mask
from the template's grey- and white-matter probability maps, warped the same way (CSF: what they leave). The
result is written as Analyze 7.5 in the OASIS-1 layout (stored radiologically, ``(176, 208, 176, 1)`` int16, like
OASIS), so the demo goes through exactly the OASIS-1 loading path. It is a
demo and a test fixture, not evidence that a model generalises: every pseudo-subject is the same brain.

The demo writes only into a folder of its own. Because its files carry real OASIS-1 names, it never writes into a
folder it did not create: a folder is the demo's when it holds the marker file :data:`DEMO_MARKER`, written first
into a new or empty folder. Clean-up removes only files whose content digest is the one the demo recorded when it
wrote them, never a file merely because of its name.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

from monai_vqvae2.io import atomic_write
from monai_vqvae2.provenance import file_digest

__all__ = [
    "DEMO_GRID_SHAPE",
    "DEMO_MARKER",
    "MNI_NOTICE",
    "check_demo_dependencies",
    "default_demo_dir",
    "demo_label_path",
    "demo_session_paths",
    "prepare_demo_dataset",
]

#: OASIS-1 T88 grid (1 mm isotropic).
DEMO_GRID_SHAPE = (176, 208, 176)
#: The file that marks a folder as created by :func:`prepare_demo_dataset`; no other folder is ever written to.
DEMO_MARKER = ".monai_vqvae2_demo"
_MARKER_TEXT = (
    "This folder was created by monai_vqvae2's embedded demo (prepare_demo_dataset) and holds only generated data.\n"
    "The demo writes only into folders holding this file. Deleting the whole folder is safe.\n"
)
_FORMAT_VERSION = 3  # 2: the manifest records a SHA-256 per file written; 3: tissue labels in FSL_SEG
_MANIFEST = "demo_manifest.json"
_NOTICE_FILE = "MNI152_NOTICE.txt"
_INTENSITY_SCALE = 1000.0  # template intensities (0..1) to int16 counts, in the range of OASIS images

MNI_NOTICE = """\
The images in this folder are derived from the MNI ICBM152 non-linear 2009 T1-weighted template and brain mask
shipped with nilearn (nilearn.datasets.load_mni152_template / load_mni152_brain_mask). Each pseudo-subject is
the same average brain under a random affine, a smooth deformation, a contrast change, a bias field and noise:
ONE average brain, not a population. Use it for demos and tests, never as evidence of generalisation.

Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging Centre, Montreal Neurological
Institute, McGill University. Permission to use, copy, modify, and distribute this software and its
documentation for any purpose and without fee is hereby granted, provided that the above copyright
notice appear in all copies. The authors and McGill University make no representations about the
suitability of this software for any purpose. It is provided "as is" without express or implied
warranty. The authors are not responsible for any data loss, equipment damage, property loss, or
injury to subjects or patients resulting from the use or misuse of this software package.

References: Fonov V. et al., NeuroImage 54(1):313-327 (2011), doi:10.1016/j.neuroimage.2010.07.033;
Fonov V. et al., NeuroImage 47:S102 (2009); Collins D. L. et al., NeuroImage 1999.
"""


def check_demo_dependencies() -> None:
    """Check that nilearn, which ships the MNI152 template and is only an optional dependency, is installed.

    Raises:
        ImportError: nilearn is missing; the message gives the install command of the ``demo`` extra.
    """
    if importlib.util.find_spec("nilearn") is None:
        raise ImportError(
            "The embedded demo data is made from the MNI152 template that nilearn ships, and nilearn is not "
            'installed: pip install "monai-vqvae2[demo]"'
        )


def default_demo_dir() -> Path:
    """Default demo folder: ``$MONAI_VQVAE2_CACHE/demo``, else ``$XDG_CACHE_HOME/monai_vqvae2/demo``, else
    ``~/.cache/monai_vqvae2/demo``."""
    if os.environ.get("MONAI_VQVAE2_CACHE"):
        return Path(os.environ["MONAI_VQVAE2_CACHE"]).expanduser() / "demo"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return cache / "monai_vqvae2" / "demo"


def _sessions(num_subjects: int, with_mr2: bool) -> list[tuple[int, int]]:
    """(subject number, session number) pairs: MR1 for every subject, plus MR2 for subject 1."""
    sessions = [(subject, 1) for subject in range(1, num_subjects + 1)]
    if with_mr2:
        sessions.append((1, 2))
    return sessions


def demo_label_path(image_path: str | os.PathLike) -> Path:
    """The tissue segmentation :func:`prepare_demo_dataset` writes beside a session's image, where OASIS-1 keeps
    it: ``<session>/FSL_SEG/<image name>_fseg.hdr``."""
    image_path = Path(image_path)
    session_dir = image_path.parents[3]
    return session_dir / "FSL_SEG" / f"{image_path.stem}_fseg.hdr"


def demo_session_paths(root: str | os.PathLike, num_subjects: int = 8, with_mr2: bool = True) -> list[Path]:
    """The ``.hdr`` paths :func:`prepare_demo_dataset` writes (OASIS-1 layout).

    Args:
        root: demo folder.
        num_subjects: number of pseudo-subjects.
        with_mr2: whether subject 1 has a second session ``MR2``.

    Returns:
        one Analyze header path per session.
    """
    paths = []
    for subject, session in _sessions(num_subjects, with_mr2):
        name = f"OAS1_{subject:04d}_MR{session}"
        paths.append(
            Path(root)
            / "disc1"
            / name
            / "PROCESSED"
            / "MPRAGE"
            / "T88_111"
            / f"{name}_mpr_n4_anon_111_t88_masked_gfc.hdr"
        )
    return paths


def _atomic_save_analyze(data: np.ndarray, header_path: Path) -> None:
    """Write an Analyze pair under hidden temporary names, then rename ``.img`` and finally ``.hdr`` into place."""
    header_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = header_path.with_name(f".partial_{os.getpid()}_{header_path.name}")
    image = nib.AnalyzeImage(data, affine=None)
    image.header.set_zooms((1.0, 1.0, 1.0, 1.0)[: data.ndim])
    try:
        nib.save(image, str(temporary))
        os.replace(temporary.with_suffix(".img"), header_path.with_suffix(".img"))
        os.replace(temporary, header_path)
    finally:
        temporary.unlink(missing_ok=True)
        temporary.with_suffix(".img").unlink(missing_ok=True)


def _load_template() -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Template, brain mask and grey- and white-matter probability maps as a ``(1, 4, X, Y, Z)`` tensor, the template
    affine and the mask's centre (mm)."""
    check_demo_dependencies()
    from nilearn.datasets import (
        load_mni152_brain_mask,
        load_mni152_gm_template,
        load_mni152_template,
        load_mni152_wm_template,
    )

    template = load_mni152_template(resolution=1)
    mask = load_mni152_brain_mask(resolution=1)
    t1 = np.asarray(template.get_fdata(dtype=np.float32))
    brain = np.asarray(mask.get_fdata(dtype=np.float32))
    tissues = [
        np.asarray(load(resolution=1).get_fdata(dtype=np.float32))
        for load in (load_mni152_gm_template, load_mni152_wm_template)
    ]
    if any(volume.shape != t1.shape for volume in (brain, *tissues)):
        raise ValueError(f"nilearn template {t1.shape}, brain mask and tissue maps differ in shape.")
    t1 = t1 / max(float(t1.max()), 1e-6)
    nonzero = np.argwhere(brain > 0.5)
    centre_voxel = (nonzero.min(0) + nonzero.max(0)) / 2.0
    centre_mm = template.affine[:3, :3] @ centre_voxel + template.affine[:3, 3]
    volumes = torch.from_numpy(np.stack([t1 * brain, brain, *tissues]))[None]
    return volumes, np.asarray(template.affine, dtype=np.float64), centre_mm


def _rotation(angles: np.ndarray) -> np.ndarray:
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _smooth_field(
    generator: torch.Generator, control_points: int, shape: tuple[int, ...], channels: int
) -> torch.Tensor:
    """A smooth random field: standard-normal control points upsampled (trilinear) to ``shape``."""
    coarse = torch.randn((1, channels, control_points, control_points, control_points), generator=generator)
    return F.interpolate(coarse, size=shape, mode="trilinear", align_corners=True)[0]


def _make_session(
    volumes: torch.Tensor, template_affine: np.ndarray, centre_mm: np.ndarray, seed: int, subject: int, session: int
) -> tuple[np.ndarray, np.ndarray]:
    """One pseudo-subject session in RAS voxel order on the OASIS grid: the image (float32, 0 outside the brain) and
    its tissue label (uint8: 0 outside the brain, then 1 CSF, 2 grey matter, 3 white matter)."""
    anatomy = np.random.default_rng([seed, subject])  # shared by all sessions of a subject
    scan = np.random.default_rng([seed, subject, session])  # re-scan: new position, noise and bias
    angles = np.deg2rad(anatomy.uniform(-4.0, 4.0, 3) + scan.uniform(-1.0, 1.0, 3))
    scales = anatomy.uniform(0.93, 1.07, 3)
    shift = anatomy.uniform(-3.0, 3.0, 3) + scan.uniform(-1.0, 1.0, 3)
    gamma = float(anatomy.uniform(0.85, 1.15))
    anatomy_generator = torch.Generator().manual_seed(int(anatomy.integers(2**31)))
    scan_generator = torch.Generator().manual_seed(int(scan.integers(2**31)))

    # Output voxel -> template voxel, as one affine: output voxel -> centred subject mm -> template mm -> voxel.
    shape = DEMO_GRID_SHAPE
    out_centre = (np.asarray(shape, dtype=np.float64) - 1.0) / 2.0
    subject_to_template = np.linalg.inv(_rotation(angles) @ np.diag(scales))
    world_to_voxel = np.linalg.inv(template_affine)
    linear = world_to_voxel[:3, :3] @ subject_to_template  # mm displacement -> template voxels
    offset = world_to_voxel[:3, :3] @ (centre_mm - subject_to_template @ (out_centre + shift)) + world_to_voxel[:3, 3]
    # Normalised coordinates of grid_sample / affine_grid ([-1, 1], align_corners=True), axes reversed (z, y, x).
    in_size = np.asarray(volumes.shape[2:], dtype=np.float64)
    to_out_voxel = np.diag(np.append((np.asarray(shape) - 1.0) / 2.0, 1.0))
    to_out_voxel[:3, 3] = (np.asarray(shape) - 1.0) / 2.0
    to_in_normalised = np.diag(np.append(2.0 / (in_size - 1.0), 1.0))
    to_in_normalised[:3, 3] = -1.0
    voxel_map = np.eye(4)
    voxel_map[:3, :3], voxel_map[:3, 3] = linear, offset
    theta = to_in_normalised @ voxel_map @ to_out_voxel
    reverse = np.eye(4)[[2, 1, 0, 3]]
    theta = torch.as_tensor((reverse @ theta @ reverse)[:3], dtype=torch.float32)[None]
    grid = F.affine_grid(theta, [1, 1, *shape], align_corners=True)
    # Smooth deformation of about 2 mm, added in the same normalised units.
    mm_to_normalised = torch.as_tensor(
        (reverse[:3, :3] @ np.diag(2.0 / (in_size - 1.0)) @ linear @ reverse[:3, :3]).T, dtype=torch.float32
    )
    deformation = 2.0 * _smooth_field(anatomy_generator, 5, shape, 3).permute(1, 2, 3, 0)
    grid += deformation @ mm_to_normalised
    image = F.grid_sample(volumes[:, :1], grid, mode="bilinear", align_corners=True)[0, 0]
    brain = F.grid_sample(volumes[:, 1:2], grid, mode="bilinear", align_corners=True)[0, 0] > 0.5
    grey, white = F.grid_sample(volumes[:, 2:4], grid, mode="bilinear", align_corners=True)[0]
    csf = (1.0 - grey - white).clamp_min(0.0)
    label = torch.where(brain, torch.stack([csf, grey, white]).argmax(0) + 1, torch.zeros((), dtype=torch.int64))

    bias = torch.exp(0.08 * _smooth_field(scan_generator, 3, shape, 1)[0])
    noise = torch.randn(shape, generator=scan_generator) * 0.015
    image = (image.clamp_min(0.0) ** gamma * bias + noise).clamp_min(0.0)
    return torch.where(brain, image, torch.zeros(())).numpy(), label.to(torch.uint8).numpy()


def _claim_folder(folder: Path) -> None:
    """Make ``folder`` the demo's: create it (or take it when empty) and write the marker first.

    Raises:
        FileExistsError: ``folder`` is a file, or a non-empty folder without the marker (not created by the demo).
    """
    if (folder / DEMO_MARKER).is_file():
        return
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise FileExistsError(
            f"demo folder {str(folder)!r} exists and was not created by the demo (no {DEMO_MARKER!r} marker file); "
            "the demo writes only into a new or empty folder, because its files carry OASIS-1 names. Give a new "
            "folder (or none for the default cache folder); if this is a demo cache of an older version of "
            "monai_vqvae2, delete it."
        )
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / DEMO_MARKER, lambda temporary: temporary.write_text(_MARKER_TEXT))


def _read_manifest(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, OSError, UnicodeDecodeError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def _remove_if_written_by_demo(folder: Path, relative: str, digest: Any) -> None:
    """Remove ``folder/relative`` only if its content is what the demo wrote; then its folders left empty."""
    path = folder / relative
    if not (isinstance(digest, str) and path.is_file() and not path.is_symlink() and file_digest(path) == digest):
        return
    path.unlink()
    parent = path.parent
    while parent != folder and parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()  # the session's now-empty folders, so discovery does not see a session without image
        parent = parent.parent


def prepare_demo_dataset(
    root: str | os.PathLike | None = None, num_subjects: int = 8, seed: int = 0, with_mr2: bool = True
) -> Path:
    """Write the demo dataset (OASIS-1 layout, Analyze 7.5) under ``root`` and return ``root``.

    Files: ``root/disc1/OAS1_000N_MR1/PROCESSED/MPRAGE/T88_111/OAS1_000N_MR1_mpr_n4_anon_111_t88_masked_gfc.hdr``
    and ``.img`` for N = 1..``num_subjects`` (plus ``OAS1_0001_MR2``, a re-scan of subject 1, when ``with_mr2``),
    each with its tissue segmentation ``FSL_SEG/OAS1_000N_MR1_mpr_n4_anon_111_t88_masked_gfc_fseg.hdr`` and ``.img``
    (:func:`demo_label_path`), ``root/MNI152_NOTICE.txt`` (copyright notice and the one-brain caveat), the marker
    ``root/.monai_vqvae2_demo`` and ``root/demo_manifest.json`` (settings and the SHA-256 of every file written).

    ``root`` must be new, empty or a folder this function created (it holds the marker, written before anything
    else): a folder of the user's is refused, never written to. Every file is written atomically; the manifest is
    written last. Idempotent: when the manifest matches the arguments and every file exists, nothing is read or
    written; otherwise only missing sessions are generated (each session depends on ``seed``, subject and session
    only) and files of an earlier call that are no longer wanted are removed, but only when their content is still
    what was recorded when they were written. About 1-2 s per session on 2 CPU cores, plus about 2 s to load the
    template.

    Args:
        root: demo folder; ``None`` uses :func:`default_demo_dir`.
        num_subjects: number of pseudo-subjects (>= 1).
        seed: seed of the variations.
        with_mr2: add a second session for subject 1 (exercises the MR1/MR2 same-split rule).

    Returns:
        ``root`` as a ``Path``.

    Raises:
        ValueError: ``num_subjects`` < 1 or > 9999.
        FileExistsError: ``root`` exists, is not empty and was not created by this function.
        ImportError: sessions must be generated and nilearn (the optional ``demo`` extra) is not installed.
    """
    if not 1 <= int(num_subjects) <= 9999 or int(num_subjects) != num_subjects:
        raise ValueError(f"`num_subjects` must be an int in [1, 9999], got {num_subjects!r}.")
    folder = Path(root).expanduser() if root is not None else default_demo_dir()
    _claim_folder(folder)
    wanted = demo_session_paths(folder, int(num_subjects), with_mr2)
    settings: dict[str, Any] = {
        "version": _FORMAT_VERSION,
        "num_subjects": int(num_subjects),
        "seed": int(seed),
        "with_mr2": bool(with_mr2),
        "grid": list(DEMO_GRID_SHAPE),
    }
    manifest_path = folder / _MANIFEST
    previous = _read_manifest(manifest_path)
    recorded = previous.get("files") if isinstance(previous.get("files"), dict) else {}
    wanted_files = [
        str(q.with_suffix(suffix).relative_to(folder))
        for p in wanted
        for q in (p, demo_label_path(p))
        for suffix in (".hdr", ".img")
    ]
    complete = all((folder / relative).is_file() for relative in wanted_files)
    if previous.get("settings") == settings and complete and (folder / _NOTICE_FILE).is_file():
        return folder

    def data_settings(values: Any) -> dict[str, Any]:
        return {k: v for k, v in (values or {}).items() if k not in ("num_subjects", "with_mr2")}

    same_data = data_settings(previous.get("settings")) == data_settings(settings)
    kept = {relative: digest for relative, digest in recorded.items() if same_data and relative in wanted_files}
    for relative, digest in recorded.items():  # files an earlier call wrote that are no longer wanted
        if relative not in kept:
            _remove_if_written_by_demo(folder, relative, digest)

    atomic_write(folder / _NOTICE_FILE, lambda temporary: temporary.write_text(MNI_NOTICE))
    missing = [
        (pair, path)
        for pair, path in zip(_sessions(int(num_subjects), with_mr2), wanted)
        if not all(
            q.with_suffix(suffix).is_file() for q in (path, demo_label_path(path)) for suffix in (".hdr", ".img")
        )
    ]
    if missing:
        volumes, template_affine, centre_mm = _load_template()
        for (subject, session), path in missing:
            ras, label = _make_session(volumes, template_affine, centre_mm, int(seed), subject, session)
            stored = np.round(ras[::-1] * _INTENSITY_SCALE).astype(np.int16)[..., None]  # radiological (LAS), 4D
            _atomic_save_analyze(np.ascontiguousarray(label[::-1][..., None]), demo_label_path(path))
            _atomic_save_analyze(np.ascontiguousarray(stored), path)
    files = {relative: kept.get(relative) or file_digest(folder / relative) for relative in sorted(wanted_files)}
    manifest = {"settings": settings, "files": files, "notice": _NOTICE_FILE}
    atomic_write(manifest_path, lambda temporary: temporary.write_text(json.dumps(manifest, indent=1) + "\n"))
    return folder
