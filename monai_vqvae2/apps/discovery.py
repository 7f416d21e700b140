"""One entry point for every dataset layout: :func:`discover_dataset` picks the layout (or detects it) and returns
MONAI-style items; :func:`prepare_split` gives a run its subject-level split of them, written once and then read back.

Every discovered item is a plain, JSON-serialisable dict with at least ``"image"`` (absolute path, str),
``"subject"`` (str) and ``"session"`` (str, globally unique: the subject id plus a session label), plus
``"dataset"`` (the layout it came from). The layouts are described in ``bundle/docs/data.md``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from monai_vqvae2.apps.demo_data import prepare_demo_dataset
from monai_vqvae2.apps.folders import (
    PNG_FOLDER_RE,
    check_dataset_dir,
    discover_nifti_folder,
    discover_png_slices,
    find_dirs,
    read_file_list,
    walk_files,
)
from monai_vqvae2.apps.oasis import (
    BIDS_FILE_RE,
    OASIS1_SESSION_RE,
    discover_oasis1,
    discover_oasis3,
    join_clinical_data,
)
from monai_vqvae2.data.splits import (
    SPLIT_NAMES,
    check_fractions,
    check_outside_dataset,
    load_split,
    save_split,
    split_by_subject,
)

__all__ = ["DATASET_KINDS", "LAYOUTS", "discover_dataset", "prepare_split"]

DATASET_KINDS = ("auto", "oasis1", "oasis3", "png", "nifti", "demo", "list")

#: What each layout looks for, in the order ``kind="auto"`` tries them (quoted in "nothing found" errors).
LAYOUTS = {
    "png": "keras_png_slices_{train,validate,test}/*.png (preprocessed 2D slices; *_seg_* folders ignored)",
    "oasis1": "[disc*/]OAS1_XXXX_MR*/PROCESSED/MPRAGE/T88_111/*_t88_masked_gfc.hdr (OASIS-1, Analyze 7.5)",
    "oasis3": "sub-*/ses-*/anat/sub-*_ses-*[_run-NN]_T1w.nii[.gz] (OASIS-3, BIDS)",
    "nifti": "any *.nii, *.nii.gz or Analyze *.hdr file below the folder (generic)",
}


def _layout_present(layout: str, root: Path) -> bool:
    """Whether the folder structure of a layout exists below ``root`` (whatever the image options)."""
    if layout == "png":
        return bool(find_dirs(root, PNG_FOLDER_RE))
    if layout == "oasis1":
        return bool(find_dirs(root, OASIS1_SESSION_RE))
    if layout == "oasis3":
        return any(BIDS_FILE_RE.match(p.name) for p in walk_files(root))
    return True


def _discover_demo(
    dataset_dir: str | os.PathLike | None, num_subjects: int, seed: int, labels: bool
) -> list[dict[str, Any]]:
    root = prepare_demo_dataset(dataset_dir, num_subjects=num_subjects, seed=seed)
    return [dict(item, dataset="demo") for item in discover_oasis1(root, labels=labels)]


def _check_labels(items: list[dict[str, Any]], source: Any) -> None:
    """With ``labels=True`` a file list must name a label for every image (column ``label``)."""
    for item in items:
        if not item.get("label"):
            raise ValueError(
                f"labels=True, but the file list {source!r} names no label for {item['image']}: give a 'label' "
                "column (or key) with the path of each image's label file."
            )


def discover_dataset(
    dataset_dir: str | os.PathLike | Sequence[Any] | None,
    kind: str = "auto",
    *,
    oasis1_image: str = "t88_masked_gfc",
    modalities: Sequence[str] = ("T1w",),
    subject_pattern: str | None = None,
    clinical_csv: str | os.PathLike | None = None,
    demo_subjects: int = 8,
    demo_seed: int = 0,
    on_error: str = "raise",
    labels: bool = False,
    label_dir: str | os.PathLike | None = None,
) -> list[dict[str, Any]]:
    """Discover a dataset and return MONAI-style items ``{"image": path, "subject": id, "session": id, ...}``.

    Args:
        dataset_dir: the folder to read (for ``kind="list"``: a CSV/TSV/TXT file or a sequence of paths/dicts; for
            ``kind="demo"``: where to build the demo, ``None`` for the default cache folder).
        kind: ``"auto"`` (try ``png``, ``oasis1``, ``oasis3``, ``nifti`` in that order, or ``list`` when
            ``dataset_dir`` is a file or a sequence), ``"oasis1"``, ``"oasis3"``, ``"png"``, ``"nifti"``,
            ``"demo"`` or ``"list"``.
        oasis1_image: OASIS-1 image choice, see :func:`discover_oasis1`.
        modalities: OASIS-3 BIDS suffixes to keep, see :func:`discover_oasis3`.
        subject_pattern: subject-id regular expression for ``kind="nifti"``, see :func:`discover_nifti_folder`.
        clinical_csv: optional CSV joined into the items, see :func:`join_clinical_data`.
        demo_subjects: number of pseudo-subjects for ``kind="demo"``.
        demo_seed: seed of the demo data.
        on_error: ``"raise"`` (default) or ``"skip"`` (one warning per bad entry and a count at the end).
        labels: also give each image's tissue label file as ``"label"`` (classes 0 background, 1 CSF, 2 grey and 3
            white matter): OASIS-1's ``FSL_SEG`` segmentations, the PNG release's ``keras_png_slices_seg_*`` masks,
            the demo's tissue maps, a file list's ``label`` column, or for ``kind="nifti"`` the files of
            ``label_dir``. OASIS-3's BIDS images come without tissue labels.
        label_dir: for ``kind="nifti"``: the label folder mirroring ``dataset_dir`` (see
            :func:`discover_nifti_folder`); implies ``labels``.

    Returns:
        the items, in a deterministic order.

    Raises:
        FileNotFoundError: ``dataset_dir`` does not exist, or nothing matches (the message lists the layouts
            tried; with ``kind="auto"`` the first layout whose folders exist is used, and if none of its files
            matches the options, e.g. ``oasis1_image``, the message says so).
        TypeError: ``dataset_dir`` is not a path where a folder is needed.
        ValueError: unknown ``kind`` or bad options (``labels`` for OASIS-3, ``label_dir`` for a layout other than
            ``nifti``).
    """
    if kind not in DATASET_KINDS:
        raise ValueError(f"`kind` must be one of {DATASET_KINDS}, got {kind!r}.")
    labels = labels or label_dir is not None
    if label_dir is not None and kind not in ("nifti", "auto"):
        raise ValueError(
            f"`label_dir` is for kind='nifti' (a label folder mirroring the image folder), got kind={kind!r}; "
            "the other layouts find their labels themselves with labels=True."
        )
    if kind == "demo":
        items = _discover_demo(dataset_dir, demo_subjects, demo_seed, labels)
    elif kind == "list" or (
        kind == "auto" and (not isinstance(dataset_dir, (str, os.PathLike)) or Path(dataset_dir).is_file())
    ):
        if dataset_dir is None:
            raise ValueError(
                f"`dataset_dir` is None (kind={kind!r}); give a folder, a file list or a sequence of paths, "
                "or kind='demo' for the embedded demo data."
            )
        items = read_file_list(dataset_dir, on_error=on_error)  # type: ignore[arg-type]
        if not items:
            raise FileNotFoundError(f"file list {dataset_dir!r} names no usable file.")
        if label_dir is not None:
            raise ValueError("`label_dir` is for a NIfTI folder; a file list names its labels in a 'label' column.")
        if labels:
            _check_labels(items, dataset_dir)
    else:
        if not isinstance(dataset_dir, (str, os.PathLike)):
            raise TypeError(f"`dataset_dir` must be a folder path for kind={kind!r}, got {type(dataset_dir).__name__}.")
        root = check_dataset_dir(dataset_dir)
        finders = {
            "png": lambda: discover_png_slices(root, labels=labels, on_error=on_error),
            "oasis1": lambda: discover_oasis1(root, oasis1_image, on_error=on_error, labels=labels),
            "oasis3": lambda: discover_oasis3(root, modalities, on_error=on_error),
            "nifti": lambda: discover_nifti_folder(root, subject_pattern, on_error=on_error, label_dir=label_dir),
        }
        # "auto" takes the first layout whose folder structure is present, even if nothing in it matches the
        # options (it then raises, rather than falling through to a generic NIfTI search of an OASIS tree).
        layout = next(name for name in LAYOUTS if _layout_present(name, root)) if kind == "auto" else kind
        if labels and layout == "oasis3":
            raise ValueError(
                f"labels=True, but {str(root)!r} holds OASIS-3 BIDS images, which come without tissue labels: "
                "segment them first, then read images and labels with kind='nifti' and label_dir."
            )
        if labels and layout == "nifti" and label_dir is None:
            raise ValueError(
                f"labels=True for the NIfTI folder {str(root)!r}: say where the labels are with `label_dir` (a "
                "folder mirroring the image folder)."
            )
        if label_dir is not None and layout != "nifti":
            raise ValueError(f"`label_dir` is for a NIfTI folder, but {str(root)!r} holds the {layout} layout.")
        items = finders[layout]()
        if not items:
            listing = "\n".join(f"  - {name}: {LAYOUTS[name]}" for name in (LAYOUTS if kind == "auto" else [kind]))
            reason = ""
            if kind == "auto" and layout != "nifti":
                reason = f"; {layout} folders are present but no file matched the options"
            raise FileNotFoundError(
                f"no image found in {str(root)!r} (kind={kind!r}){reason}; layouts tried:\n{listing}"
            )
    if clinical_csv is not None:
        items = join_clinical_data(items, clinical_csv)
    return items


def prepare_split(
    dataset_dir: str | os.PathLike | Sequence[Any] | None,
    kind: str,
    split_file: str | os.PathLike,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
    **discover_options: Any,
) -> dict[str, list[dict[str, Any]]]:
    """The split of a run: read ``split_file`` when it exists, otherwise discover the dataset, split it by subject
    and write ``split_file``. Every stage of a run (training, resumed training, evaluation) thus sees one split.

    Args:
        dataset_dir: what to discover, see :func:`discover_dataset`.
        kind: dataset kind, see :func:`discover_dataset`.
        split_file: JSON file of the split.
        fractions: train, validation and test fractions of subjects (used only when the split is created).
        seed: shuffling seed (used only when the split is created).
        discover_options: further :func:`discover_dataset` options.

    Returns:
        ``{"train": [...], "validation": [...], "test": [...]}``.

    Raises:
        ValueError: ``split_file`` lies inside the dataset folder ``dataset_dir``, or a split with a positive
            fraction gets no subject.
    """
    if kind != "demo":
        check_outside_dataset(split_file, dataset_dir, "split_file")
    if Path(split_file).expanduser().is_file():
        return load_split(split_file)
    items = discover_dataset(dataset_dir, kind, **discover_options)
    split = split_by_subject(items, fractions=fractions, seed=seed)
    empty = [
        name for name, fraction in zip(SPLIT_NAMES, check_fractions(fractions)) if fraction > 0 and not split[name]
    ]
    if empty:
        subjects = len({str(item["subject"]) for item in items})
        raise ValueError(
            f"{subjects} subject(s) found in {dataset_dir!r} (kind={kind!r}) leave the {' and '.join(empty)} split "
            f"empty with `fractions` {list(fractions)}: add subjects, or set the fraction of an unused split to 0."
        )
    save_split(split, split_file)
    return split
