from __future__ import annotations

import json

import pytest
import torch

from monai_vqvae2.io import atomic_torch_save, atomic_write, atomic_write_json, remove_stale_temporaries


def test_interrupted_write_keeps_the_previous_file_and_leaves_nothing_behind(tmp_path):
    path = tmp_path / "latest.pt"
    atomic_torch_save({"step": torch.tensor(1)}, path)

    def crash_half_way(temporary):
        temporary.write_bytes(b"half a checkpoint")
        raise KeyboardInterrupt  # the process is stopped in the middle of writing

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, crash_half_way)
    assert int(torch.load(path, weights_only=True)["step"]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.pt"]


def test_stale_temporaries_of_a_killed_process_are_removed(tmp_path):
    path = tmp_path / "latest.pt"
    atomic_torch_save({"step": torch.tensor(2)}, path)
    (tmp_path / ".latest.pt.abc123.tmp").write_bytes(b"partial")  # what SIGKILL during a save leaves
    (tmp_path / ".other.pt.abc123.tmp").write_bytes(b"someone else's")
    removed = remove_stale_temporaries(path)
    assert [p.name for p in removed] == [".latest.pt.abc123.tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.pt.abc123.tmp", "latest.pt"]


def test_json_is_written_whole(tmp_path):
    atomic_write_json(tmp_path / "deep" / "metrics.json", {"ssim": 0.5})
    assert json.loads((tmp_path / "deep" / "metrics.json").read_text()) == {"ssim": 0.5}
