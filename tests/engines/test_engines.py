from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedEvaluator
from monai.handlers import CheckpointLoader
from monai.metrics import PSNRMetric, SSIMMetric
from PIL import Image

from monai_vqvae2.engines import (
    CheckpointHandler,
    CodebookUsageHandler,
    EpochValidationHandler,
    HierarchyProbeHandler,
    MetricsJSONWriter,
    NonFiniteLossHandler,
    ReconstructionBatch,
    ReconstructionFigureHandler,
    VQVAE2Evaluator,
    VQVAE2Trainer,
    latest_checkpoint,
    loss_terms,
)
from monai_vqvae2.metrics import evaluation_metric_handlers, ssim_metric_handler
from monai_vqvae2.networks import VQVAE2, VQVAE2Reconstructor

TINY = {"channels": 8, "num_res_layers": 1, "num_res_channels": 4, "num_embeddings": 16, "embedding_dim": 4}


def loader(num_images: int = 8, size: int = 32, batch_size: int = 4, seed: int = 0) -> DataLoader:
    generator = torch.Generator().manual_seed(seed)
    items = [{"image": torch.rand(1, size, size, generator=generator)} for _ in range(num_images)]
    return DataLoader(Dataset(items), batch_size=batch_size, shuffle=False)


class HalfNetwork(torch.nn.Module):
    """Returns (0.5 * x, 0.125): known reconstruction and quantization loss."""

    def __init__(self):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(0.5))

    def forward(self, x):
        return self.scale * x, torch.tensor(0.125)


def test_trainer_adds_weighted_quantization_loss_and_reports_terms():
    network = HalfNetwork()
    trainer = VQVAE2Trainer(
        "cpu",
        1,
        loader(num_images=4),
        network,
        torch.optim.SGD(network.parameters(), lr=0.0),
        quantization_loss_weight=2.0,
    )
    trainer.run()
    output = trainer.state.output
    images = output["image"]
    expected_reconstruction = float(((0.5 * images - images) ** 2).mean())
    assert math.isclose(float(output["reconstruction_loss"]), expected_reconstruction, rel_tol=1e-6)
    assert float(output["quantization_loss"]) == 0.125
    assert math.isclose(float(output["loss"]), expected_reconstruction + 0.25, rel_tol=1e-6)
    assert torch.equal(output["pred"], 0.5 * images)
    assert set(loss_terms(output)) == {"loss", "reconstruction_loss", "quantization_loss"}


def test_trainer_rejects_networks_without_quantization_loss():
    network = VQVAE2Reconstructor(VQVAE2(2, 1, 1, **TINY))
    trainer = VQVAE2Trainer("cpu", 1, loader(num_images=4), network, torch.optim.Adam(network.parameters()))
    with pytest.raises(ValueError, match=r"must return \(reconstruction, quantization_loss\)"):
        trainer.run()


def test_trainer_refuses_a_loader_without_a_single_batch():
    network = VQVAE2(2, 1, 1, **TINY)
    data = DataLoader(Dataset([{"image": torch.rand(1, 32, 32)} for _ in range(3)]), batch_size=8, drop_last=True)
    with pytest.raises(ValueError, match=r"gives no batch: 3 training items, fewer than one batch of 8 with drop_last"):
        VQVAE2Trainer("cpu", 1, data, network, torch.optim.Adam(network.parameters()))


def test_prepare_batch_names_the_missing_key():
    with pytest.raises(ValueError, match=r"Expected a batch dict with key\(s\) \['image'\], got \['img'\]"):
        ReconstructionBatch()({"img": torch.zeros(1)})
    with pytest.raises(ValueError, match=r"with key\(s\) \['image', 'label'\], got \['image'\]"):
        ReconstructionBatch(label_key="label")({"image": torch.zeros(1)})
    images, targets, args, kwargs = ReconstructionBatch(label_key="seg")(
        {"image": torch.ones(1), "seg": torch.zeros(1)}
    )
    assert torch.equal(images, targets) and args == () and torch.equal(kwargs["labels"], torch.zeros(1))


