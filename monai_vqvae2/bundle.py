"""Where the MONAI Bundle that comes with the package is: installed from a wheel, or in a source checkout.

This module and the installed bundle folder share a name on purpose: a wheel holds ``monai_vqvae2/bundle.py`` beside
the data folder ``monai_vqvae2/bundle/`` (configs, docs, licence; no ``__init__.py``), and Python imports the module,
which takes precedence over a folder without ``__init__.py``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["bundle_path"]

_PACKAGE_DIR = Path(__file__).resolve().parent


def bundle_path() -> Path:
    """The folder of the MONAI Bundle that came with this package: the one holding ``configs/`` and ``docs/``.

    The repository's top-level ``bundle/`` folder is the only copy. A wheel installs it inside the package as
    ``monai_vqvae2/bundle`` (``package-dir`` in ``pyproject.toml``); a source checkout, installed editable or not at
    all, keeps it beside the package folder. The second place is needed because setuptools' editable installs cannot
    map a data-only folder into a package (https://github.com/pypa/setuptools/issues/4943).

    Returns:
        the bundle folder, absolute; the stage configs are in ``bundle_path() / "configs"``.

    Raises:
        FileNotFoundError: neither place holds ``configs/metadata.json``; the message names both folders.

    Example::

        from monai.bundle import run
        from monai_vqvae2 import bundle_path

        configs = bundle_path() / "configs"
        run(config_file=str(configs / "train_autoencoder.yaml"), meta_file=str(configs / "metadata.json"))
    """
    installed = _PACKAGE_DIR / "bundle"
    checkout = _PACKAGE_DIR.parent / "bundle"
    for folder in (installed, checkout):
        if (folder / "configs" / "metadata.json").is_file():
            return folder
    raise FileNotFoundError(
        f"No MONAI Bundle configs found: neither {installed / 'configs'} (installed package) nor "
        f"{checkout / 'configs'} (source checkout) holds metadata.json. Reinstall monai-vqvae2."
    )
