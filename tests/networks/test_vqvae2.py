from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from monai_vqvae2.networks import VQVAE2, VQVAE2Encoding

TINY = {"channels": 8, "num_res_layers": 1, "num_res_channels": 4, "num_embeddings": 16, "embedding_dim": 4}

# (spatial_dims, num_levels, input spatial shape, expected index shapes coarsest first)
SHAPE_CASES = [
    (2, 1, (16, 24), [(4, 6)]),
    (2, 2, (32, 32), [(4, 4), (8, 8)]),
    (2, 3, (32, 48), [(2, 3), (4, 6), (8, 12)]),
    (3, 2, (16, 16, 16), [(2, 2, 2), (4, 4, 4)]),
    (3, 3, (32, 32, 48), [(2, 2, 3), (4, 4, 6), (8, 8, 12)]),
]


def tiny_net(spatial_dims: int = 2, num_levels: int = 2, **kwargs) -> VQVAE2:
    torch.manual_seed(0)
    return VQVAE2(spatial_dims, in_channels=1, out_channels=1, num_levels=num_levels, **{**TINY, **kwargs})


def codebook_state(net: VQVAE2) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in net.state_dict().items() if k.startswith("quantizers.")}


@pytest.mark.parametrize("spatial_dims,num_levels,shape,index_shapes", SHAPE_CASES)
def test_shapes(spatial_dims, num_levels, shape, index_shapes):
    net = tiny_net(spatial_dims, num_levels)
    images = torch.rand(2, 1, *shape)
    reconstruction, loss = net(images)
    assert reconstruction.shape == (2, 1, *shape)
    assert loss.shape == ()
    assert net.latent_shapes(shape) == index_shapes
    indices = net.index_quantize(images)
    assert [tuple(i.shape) for i in indices] == [(2, *s) for s in index_shapes]
    assert all(i.dtype == torch.long and 0 <= int(i.min()) and int(i.max()) < 16 for i in indices)
    encoding = net.encode(images)
    assert isinstance(encoding, VQVAE2Encoding)
    assert [tuple(q.shape) for q in encoding.quantized] == [(2, 4, *s) for s in index_shapes]


def test_default_configuration_matches_the_paper_layout():
    net = VQVAE2(spatial_dims=2, in_channels=1, out_channels=1)
    assert net.downsample_factors == (2, 4)
    assert net.latent_shapes((256, 256)) == [(32, 32), (64, 64)]
    assert [q.num_embeddings for q in net.quantizers] == [512, 512]
    assert [q.embedding_dim for q in net.quantizers] == [64, 64]
    indices = net.eval().index_quantize(torch.rand(1, 1, 256, 256))
    assert [tuple(i.shape) for i in indices] == [(1, 32, 32), (1, 64, 64)]
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == 1_384_769 and net.top_decoder is None
    probed = VQVAE2(spatial_dims=2, in_channels=1, out_channels=1, top_reconstruction_weight=0.0)
    assert sum(p.numel() for p in probed.top_decoder.parameters()) == 353_857
    net3d = VQVAE2(spatial_dims=3, in_channels=1, out_channels=1)
    assert net3d.latent_shapes((64, 64, 64)) == [(8, 8, 8), (16, 16, 16)]
    small3d = VQVAE2(spatial_dims=3, in_channels=1, out_channels=1, **TINY)
    assert [tuple(i.shape) for i in small3d.index_quantize(torch.rand(1, 1, 64, 64, 64))] == [
        (1, 8, 8, 8),
        (1, 16, 16, 16),
    ]


def test_per_level_arguments_are_coarsest_first():
    net = tiny_net(num_levels=2, num_embeddings=(8, 32), embedding_dim=(6, 3), channels=(12, 8))
    assert [(q.num_embeddings, q.embedding_dim) for q in net.quantizers] == [(8, 6), (32, 3)]
    encoding = net.encode(torch.rand(2, 1, 32, 32))
    assert [tuple(q.shape) for q in encoding.quantized] == [(2, 6, 4, 4), (2, 3, 8, 8)]
    custom = tiny_net(num_levels=2, downsample_factors=(4, 2))
    assert custom.latent_shapes((32, 32)) == [(4, 4), (16, 16)]
    assert custom(torch.rand(1, 1, 32, 32))[0].shape == (1, 1, 32, 32)