def test_evaluator_metrics_equal_monai_metrics_on_known_predictions():
    data = loader(num_images=6, size=64, batch_size=3)
    evaluator = VQVAE2Evaluator(
        "cpu",
        data,
        HalfNetwork(),
        key_val_metric={"ssim": ssim_metric_handler()},
        additional_metrics=evaluation_metric_handlers(image_size=64),
    )
    evaluator.run()
    images = torch.cat([batch["image"] for batch in data])
    metrics = evaluator.state.metrics
    expected_ssim = float(SSIMMetric(spatial_dims=2, data_range=1.0)(0.5 * images, images).mean())
    expected_psnr = float(PSNRMetric(max_val=1.0)(0.5 * images, images).mean())
    assert math.isclose(metrics["ssim"], expected_ssim, rel_tol=1e-5)
    assert math.isclose(metrics["psnr"], expected_psnr, rel_tol=1e-5)
    assert math.isclose(
        metrics["reference_zeros_psnr"], float(PSNRMetric(1.0)(0 * images, images).mean()), rel_tol=1e-5
    )
    assert sorted(metrics) == sorted(
        ["ssim", "psnr", "brain_ssim", "brain_psnr", "ms_ssim"]
        + [f"reference_{r}_{m}" for r in ("zeros", "downsample4") for m in ("ssim", "brain_ssim", "psnr")]
    )
    assert all(0 <= metrics[name] <= 1 for name in metrics if "ssim" in name)


def test_evaluation_leaves_out_ms_ssim_when_the_image_is_too_small():
    assert "ms_ssim" not in evaluation_metric_handlers(image_size=16)
    assert "ms_ssim" in evaluation_metric_handlers(image_size=32)


def test_codebook_usage_handler_reports_levels_and_warns_on_collapse(caplog):
    torch.manual_seed(0)
    network = VQVAE2(2, 1, 1, **TINY)
    network(torch.rand(8, 1, 32, 32))  # initialise the codebooks
    evaluator = VQVAE2Evaluator(
        "cpu", loader(), network, val_handlers=[CodebookUsageHandler(network, collapse_threshold=1.01)]
    )
    with caplog.at_level(logging.WARNING):
        evaluator.run()
    metrics = evaluator.state.metrics
    assert set(metrics) == {
        f"code_{kind}_{level}" for kind in ("usage", "perplexity", "collapsed") for level in ("top", "bottom")
    }
    assert metrics["code_collapsed_top"] == metrics["code_collapsed_bottom"] == 1.0
    assert 0 < metrics["code_usage_bottom"] <= 1 and 1 <= metrics["code_perplexity_bottom"] <= 16
    assert "Codebook collapse on the top level" in caplog.text


def test_metrics_json_and_figure_handlers_write_files(tmp_path):
    torch.manual_seed(0)
    network = VQVAE2(2, 1, 1, top_reconstruction_weight=0.0, **TINY)
    evaluator = VQVAE2Evaluator(
        "cpu",
        loader(num_images=6),
        network,
        key_val_metric={"ssim": ssim_metric_handler()},
        val_handlers=[
            MetricsJSONWriter(tmp_path, global_epoch_transform=lambda epoch: 7, extra={"split": "validation"}),
            ReconstructionFigureHandler(network, tmp_path, num_images=5, global_epoch_transform=lambda epoch: 7),
        ],
    )
    evaluator.run()
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record == json.loads((tmp_path / "metrics_epoch7.json").read_text())
    assert record["epoch"] == 7 and record["split"] == "validation"
    assert math.isclose(record["metrics"]["ssim"], evaluator.state.metrics["ssim"])
    figure = np.asarray(Image.open(tmp_path / "reconstructions_epoch7.png"))
    assert figure.shape == (6 * 32, 5 * 32, 3)  # rows: image, reconstruction, error, top-only, 2 code maps
    assert not list(tmp_path.glob("*.tmp"))


def test_figure_handler_draws_volumes_as_orthogonal_mid_slices(tmp_path):
    torch.manual_seed(0)
    network = VQVAE2(3, 1, 1, top_reconstruction_weight=0.0, **TINY)  # 4 image rows (with top-only), 2 code maps
    generator = torch.Generator().manual_seed(0)
    volumes = DataLoader(Dataset([{"image": torch.rand(1, 16, 24, 16, generator=generator)} for _ in range(3)]))
    handler = ReconstructionFigureHandler(network, tmp_path, num_images=2)
    evaluator = VQVAE2Evaluator(
        "cpu", volumes, network, key_val_metric={"ssim": ssim_metric_handler(spatial_dims=3)}, val_handlers=[handler]
    )
    evaluator.run()
    figure = np.asarray(Image.open(tmp_path / "reconstructions_epoch1.png"))
    assert figure.shape == (6 * 24, 2 * 3 * 24, 3)  # each volume: three 24 x 24 views side by side
    assert 0 < evaluator.state.metrics["ssim"] < 1


