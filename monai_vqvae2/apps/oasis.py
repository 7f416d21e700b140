"""The OASIS layouts: OASIS-1 cross-sectional sessions, OASIS-3 (BIDS) images, and OASIS clinical data.

Every discovered item is a plain, JSON-serialisable dict with at least ``"image"`` (absolute path, str),
``"subject"`` (str) and ``"session"`` (str, globally unique: the subject id plus a session label), plus
``"dataset"`` (the layout it came from).

Data layouts (see ``bundle/docs/data.md``):

- OASIS-1 cross-sectional (Marcus et al. 2007, https://doi.org/10.1162/jocn.2007.19.9.1498): per session
  ``disc*/OAS1_XXXX_MR*/PROCESSED/MPRAGE/T88_111/OAS1_XXXX_MR*_mpr_n*_anon_111_t88_masked_gfc.hdr`` (Analyze 7.5).
- OASIS-3 (LaMontagne et al. 2019, https://doi.org/10.1101/2019.12.13.19014902), BIDS:
  ``sub-OAS3XXXX/ses-dNNNN/anat/sub-OAS3XXXX_ses-dNNNN[_run-NN]_T1w.nii.gz``.
"""

from __future__ import annotations

import csv
import math
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from monai_vqvae2.apps.folders import check_dataset_dir, find_dirs, unreadable_folder, walk_files
from monai_vqvae2.data.errors import BadInputPolicy

__all__ = [
    "BIDS_FILE_RE",
    "OASIS1_IMAGES",
    "OASIS1_LABELS",
    "OASIS1_SESSION_RE",
    "discover_oasis1",
    "discover_oasis3",
    "join_clinical_data",
]

#: OASIS-1 image choices: name -> (folder inside the session, file-name pattern without extension).
OASIS1_IMAGES = {
    "t88_masked_gfc": ("PROCESSED/MPRAGE/T88_111", "*_t88_masked_gfc"),
    "t88_gfc": ("PROCESSED/MPRAGE/T88_111", "*_t88_gfc"),
    "subj_111": ("PROCESSED/MPRAGE/SUBJ_111", "*_sbj_111"),
}
#: OASIS-1's tissue segmentation of a session (FSL FAST on the T88 masked image; 0 background, 1 CSF, 2 grey and
#: 3 white matter): folder inside the session, file-name pattern without extension.
OASIS1_LABELS = ("FSL_SEG", "*_fseg")
_T88_IMAGES = ("t88_masked_gfc", "t88_gfc")
_OASIS1_RAW = re.compile(r"^mpr-(\d+)$")
#: Name of an OASIS-1 session folder; its groups are the subject and the session label.
OASIS1_SESSION_RE = re.compile(r"^(OAS1_\d{4})_(MR\d+)$")
#: BIDS name of an image file (OASIS-3).
BIDS_FILE_RE = re.compile(
    r"^sub-(?P<subject>[A-Za-z0-9]+)_ses-(?P<session>[A-Za-z0-9]+)"
    r"(?P<entities>(?:_[A-Za-z]+-[A-Za-z0-9]+)*)_(?P<suffix>[A-Za-z0-9]+)\.nii(?:\.gz)?$"
)
_VOLUME_SUFFIXES = (".hdr", ".nii.gz", ".nii")

#: OASIS-1 clinical CSV columns renamed to friendlier keys; others are lower-cased.
_CLINICAL_RENAME = {"M/F": "sex", "Hand": "hand", "Educ": "educ", "eTIV": "etiv", "nWBV": "nwbv"}
_CLINICAL_ID_COLUMNS = ("ID", "id", "session", "Session", "MR ID", "subject", "Subject", "Subject ID")
_PROTECTED_KEYS = ("image", "subject", "session", "dataset", "split", "slice_index", "slice_position")


def _oasis1_pattern(image: str) -> tuple[str, str]:
    key = image.lower()
    if key in OASIS1_IMAGES:
        return OASIS1_IMAGES[key]
    raw = _OASIS1_RAW.match(key)
    if raw:
        return "RAW", f"*_mpr-{raw.group(1)}_anon"
    raise ValueError(
        f"`oasis1_image` must be one of {sorted(OASIS1_IMAGES)} or 'mpr-N' (a raw scan, N = 1..4), got {image!r}."
    )


def _volume_files(folder: Path, pattern: str) -> list[Path]:
    """Files ``folder/pattern{.hdr,.nii.gz,.nii}``, of the first suffix that has any (hidden files ignored)."""
    for suffix in _VOLUME_SUFFIXES:
        candidates = sorted(p for p in folder.glob(pattern + suffix) if not p.name.startswith("."))
        if candidates:
            return candidates
    return []


