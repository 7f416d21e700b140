"""The package travels: one version everywhere, and a wheel that carries the MONAI Bundle, so that an installed
(non-editable) package runs its demo from any folder."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import monai_vqvae2
from monai_vqvae2.pipeline import STAGE_CONFIGS
from tests.bundle.conftest import TINY_OVERRIDES

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "bundle"


def _pyproject_version() -> str:
    match = re.search(r'^version = "([^"]+)"$', (ROOT / "pyproject.toml").read_text(), flags=re.MULTILINE)
    assert match, "pyproject.toml has no version line"
    return match.group(1)


def _run(command: list[str], timeout: int = 180, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


def test_one_version_everywhere():
    version = _pyproject_version()
    metadata = json.loads((BUNDLE / "configs" / "metadata.json").read_text())
    assert metadata["version"] == version
    assert version in metadata["changelog"]
    assert metadata["required_packages_version"]["monai-vqvae2"] == version
    # the metadata Python finds first: a stale one means reinstalling (pip install -e .), or removing an old
    # monai_vqvae2.egg-info left in the current folder by an earlier build
    assert monai_vqvae2.__version__ == version


def _expected_bundle_files() -> set[str]:
    """Every file of the bundle, as the wheel must name it (editor back-ups and hidden files aside)."""
    files = [BUNDLE / "LICENSE", *(BUNDLE / "configs").iterdir(), *(BUNDLE / "docs").iterdir()]
    return {
        f"monai_vqvae2/bundle/{path.relative_to(BUNDLE).as_posix()}"
        for path in files
        if path.is_file() and not path.name.startswith(".") and not path.name.endswith("~")
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # build from a fresh copy of what the build reads: setuptools reuses build/ between builds, so a build in the
    # checkout could ship files deleted since, and would leave build/ behind
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, source / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "monai_vqvae2", source / "monai_vqvae2", ignore=skip)
    shutil.copytree(BUNDLE, source / "bundle", ignore=skip)
    wheel_dir = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    _run(
        [*pip, "wheel", ".", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(wheel_dir)], cwd=source
    )
    (built,) = wheel_dir.glob("*.whl")
    return built


def test_wheel_holds_every_module_and_the_bundle(wheel):
    assert wheel.name == f"monai_vqvae2-{_pyproject_version()}-py3-none-any.whl"
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {path.relative_to(ROOT).as_posix() for path in (ROOT / "monai_vqvae2").rglob("*.py")}
    assert modules - names == set(), "modules missing from the wheel: add their package to pyproject.toml"
    configs = set(STAGE_CONFIGS.values()) | {"demo.yaml", "metadata.json", "logging.conf"}
    assert {f"monai_vqvae2/bundle/configs/{name}" for name in configs} <= names
    bundle = {name for name in names if name.startswith("monai_vqvae2/bundle/")}
    # exactly the bundle's configs, docs and licence: nothing missing, and no outputs of runs made inside bundle/
    assert bundle == _expected_bundle_files()


def test_installed_wheel_runs_the_demo_from_any_folder(wheel, tmp_path):
    # a fresh virtual environment with the wheel pip-installed into it; the dependencies (PyTorch, MONAI, ...) are
    # this environment's, seen after the fresh environment's own packages, so the wheel's copy is the one imported
    fresh = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(fresh)])
    python = str(fresh / "bin" / "python")
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip())
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "--python", python]
    _run([*pip, "install", "--no-deps", "--no-index", "-q", str(wheel)])
    # only now: with this environment visible, pip would find the package already installed and skip the wheel
    dependencies = sysconfig.get_path("purelib")
    (site / "dependencies.pth").write_text(f"import site; site.addsitedir({dependencies!r})\n")
    elsewhere = tmp_path / "elsewhere"  # no bundle/ here, and the checkout is not on the path
    elsewhere.mkdir()
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    probe = "import json, monai_vqvae2; print(json.dumps([monai_vqvae2.__file__, str(monai_vqvae2.bundle_path())]))"
    module, bundle = json.loads(_run([python, "-c", probe], cwd=elsewhere, env=env).stdout.splitlines()[-1])
    assert Path(module).resolve() == (site / "monai_vqvae2" / "__init__.py").resolve()
    assert Path(bundle) == (site / "monai_vqvae2" / "bundle").resolve()
    assert (Path(bundle) / "configs" / "metadata.json").is_file()

    # the README's demo command, with the installed bundle, on the demo data at tiny sizes (two stages)
    tiny = {key.lstrip("-"): value for key, value in zip(TINY_OVERRIDES[::2], TINY_OVERRIDES[1::2])}
    demo = [python, "-m", "monai_vqvae2.demo", "--output_dir", "out", "--stages", "train", "evaluate"]
    demo += ["--max_epochs", "1", *(item for key, value in tiny.items() for item in ("--override", f"{key}={value}"))]
    env["MONAI_VQVAE2_CACHE"] = str(tmp_path / "cache")
    printed = _run(demo, cwd=elsewhere, env=env, timeout=600).stdout
    summary = json.loads((elsewhere / "out" / "demo_summary.json").read_text())
    assert set(summary["timings_s"]) == {"train", "evaluate"}
    assert 0 < summary["evaluation"]["metrics"]["ssim"] <= 1 and "ssim" in printed
    assert (elsewhere / "out" / "models" / "model.pt").is_file()
    help_text = _run([python, "-m", "monai_vqvae2.demo", "--help"], cwd=elsewhere, env=env).stdout
    assert "--bundle_dir" in help_text and "installed with the package" in help_text
