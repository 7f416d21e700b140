"""Generic dataset layouts: the preprocessed OASIS PNG slice folders, any NIfTI/Analyze folder and explicit file lists,
as MONAI-style lists of dicts; and the folder walking that every layout shares.

Every discovered item is a plain, JSON-serialisable dict with at least ``"image"`` (absolute path, str),
``"subject"`` (str) and ``"session"`` (str), plus ``"dataset"`` (the layout it came from). Items from the
preprocessed PNG folders also carry ``"split"``, ``"slice_index"`` and ``"slice_position"``.

Data layouts (see ``bundle/docs/data.md``):

- Preprocessed PNG slices: ``keras_png_slices_{train,validate,test}/case_NNN_slice_K.nii.png``.
- Any folder of ``.nii``, ``.nii.gz`` or Analyze ``.hdr`` files; a CSV/TSV/TXT list of files.
"""

from __future__ import annotations

import csv
import os
import re
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from monai_vqvae2.data.errors import BadInputPolicy

__all__ = [
    "PNG_FOLDER_RE",
    "check_dataset_dir",
    "discover_nifti_folder",
    "discover_png_slices",
    "find_dirs",
    "read_file_list",
    "unreadable_folder",
    "walk_files",
]

#: Name of a preprocessed PNG slice folder; its group is the split.
PNG_FOLDER_RE = re.compile(r"^keras_png_slices_(train|validate|validation|test)$")
_PNG_SPLITS = {"train": "train", "validate": "validation", "validation": "validation", "test": "test"}
_PNG_NAME = re.compile(r"^(?P<subject>.+?)_slice_(?P<index>\d+)")


def _is_file_entry(path: Path) -> bool:
    """A file, or a broken symbolic link (kept so that loading reports it, rather than dropping it silently)."""
    return path.is_file() or (path.is_symlink() and not path.exists())


def walk_files(root: Path, on_unreadable: Callable[[OSError], None] | None = None) -> Iterator[Path]:
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


def unreadable_folder(error: OSError) -> OSError:
    """The error reported for a folder that :func:`walk_files` could not list (same type, clearer message)."""
    reason = "permission denied" if isinstance(error, PermissionError) else (error.strerror or str(error))
    return type(error)(f"{error.filename}: {reason}: cannot list this folder, so the images in it cannot be found.")


def _volume_stem(name: str) -> str:
    for suffix in (".nii.gz", ".nii", ".hdr", ".img"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def check_dataset_dir(dataset_dir: str | os.PathLike) -> Path:
    """``dataset_dir`` as an absolute path, checked to be an existing folder.

    Raises:
        FileNotFoundError: it does not exist.
        NotADirectoryError: it is a file.
    """
    root = Path(dataset_dir).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"`dataset_dir` {str(root)!r} does not exist.")
    if not root.is_dir():
        raise NotADirectoryError(f"`dataset_dir` {str(root)!r} is a file; use kind='list' for a CSV/TXT file list.")
    return root.absolute()


def find_dirs(root: Path, pattern: re.Pattern, max_depth: int = 2) -> list[Path]:
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


def _png_label_path(image: Path) -> Path:
    """Where the preprocessed PNG release keeps the mask of a slice: ``keras_png_slices_<split>/case_X.png`` ->
    ``keras_png_slices_seg_<split>/seg_X.png`` (a name without ``case_`` keeps its name)."""
    name = "seg_" + image.name[len("case_") :] if image.name.startswith("case_") else image.name
    split = image.parent.name[len("keras_png_slices_") :]
    return image.parent.parent / f"keras_png_slices_seg_{split}" / name


def discover_png_slices(
    dataset_dir: str | os.PathLike, labels: bool = False, on_error: str = "raise"
) -> list[dict[str, Any]]:
    """Find the preprocessed OASIS PNG slice folders; each slice keeps the split of its folder.

    Folders ``keras_png_slices_train``, ``..._validate`` and ``..._test`` are searched in ``dataset_dir`` and up to
    two levels below (or ``dataset_dir`` may be one of them); ``keras_png_slices_seg_*`` mask folders are ignored.
    A name ``case_001_slice_7.nii.png`` gives subject ``case_001`` and ``slice_index`` 7; ``slice_position`` is
    ``slice_index / max(slice_index of that case in that folder)``, assuming the slice numbers increase from
    inferior to superior (the PNGs carry no orientation to check this). Names that do not parse give the file
    stem as subject, ``slice_index`` 0 and ``slice_position`` 0.5 (unknown: mid-brain), with one warning.

    Args:
        dataset_dir: folder to search.
        labels: also give each slice's tissue mask as ``"label"``: ``keras_png_slices_seg_<split>/seg_X.png`` for
            ``keras_png_slices_<split>/case_X.png`` (grey levels 0, 85, 170, 255 for background, CSF, grey and
            white matter).
        on_error: ``"raise"`` or ``"skip"`` (warn, leave the slice out) when a slice has no mask.

    Returns:
        items ``{"image", "subject", "session", "split", "slice_index", "slice_position", "dataset": "png"}`` (and
        ``"label"``) sorted by split folder and file name; empty when no such folder exists.

    Raises:
        FileNotFoundError: a slice without its mask (``labels=True``, ``on_error="raise"``).
    """
    root = check_dataset_dir(dataset_dir)
    policy = BadInputPolicy(on_error, stage="PNG discovery")
    items: list[dict[str, Any]] = []
    unparsed = []
    for folder in find_dirs(root, PNG_FOLDER_RE):
        split = _PNG_SPLITS[PNG_FOLDER_RE.match(folder.name).group(1)]  # type: ignore[union-attr]
        folder_items = []
        for path in sorted(p for p in folder.glob("*.png") if not p.name.startswith(".") and _is_file_entry(p)):
            match = _PNG_NAME.match(path.name)
            if match:
                subject, index = match.group("subject"), int(match.group("index"))
            else:
                subject, index = path.name.split(".")[0], 0
                unparsed.append(path.name)
            item = {
                "image": str(path),
                "subject": subject,
                "session": subject,
                "split": split,
                "slice_index": index,
                "slice_position": 0.5,
                "dataset": "png",
            }
            if labels:
                label = _png_label_path(path)
                if not label.is_file():
                    policy.handle(FileNotFoundError(f"{path}: no tissue mask {label} (labels=True)."), path)
                    continue
                item["label"] = str(label)
            folder_items.append(item)
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
    policy.summarise(len(items) + len(policy.skipped))
    return items


