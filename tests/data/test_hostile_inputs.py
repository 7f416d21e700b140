"""Hostile and broken inputs through the real code paths (files in ``tmp_path`` -> discovery -> transforms/datasets).

Every case must end in an ``InvalidImageError`` naming the file and the problem (``on_error="raise"``), or one
``BadInputWarning`` per file plus a count (``on_error="skip"``): never an unrelated exception, a hang or a huge
allocation. Cases already covered by ``test_bad_inputs.py`` (corrupt/truncated files, NaN/Inf, constant, 2D, 4D,
empty, missing, bad PNG) are not repeated here.
"""

from __future__ import annotations

import errno
import gzip
import os
import re
import resource
import struct
import threading
import warnings
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
import PIL.Image
import pytest
import torch

from monai_vqvae2.apps import discover_dataset, discover_oasis1
from monai_vqvae2.data import (
    BadInputWarning,
    InvalidImageError,
    check_image_file,
    make_slice_dataset,
    png_slice_transforms,
    volume_transforms,
)

_DIM, _DATATYPE = 40, 70  # byte offsets of dim[8] (int16) and datatype (int16) in a NIfTI-1/Analyze header


def _load(path: Path, **kwargs):
    return make_slice_dataset([{"image": str(path)}], image_size=16, min_brain_fraction=0.1, **kwargs)


def _patched_nifti(path: Path, data: np.ndarray, patches: dict[int, tuple[str, tuple]]) -> Path:
    """Write ``data`` as NIfTI-1, then overwrite header fields: ``{offset: (struct format, values)}``."""
    raw = bytearray(nib.Nifti1Image(data, np.eye(4)).to_bytes())
    for offset, (fmt, values) in patches.items():
        struct.pack_into("<" + fmt, raw, offset, *values)
    path.write_bytes(gzip.compress(bytes(raw)) if path.name.endswith(".gz") else bytes(raw))
    return path


