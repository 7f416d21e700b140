"""``--tracking bundle/configs/mlflow.json`` records a real MLflow run of each training stage under the output folder."""

from __future__ import annotations

import mlflow
from monai.utils import path_to_sqlite_uri

from tests.bundle.conftest import TINY_OVERRIDES, run_bundle
from tests.bundle.test_bundle_stages import PRIOR_OVERRIDES
from tests.bundle.test_data_folder_untouched import snapshot

TRACKING = ["--tracking", "bundle/configs/mlflow.json"]


def metric_steps(client, run) -> dict[str, list[int]]:
    return {key: [m.step for m in client.get_metric_history(run.info.run_id, key)] for key in run.data.metrics}


def test_mlflow_records_both_training_stages(nifti_dataset, tmp_path):
    before = snapshot(nifti_dataset)
    output_dir = tmp_path / "run"
    common = ["--dataset_dir", str(nifti_dataset), "--output_dir", str(output_dir), *TINY_OVERRIDES, *TRACKING]
    run_bundle(["train_autoencoder.yaml"], *common, "--max_epochs", "2")
    run_bundle(["train_prior.yaml"], *common, *PRIOR_OVERRIDES, "--prior_level", "top", "--prior_max_epochs", "2")

    client = mlflow.MlflowClient(tracking_uri=path_to_sqlite_uri(output_dir / "mlruns.db"))
    experiment = client.get_experiment_by_name("monai-vqvae2")
    assert experiment.artifact_location == (output_dir / "mlruns").as_uri()
    prior_run, autoencoder_run = client.search_runs([experiment.experiment_id], order_by=["start_time ASC"])[::-1]
    assert autoencoder_run.info.status == prior_run.info.status == "FINISHED"

    autoencoder = metric_steps(client, autoencoder_run)
    iterations = len(autoencoder["loss"])
    assert iterations >= 2 and iterations % 2 == 0  # every iteration of the 2 epochs
    assert autoencoder["loss"] == autoencoder["reconstruction_loss"] == list(range(1, iterations + 1))
    assert autoencoder["quantization_loss"] == autoencoder["loss"]
    assert autoencoder["ssim"] == autoencoder["top_only_brain_ssim"] == [1, 2]  # validation, once per epoch
    assert autoencoder_run.data.params["max_epochs"] == "2"
    assert 0 < client.get_metric_history(autoencoder_run.info.run_id, "ssim")[-1].value <= 1

    prior = metric_steps(client, prior_run)
    assert prior["nll_bits"] == prior["accuracy"] == [1, 2] and len(prior["loss"]) % 2 == 0
    assert snapshot(nifti_dataset) == before
