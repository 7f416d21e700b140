"""Discovery of OASIS-1, OASIS-3, PNG-slice, NIfTI-folder and file-list datasets as MONAI-style lists of dicts.

Every discovered item is a plain, JSON-serialisable dict with at least ``"image"`` (absolute path, str),
``"subject"`` (str) and ``"session"`` (str, globally unique: the subject id plus a session label), plus
``"dataset"`` (the layout it came from). Items from the preprocessed PNG folders also carry ``"split"``,
``"slice_index"`` and ``"slice_position"``.

Data layouts (see ``bundle/docs/data.md``):

- OASIS-1 cross-sectional (Marcus et al. 2007, https://doi.org/10.1162/jocn.2007.19.9.1498): per session
  ``disc*/OAS1_XXXX_MR*/PROCESSED/MPRAGE/T88_111/OAS1_XXXX_MR*_mpr_n*_anon_111_t88_masked_gfc.hdr`` (Analyze 7.5).
- OASIS-3 (LaMontagne et al. 2019, https://doi.org/10.1101/2019.12.13.19014902), BIDS:
  ``sub-OAS3XXXX/ses-dNNNN/anat/sub-OAS3XXXX_ses-dNNNN[_run-NN]_T1w.nii.gz``.
- Preprocessed PNG slices: ``keras_png_slices_{train,validate,test}/case_NNN_slice_K.nii.png``.
"""

from __future__ import annotations

import csv
import math
import os
import re
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from monai_vqvae2.data.errors import BadInputPolicy

__all__ = [
    "DATASET_KINDS",
    "LAYOUTS",
    "OASIS1_IMAGES",
    "discover_dataset",
    "discover_nifti_folder",
    "discover_oasis1",
    "discover_oasis3",
    "discover_png_slices",
    "join_clinical_data",
    "read_file_list",
]

DATASET_KINDS = ("auto", "oasis1", "oasis3", "png", "nifti", "demo", "list")

#: What each layout looks for, in the order ``kind="auto"`` tries them (quoted in "nothing found" errors).
LAYOUTS = {
    "png": "keras_png_slices_{train,validate,test}/*.png (preprocessed 2D slices; *_seg_* folders ignored)",
    "oasis1": "[disc*/]OAS1_XXXX_MR*/PROCESSED/MPRAGE/T88_111/*_t88_masked_gfc.hdr (OASIS-1, Analyze 7.5)",
    "oasis3": "sub-*/ses-*/anat/sub-*_ses-*[_run-NN]_T1w.nii[.gz] (OASIS-3, BIDS)",
    "nifti": "any *.nii, *.nii.gz or Analyze *.hdr file below the folder (generic)",
}

#: OASIS-1 image choices: name -> (folder inside the session, file-name pattern without extension).
OASIS1_IMAGES = {
    "t88_masked_gfc": ("PROCESSED/MPRAGE/T88_111", "*_t88_masked_gfc"),
    "t88_gfc": ("PROCESSED/MPRAGE/T88_111", "*_t88_gfc"),
    "subj_111": ("PROCESSED/MPRAGE/SUBJ_111", "*_sbj_111"),
}
_OASIS1_RAW = re.compile(r"^mpr-(\d+)$")
_OASIS1_SESSION = re.compile(r"^(OAS1_\d{4})_(MR\d+)$")
_BIDS_FILE = re.compile(
    r"^sub-(?P<subject>[A-Za-z0-9]+)_ses-(?P<session>[A-Za-z0-9]+)"
    r"(?P<entities>(?:_[A-Za-z]+-[A-Za-z0-9]+)*)_(?P<suffix>[A-Za-z0-9]+)\.nii(?:\.gz)?$"
)
_PNG_FOLDER = re.compile(r"^keras_png_slices_(train|validate|validation|test)$")
_PNG_SPLITS = {"train": "train", "validate": "validation", "validation": "validation", "test": "test"}
_PNG_NAME = re.compile(r"^(?P<subject>.+?)_slice_(?P<index>\d+)")
_VOLUME_SUFFIXES = (".hdr", ".nii.gz", ".nii")
SPLIT_NAMES = ("train", "validation", "test")

