"""Digests, package versions and run records of :mod:`monai_vqvae2.provenance`, and the names' former import paths."""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from importlib import metadata

import monai_vqvae2.data.codes
import monai_vqvae2.engines
import monai_vqvae2.engines.provenance
import monai_vqvae2.inferers.writer
from monai_vqvae2 import provenance
from monai_vqvae2.provenance import PACKAGES, checkpoint_records, file_digest, package_versions, record_run

ABC_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # FIPS 180-2 test vector


def test_file_digest_is_the_sha256_of_the_bytes(tmp_path):
    path = tmp_path / "abc.bin"
    path.write_bytes(b"abc")
    assert file_digest(path) == ABC_SHA256
    assert file_digest(str(path)) == ABC_SHA256
    large = tmp_path / "large.bin"  # more than one block of 1 MiB
    payload = bytes(range(256)) * 5000
    large.write_bytes(payload)
    assert file_digest(large) == hashlib.sha256(payload).hexdigest()


def test_checkpoint_records_name_each_file_and_its_digest(tmp_path):
    first, second = tmp_path / "a.pt", tmp_path / "b.pt"
    first.write_bytes(b"abc")
    second.write_bytes(b"")
    assert checkpoint_records([first, str(second)]) == [
        {"path": str(first), "sha256": ABC_SHA256},
        {"path": str(second), "sha256": hashlib.sha256(b"").hexdigest()},
    ]
    assert checkpoint_records([]) == []


def test_package_versions_list_python_and_each_package():
    versions = package_versions()
    assert list(versions) == ["python", *PACKAGES]
    assert versions["python"] == platform.python_version()
    assert versions["torch"] == metadata.version("torch")
    assert versions["numpy"] == metadata.version("numpy")


def test_record_run_writes_the_run_record(tmp_path):
    path = record_run(tmp_path / "out", seed=3, stage="sample", num_samples=2)
    assert path == tmp_path / "out" / "run_sample.json"
    record = json.loads(path.read_text())
    assert record["stage"] == "sample" and record["seed"] == 3
    assert record["settings"] == {"num_samples": 2}
    assert record["command"] == sys.argv
    assert record["versions"] == package_versions()
    assert {"time_utc", "platform"} <= set(record)


def test_the_old_import_paths_give_the_new_objects():
    assert monai_vqvae2.engines.provenance.package_versions is provenance.package_versions
    assert monai_vqvae2.engines.provenance.record_run is provenance.record_run
    assert monai_vqvae2.engines.package_versions is provenance.package_versions
    assert monai_vqvae2.engines.record_run is provenance.record_run
    assert monai_vqvae2.data.codes.file_digest is provenance.file_digest
    assert monai_vqvae2.inferers.writer.checkpoint_records is provenance.checkpoint_records
