"""`torchrun --nproc_per_node=2` runs the multi-GPU training config with gloo on CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

from tests.bundle.conftest import CONFIGS, ROOT, TINY_OVERRIDES

# test-only layer: every rank saves its codebooks at the end, so the test can compare them
RANK_CODEBOOKS = """
finalize:
  - "$torch.save({k: v for k, v in @vqvae.state_dict().items() if k.startswith('quantizers.')}, os.path.join(@output_dir, f'codebooks_rank{dist.get_rank()}.pt'))"
  - "$@summary_writer is not None and @summary_writer.close()"
  - "$dist.is_initialized() and dist.destroy_process_group()"
"""


def test_two_gloo_ranks_train_with_identical_codebooks_and_rank0_writes(nifti_dataset, tmp_path):
    layer = tmp_path / "rank_codebooks.yaml"
    layer.write_text(RANK_CODEBOOKS)
    output_dir = tmp_path / "ddp"
    files = [CONFIGS / "common.yaml", CONFIGS / "train_autoencoder.yaml", CONFIGS / "multi_gpu.yaml", layer]
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "monai.bundle",
        "run",
        "--config_file",
        "[" + ",".join(f"'{f}'" for f in files) + "]",
        "--meta_file",
        str(CONFIGS / "metadata.json"),
        "--logging_file",
        str(CONFIGS / "logging.conf"),
        "--dataset_dir",
        str(nifti_dataset),
        "--dataset_kind",
        "nifti",
        "--output_dir",
        str(output_dir),
        "--max_epochs",
        "1",
        *TINY_OVERRIDES,
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=environment, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    codebooks = [torch.load(output_dir / f"codebooks_rank{rank}.pt", weights_only=True) for rank in range(2)]
    assert int(codebooks[0]["quantizers.1.num_updates"]) > 0
    for key, value in codebooks[0].items():
        assert torch.equal(value, codebooks[1][key]), key
    assert sorted(p.name for p in (output_dir / "models").iterdir()) == ["latest.pt", "model.pt"]
    assert len(list((output_dir / "logs").glob("events.out.tfevents.*"))) == 1
    assert json.loads((output_dir / "run_train_autoencoder.json").read_text())["settings"] == {"world_size": 2}
    assert sorted(p.name for p in (output_dir / "validation").glob("metrics_epoch*.json")) == ["metrics_epoch1.json"]