#: OASIS-1 clinical CSV columns renamed to friendlier keys; others are lower-cased.
_CLINICAL_RENAME = {"M/F": "sex", "Hand": "hand", "Educ": "educ", "eTIV": "etiv", "nWBV": "nwbv"}
_CLINICAL_ID_COLUMNS = ("ID", "id", "session", "Session", "MR ID", "subject", "Subject", "Subject ID")
_PROTECTED_KEYS = ("image", "subject", "session", "dataset", "split", "slice_index", "slice_position")


def _is_file_entry(path: Path) -> bool:
    """A file, or a broken symbolic link (kept so that loading reports it, rather than dropping it silently)."""
    return path.is_file() or (path.is_symlink() and not path.exists())


def _walk_files(root: Path, on_unreadable: Callable[[OSError], None] | None = None) -> Iterator[Path]:
    """Every visible file below ``root`` (and broken symbolic links), folders in sorted order.

    Symbolic links to folders are followed, each real folder once: a visited set of resolved paths stops link
    loops (``a/loop -> ..``) and trees reachable twice. Hidden files and folders are skipped.

    Args:
        root: folder to walk.
        on_unreadable: called with the ``OSError`` of a folder that cannot be listed (default: ignored).
    """
    visited = {os.path.realpath(root)}
    for folder, dirnames, filenames in os.walk(root, onerror=on_unreadable, followlinks=True):
        kept = []
        for name in sorted(dirnames):
            real = os.path.realpath(os.path.join(folder, name))
            if not name.startswith(".") and real not in visited:
                visited.add(real)
                kept.append(name)
        dirnames[:] = kept  # os.walk descends into these only
        for name in sorted(filenames):
            path = Path(folder, name)
            if not name.startswith(".") and _is_file_entry(path):
                yield path


def _unreadable_folder(error: OSError) -> OSError:
    """The error reported for a folder that :func:`_walk_files` could not list (same type, clearer message)."""
    reason = "permission denied" if isinstance(error, PermissionError) else (error.strerror or str(error))
    return type(error)(f"{error.filename}: {reason}: cannot list this folder, so the images in it cannot be found.")


def _volume_stem(name: str) -> str:
    for suffix in (".nii.gz", ".nii", ".hdr", ".img"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def _check_dir(dataset_dir: str | os.PathLike) -> Path:
    root = Path(dataset_dir).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"`dataset_dir` {str(root)!r} does not exist.")
    if not root.is_dir():
        raise NotADirectoryError(f"`dataset_dir` {str(root)!r} is a file; use kind='list' for a CSV/TXT file list.")
    return root.absolute()


def _find_dirs(root: Path, pattern: re.Pattern, max_depth: int = 2) -> list[Path]:
    """Folders whose name matches ``pattern``, at most ``max_depth`` levels below ``root`` (root itself included).

    Symbolic links to folders are followed, but each real folder is visited once (no duplicates through links).
    """
    found = [root] if pattern.match(root.name) else []
    visited = {os.path.realpath(root)}
    level = [root]
    for _ in range(max_depth + 1):
        next_level = []
        for folder in level:
            try:
                children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
            except PermissionError:
                continue
            for child in children:
                real = os.path.realpath(child)
                if real in visited:
                    continue
                visited.add(real)
                (found if pattern.match(child.name) else next_level).append(child)
        level = next_level
    return sorted(set(found))


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