def test_checkpoint_handler_saves_latest_and_best_and_resumes(tmp_path):
    torch.manual_seed(0)
    network = VQVAE2Reconstructor(VQVAE2(2, 1, 1, **TINY))
    optimizer = torch.optim.Adam(network.parameters(), 1e-3)
    data = loader()
    evaluator = VQVAE2Evaluator("cpu", data, network.network, key_val_metric={"ssim": ssim_metric_handler()})
    trainer = VQVAE2Trainer("cpu", 2, data, network.network, optimizer)
    scores = iter([0.5, 0.4])
    evaluator.add_event_handler(Events.EPOCH_COMPLETED, lambda engine: engine.state.metrics.update(ssim=next(scores)))
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda engine: evaluator.run())
    handler = CheckpointHandler(
        tmp_path, {"network": network, "optimizer": optimizer, "trainer": trainer}, evaluator=evaluator
    )
    handler.attach(trainer)
    assert latest_checkpoint(tmp_path) is None
    trainer.run()
    assert latest_checkpoint(tmp_path) == str(tmp_path / "latest.pt")
    latest = torch.load(tmp_path / "latest.pt", weights_only=True)
    assert set(latest) == {"network", "optimizer", "trainer", "checkpointer"}
    assert dict(latest["trainer"]) == {"epoch_length": 2, "iteration": 4, "max_epochs": 2}
    assert latest["checkpointer"] == {"best_metric": 0.5, "best_epoch": 1}
    best = torch.load(tmp_path / "model.pt", weights_only=True)
    assert set(best) == set(network.state_dict())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.pt", "model.pt"]

    restored = CheckpointHandler(tmp_path, {"network": network})
    CheckpointLoader(str(tmp_path / "latest.pt"), {"checkpointer": restored})(trainer)
    assert restored.state_dict() == {"best_metric": 0.5, "best_epoch": 1}


def test_checkpoint_handler_rejects_save_dict_without_network(tmp_path):
    with pytest.raises(ValueError, match=r"must contain the network under 'network', got keys \['model'\]"):
        CheckpointHandler(tmp_path, {"model": torch.nn.Linear(1, 1)})


class ExplodingNetwork(torch.nn.Module):
    """Finite outputs for two iterations, then NaN."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(()))
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        scale = self.weight if self.calls <= 2 else self.weight * float("nan")
        return scale * x, torch.zeros(())


def test_non_finite_loss_stops_training_naming_the_iteration_and_keeps_the_last_checkpoint(tmp_path):
    network = ExplodingNetwork()
    optimizer = torch.optim.SGD(network.parameters(), lr=0.0)
    trainer = VQVAE2Trainer(
        "cpu", 3, loader(num_images=8, batch_size=4), network, optimizer, train_handlers=[NonFiniteLossHandler()]
    )
    CheckpointHandler(tmp_path, {"network": network, "trainer": trainer}, key_metric_name=None).attach(trainer)
    with pytest.raises(FloatingPointError, match=r"Non-finite loss nan at iteration 3 \(epoch 2\)"):
        trainer.run()
    kept = torch.load(tmp_path / "latest.pt", weights_only=True)
    assert dict(kept["trainer"])["iteration"] == 2 and torch.isfinite(kept["network"]["weight"])


def probe_metrics(network: VQVAE2, images: torch.Tensor) -> dict:
    """The metrics a real evaluator run with only a HierarchyProbeHandler gives, batches of 2."""
    data = DataLoader(Dataset([{"image": image} for image in images]), batch_size=2)
    evaluator = VQVAE2Evaluator("cpu", data, network, val_handlers=[HierarchyProbeHandler(network)])
    evaluator.run()
    return evaluator.state.metrics


def probe_a_brain_cube(spatial_dims: int, batch: int) -> tuple[dict, list[torch.Tensor]]:
    """Probe metrics of 32-voxel images holding a random 16-voxel "brain" in the middle, the codes, and a check that
    the top-only SSIM is MONAI's SSIM of the top-only reconstruction (in ``spatial_dims`` dimensions)."""
    network = VQVAE2(spatial_dims, 1, 1, top_reconstruction_weight=0.0, **TINY)
    shape = (batch, 1, *(32,) * spatial_dims)
    network(torch.rand(shape))  # initialise the codebooks
    images = torch.zeros(shape)
    brain = (slice(None), slice(None), *(slice(8, 24),) * spatial_dims)
    images[brain] = torch.rand(images[brain].shape, generator=torch.Generator().manual_seed(0)) + 0.1
    metrics = probe_metrics(network, images)
    network.eval()
    with torch.no_grad():
        indices = network.index_quantize(images)
        top_only = network.decode_top(indices[0]).clamp(0, 1)
    expected = float(SSIMMetric(spatial_dims=spatial_dims, data_range=1.0)(top_only, images).mean())
    assert math.isclose(metrics["top_only_ssim"], expected, rel_tol=1e-5)
    assert 0 <= metrics["top_only_brain_ssim"] <= 1
    return metrics, indices