def _warnings_of(call) -> tuple[object, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = call()
    return result, [str(w.message) for w in caught if issubclass(w.category, BadInputWarning)]


# --- 1-2. truncated files and headers that disagree with their data --------------------------------------------


def test_truncated_by_less_than_the_header_size(tmp_path, build):
    """A ``.nii`` missing its last 100 bytes (the header offset must be counted, not assumed to be 0)."""
    full = build.write_nifti(tmp_path / "full.nii", build.known_volume())
    cut = tmp_path / "cut.nii"
    cut.write_bytes(full.read_bytes()[:-100])
    with pytest.raises(
        InvalidImageError,
        match=r"cut.nii: truncated: header declares shape \(20, 24, 20\) of float32 \(38752 bytes with the header\), "
        r"file has 38652 bytes",
    ):
        _load(cut)


def test_gzip_intact_but_data_short(tmp_path, build):
    """A complete gzip stream of a truncated ``.nii``: detected while decoding, reported as truncated."""
    full = build.write_nifti(tmp_path / "full.nii", build.known_volume())
    short = tmp_path / "short.nii.gz"
    short.write_bytes(gzip.compress(full.read_bytes()[:5000]))
    message = r"short.nii.gz: truncated: the header declares 38400 bytes of voxel data, the file holds only 4648"
    with pytest.raises(InvalidImageError, match=message):
        _load(short)
    with pytest.raises(InvalidImageError, match=message):  # the chain alone raises it too, not MONAI's RuntimeError
        volume_transforms(16)({"image": str(short)})


HEADER_CASES = {
    "dims larger than the data": (
        "big.nii",
        {_DIM: ("4h", (3, 64, 64, 64))},
        (
            r"big.nii: truncated: header declares shape \(64, 64, 64\) of float32 \(1048928 bytes with the header\), "
            r"file has 38752 bytes"
        ),
    ),
    "dims larger than the data, compressed": (
        "big.nii.gz",
        {_DIM: ("4h", (3, 64, 64, 64))},
        r"big.nii.gz: truncated: the header declares 1048576 bytes of voxel data, the file holds only 38400",
    ),
    "dim[0] smaller than the data": (
        "flat.nii",
        {_DIM: ("h", (2,))},
        (
            r"flat.nii: header declares shape \(20, 24\) of float32 \(dim = \[2, 20, 24, 20, 1, 1, 1, 1\]; 2272 bytes "
            r"with the header\), but the file has 38752 bytes: the header's dims do not match the data"
        ),
    ),
    "dim[0] above 7": (
        "dim9.nii",
        {_DIM: ("h", (9,))},
        r"dim9.nii: not a readable NIfTI file: header dim\[0\] = 9 is not a number of dimensions in 1..7",
    ),
    "dim[0] negative, compressed": (
        "dimneg.nii.gz",
        {_DIM: ("h", (-3,))},
        r"dimneg.nii.gz: not a readable NIfTI file: header dim\[0\] = -3 is not a number of dimensions in 1..7",
    ),
    "dim[0] zero": (
        "dim0.nii",
        {_DIM: ("h", (0,))},
        (
            r"dim0.nii: header declares shape \(0,\) \(dim = \[0, 20, 24, 20, 1, 1, 1, 1\]\): every dimension must be "
            r"at least 1"
        ),
    ),
    "negative dim": (
        "neg.nii",
        {_DIM: ("4h", (3, 20, -24, 20))},
        r"neg.nii: header declares shape \(20, -24, 20\) .*every dimension must be at least 1",
    ),
    "zero dim, compressed": (
        "zero.nii.gz",
        {_DIM: ("4h", (3, 20, 0, 20))},
        r"zero.nii.gz: header declares shape \(20, 0, 20\) .*every dimension must be at least 1",
    ),
    "bool (DT_BINARY)": (
        "mask.nii.gz",
        {_DATATYPE: ("2h", (1, 1))},
        (
            r"mask.nii.gz: not a readable NIfTI file: datatype 1 \(DT_BINARY, one bit per voxel\) is not supported; "
            r"expected integer or floating-point intensities"
        ),
    ),
}


@pytest.mark.parametrize("case", list(HEADER_CASES))
def test_header_disagrees_with_data(tmp_path, build, case):
    name, patches, message = HEADER_CASES[case]
    path = _patched_nifti(tmp_path / name, build.known_volume(), patches)
    with pytest.raises(InvalidImageError, match=message):
        _load(path)


# --- 3. huge declared sizes: refused from the header alone ------------------------------------------------------


def _header_only_nifti(path: Path, shape: tuple[int, ...]) -> Path:
    """A NIfTI header declaring ``shape`` of float32, followed by a few bytes of data."""
    header = nib.Nifti1Header()
    header.set_data_dtype(np.float32)
    header.set_data_shape(shape)
    raw = header.binaryblock + b"\0" * 4 + b"\0" * 64  # 348-byte header, extension flag, then a stub of data
    path.write_bytes(gzip.compress(raw) if path.name.endswith(".gz") else raw)
    return path


@pytest.mark.parametrize("name", ["huge.nii.gz", "huge.nii"])
def test_huge_declared_size_is_refused_before_reading(tmp_path, name):
    path = _header_only_nifti(tmp_path / name, (2000, 2000, 2000))
    assert path.stat().st_size < 1000
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    message = (
        rf"{name}: header declares 2000×2000×2000 = 8.0e\+09 voxels, above the limit max_voxels=134217728; its data "
        r"was not read \(raise `max_voxels` to load it\)"
    )
    with pytest.raises(InvalidImageError, match=message):
        _load(path)
    with pytest.raises(InvalidImageError, match=message):
        check_image_file(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_kib < 1024**2  # far less than 32 GB: < 1 GiB


def test_max_voxels_is_configurable_everywhere(tmp_path, build):
    volume = build.write_nifti(tmp_path / "vol.nii.gz", build.known_volume())  # 9600 voxels
    analyze = build.write_analyze(tmp_path / "vol.hdr", build.known_volume())
    png = build.write_png(tmp_path / "slice.png", np.full((64, 64), 9))
    over = r"above the limit max_voxels=9000; its data was not read"
    with pytest.raises(InvalidImageError, match=rf"vol.nii.gz: header declares 20×24×20 = 9.6e\+03 voxels, {over}"):
        _load(volume, max_voxels=9000)
    with pytest.raises(InvalidImageError, match=rf"vol.hdr: header declares 20×24×20×1 = 9.6e\+03 voxels, {over}"):
        volume_transforms(16, max_voxels=9000)({"image": str(analyze)})
    with pytest.raises(InvalidImageError, match=r"slice.png: declares 64×64 = 4.1e\+03 pixels, above the limit"):
        png_slice_transforms(16, max_voxels=4000)({"image": str(png)})
    assert len(_load(volume, max_voxels=9600)) == 10  # the limit is inclusive
    dataset, messages = _warnings_of(
        lambda: make_slice_dataset(
            [{"image": str(volume)}, {"image": str(png)}], image_size=16, max_voxels=5000, on_error="skip"
        )
    )
    assert len(dataset) == 1 and dataset.skipped[0][0] == str(volume)
    assert "vol.nii.gz: header declares 20×24×20" in messages[0]
    assert messages[-1] == "loading: skipped 1 of 2 file(s) with bad input (on_error='skip')."
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match=rf"`max_voxels` must be a positive int, got {bad!r}"):
            volume_transforms(16, max_voxels=bad)


def test_png_declaring_a_huge_size(tmp_path):
    """A PNG header claiming 30000 x 30000 pixels (PIL's decompression-bomb guard fires before our limit)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    path = tmp_path / "bomb.png"
    ihdr = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    with pytest.raises(InvalidImageError, match=r"bomb.png: not a readable PNG image \(DecompressionBombError: "):
        _load(path)


# --- 4. values: NaN/Inf and constant volumes are in test_bad_inputs.py; what they leave out -----------------------


def _values(build, outside: float, inside: float, dtype=np.float32) -> np.ndarray:
    brain = build.known_volume() > 0
    return np.where(brain, inside, outside).astype(dtype)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # float64 1e300 to float32
def test_value_problems(tmp_path, build):
    spike = np.zeros(build.SHAPE, np.float32)
    spike[10, 10, 10] = 1000.0  # one bright voxel in 9600: both percentiles are 0
    cases = {
        "spike.nii.gz": (
            spike,
            (
                r"spike.nii.gz: has equal 0.5th and 99.5th intensity percentiles \(0\): at least 99% of its voxels have "
                r"the same value, so there is no contrast to normalise"
            ),
        ),
        "wide.nii.gz": (
            _values(build, -3e38, 3e38),
            r"wide.nii.gz: has intensities from -3e\+38 to 3e\+38, a range wider than float32 arithmetic allows",
        ),
        "beyond_float32.nii.gz": (
            _values(build, 0.0, 1e300, np.float64),
            (
                r"beyond_float32.nii.gz: contains 0 NaN and 1983 infinite voxel\(s\) of 9600 \(values beyond the "
                r"float32 range, ±3.4e\+38, become infinite\)"
            ),
        ),
        "negative_constant.nii.gz": (
            np.full(build.SHAPE, -3, np.int16),
            r"negative_constant.nii.gz: is constant \(every voxel = -3\): no image content",
        ),
    }
    for name, (data, message) in cases.items():
        path = build.write_nifti(tmp_path / name, data)
        with pytest.raises(InvalidImageError, match=message):
            _load(path)
    constant_analyze = build.write_analyze(tmp_path / "flat.hdr", np.full(build.SHAPE, 7, np.float32))
    with pytest.raises(InvalidImageError, match=r"flat.hdr: is constant \(every voxel = 7\): no image content"):
        _load(constant_analyze)
    zero_png = build.write_png(tmp_path / "blank.png", np.zeros((8, 8)))  # an empty PNG slice is allowed
    assert float(png_slice_transforms(16)({"image": str(zero_png)})["image"].max()) == 0.0


def test_tiny_magnitudes_are_normalised(tmp_path, build):
    """Subnormal float32 intensities (1e-44) give the same slices as ordinary ones."""
    tiny = build.write_nifti(tmp_path / "tiny.nii.gz", _values(build, 0.0, 1e-44))
    plain = build.write_nifti(tmp_path / "plain.nii.gz", _values(build, 0.0, 100.0))
    chain = volume_transforms(16, min_brain_fraction=0.1)
    for a, b in zip(chain({"image": str(tiny)}), chain({"image": str(plain)}), strict=True):
        assert torch.equal(a["image"], b["image"])


# --- 5. voxel types ----------------------------------------------------------------------------------------------


def test_int16_and_float32_give_the_same_slices(tmp_path, build):
    values = build.known_volume()
    values[values > 0] = np.linspace(10, 900, int((values > 0).sum()))
    paths = {
        dtype: build.write_nifti(tmp_path / f"{np.dtype(dtype).name}.nii.gz", np.round(values).astype(dtype))
        for dtype in (np.int16, np.float32, np.int32, np.float64)
    }
    results = [volume_transforms(16, min_brain_fraction=0.1)({"image": str(p)}) for p in paths.values()]
    assert len(results[0]) == 10
    for other in results[1:]:
        assert [s["slice_index"] for s in other] == [s["slice_index"] for s in results[0]]
        for a, b in zip(results[0], other, strict=True):
            torch.testing.assert_close(a["image"], b["image"], rtol=0, atol=1e-6)


def test_complex_and_rgb_nifti_are_refused(tmp_path, build):
    complex_path = build.write_nifti(tmp_path / "phase.nii.gz", build.known_volume().astype(np.complex64) * (1 + 1j))
    with pytest.raises(
        InvalidImageError, match=r"phase.nii.gz: has complex voxels \(complex64\); expected real intensities"
    ):
        _load(complex_path)
    rgb = np.zeros(build.SHAPE, dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    rgb["G"] = build.known_volume().astype(np.uint8)
    rgb_path = build.write_nifti(tmp_path / "colour.nii.gz", rgb)
    with pytest.raises(
        InvalidImageError,
        match=r"colour.nii.gz: has multi-component voxels \(.*'R'.*, e.g. RGB\); expected one grey-level intensity",
    ):
        _load(rgb_path)


def test_colour_pngs_become_grey(tmp_path, build):
    """RGB, RGBA, grey + alpha and palette PNGs are converted to 8-bit luma; alpha is dropped."""
    grey = ((np.arange(16 * 12) * 7) % 256).reshape(16, 12).astype(np.uint8)
    opaque = np.full_like(grey, 40)
    images = {
        "rgb": PIL.Image.fromarray(np.stack([grey] * 3, -1), "RGB"),
        "rgba": PIL.Image.fromarray(np.stack([grey, grey, grey, opaque], -1), "RGBA"),
        "la": PIL.Image.fromarray(np.stack([grey, opaque], -1), "LA"),
        "palette": PIL.Image.fromarray(grey, "L").convert("P"),
    }
    chain = png_slice_transforms((16, 12), resize_mode="pad")
    reference = chain({"image": str(build.write_png(tmp_path / "grey.png", grey))})["image"]
    for name, image in images.items():
        image.save(tmp_path / f"{name}.png")
        out = chain({"image": str(tmp_path / f"{name}.png")})["image"]
        assert out.shape == (1, 16, 12) and out.dtype == torch.float32
        torch.testing.assert_close(out, reference, rtol=0, atol=1.5 / 255, msg=name)  # palette quantisation
    red = np.zeros((16, 12, 3), np.uint8)
    red[..., 0] = 255
    PIL.Image.fromarray(red, "RGB").save(tmp_path / "red.png")
    assert float(chain({"image": str(tmp_path / "red.png")})["image"][0, 0, 0]) == pytest.approx(76 / 255)  # luma


def test_16bit_png_needs_its_range(tmp_path):
    pixels = (np.arange(16 * 16).reshape(16, 16) * 250).astype(np.uint16)  # up to 63750
    PIL.Image.fromarray(pixels).save(tmp_path / "deep.png")
    path = tmp_path / "deep.png"
    assert PIL.Image.open(path).mode.startswith("I")
    with pytest.raises(
        InvalidImageError,
        match=r"deep.png: has values up to 63750, above max_value=255 \(a 16-bit image\?\); they would be clipped: "
        r"set the maximum \(`max_value` / `png_max_value`\) to the image's range, e.g. 65535",
    ):
        _load(path)
    out = png_slice_transforms(16, max_value=65535, resize_mode="pad")({"image": str(path)})["image"]
    torch.testing.assert_close(out[0], torch.as_tensor(pixels / 65535, dtype=torch.float32))
    dataset = _load(path, png_max_value=65535)
    assert float(dataset[0]["image"].max()) == pytest.approx(63750 / 65535)


# --- 6. non-image files ----------------------------------------------------------------------------------------


def test_non_image_files_in_a_folder(tmp_path, build):
    root = tmp_path / "scans"
    good = build.write_nifti(root / "good.nii.gz", build.known_volume())
    build.touch(root / "README.txt", b"Scans of the study.\n")
    build.touch(root / ".DS_Store", b"\0\0\0\1Bud1" + bytes(range(256)))
    build.touch(root / "notes.json", b"{}")
    text = build.touch(root / "notes.nii.gz", b"This is a text file, not a gzip stream.\n")
    garbage = build.touch(root / "noise.hdr", np.random.default_rng(0).bytes(348))
    build.touch(root / "noise.img", np.random.default_rng(1).bytes(4096))
    items = discover_dataset(root)
    assert [Path(i["image"]).name for i in items] == ["good.nii.gz", "noise.hdr", "notes.nii.gz"]
    with pytest.raises(InvalidImageError, match=r"noise.hdr: unreadable Analyze header"):
        make_slice_dataset(items, image_size=16)
    dataset, messages = _warnings_of(lambda: make_slice_dataset(items, image_size=16, on_error="skip"))
    assert [p for p, _ in dataset.skipped] == [str(garbage), str(text)]
    assert f"{text}: not a readable NIfTI file (" in messages[1] and "gzip" in messages[1]
    assert messages[-1] == "loading: skipped 2 of 3 file(s) with bad input (on_error='skip')."
    assert {s["source"] for s in dataset.slice_items} == {str(good)}


# --- 7. symbolic links ---------------------------------------------------------------------------------------------


def _finishes(call, seconds: float = 20.0):
    """Run ``call`` in a thread; fail (instead of hanging the suite) if it does not return in time."""
    result: dict[str, object] = {}
    thread = threading.Thread(target=lambda: result.update(value=call()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{call} did not finish within {seconds} s (a symlink loop?)"
    return result["value"]


def test_symlink_loops_and_dangling_links(tmp_path, build):
    root = tmp_path / "scans"
    good = build.write_nifti(root / "a" / "good.nii.gz", build.known_volume())
    (root / "a" / "loop").symlink_to("..", target_is_directory=True)  # a/loop -> scans
    (root / "a" / "self").symlink_to(".", target_is_directory=True)  # a/self -> a
    (root / "b").symlink_to("a", target_is_directory=True)  # the same tree a second time
    elsewhere = build.write_nifti(tmp_path / "elsewhere" / "linked.nii.gz", build.known_volume())
    (root / "c").symlink_to(elsewhere.parent, target_is_directory=True)  # a data folder linked in: followed
    dangling = root / "gone.nii.gz"
    dangling.symlink_to(tmp_path / "never_written.nii.gz")
    ping, pong = root / "ping.nii", root / "pong.nii"
    ping.symlink_to(pong)
    pong.symlink_to(ping)

    items = _finishes(lambda: discover_dataset(root, kind="nifti"))
    assert [Path(i["image"]).relative_to(root).as_posix() for i in items] == [
        "a/good.nii.gz",
        "c/linked.nii.gz",
        "gone.nii.gz",
        "ping.nii",
        "pong.nii",
    ]
    with pytest.raises(
        InvalidImageError,
        match=re.escape(f"gone.nii.gz: is a broken symbolic link (to '{tmp_path / 'never_written.nii.gz'}', which ")
        + "does not exist or loops back",
    ):
        make_slice_dataset(items, image_size=16)
    dataset, messages = _warnings_of(lambda: make_slice_dataset(items, image_size=16, on_error="skip"))
    assert [Path(p).name for p, _ in dataset.skipped] == ["gone.nii.gz", "ping.nii", "pong.nii"]
    assert f"{ping}: is a broken symbolic link (to '{pong}', which does not exist or loops back)." in messages[1]
    assert messages[-1] == "loading: skipped 3 of 5 file(s) with bad input (on_error='skip')."
    assert {Path(s["source"]).name for s in dataset.slice_items} == {good.name, elsewhere.name}


def test_symlink_loop_in_an_oasis_tree(tmp_path, build):
    root = tmp_path / "oasis1"
    expected = build.make_oasis1_tree(root, {"OAS1_0001_MR1": 1, "OAS1_0002_MR1": 1})
    (root / "disc1" / "again").symlink_to(".", target_is_directory=True)  # would find every session twice
    (root / "disc1" / "OAS1_0001_MR1" / "up").symlink_to("../..", target_is_directory=True)
    items = _finishes(lambda: discover_oasis1(root))
    assert [i["image"] for i in items] == [str(p) for p in expected.values()]
    image = expected["OAS1_0002_MR1"].with_suffix(".img")
    image.unlink()
    image.symlink_to(tmp_path / "missing.img")
    with pytest.raises(
        InvalidImageError,
        match=r"OAS1_0002_MR1_mpr_n4_anon_111_t88_masked_gfc.hdr: mismatched Analyze .hdr/.img pair: "
        r"OAS1_0002_MR1_mpr_n4_anon_111_t88_masked_gfc.img is missing \(a broken symbolic link\) beside",
    ):
        make_slice_dataset(items, image_size=16)


# --- 8. permissions (tests run as root, so chmod cannot deny a read: the denial is simulated) ---------------------


def _deny(monkeypatch, module, name: str, path: Path, after: int = 0) -> None:
    """Make ``module.name(path, ...)`` raise ``PermissionError`` (after ``after`` successful calls for ``path``)."""
    original, calls = getattr(module, name), []

    def guarded(target, *args, **kwargs):
        if os.fspath(target) == str(path):
            calls.append(target)
            if len(calls) > after:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(target))
        return original(target, *args, **kwargs)

    monkeypatch.setattr(module, name, guarded)


def test_permission_denied_when_opening(tmp_path, build, monkeypatch):
    locked = build.write_nifti(tmp_path / "locked.nii.gz", build.known_volume())
    locked_analyze = build.write_analyze(tmp_path / "locked.hdr", build.known_volume())
    locked_png = build.write_png(tmp_path / "locked.png", np.full((8, 8), 50))
    _deny(monkeypatch, nib, "load", locked)
    _deny(monkeypatch, nib, "load", locked_analyze)
    _deny(monkeypatch, PIL.Image, "open", locked_png)
    message = r"permission denied: it cannot be read \(check the permissions of the file and of its folders\)"
    for path in (locked, locked_analyze, locked_png):
        with pytest.raises(InvalidImageError, match=rf"{path.name}: {message}") as caught:
            _load(path)
        assert str(caught.value).startswith(str(path))
    good = build.write_nifti(tmp_path / "good.nii.gz", build.known_volume())
    items = [{"image": str(p)} for p in (good, locked, locked_png)]
    dataset, messages = _warnings_of(lambda: make_slice_dataset(items, image_size=16, on_error="skip"))
    assert len(dataset) == 10 and [p for p, _ in dataset.skipped] == [str(locked), str(locked_png)]
    assert all("permission denied" in m for m in messages[:2])


def test_permission_denied_while_reading_the_data(tmp_path, build, monkeypatch):
    """The header check passes, then the reader is refused (the file changed in between)."""
    path = build.write_nifti(tmp_path / "late.nii.gz", build.known_volume())
    _deny(monkeypatch, nib, "load", path, after=1)
    with pytest.raises(InvalidImageError, match=r"late.nii.gz: permission denied: it cannot be read"):
        volume_transforms(16)({"image": str(path)})


def test_permission_denied_on_the_folder(tmp_path, build, monkeypatch):
    root = tmp_path / "scans"
    build.write_nifti(root / "open" / "a.nii.gz", build.known_volume())
    inside = build.write_nifti(root / "closed" / "b.nii.gz", build.known_volume())
    _deny(monkeypatch, os, "scandir", root / "closed")  # listing the folder fails
    with pytest.raises(
        PermissionError,
        match=r"closed: permission denied: cannot list this folder, so the images in it cannot be found",
    ):
        discover_dataset(root, kind="nifti")
    items, messages = _warnings_of(lambda: discover_dataset(root, kind="nifti", on_error="skip"))
    assert [Path(i["image"]).name for i in items] == ["a.nii.gz"]
    assert messages == [
        (
            f"skipping bad input (NIfTI folder discovery): {root / 'closed'}: permission denied: cannot list this "
            "folder, so the images in it cannot be found."
        ),
        "NIfTI folder discovery: skipped 1 of 2 file(s) with bad input (on_error='skip').",
    ]
    monkeypatch.undo()
    _deny(monkeypatch, Path, "stat", inside)  # stat refused: the file cannot even be looked at
    with pytest.raises(InvalidImageError, match=r"b.nii.gz: permission denied: it cannot be read"):
        _load(inside)