def discover_nifti_folder(
    dataset_dir: str | os.PathLike,
    subject_pattern: str | None = None,
    on_error: str = "raise",
    label_dir: str | os.PathLike | None = None,
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
            match ``subject_pattern``, a folder that cannot be listed or an image without its label.
        label_dir: a folder of label images that mirrors ``dataset_dir``: the label of ``dataset_dir/a/b.nii.gz`` is
            ``label_dir/a/b.nii.gz`` (same relative path and name), given as ``"label"``. It must lie outside
            ``dataset_dir``.

    Returns:
        items ``{"image", "subject", "session", "dataset": "nifti"}`` (and ``"label"``) sorted by path; empty when
        no file matches.

    Raises:
        FileNotFoundError: ``label_dir`` does not exist, or an image without its label (``on_error="raise"``).
        ValueError: ``subject_pattern`` lacks a ``subject`` group, a path does not match it, a lone ``.img``, or
            ``label_dir`` inside ``dataset_dir``.
    """
    regex = re.compile(subject_pattern) if subject_pattern is not None else None
    if regex is not None and "subject" not in regex.groupindex:
        raise ValueError(f"`subject_pattern` needs a named group (?P<subject>...), got {subject_pattern!r}.")
    root = check_dataset_dir(dataset_dir)
    labels = None if label_dir is None else check_dataset_dir(label_dir)
    if labels is not None and (labels == root or root in labels.parents):
        raise ValueError(
            f"`label_dir` {str(labels)!r} lies inside `dataset_dir` {str(root)!r}: its labels would be found as "
            "images. Keep labels in a folder beside the images' (e.g. images/ and labels/)."
        )
    policy = BadInputPolicy(on_error, stage="NIfTI folder discovery")
    unreadable: list[OSError] = []
    paths = sorted(
        p for p in walk_files(root, unreadable.append) if p.name.endswith((".nii", ".nii.gz", ".hdr", ".img"))
    )
    for error in unreadable:
        policy.handle(unreadable_folder(error), error.filename)
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
        item = {"image": str(path), "subject": subject, "session": session, "dataset": "nifti"}
        if labels is not None:
            label = labels / path.relative_to(root)
            if not label.is_file():
                policy.handle(
                    FileNotFoundError(f"{path}: no label {label} (`label_dir` mirrors `dataset_dir`: same path)."), path
                )
                continue
            item["label"] = str(label)
        items.append(item)
    policy.summarise(len(paths) + len(unreadable))
    return items


def read_file_list(
    files: str | os.PathLike | Iterable[str | os.PathLike | dict[str, Any]], on_error: str = "raise"
) -> list[dict[str, Any]]:
    """Items from an explicit list of files: a CSV/TSV with an ``image`` column, a TXT file, or a Python sequence.

    CSV/TSV columns other than ``image`` are copied into the items as strings (``subject``, ``session`` and
    ``split`` are honoured by the rest of the package; ``label``, a label file's path, is resolved like ``image``).
    A TXT file holds one path per line (blank lines and ``#`` comments ignored). Relative paths are resolved against
    the list file's folder (the current folder for a Python sequence). Missing ``subject`` defaults to the file name
    without extension, ``session`` to the subject.

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
        if isinstance(item.get("label"), (str, os.PathLike)) and str(item["label"]).strip():
            label = Path(str(item["label"]).strip()).expanduser()
            label = Path(os.path.normpath(label if label.is_absolute() else base / label))
            if not label.exists():
                policy.handle(
                    FileNotFoundError(f"{label}: label of {path} listed in {where} but does not exist."), label
                )
                continue
            item["label"] = str(label)
        item["subject"] = str(item.get("subject") or _volume_stem(path.name).split(".")[0])
        item["session"] = str(item.get("session") or item["subject"])
        item.setdefault("dataset", "list")
        items.append(item)
    policy.summarise(len(entries))
    return items