def test_hierarchy_probe_reports_top_only_scores_and_in_brain_code_statistics():
    metrics, indices = probe_a_brain_cube(spatial_dims=2, batch=4)
    # the brain covers the middle 2x2 of the 4x4 top map and the middle 4x4 of the 8x8 bottom map
    for name, level, positions in (("top", 0, (slice(1, 3),) * 2), ("bottom", 1, (slice(2, 6),) * 2)):
        codes = indices[level][(slice(None), *positions)].flatten()
        assert metrics[f"brain_distinct_{name}"] == len(codes.unique())
        counts = torch.bincount(codes, minlength=16).double()
        probabilities = counts[counts > 0] / counts.sum()
        assert math.isclose(
            metrics[f"brain_perplexity_{name}"], float(2 ** -(probabilities * probabilities.log2()).sum()), rel_tol=1e-9
        )


def test_hierarchy_probe_without_a_top_only_decoder_reports_code_statistics_only():
    network = VQVAE2(2, 1, 1, **TINY)
    images = torch.rand(4, 1, 32, 32)
    network(images)
    assert sorted(probe_metrics(network, images)) == [
        "brain_distinct_bottom",
        "brain_distinct_top",
        "brain_perplexity_bottom",
        "brain_perplexity_top",
    ]


class CountingEvaluator(SupervisedEvaluator):
    """An evaluator over nothing that records the trainer epochs it was run at."""

    def __init__(self):
        super().__init__(device="cpu", val_data_loader=[], network=torch.nn.Identity())
        self.epochs = []

    def run(self, global_epoch: int = 1) -> None:
        self.epochs.append(global_epoch)


@pytest.mark.parametrize(
    ("interval", "max_epochs", "validated"),
    [(5, 10, [5, 10]), (5, 12, [5, 10, 12]), (5, 1, [1]), (1, 3, [1, 2, 3]), (4, 8, [4, 8])],
)
def test_epoch_validation_handler_validates_every_interval_and_after_the_last_epoch(interval, max_epochs, validated):
    trainer = Engine(lambda engine, batch: None)
    evaluator = CountingEvaluator()
    EpochValidationHandler(interval, evaluator).attach(trainer)
    trainer.run([0], max_epochs=max_epochs)
    assert evaluator.epochs == validated


@pytest.mark.parametrize("interval", [0, -1, 2.5, True])
def test_epoch_validation_handler_rejects_an_interval_that_is_not_a_positive_integer(interval):
    with pytest.raises(ValueError, match="`interval` .* must be a positive integer"):
        EpochValidationHandler(interval)


def test_hierarchy_probe_measures_whole_volumes_with_3d_ssims():
    metrics, indices = probe_a_brain_cube(spatial_dims=3, batch=2)
    # the brain covers the middle 2x2x2 of the 4x4x4 top map
    assert metrics["brain_distinct_top"] == len(indices[0][:, 1:3, 1:3, 1:3].unique())