@pytest.mark.parametrize("spatial_dims,num_levels,shape,index_shapes", SHAPE_CASES)
def test_gradients_reach_every_trainable_parameter(spatial_dims, num_levels, shape, index_shapes):
    # 16 channels: with 8, the 4-channel stages of the 3D top-only decoder (four doublings) start with every ReLU dead
    net = tiny_net(spatial_dims, num_levels, channels=16, top_reconstruction_weight=0.0)
    images = torch.rand(2, 1, *shape)
    reconstruction, quantization_loss = net(images)
    (F.mse_loss(reconstruction, images) + quantization_loss).backward()
    trainable = {name: p for name, p in net.named_parameters() if p.requires_grad}
    missing = [name for name, p in trainable.items() if p.grad is None or not torch.any(p.grad != 0)]
    assert missing == []
    frozen = [name for name, p in net.named_parameters() if not p.requires_grad]
    assert frozen == [f"quantizers.{level}.embedding.weight" for level in range(num_levels)]


@pytest.mark.parametrize("spatial_dims,num_levels,shape,index_shapes", SHAPE_CASES[1:4])
def test_decoding_the_indices_reproduces_the_eval_reconstruction(spatial_dims, num_levels, shape, index_shapes):
    net = tiny_net(spatial_dims, num_levels)
    optimizer = torch.optim.Adam(net.parameters(), 1e-3)
    for _ in range(3):
        images = torch.rand(4, 1, *shape)
        reconstruction, quantization_loss = net(images)
        optimizer.zero_grad()
        (F.mse_loss(reconstruction, images) + quantization_loss).backward()
        optimizer.step()
    net.eval()
    images = torch.rand(3, 1, *shape)
    with torch.no_grad():
        reconstruction, _ = net(images)
    decoded = net.decode_samples(net.index_quantize(images))
    torch.testing.assert_close(decoded, reconstruction, rtol=0, atol=1e-6)


def test_index_extraction_and_eval_forward_never_change_the_codebooks():
    net = tiny_net()
    net(torch.rand(4, 1, 32, 32))  # training step: initialises the codebooks
    before = codebook_state(net)
    assert bool(net.quantizers[0].initialized) and int(net.quantizers[0].num_updates) == 1

    net.train()
    net.index_quantize(torch.rand(4, 1, 32, 32))  # training mode: the MONAI trap
    net.eval()
    with torch.no_grad():
        net(torch.rand(4, 1, 32, 32))
    net(torch.rand(4, 1, 32, 32))  # eval mode with autograd on
    net.index_quantize(torch.rand(4, 1, 32, 32))
    after = codebook_state(net)
    assert before.keys() == after.keys()
    for key in before:
        assert torch.equal(before[key], after[key]), key

    net.train()
    net(torch.rand(4, 1, 32, 32))
    assert not torch.equal(codebook_state(net)["quantizers.1.ema_w"], before["quantizers.1.ema_w"])


def test_state_dict_round_trip_keeps_codebooks_and_skips_reinitialisation(tmp_path):
    net = tiny_net()
    net(torch.rand(4, 1, 32, 32))
    path = tmp_path / "net.pt"
    torch.save(net.state_dict(), path)
    restored = tiny_net()
    restored.load_state_dict(torch.load(path, weights_only=True))
    assert bool(restored.quantizers[1].initialized)
    images = torch.rand(2, 1, 32, 32)
    net.eval()
    restored.eval()
    with torch.no_grad():
        torch.testing.assert_close(restored(images)[0], net(images)[0], rtol=0, atol=0)
    # a resumed training step updates the loaded codebook instead of re-running k-means over it
    restored.train()
    codebook = restored.quantizers[0].codebook.clone()
    restored(images)
    assert torch.allclose(restored.quantizers[0].codebook, codebook, atol=0.5)
    assert int(restored.quantizers[0].num_updates) == 2


def test_activation_checkpointing_gives_the_same_outputs_and_gradients():
    images = torch.rand(2, 1, 32, 32)
    results = []
    for use_checkpointing in (False, True):
        net = tiny_net(use_checkpointing=use_checkpointing)
        reconstruction, quantization_loss = net(images)
        (F.mse_loss(reconstruction, images) + quantization_loss).backward()
        results.append((reconstruction.detach(), [p.grad.clone() for p in net.parameters() if p.requires_grad]))
    torch.testing.assert_close(results[0][0], results[1][0])
    for plain, checkpointed in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(plain, checkpointed)


def test_output_activation():
    net = tiny_net(output_act="sigmoid")
    reconstruction, _ = net(torch.rand(2, 1, 32, 32) * 10)
    assert float(reconstruction.min()) > 0 and float(reconstruction.max()) < 1


