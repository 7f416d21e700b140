"""Our route against MONAI core's own route to generated brain slices, side by side in one run, on the same demo
slices and for the same CPU time.

- **Ours**: the bundle's demo (``demo.yaml``): VQ-VAE-2 autoencoder, then a PixelCNN prior per level (the top one
  conditioned on the slice position), run stage by stage with :func:`monai_vqvae2.pipeline.run_pipeline` exactly as
  ``python -m monai_vqvae2.demo`` runs them; sampled with the bundle's ``sampler`` (exact cached sampling).
- **MONAI core** (as in MONAI's ``2d_vqvae_transformer`` tutorial): ``monai.networks.nets.VQVAE`` trained with an L1
  loss, then a ``DecoderOnlyTransformer`` over its raster-ordered code sequence, sampled with
  ``VQVAETransformerInferer.sample``. The tutorial's settings, except what this image size and a CPU ask for: a third
  stride-2 stage keeps its 16x16 code grid at 128x128 (the tutorial has 64x64 images), width 64 instead of 256 (our
  demo autoencoder's), and the attention through ``use_flash_attention`` (the same attention, fused by torch; at
  1,024 tokens a training step is 7x faster on a CPU). Its autoencoder gets the seconds our autoencoder stage took,
  its transformer the seconds our prior stages took together (measured in this run). Like our priors, the
  transformer trains on codes extracted once; each sequence is built as ``VQVAETransformerInferer`` builds it
  (begin-of-sequence token = the code count, last token dropped).

Both sets of samples are scored with :func:`monai_vqvae2.quality.quality_report` against the same real reference
(test-subject slices, i.e. subjects neither route trained on) and training slices. The MONAI route cannot condition
on the slice position, so both routes are judged as generators of slices from anywhere in the brain: ours samples
its positions from the training slices' positions. The encoder-feature Fréchet distance uses our autoencoder's
encoder for both sets; the random-CNN Fréchet distance is the feature space neither route shaped.

Usage::

    python benchmarks/generation.py --output benchmarks/results/generation.json
    python benchmarks/generation.py --override max_epochs=1 --override prior_max_epochs=1 --num-samples 8  # smoke
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.bundle import ConfigParser
from monai.inferers import VQVAETransformerInferer
from monai.metrics import SSIMMetric
from monai.networks.nets import VQVAE, DecoderOnlyTransformer
from monai.utils import set_determinism
from monai.utils.ordering import Ordering, OrderingType
from PIL import Image, ImageDraw

from monai_vqvae2 import bundle_path
from monai_vqvae2.data import load_split, make_slice_dataset
from monai_vqvae2.io import atomic_write_json
from monai_vqvae2.pipeline import parse_override, quality_summary, run_pipeline
from monai_vqvae2.quality import quality_report

#: the realism numbers of the table: (key of the samples' value, key of the real reference's value, column title)
MEASURES = (
    ("frechet_distance_random_cnn", "frechet_distance_random_cnn_real", "FD random CNN"),
    ("frechet_distance", "frechet_distance_real", "FD our encoder"),
    ("mmd2", "mmd2_real", "MMD² our encoder"),
    ("intensity_wasserstein", "intensity_wasserstein_real", "intensity W"),
    ("pairwise_ms_ssim_samples", "pairwise_ms_ssim_real", "pairwise MS-SSIM"),
    ("nearest_training_ssim_median", "nearest_training_ssim_median_real", "nearest-training SSIM"),
    ("num_near_copies", "num_near_copies_real", "near-copies"),
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--work-dir", type=Path, default=Path("benchmarks/results/generation"))
    parser.add_argument("--output", type=Path, default=Path("benchmarks/results/generation.json"))
    parser.add_argument("--num-samples", type=int, default=48, help="samples per route")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument(
        "--override", action="append", default=[], metavar="KEY=VALUE", help="config value for our stages"
    )
    parser.add_argument(
        "--ours-run",
        type=Path,
        default=None,
        help="a finished `python -m monai_vqvae2.demo` run to score instead of training ours here (its stage times "
        "set the MONAI route's budget)",
    )
    parser.add_argument("--temperature", type=float, nargs="+", default=None, help="ours; default: the bundle's")
    parser.add_argument("--peer-channels", type=int, default=64, help="MONAI VQVAE width (tutorial 256; demo's 64)")
    parser.add_argument(
        "--peer-downsamplings", type=int, default=3, help="stride-2 stages: 3 gives the tutorial's 16x16 code grid"
    )
    parser.add_argument("--peer-num-embeddings", type=int, default=16, help="the tutorial's 16")
    parser.add_argument("--peer-embedding-dim", type=int, default=64, help="the tutorial's 64")
    parser.add_argument("--peer-attn-dim", type=int, default=96, help="the tutorial's 96")
    parser.add_argument("--peer-depth", type=int, default=12, help="the tutorial's 12")
    parser.add_argument("--peer-heads", type=int, default=8, help="the tutorial's 8")
    parser.add_argument("--peer-learning-rate", type=float, default=5e-4, help="the tutorial's 5e-4")
    parser.add_argument("--peer-temperature", type=float, default=1.0, help="the tutorial's 1.0")
    return parser.parse_args()


def train_ours(
    work_dir: Path, overrides: dict[str, Any], finished_run: Path | None
) -> tuple[dict[str, float], ConfigParser]:
    """The demo's training stages, or those of ``finished_run`` (a folder written by ``python -m monai_vqvae2.demo``);
    returns their seconds and the bundle's sample config with the trained autoencoder loaded (its ``sampler`` loads
    the priors)."""
    if finished_run is None:
        summary = run_pipeline(
            work_dir, dataset_kind="demo", stages=("train", "priors"), overlays=["demo.yaml"], **overrides
        )
    else:
        work_dir = finished_run
        summary = json.loads((finished_run / "demo_summary.json").read_text())
    configs = bundle_path() / "configs"
    parser = ConfigParser()
    parser.read_config([str(configs / "sample.yaml"), str(configs / "demo.yaml")])
    parser.update({"output_dir": str(work_dir), "dataset_kind": "demo", **overrides})
    # the weights, as the stage's `initialize` loads them (without its run record, which would overwrite the run's own)
    checkpoint = torch.load(parser.get_parsed_content("vqvae_ckpt"), map_location="cpu", weights_only=True)
    parser.get_parsed_content("network").load_state_dict(checkpoint)
    return summary["timings_s"], parser


def stack(dataset) -> tuple[torch.Tensor, np.ndarray]:
    """A slice dataset as one tensor ``(N, 1, H, W)`` and the slices' positions."""
    items = [dataset[i] for i in range(len(dataset))]
    images = torch.stack([torch.as_tensor(item["image"]).float() for item in items])
    return images, np.array([float(item["slice_position"]) for item in items])