def discover_oasis1(
    dataset_dir: str | os.PathLike, image: str = "t88_masked_gfc", on_error: str = "raise", labels: bool = False
) -> list[dict[str, Any]]:
    """Find OASIS-1 cross-sectional sessions and their chosen image.

    Session folders ``OAS1_XXXX_MRn`` are searched in ``dataset_dir`` and up to two folder levels below it, so
    ``dataset_dir`` can be the folder holding ``disc1 ... disc12``, one ``disc*`` folder, or an extracted tarball.
    ``MR1``/``MR2`` sessions of one participant share the subject id ``OAS1_XXXX``.

    Args:
        dataset_dir: folder to search.
        image: which image of each session: ``"t88_masked_gfc"`` (atlas-registered, bias-corrected, brain-masked;
            default), ``"t88_gfc"`` (same, unmasked), ``"subj_111"`` (native space, 1 mm) or ``"mpr-N"`` (raw
            scan N). Analyze ``.hdr`` files are preferred; ``.nii``/``.nii.gz`` conversions with the same name
            are accepted.
        on_error: ``"raise"`` or ``"skip"`` (warn once per session) when a session lacks the chosen image (or its
            label), has an ``.img`` without its ``.hdr``, or has several candidates.
        labels: also find each session's tissue segmentation ``FSL_SEG/*_fseg.hdr`` (FSL FAST classes 0 background,
            1 CSF, 2 grey matter, 3 white matter, on the T88 grid) and give it as ``"label"``; only for the T88
            images.

    Returns:
        items ``{"image", "subject", "session", "dataset": "oasis1"}`` (and ``"label"``) sorted by session; empty
        when no session folder exists.

    Raises:
        FileNotFoundError: a session without the chosen image or label (``on_error="raise"``).
        ValueError: unknown ``image``, or ``labels`` with an image not on the T88 grid; an ``.img`` without
            ``.hdr``; several candidates; a session found twice.
    """
    folder, pattern = _oasis1_pattern(image)
    if labels and image.lower() not in _T88_IMAGES:
        raise ValueError(
            f"labels=True needs a T88 image ({' or '.join(_T88_IMAGES)}): OASIS-1's FSL_SEG tissue segmentations "
            f"lie on the atlas grid of the T88 images, not on that of oasis1_image={image!r}."
        )
    root = check_dataset_dir(dataset_dir)
    policy = BadInputPolicy(on_error, stage="OASIS-1 discovery")
    sessions = find_dirs(root, OASIS1_SESSION_RE)
    seen: dict[str, Path] = {}
    items = []
    for session_dir in sessions:
        subject, label = OASIS1_SESSION_RE.match(session_dir.name).groups()  # type: ignore[union-attr]
        session = f"{subject}_{label}"
        if session in seen:
            raise ValueError(f"OASIS-1 session {session} found twice: {seen[session]} and {session_dir}.")
        seen[session] = session_dir
        image_dir = session_dir / folder
        candidates = _volume_files(image_dir, pattern)
        if not candidates:
            lone_img = sorted(p for p in image_dir.glob(pattern + ".img") if not p.name.startswith("."))
            if lone_img:
                policy.handle(
                    ValueError(f"{lone_img[0]}: Analyze .img without its .hdr header (mismatched pair)."), lone_img[0]
                )
            else:
                policy.handle(
                    FileNotFoundError(
                        f"{session_dir}: no file matching {folder}/{pattern}{{.hdr,.nii.gz,.nii}} "
                        f"(oasis1_image={image!r})."
                    ),
                    session_dir,
                )
            continue
        if len(candidates) > 1:
            policy.handle(
                ValueError(
                    f"{image_dir}: {len(candidates)} files match {pattern}: {[p.name for p in candidates]}; "
                    "expected one."
                ),
                image_dir,
            )
            continue
        item = {"image": str(candidates[0]), "subject": subject, "session": session, "dataset": "oasis1"}
        if labels:
            label_dir, label_pattern = session_dir / OASIS1_LABELS[0], OASIS1_LABELS[1]
            found = _volume_files(label_dir, label_pattern)
            if len(found) != 1:
                problem = (
                    f"{len(found)} files match {label_pattern}: {[p.name for p in found]}; expected one"
                    if found
                    else f"no tissue label matching {label_pattern}{{.hdr,.nii.gz,.nii}} (labels=True)"
                )
                policy.handle((ValueError if found else FileNotFoundError)(f"{label_dir}: {problem}."), label_dir)
                continue
            item["label"] = str(found[0])
        items.append(item)
    policy.summarise(len(sessions))
    return items


