"""``--tracking bundle/configs/mlflow.json`` records real MLflow runs of the training stages and of the evaluation, in a
SQLite store under the run's output folder, read back here with the MLflow client."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from unittest.mock import ANY

import mlflow
import pytest
from monai.utils import path_to_sqlite_uri
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.bundle.conftest import ROOT, TINY_OVERRIDES, run_bundle
from tests.bundle.test_bundle_stages import PRIOR_OVERRIDES
from tests.bundle.test_data_folder_untouched import snapshot

TRACKING = ["--tracking", "bundle/configs/mlflow.json"]
DOCS = ROOT / "bundle" / "docs" / "tracking.md"
LOSS_TERMS = ["loss", "reconstruction_loss", "quantization_loss"]  # monai_vqvae2.engines.loss_terms


def histories(client: mlflow.MlflowClient, run) -> dict[str, dict[int, float]]:
    """Every metric of ``run``: ``{name: {step: value}}``."""
    return {
        name: {metric.step: metric.value for metric in client.get_metric_history(run.info.run_id, name)}
        for name in run.data.metrics
    }


def written_metrics(path: Path) -> dict[str, float]:
    """The metrics a ``MetricsJSONWriter`` wrote for one validation or evaluation."""
    return json.loads(path.read_text())["metrics"]


def assert_epoch_metrics(logged: dict[str, dict[int, float]], folder: Path, epochs: dict[int, str]) -> None:
    """The epoch-level metrics in MLflow are those the bundle wrote to ``folder`` (``{step: file name}``), step by
    step."""
    for step, name in epochs.items():
        expected = written_metrics(folder / name)
        assert {key: logged[key][step] for key in expected} == pytest.approx(expected, rel=1e-6, abs=1e-9), name
        assert all(sorted(logged[key]) == sorted(epochs) for key in expected), name  # no other steps


def test_mlflow_records_the_training_stages_and_the_evaluation(nifti_dataset, tmp_path, capsys):
    before = snapshot(nifti_dataset)
    strays = [ROOT / "mlruns", ROOT / "mlruns.db", ROOT / "mlflow.db"]
    strays_before = [path.exists() for path in strays]
    output_dir = tmp_path / "run"
    common = ["--dataset_dir", str(nifti_dataset), "--output_dir", str(output_dir), *TINY_OVERRIDES, *TRACKING]
    run_bundle(["train_autoencoder.yaml"], *common, "--max_epochs", "2")
    run_bundle(["extract_codes.yaml"], *common)  # not a training stage: no MLflow run
    # both stages only read the trained autoencoder: run them at once, as two processes writing to the same store
    prior = [*common, *PRIOR_OVERRIDES, "--prior_level", "top", "--prior_max_epochs", "2"]
    with ThreadPoolExecutor(2) as pool:
        stages = [
            pool.submit(run_bundle, ["train_prior.yaml"], *prior),
            pool.submit(run_bundle, ["evaluate.yaml"], *common, "--run_name", "evaluate"),
        ]
        for stage in stages:
            stage.result()

    client = mlflow.MlflowClient(tracking_uri=path_to_sqlite_uri(output_dir / "mlruns.db"))
    experiment = client.get_experiment_by_name("monai-vqvae2")
    assert experiment.artifact_location == (output_dir / "mlruns").as_uri()
    runs = client.search_runs([experiment.experiment_id], order_by=["start_time ASC"])
    assert len(runs) == 3 and all(run.info.status == "FINISHED" for run in runs)
    # one run per command, although two ran at the same time (MONAI's handler with run_name null joins any unfinished
    # run of the experiment); named run_<UTC time>_<process id> unless --run_name names it
    autoencoder_run = runs[0]
    prior_run, evaluate_run = sorted(runs[1:], key=lambda run: run.info.run_name == "evaluate")
    assert evaluate_run.info.run_name == "evaluate" and autoencoder_run.info.run_name != prior_run.info.run_name
    default_name = r"run_\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d_\d+"
    assert all(re.fullmatch(default_name, run.info.run_name) for run in (autoencoder_run, prior_run))
    settings = {"dataset_dir": str(nifti_dataset), "dataset_kind": "auto", "image_size": "32", "seed": "0"}

    # the autoencoder: every loss term and the learning rate at every iteration, validation metrics once per epoch
    autoencoder = histories(client, autoencoder_run)
    params = autoencoder_run.data.params
    assert params == {**settings, "world_size": "1", "max_epochs": "2", "epoch_length": params["epoch_length"]}
    iterations = list(range(1, 2 * int(params["epoch_length"]) + 1))
    for name in [*LOSS_TERMS, "lr_group_0"]:
        assert sorted(autoencoder[name]) == iterations, name
    assert autoencoder["loss"] == pytest.approx(
        {i: autoencoder["reconstruction_loss"][i] + autoencoder["quantization_loss"][i] for i in iterations}
    )
    validation = {1: "metrics_epoch1.json", 2: "metrics_epoch2.json"}
    assert_epoch_metrics(autoencoder, output_dir / "validation", validation)
    assert {"ssim", "psnr", "ms_ssim", "brain_ssim", "top_only_ssim", "code_usage_top"} <= set(autoencoder)
    assert set(autoencoder) == {*LOSS_TERMS, "lr_group_0", *written_metrics(output_dir / "validation" / validation[1])}

    # the top prior: loss and learning rate per iteration, bits per code and accuracy per epoch
    prior = histories(client, prior_run)
    assert prior_run.data.params == {**settings, "world_size": "1", "max_epochs": "2", "epoch_length": ANY}
    assert (
        sorted(prior["loss"])
        == sorted(prior["lr_group_0"])
        == list(range(1, 2 * int(prior_run.data.params["epoch_length"]) + 1))
    )
    assert_epoch_metrics(prior, output_dir / "validation_prior_top", validation)
    assert set(prior) == {"loss", "lr_group_0", "nll_bits", "accuracy"}
    # ... and TensorBoard has the same iteration losses
    tensorboard = EventAccumulator(str(output_dir / "logs" / "prior_top"))
    tensorboard.Reload()
    assert {event.step: event.value for event in tensorboard.Scalars("loss")} == pytest.approx(prior["loss"])

    # the evaluation of the test split: its metrics once, no iteration log
    evaluation = histories(client, evaluate_run)
    checkpoint = str(output_dir / "models" / "model.pt")
    assert evaluate_run.data.params == {
        **settings,
        "eval_split": "test",
        "checkpoint": checkpoint,
        "max_epochs": "1",
        "epoch_length": ANY,
    }
    assert_epoch_metrics(evaluation, output_dir / "evaluation", {1: "metrics.json"})
    assert set(evaluation) == set(written_metrics(output_dir / "evaluation" / "metrics.json"))

    # the store is in the output folder: nothing in the data folder, nothing where the command ran
    assert sorted(path.name for path in output_dir.glob("mlruns*")) == ["mlruns.db"]
    assert snapshot(nifti_dataset) == before
    assert [path.exists() for path in strays] == strays_before

    # the Python example of the docs reads this store back
    capsys.readouterr()
    example = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)[0]
    exec(compile(example.replace("runs/oasis1", str(output_dir)), str(DOCS), "exec"), {})  # noqa: S102 (our docs)
    printed = capsys.readouterr().out.splitlines()
    assert sorted(line.split()[:2] for line in printed) == sorted([run.info.run_name, "FINISHED"] for run in runs)