def discover_oasis1(
    dataset_dir: str | os.PathLike, image: str = "t88_masked_gfc", on_error: str = "raise"
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
        on_error: ``"raise"`` or ``"skip"`` (warn once per session) when a session lacks the chosen image, has an
            ``.img`` without its ``.hdr``, or has several candidates.

    Returns:
        items ``{"image", "subject", "session", "dataset": "oasis1"}`` sorted by session; empty when no session
        folder exists.

    Raises:
        FileNotFoundError: a session without the chosen image (``on_error="raise"``).
        ValueError: unknown ``image``; an ``.img`` without ``.hdr``; several candidates; a session found twice.
    """
    folder, pattern = _oasis1_pattern(image)
    root = _check_dir(dataset_dir)
    policy = BadInputPolicy(on_error, stage="OASIS-1 discovery")
    sessions = _find_dirs(root, _OASIS1_SESSION)
    seen: dict[str, Path] = {}
    items = []
    for session_dir in sessions:
        subject, label = _OASIS1_SESSION.match(session_dir.name).groups()  # type: ignore[union-attr]
        session = f"{subject}_{label}"
        if session in seen:
            raise ValueError(f"OASIS-1 session {session} found twice: {seen[session]} and {session_dir}.")
        seen[session] = session_dir
        image_dir = session_dir / folder
        candidates: list[Path] = []
        for suffix in _VOLUME_SUFFIXES:
            candidates = sorted(p for p in image_dir.glob(pattern + suffix) if not p.name.startswith("."))
            if candidates:
                break
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
        items.append({"image": str(candidates[0]), "subject": subject, "session": session, "dataset": "oasis1"})
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
    root = _check_dir(dataset_dir)
    policy = BadInputPolicy(on_error, stage="OASIS-3 discovery")
    unreadable: list[OSError] = []
    paths = sorted(_walk_files(root, unreadable.append))
    for error in unreadable:
        policy.handle(_unreadable_folder(error), error.filename)
    items = []
    for path in paths:
        match = _BIDS_FILE.match(path.name)
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


def discover_png_slices(dataset_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Find the preprocessed OASIS PNG slice folders; each slice keeps the split of its folder.

    Folders ``keras_png_slices_train``, ``..._validate`` and ``..._test`` are searched in ``dataset_dir`` and up to
    two levels below (or ``dataset_dir`` may be one of them); ``keras_png_slices_seg_*`` mask folders are ignored.
    A name ``case_001_slice_7.nii.png`` gives subject ``case_001`` and ``slice_index`` 7; ``slice_position`` is
    ``slice_index / max(slice_index of that case in that folder)``, assuming the slice numbers increase from
    inferior to superior (the PNGs carry no orientation to check this). Names that do not parse give the file
    stem as subject, ``slice_index`` 0 and ``slice_position`` 0.5 (unknown: mid-brain), with one warning.

    Args:
        dataset_dir: folder to search.

    Returns:
        items ``{"image", "subject", "session", "split", "slice_index", "slice_position", "dataset": "png"}``
        sorted by split folder and file name; empty when no such folder exists.
    """
    root = _check_dir(dataset_dir)
    items: list[dict[str, Any]] = []
    unparsed = []
    for folder in _find_dirs(root, _PNG_FOLDER):
        split = _PNG_SPLITS[_PNG_FOLDER.match(folder.name).group(1)]  # type: ignore[union-attr]
        folder_items = []
        for path in sorted(p for p in folder.glob("*.png") if not p.name.startswith(".") and _is_file_entry(p)):
            match = _PNG_NAME.match(path.name)
            if match:
                subject, index = match.group("subject"), int(match.group("index"))
            else:
                subject, index = path.name.split(".")[0], 0
                unparsed.append(path.name)
            folder_items.append(
                {
                    "image": str(path),
                    "subject": subject,
                    "session": subject,
                    "split": split,
                    "slice_index": index,
                    "slice_position": 0.5,
                    "dataset": "png",
                }
            )
        last_index: dict[str, int] = defaultdict(int)
        for item in folder_items:
            last_index[item["subject"]] = max(last_index[item["subject"]], item["slice_index"])
        for item in folder_items:
            last = last_index[item["subject"]]
            if last > 0:
                item["slice_position"] = item["slice_index"] / last
        items.extend(folder_items)
    if unparsed:
        warnings.warn(
            f"{len(unparsed)} PNG name(s) do not match 'SUBJECT_slice_N...' (e.g. {unparsed[0]!r}): each is its own "
            "subject with slice_position 0.5.",
            stacklevel=2,
        )
    return items


def discover_nifti_folder(
    dataset_dir: str | os.PathLike, subject_pattern: str | None = None, on_error: str = "raise"
) -> list[dict[str, Any]]:
    """Find every NIfTI (``.nii``, ``.nii.gz``) and Analyze (``.hdr``) file below a folder.

    Other files (``README.txt``, ``.DS_Store``, ...) are ignored; a file with an image name but other content is
    reported when it is loaded. Symbolic links are followed (each real folder once, so link loops end); broken
    links are kept as items, and loading reports them.

    Args:
        dataset_dir: folder searched recursively (hidden files and folders are ignored).
        subject_pattern: regular expression searched in each file's path relative to ``dataset_dir`` (POSIX
            separators) with a named group ``subject`` and optionally ``session``; default: the subject is the
            file name without extension (one subject per file).
        on_error: ``"raise"`` or ``"skip"`` for an Analyze ``.img`` without its ``.hdr``, a path that does not
            match ``subject_pattern`` or a folder that cannot be listed.

    Returns:
        items ``{"image", "subject", "session", "dataset": "nifti"}`` sorted by path; empty when no file matches.

    Raises:
        ValueError: ``subject_pattern`` lacks a ``subject`` group, a path does not match it, or a lone ``.img``.
    """
    regex = re.compile(subject_pattern) if subject_pattern is not None else None
    if regex is not None and "subject" not in regex.groupindex:
        raise ValueError(f"`subject_pattern` needs a named group (?P<subject>...), got {subject_pattern!r}.")
    root = _check_dir(dataset_dir)
    policy = BadInputPolicy(on_error, stage="NIfTI folder discovery")
    unreadable: list[OSError] = []
    paths = sorted(
        p for p in _walk_files(root, unreadable.append) if p.name.endswith((".nii", ".nii.gz", ".hdr", ".img"))
    )
    for error in unreadable:
        policy.handle(_unreadable_folder(error), error.filename)
    headers = {_volume_stem(str(p)) for p in paths if p.name.endswith(".hdr")}
    items = []
    for path in paths:
        if path.name.endswith(".img"):
            if _volume_stem(str(path)) not in headers:
                policy.handle(ValueError(f"{path}: Analyze .img without its .hdr header (mismatched pair)."), path)
            continue
        stem = _volume_stem(path.name)
        subject, session = stem, stem
        if regex is not None:
            match = regex.search(path.relative_to(root).as_posix())
            if not match:
                policy.handle(ValueError(f"{path}: path does not match `subject_pattern` {subject_pattern!r}."), path)
                continue
            subject = match.group("subject")
            session = f"{subject}_{match.group('session')}" if "session" in regex.groupindex else stem
        items.append({"image": str(path), "subject": subject, "session": session, "dataset": "nifti"})
    policy.summarise(len(paths) + len(unreadable))
    return items


def read_file_list(
    files: str | os.PathLike | Iterable[str | os.PathLike | dict[str, Any]], on_error: str = "raise"
) -> list[dict[str, Any]]:
    """Items from an explicit list of files: a CSV/TSV with an ``image`` column, a TXT file, or a Python sequence.

    CSV/TSV columns other than ``image`` are copied into the items as strings (``subject``, ``session`` and
    ``split`` are honoured by the rest of the package). A TXT file holds one path per line (blank lines and
    ``#`` comments ignored). Relative paths are resolved against the list file's folder (the current folder for a
    Python sequence). Missing ``subject`` defaults to the file name without extension, ``session`` to the subject.

    Args:
        files: path of a ``.csv``/``.tsv``/``.txt`` file, or a sequence of paths or dicts with an ``"image"`` key.
        on_error: ``"raise"`` or ``"skip"`` (warn once per file) for files that do not exist.

    Returns:
        items ``{"image", "subject", "session", "dataset": "list", ...}`` in the order given.

    Raises:
        FileNotFoundError: the list file or a listed file does not exist.
        ValueError: a CSV without an ``image`` column, an unsupported list-file extension or a bad entry.
    """
    policy = BadInputPolicy(on_error, stage="file-list discovery")
    if isinstance(files, (str, os.PathLike)):
        list_path = Path(files).expanduser().absolute()
        if not list_path.is_file():
            raise FileNotFoundError(f"file list {str(list_path)!r} does not exist.")
        base = list_path.parent
        suffix = list_path.suffix.lower()
        if suffix in (".csv", ".tsv"):
            with open(list_path, newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
                if reader.fieldnames is None or "image" not in reader.fieldnames:
                    raise ValueError(
                        f"{list_path}: needs an 'image' column (file paths), found columns {reader.fieldnames}."
                    )
                entries: list[Any] = [dict(row) for row in reader]
        elif suffix == ".txt":
            lines = list_path.read_text(encoding="utf-8").splitlines()
            entries = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
        else:
            raise ValueError(f"file list {str(list_path)!r}: expected a .csv, .tsv or .txt file, got {suffix!r}.")
        where = str(list_path)
    else:
        base, where, entries = Path.cwd(), "`files`", list(files)
    items = []
    for number, entry in enumerate(entries):
        item = dict(entry) if isinstance(entry, dict) else {"image": entry}
        if not isinstance(item.get("image"), (str, os.PathLike)) or not str(item["image"]).strip():
            raise ValueError(f"{where}: entry {number} has no image path: {entry!r}.")
        path = Path(str(item["image"]).strip()).expanduser()
        path = Path(os.path.normpath(path if path.is_absolute() else base / path))
        if not path.exists():
            policy.handle(FileNotFoundError(f"{path}: listed in {where} but does not exist."), path)
            continue
        item["image"] = str(path)
        item["subject"] = str(item.get("subject") or _volume_stem(path.name).split(".")[0])
        item["session"] = str(item.get("session") or item["subject"])
        item.setdefault("dataset", "list")
        items.append(item)
    policy.summarise(len(entries))
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


def _layout_present(layout: str, root: Path) -> bool:
    """Whether the folder structure of a layout exists below ``root`` (whatever the image options)."""
    if layout == "png":
        return bool(_find_dirs(root, _PNG_FOLDER))
    if layout == "oasis1":
        return bool(_find_dirs(root, _OASIS1_SESSION))
    if layout == "oasis3":
        return any(_BIDS_FILE.match(p.name) for p in _walk_files(root))
    return True


def _discover_demo(dataset_dir: str | os.PathLike | None, num_subjects: int, seed: int) -> list[dict[str, Any]]:
    from monai_vqvae2.data.demo import prepare_demo_dataset

    root = prepare_demo_dataset(dataset_dir, num_subjects=num_subjects, seed=seed)
    return [dict(item, dataset="demo") for item in discover_oasis1(root)]


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

    Returns:
        the items, in a deterministic order.

    Raises:
        FileNotFoundError: ``dataset_dir`` does not exist, or nothing matches (the message lists the layouts
            tried; with ``kind="auto"`` the first layout whose folders exist is used, and if none of its files
            matches the options, e.g. ``oasis1_image``, the message says so).
        TypeError: ``dataset_dir`` is not a path where a folder is needed.
        ValueError: unknown ``kind`` or bad options.
    """
    if kind not in DATASET_KINDS:
        raise ValueError(f"`kind` must be one of {DATASET_KINDS}, got {kind!r}.")
    if kind == "demo":
        items = _discover_demo(dataset_dir, demo_subjects, demo_seed)
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
    else:
        if not isinstance(dataset_dir, (str, os.PathLike)):
            raise TypeError(f"`dataset_dir` must be a folder path for kind={kind!r}, got {type(dataset_dir).__name__}.")
        root = _check_dir(dataset_dir)
        finders = {
            "png": lambda: discover_png_slices(root),
            "oasis1": lambda: discover_oasis1(root, oasis1_image, on_error=on_error),
            "oasis3": lambda: discover_oasis3(root, modalities, on_error=on_error),
            "nifti": lambda: discover_nifti_folder(root, subject_pattern, on_error=on_error),
        }
        # "auto" takes the first layout whose folder structure is present, even if nothing in it matches the
        # options (it then raises, rather than falling through to a generic NIfTI search of an OASIS tree).
        layout = next(name for name in LAYOUTS if _layout_present(name, root)) if kind == "auto" else kind
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