def discover_oasis3(
    dataset_dir: str | os.PathLike, modalities: Sequence[str] = ("T1w",), on_error: str = "raise"
) -> list[dict[str, Any]]:
    """Find OASIS-3 (BIDS) images of the requested modalities.

    Files are matched anywhere below ``dataset_dir`` by their BIDS name
    ``sub-<subject>_ses-<session>[_<key>-<value>...]_<modality>.nii[.gz]``; other modalities (T2w, FLAIR, ...) are
    ignored unless listed. Every run of a session becomes an item; all of a subject's sessions share its id.
    Symbolic links are followed (each real folder once, so link loops end); broken links (e.g. DataLad files not
    yet fetched) are kept as items, and loading reports them.

    Args:
        dataset_dir: BIDS root (or a folder above it).
        modalities: BIDS suffixes to keep, default ``("T1w",)``.
        on_error: ``"raise"`` or ``"skip"`` (warn) for a folder that cannot be listed.

    Returns:
        items ``{"image", "subject": "OAS3XXXX", "session": "OAS3XXXX_dNNNN", "modality", "run", "dataset":
        "oasis3"}`` (``run`` is ``""`` without a ``run-`` entity, so that batches collate), sorted by path; empty
        when nothing matches.

    Raises:
        PermissionError: a folder cannot be listed (``on_error="raise"``).
        ValueError: ``modalities`` is empty.
    """
    wanted = tuple(modalities)
    if not wanted:
        raise ValueError("`modalities` must name at least one BIDS suffix (e.g. 'T1w'), got an empty sequence.")
    root = check_dataset_dir(dataset_dir)
    policy = BadInputPolicy(on_error, stage="OASIS-3 discovery")
    unreadable: list[OSError] = []
    paths = sorted(walk_files(root, unreadable.append))
    for error in unreadable:
        policy.handle(unreadable_folder(error), error.filename)
    items = []
    for path in paths:
        match = BIDS_FILE_RE.match(path.name)
        if not match or match.group("suffix") not in wanted:
            continue
        subject = match.group("subject")
        item = {
            "image": str(path),
            "subject": subject,
            "session": f"{subject}_{match.group('session')}",
            "modality": match.group("suffix"),
            "run": run.group(1) if (run := re.search(r"_run-([A-Za-z0-9]+)", match.group("entities"))) else "",
            "dataset": "oasis3",
        }
        items.append(item)
    policy.summarise(len(items) + len(unreadable))
    return items


def _parse_clinical_value(value: str) -> float | str:
    try:
        return float(value)
    except ValueError:
        return value


def join_clinical_data(items: Sequence[dict[str, Any]], clinical_csv: str | os.PathLike) -> list[dict[str, Any]]:
    """Add clinical columns (e.g. OASIS-1 ``oasis_cross-sectional.csv``: age, sex, CDR, MMSE, ...) to the items.

    Rows are matched on the first id column found (``ID``, ``session``, ``subject``, ...) against each item's
    ``session`` first, then its ``subject``. Column names are lower-cased (``M/F`` becomes ``sex``). Columns whose
    non-empty values are all numbers become floats with ``nan`` where empty or unmatched (so batches collate);
    other columns stay strings (``""`` when missing). Item keys such as ``image`` and ``subject`` are never
    overwritten. The OASIS spreadsheet (``.xlsx``) must first be saved as CSV.

    Args:
        items: discovered items.
        clinical_csv: CSV file with one row per session or subject.

    Returns:
        new item dicts with the clinical columns added.

    Raises:
        FileNotFoundError: ``clinical_csv`` does not exist.
        ValueError: not a CSV file, or no id column.
    """
    path = Path(clinical_csv).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"`clinical_csv` {str(path)!r} does not exist.")
    if path.suffix.lower() != ".csv":
        raise ValueError(f"`clinical_csv` {str(path)!r}: expected a .csv file (save the spreadsheet as CSV).")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        rows = [dict(row) for row in reader]
    id_column = next((c for c in _CLINICAL_ID_COLUMNS if c in columns), None)
    if id_column is None:
        raise ValueError(f"{path}: needs an id column, one of {list(_CLINICAL_ID_COLUMNS)}; found {columns}.")
    renamed = {c: _CLINICAL_RENAME.get(c, c.strip().lower().replace(" ", "_").replace("/", "_")) for c in columns}
    value_columns = [c for c in columns if c != id_column and renamed[c] not in _PROTECTED_KEYS]
    numeric = {
        c: all(isinstance(_parse_clinical_value(r[c]), float) for r in rows if (r.get(c) or "").strip())
        for c in value_columns
    }
    table = {row[id_column].strip(): row for row in rows if row.get(id_column)}
    joined, unmatched = [], 0
    for item in items:
        row = table.get(str(item.get("session"))) or table.get(str(item.get("subject")))
        unmatched += row is None
        new_item = dict(item)
        for column in value_columns:
            raw = ((row or {}).get(column) or "").strip()
            new_item[renamed[column]] = (float(raw) if raw else math.nan) if numeric[column] else raw
        joined.append(new_item)
    if unmatched:
        warnings.warn(
            f"{unmatched} of {len(items)} item(s) have no row in {path} (values left empty/NaN).", stacklevel=2
        )
    return joined
