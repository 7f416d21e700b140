"""Former home of the run provenance helpers, now in :mod:`monai_vqvae2.provenance`; kept so old imports work."""

from __future__ import annotations

from monai_vqvae2.provenance import PACKAGES, package_versions, record_run

__all__ = ["PACKAGES", "package_versions", "record_run"]