@pytest.mark.parametrize(
    "images,message",
    [
        (torch.rand(1, 1, 30, 32), r"\(30, 32\) is not divisible by the total downsampling 8 .* multiple of 8"),
        (torch.rand(1, 1, 32, 36), r"\(32, 36\) is not divisible by the total downsampling 8"),
        (torch.rand(1, 3, 32, 32), r"Expected 1 input channel\(s\) \(`in_channels`\), got 3"),
        (torch.rand(1, 32, 32), r"Expected a 4D input \(B, C, H, W\) for a 2D VQVAE2, got shape \(1, 32, 32\)"),
        (torch.rand(1, 1, 32, 32, 32), r"Expected a 4D input .* got shape \(1, 1, 32, 32, 32\)"),
    ],
)
def test_bad_inputs_raise_clear_errors(images, message):
    with pytest.raises(ValueError, match=message):
        tiny_net()(images)


def test_three_level_size_error_names_the_multiple():
    with pytest.raises(ValueError, match=r"\(32, 32, 24\) is not divisible by the total downsampling 16"):
        tiny_net(3, 3).index_quantize(torch.rand(1, 1, 32, 32, 24))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"spatial_dims": 1}, "`spatial_dims` must be 2 or 3, got 1"),
        ({"num_levels": 0}, "`num_levels` must be >= 1, got 0"),
        (
            {"num_embeddings": (16, 16, 16)},
            r"`num_embeddings` needs 2 entries \(one per level, coarsest first\), got 3",
        ),
        ({"channels": (8, 0)}, r"`channels` entries must be positive integers, got \(8, 0\)"),
        ({"downsample_factors": (2,)}, r"`downsample_factors` needs 2 entries .* got \(2,\)"),
        ({"downsample_factors": (3, 4)}, "entry of `downsample_factors` must be a power of two >= 2, got 3"),
        ({"codebook_init": "uniform"}, r"`codebook_init` must be one of \('kmeans', 'normal'\), got 'uniform'"),
        ({"restart_interval": 0}, "`restart_interval` must be a positive number of updates, got 0"),
    ],
)
def test_bad_constructor_arguments_raise_clear_errors(kwargs, message):
    arguments = {"spatial_dims": 2, "in_channels": 1, "out_channels": 1, **TINY, **kwargs}
    with pytest.raises(ValueError, match=message):
        VQVAE2(**arguments)


def test_decode_samples_rejects_wrong_level_count_and_shapes():
    net = tiny_net()
    with pytest.raises(ValueError, match=r"Expected 2 index maps \(coarsest first\), got 1"):
        net.decode_samples([torch.zeros(1, 4, 4, dtype=torch.long)])
    with pytest.raises(ValueError, match=r"Index map of level 1 must have shape \(B, \*2 spatial dims\), got \(8, 8\)"):
        net.decode_samples([torch.zeros(1, 4, 4, dtype=torch.long), torch.zeros(8, 8, dtype=torch.long)])


def brain_slices(size: int = 64) -> torch.Tensor:
    """60 axial slices of the MNI152 template shipped inside nilearn, scaled to [0, 1]."""
    from nilearn.datasets import load_mni152_template

    volume = load_mni152_template(resolution=2).get_fdata().astype(np.float32)
    volume /= volume.max()
    slices = torch.from_numpy(volume[:, :, 20:80]).permute(2, 0, 1).unsqueeze(1)
    return F.interpolate(slices, size=(size, size), mode="bilinear", align_corners=False)


def train_and_measure_usage(slices: torch.Tensor, steps: int = 60, **kwargs) -> tuple[list[float], float]:
    torch.manual_seed(0)
    net = VQVAE2(
        2, 1, 1, channels=32, num_res_layers=1, num_res_channels=16, num_embeddings=128, embedding_dim=16, **kwargs
    )
    optimizer = torch.optim.Adam(net.parameters(), 3e-4)
    generator = torch.Generator().manual_seed(0)
    for _ in range(steps):
        batch = slices[torch.randint(0, slices.shape[0], (8,), generator=generator)]
        reconstruction, quantization_loss = net(batch)
        optimizer.zero_grad()
        (F.mse_loss(reconstruction, batch) + quantization_loss).backward()
        optimizer.step()
    net.eval()
    net.reset_codebook_usage()
    with torch.no_grad():
        reconstruction, _ = net(slices)
    return [level["usage"] for level in net.codebook_usage()], float(F.mse_loss(reconstruction, slices))


