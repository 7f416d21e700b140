"""Shared pieces of the in-process tests: one torch thread, a tiny sampler over 32x32 slices, and a fresh
interpreter for import checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from monai_vqvae2.inferers import HierarchicalSampler
from monai_vqvae2.networks import VQVAE2, prior_for_level

TINY_SHAPE = (32, 32)  # top codes 4 x 4, bottom codes 8 x 8
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def single_thread():
    """Many tiny operations: one thread is faster and does not oversubscribe a busy CPU (import it into a test
    module to apply it there)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_sampler(
    num_scalars: int = 1, num_classes: int = 0, seed: int = 0, label_channels: int | None = None
) -> HierarchicalSampler:
    """An untrained 2-level VQ-VAE-2 (16 codes per level; with a label decoder of ``label_channels`` classes when
    given) with 2-layer priors, seeded."""
    torch.manual_seed(seed)
    vqvae = VQVAE2(
        spatial_dims=2,
        in_channels=1,
        out_channels=1,
        channels=8,
        num_res_layers=1,
        num_res_channels=4,
        num_embeddings=16,
        embedding_dim=4,
        label_channels=label_channels,
    )
    priors = [
        prior_for_level(
            vqvae,
            level,
            top_attention_every=0,
            num_scalars=num_scalars,
            num_classes=num_classes,
            channels=8,
            num_layers=2,
        )
        for level in (0, 1)
    ]
    return HierarchicalSampler(vqvae, priors, TINY_SHAPE)


def assert_runs_in_a_fresh_interpreter(code: str) -> None:
    """Run ``code`` in a new Python process from the repository root (nothing imported yet) and fail with its
    stderr unless it exits cleanly: for checks of what an import loads."""
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