def batches(count: int, batch_size: int, generator: torch.Generator):
    """Endless shuffled index batches (full batches only)."""
    while True:
        order = torch.randperm(count, generator=generator)
        for start in range(0, count - batch_size + 1, batch_size):
            yield order[start : start + batch_size]


def train_for(
    seconds: float,
    network: torch.nn.Module,
    loss: Callable[[torch.Tensor], torch.Tensor],
    count: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
) -> int:
    """Adam steps of ``loss`` on seeded, shuffled batches of indices in ``range(count)`` until ``seconds`` have
    passed; returns the number of steps."""
    optimizer = torch.optim.Adam(network.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    steps, start = 0, time.perf_counter()
    for index in batches(count, batch_size, generator):
        if time.perf_counter() - start >= seconds:
            break
        optimizer.zero_grad(set_to_none=True)
        loss(index).backward()
        optimizer.step()
        steps += 1
    return steps


def train_peer_autoencoder(images: torch.Tensor, args, seconds: float, batch_size: int) -> tuple[VQVAE, int]:
    """MONAI's ``VQVAE`` as in its tutorial (stride-2 stages, L1 + quantisation loss, Adam), for ``seconds``."""
    stages = args.peer_downsamplings
    vqvae = VQVAE(
        spatial_dims=2,
        in_channels=1,
        out_channels=1,
        channels=(args.peer_channels,) * stages,
        num_res_channels=(args.peer_channels,) * stages,
        num_res_layers=2,
        downsample_parameters=((2, 4, 1, 1),) * stages,
        upsample_parameters=((2, 4, 1, 1, 0),) * stages,
        num_embeddings=args.peer_num_embeddings,
        embedding_dim=args.peer_embedding_dim,
    )

    def loss(index: torch.Tensor) -> torch.Tensor:
        reconstruction, quantization_loss = vqvae(images[index])
        return F.l1_loss(reconstruction, images[index]) + quantization_loss

    vqvae.train()
    steps = train_for(seconds, vqvae, loss, len(images), batch_size, args.peer_learning_rate, args.seed)
    return vqvae.eval(), steps


def train_peer_transformer(
    vqvae: VQVAE, images: torch.Tensor, args, seconds: float, batch_size: int
) -> tuple[DecoderOnlyTransformer, Ordering, tuple[int, int], int]:
    """MONAI's ``DecoderOnlyTransformer`` over the raster-ordered codes of ``images``, for ``seconds``."""
    with torch.no_grad():
        latents = torch.cat([vqvae.index_quantize(images[i : i + 64]) for i in range(0, len(images), 64)])
    latent_shape = tuple(latents.shape[1:])
    ordering = Ordering(OrderingType.RASTER_SCAN.value, spatial_dims=2, dimensions=(1, *latent_shape))
    sequences = latents.reshape(len(latents), -1)[:, ordering.get_sequence_ordering()].long()
    # what VQVAETransformerInferer.__call__ feeds the transformer: begin-of-sequence token, last token dropped
    inputs = F.pad(sequences, (1, 0), value=vqvae.num_embeddings)[:, :-1]
    transformer = DecoderOnlyTransformer(
        num_tokens=vqvae.num_embeddings + 1,
        max_seq_len=sequences.shape[1],
        attn_layers_dim=args.peer_attn_dim,
        attn_layers_depth=args.peer_depth,
        attn_layers_heads=args.peer_heads,
        use_flash_attention=True,  # the same attention through torch's fused kernel: 7x faster on a CPU
    )

    def loss(index: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(transformer(inputs[index]).transpose(1, 2), sequences[index])

    transformer.train()
    steps = train_for(seconds, transformer, loss, len(sequences), batch_size, args.peer_learning_rate, args.seed + 1)
    return transformer.eval(), ordering, latent_shape, steps


def reconstruction_ssim(reconstruct, images: torch.Tensor) -> float:
    """Mean SSIM of the reconstructions of ``images`` (data range 1)."""
    metric = SSIMMetric(spatial_dims=2, data_range=1.0)
    with torch.no_grad():
        for start in range(0, len(images), 32):
            batch = images[start : start + 32]
            metric(reconstruct(batch).clamp(0, 1), batch)
    return float(metric.aggregate())


def grid(rows: list[tuple[str, torch.Tensor]], path: Path, per_row: int = 12) -> None:
    """One row of ``per_row`` slices per set, its name on the left."""
    size = rows[0][1].shape[-1]
    label = 200
    canvas = Image.new("L", (label + per_row * size, len(rows) * size), 0)
    draw = ImageDraw.Draw(canvas)
    for row, (name, images) in enumerate(rows):
        draw.text((8, row * size + size // 2 - 6), name, fill=255)
        for column, image in enumerate(images[:per_row]):
            pixels = (image[0].clamp(0, 1).numpy() * 255).round().astype(np.uint8)
            canvas.paste(Image.fromarray(pixels), (label + column * size, row * size))  # display order
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = dict(parse_override(text) for text in args.override)
    work_dir = args.work_dir
    work_dir.mkdir(parents=True, exist_ok=True)

    # ours: the demo's own training stages, timed
    set_determinism(seed=args.seed)
    timings, ours = train_ours(work_dir / "ours", overrides, args.ours_run)
    ours_dir = Path(ours["output_dir"])
    autoencoder_seconds = timings["train"]
    # the code extraction belongs to the priors' share (it ran inside the prior stage before 0.5)
    prior_seconds = sum(seconds for stage, seconds in timings.items() if stage.startswith("prior_") or stage == "codes")
    image_size, batch_size = int(ours["image_size"]), int(ours["batch_size"])
    # the peer's one prior over the whole map gets the batch of our full-resolution (finest) prior
    prior_batch_size = int(ours["prior_batch_sizes"]["bottom"]) if "prior_batch_sizes" in ours else batch_size

    # the same slices for everything that follows
    split = load_split(ours_dir / "split.json")
    preprocessing = ours.get_parsed_content("preprocessing")
    train_set = make_slice_dataset(split["train"], preprocessing)
    test_set = make_slice_dataset(split["test"], preprocessing)
    train_images, train_positions = stack(train_set)
    test_images, _ = stack(test_set)

    # MONAI core's route, for the same seconds
    set_determinism(seed=args.seed)
    peer_vqvae, peer_autoencoder_steps = train_peer_autoencoder(train_images, args, autoencoder_seconds, batch_size)
    transformer, ordering, latent_shape, peer_prior_steps = train_peer_transformer(
        peer_vqvae, train_images, args, prior_seconds, prior_batch_size
    )

    # sampling, timed (decoding included)
    n = args.num_samples
    positions = np.random.default_rng(args.seed).choice(train_positions, size=n)
    sampler = ours.get_parsed_content("sampler")
    temperature = args.temperature if args.temperature is not None else ours["temperature"]
    start = time.perf_counter()
    ours_images = sampler.sample(
        n, temperature=temperature, scalars=torch.as_tensor(positions).float()[:, None], seed=args.seed
    ).images
    ours_seconds = time.perf_counter() - start
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    with torch.no_grad():
        peer_images = VQVAETransformerInferer().sample(
            latent_spatial_dim=latent_shape,
            starting_tokens=torch.full((n, 1), peer_vqvae.num_embeddings),
            vqvae_model=peer_vqvae,
            transformer_model=transformer,
            ordering=ordering,
            temperature=args.peer_temperature,
            verbose=False,
        )
    peer_seconds = time.perf_counter() - start
    peer_images = peer_images.clamp(0, 1)
    ours_images = ours_images.float().clamp(0, 1)

    # realism, scored the same way for both
    vqvae = ours.get_parsed_content("vqvae")
    routes: dict[str, dict[str, Any]] = {}
    for name, images, seconds in (
        ("monai_vqvae2", ours_images, ours_seconds),
        ("monai_core", peer_images, peer_seconds),
    ):
        report = quality_report(vqvae, test_set, images, train_set, work_dir / f"quality_{name}", seed=args.seed)
        routes[name] = {"seconds_per_slice": seconds / n, "sampling_seconds": seconds, **quality_summary(report)}
    routes["monai_vqvae2"].update(
        autoencoder_seconds=autoencoder_seconds,
        prior_seconds=prior_seconds,
        stage_seconds=timings,
        reconstruction_ssim=reconstruction_ssim(lambda x: vqvae(x)[0], test_images),
        temperature=list(temperature) if isinstance(temperature, (list, tuple)) else temperature,
        sample_positions=positions.tolist(),
    )
    routes["monai_core"].update(
        autoencoder_seconds=autoencoder_seconds,
        prior_seconds=prior_seconds,
        autoencoder_steps=peer_autoencoder_steps,
        prior_steps=peer_prior_steps,
        latent_shape=list(latent_shape),
        reconstruction_ssim=reconstruction_ssim(lambda x: peer_vqvae(x)[0], test_images),
        temperature=args.peer_temperature,
        autoencoder_parameters=sum(p.numel() for p in peer_vqvae.parameters()),
        prior_parameters=sum(p.numel() for p in transformer.parameters()),
    )
    grid(
        [
            (
                "real (test subjects)",
                test_images[torch.randperm(len(test_images), generator=torch.Generator().manual_seed(0))],
            ),
            ("monai_vqvae2", ours_images),
            ("MONAI VQVAE + transformer", peer_images),
        ],
        work_dir / "samples.png",
    )

    result = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "threads": torch.get_num_threads(),
        },
        "torch": torch.__version__,
        "image_size": image_size,
        "num_samples": n,
        "num_training_slices": len(train_images),
        "num_test_slices": len(test_images),
        "overrides": overrides,
        "ours_run": None if args.ours_run is None else str(args.ours_run),
        "peer_settings": {key: value for key, value in vars(args).items() if key.startswith("peer_")},
        "routes": routes,
        "figure": str(work_dir / "samples.png"),
    }
    atomic_write_json(args.output, result)

    def cell(value: Any) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    header = ["route", "s/slice", "recon SSIM", *(title for *_, title in MEASURES)]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, route in routes.items():
        cells = [name, cell(route["seconds_per_slice"]), cell(route["reconstruction_ssim"])]
        print("| " + " | ".join(cells + [cell(route[key]) for key, _, _ in MEASURES]) + " |")
    # the real reference is drawn and scored the same way for both routes: one row
    real = routes["monai_vqvae2"]
    print("| " + " | ".join(["real test slices", "", "", *(cell(real[key]) for _, key, _ in MEASURES)]) + " |")
    print(
        f"budget: autoencoder {autoencoder_seconds:.0f} s, priors {prior_seconds:.0f} s; "
        f"MONAI route: {peer_autoencoder_steps} autoencoder steps, {peer_prior_steps} transformer steps"
    )
    print(f"wrote {args.output} and {work_dir / 'samples.png'}")


if __name__ == "__main__":
    main()