def test_restart_keeps_codebooks_alive_where_plain_ema_collapses():
    slices = brain_slices()
    plain_usage, plain_mse = train_and_measure_usage(slices, codebook_init="normal", restart_threshold=0)
    usage, mse = train_and_measure_usage(slices)
    # measured: plain EMA keeps 1 of 128 codes per level; k-means init + restart keeps 0.90 (top) and 0.72 (bottom)
    assert plain_usage == [1 / 128, 1 / 128]
    assert usage[0] >= 0.8 and usage[1] >= 0.6
    assert mse < plain_mse / 3


class Zeros(torch.nn.Module):
    def forward(self, x):
        return torch.zeros(x.shape[0], 1, *(s * 8 for s in x.shape[2:]))


def encoder_gradients(net: VQVAE2, images: torch.Tensor) -> list[torch.Tensor]:
    _, latent_loss = net(images)
    parameters = list(net.encoders.parameters())
    gradients = torch.autograd.grad(latent_loss, parameters, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(gradients, parameters)]


@pytest.mark.parametrize("weight,shapes_the_encoder", [(0.0, False), (1.0, True)])
def test_top_only_reconstruction_is_a_probe_at_weight_zero_and_a_loss_above(weight, shapes_the_encoder):
    images = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    net = tiny_net(top_reconstruction_weight=weight)
    net(images)  # k-means initialisation of the codebooks
    without_top_decoder = copy.deepcopy(net)
    without_top_decoder.top_decoder = Zeros()  # changes the top-only error, not the codebooks or the encoding
    same = [
        torch.equal(a, b)
        for a, b in zip(encoder_gradients(copy.deepcopy(net), images), encoder_gradients(without_top_decoder, images))
    ]
    assert all(same) is not shapes_the_encoder
    net.eval()
    indices = net.index_quantize(images)
    with torch.no_grad():
        _, eval_loss = net(images)
        top_only = net.decode_top(indices[0])
    assert top_only.shape == (4, 1, 32, 32)
    assert torch.equal(eval_loss, net._encode(images, update=False).quantization_loss)  # no top term in evaluation


def test_top_decoder_learns_from_the_top_error_even_as_a_probe():
    net = tiny_net(top_reconstruction_weight=0.0)
    images = torch.rand(2, 1, 32, 32)
    _, latent_loss = net(images)
    latent_loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.top_decoder.parameters())


def test_decode_top_and_weight_errors():
    message = r"`decode_top` needs a top-only decoder: build the VQVAE2 with num_levels >= 2 and"
    with pytest.raises(ValueError, match=message):
        tiny_net(num_levels=1, top_reconstruction_weight=0.0).decode_top(torch.zeros(1, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=message):
        tiny_net().decode_top(torch.zeros(1, 4, 4, dtype=torch.long))  # the default has no top-only decoder
    assert tiny_net().top_decoder is None
    with pytest.raises(ValueError, match=r"`top_reconstruction_weight` must be None or >= 0, got -1"):
        tiny_net(top_reconstruction_weight=-1)
    with pytest.raises(ValueError, match=r"needs `out_channels` == `in_channels`, got 2 and 1"):
        VQVAE2(2, in_channels=1, out_channels=2, top_reconstruction_weight=0.5, **TINY)
    # a probe without a target is not trained
    two_outputs = VQVAE2(2, in_channels=1, out_channels=2, top_reconstruction_weight=0.0, **TINY)
    _, latent_loss = two_outputs(torch.rand(2, 1, 32, 32))
    latent_loss.backward()
    assert all(p.grad is None for p in two_outputs.top_decoder.parameters())
    assert two_outputs.decode_top(torch.zeros(1, 4, 4, dtype=torch.long)).shape == (1, 2, 32, 32)


def test_checkpoints_from_before_the_top_decoder_still_load(caplog):
    old = tiny_net().state_dict()  # no top-only decoder, as every checkpoint of bundle < 0.3
    assert not any(k.startswith("top_decoder.") for k in old)
    net = tiny_net(top_reconstruction_weight=0.25)
    with caplog.at_level("WARNING"):
        net.load_state_dict(old)
    assert "Checkpoint has no top-only decoder" in caplog.text
    assert all(torch.equal(net.state_dict()[k], v) for k, v in old.items())
    with pytest.raises(RuntimeError, match=r"Missing key\(s\) in state_dict: \"encoders.0"):
        net.load_state_dict({k: v for k, v in old.items() if not k.startswith("encoders.0.")})
