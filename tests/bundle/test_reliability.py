"""Crash safety, safe checkpoint loading and reproducibility of real `monai.bundle run` training runs."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

from tests.bundle.conftest import ROOT, TINY_OVERRIDES, bundle_command, run_bundle

TRAIN = ["train_autoencoder.yaml"]


def overrides(dataset, output_dir, *extra):
    return [
        "--dataset_dir",
        str(dataset),
        "--dataset_kind",
        "nifti",
        "--output_dir",
        str(output_dir),
        *extra,
        *TINY_OVERRIDES,
    ]


def saved_iteration(path) -> int:
    try:
        return int(torch.load(path, weights_only=True)["trainer"]["iteration"])
    except Exception:  # not written yet
        return -1


def test_sigkill_mid_epoch_then_resume_loses_at_most_one_checkpoint_interval(nifti_dataset, tmp_path):
    output_dir = tmp_path / "killed"
    settings = ("--max_epochs", "6", "--lr_schedule_epochs", "6", "--checkpoint_iteration_interval", "2")
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(
        bundle_command(TRAIN, *overrides(nifti_dataset, output_dir, *settings)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=environment,
        cwd=ROOT,
    )
    latest = output_dir / "models" / "latest.pt"
    deadline = time.monotonic() + 300
    try:
        while saved_iteration(latest) < 5 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.poll() is None, "training ended before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    state = torch.load(latest, weights_only=True)  # the last checkpoint is whole
    killed_at = int(state["trainer"]["iteration"])
    epoch_length = int(state["trainer"]["epoch_length"])
    assert killed_at >= 5 and killed_at % 2 == 0  # saved every 2 iterations

    result = run_bundle(TRAIN, *overrides(nifti_dataset, output_dir, *settings, "--resume", "true"))
    assert f"Restored all variables from {latest}" in result.stdout + result.stderr
    # the resumed run trains from the iteration after the checkpoint: its first logged loss is that iteration's
    resumed_log = max((output_dir / "logs").glob("events.out.tfevents.*"), key=os.path.getmtime)
    assert logged_steps(resumed_log)[0] == killed_at + 1
    final = torch.load(latest, weights_only=True)
    assert final["trainer"]["iteration"] == 6 * epoch_length
    assert not list((output_dir / "models").glob(".*.tmp"))


def test_a_crafted_checkpoint_that_would_run_code_is_refused(nifti_dataset, tmp_path):
    output_dir = tmp_path / "attacked"
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (output_dir / "models").mkdir(parents=True)
    torch.save({"network": Payload()}, output_dir / "models" / "latest.pt")
    result = subprocess.run(
        bundle_command(TRAIN, *overrides(nifti_dataset, output_dir, "--max_epochs", "1", "--resume", "true")),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode != 0
    assert "Weights only load failed" in result.stderr + result.stdout
    assert not marker.exists()


def logged_steps(event_file) -> list[int]:
    """Iterations at which one TensorBoard event file recorded the training loss."""
    return [
        event.step
        for event in EventFileLoader(str(event_file)).Load()
        if any(value.tag == "loss" for value in event.summary.value)
    ]


def train_losses(output_dir) -> list[float]:
    events = EventAccumulator(str(output_dir / "logs"))
    events.Reload()
    return [event.value for event in events.Scalars("loss")]


def test_same_seed_gives_identical_losses_and_another_seed_does_not(nifti_dataset, tmp_path):
    runs = {}
    for name, seed in (("first", "0"), ("again", "0"), ("other", "1")):
        run_bundle(TRAIN, *overrides(nifti_dataset, tmp_path / name, "--max_epochs", "1", "--seed", seed))
        runs[name] = train_losses(tmp_path / name)
    assert len(runs["first"]) >= 3
    assert runs["first"] == runs["again"]
    assert runs["first"] != runs["other"]
