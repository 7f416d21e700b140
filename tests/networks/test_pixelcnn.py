from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from monai_vqvae2.networks import VQVAE2, PixelCNNPrior, init_prior_embeddings, prior_for_level
from monai_vqvae2.networks.pixelcnn_blocks import principal_components
from tests.tiny import single_thread  # noqa: F401 (autouse fixture)

NUM_CODES = 16
TINY = {"spatial_dims": 2, "num_embeddings": NUM_CODES, "channels": 16, "num_layers": 3, "kernel_size": 3}
HEIGHT, WIDTH = 8, 8


def tiny_prior(**kwargs) -> PixelCNNPrior:
    torch.manual_seed(0)
    return PixelCNNPrior(**{**TINY, **kwargs}).double().eval()


def influence(prior: PixelCNNPrior, target: tuple[int, int], **conditions) -> set[tuple[int, int]]:
    """Positions whose code changes the logits at ``target`` (all codes are changed one at a time)."""
    generator = torch.Generator().manual_seed(1)
    indices = torch.randint(NUM_CODES, (1, HEIGHT, WIDTH), generator=generator)
    with torch.no_grad():
        reference = prior(indices, **conditions)[:, :, target[0], target[1]]
        found = set()
        for row in range(HEIGHT):
            for column in range(WIDTH):
                changed = indices.clone()
                changed[0, row, column] = (changed[0, row, column] + 1 + row) % NUM_CODES
                if not torch.equal(prior(changed, **conditions)[:, :, target[0], target[1]], reference):
                    found.add((row, column))
    return found


@pytest.mark.parametrize("target", [(5, 3), (4, 0), (3, 7), (0, 4)])
def test_receptive_field_is_causal_and_has_no_blind_spot(target):
    prior = tiny_prior()
    reach = (TINY["kernel_size"] // 2) * TINY["num_layers"]
    row, column = target
    expected = {
        (r, c)
        for r in range(max(0, row - reach), row)
        for c in range(max(0, column - reach), min(WIDTH, column + reach + 1))
    } | {(row, c) for c in range(max(0, column - reach), column)}
    found = influence(prior, target)
    assert found == expected
    # up-and-to-the-right, which a plain masked convolution stack misses
    if row > 0 and column + 1 < WIDTH:
        assert (row - 1, min(WIDTH - 1, column + reach)) in found


@pytest.mark.parametrize("target", [(5, 3), (2, 0), (7, 7)])
def test_attention_sees_every_earlier_position_and_nothing_later(target):
    prior = tiny_prior(attention_every=2, num_heads=2)
    row, column = target
    expected = {(r, c) for r in range(HEIGHT) for c in range(WIDTH) if r * WIDTH + c < row * WIDTH + column}
    assert influence(prior, target) == expected


def test_first_position_depends_on_no_code():
    prior = tiny_prior(attention_every=1, num_heads=4)
    assert influence(prior, (0, 0)) == set()


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"attention_every": 2, "num_heads": 2, "num_classes": 3, "num_scalars": 2},
        {"condition_num_embeddings": 5, "condition_upsample": 2, "kernel_size": 5, "num_layers": 4},
        {"position_frequencies": 3, "attention_every": 2, "num_heads": 2},
        {"position_frequencies": 2, "condition_num_embeddings": 5, "condition_upsample": 2},
        {"scalar_frequencies": 3, "num_classes": 3, "num_scalars": 2, "attention_every": 2, "num_heads": 2},
    ],
)
def test_incremental_state_matches_forward(kwargs):
    prior = tiny_prior(**kwargs)
    generator = torch.Generator().manual_seed(2)
    batch, height, width = 2, 6, 4
    indices = torch.randint(NUM_CODES, (batch, height, width), generator=generator)
    conditions = {}
    if "condition_num_embeddings" in kwargs:
        conditions["condition"] = torch.randint(5, (batch, height // 2, width // 2), generator=generator)
    if "num_classes" in kwargs:
        conditions["labels"] = torch.tensor([0, 2])
        conditions["scalars"] = torch.rand(batch, 2, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        full = prior(indices, **conditions)
        state = prior.incremental_state(batch, (height, width), **conditions)
        for row in range(height):
            state.begin_row(row)
            for column in range(width):
                torch.testing.assert_close(state.logits(column), full[:, :, row, column], rtol=0, atol=1e-12)
                state.commit(column, indices[:, row, column])


def test_output_shape_and_training_loss():
    prior = PixelCNNPrior(**TINY, dropout=0.1, attention_every=3, num_heads=2)
    indices = torch.randint(NUM_CODES, (2, 4, 6))
    logits = prior(indices)
    assert logits.shape == (2, NUM_CODES, 4, 6)
    F.cross_entropy(logits, indices).backward()
    assert all(p.grad is not None for p in prior.parameters())


def test_spatial_condition_changes_logits():
    prior = tiny_prior(condition_num_embeddings=5, condition_upsample=2)
    indices = torch.randint(NUM_CODES, (1, HEIGHT, WIDTH))
    condition = torch.zeros(1, HEIGHT // 2, WIDTH // 2, dtype=torch.long)
    other = condition.clone()
    other[0, 1, 2] = 3
    with torch.no_grad():
        difference = (prior(indices, condition=condition) - prior(indices, condition=other)).abs().amax(dim=1)[0]
    # the changed top code covers rows 2-3, columns 4-5 of the bottom map; it is used there
    assert (difference[2:4, 4:6] > 0).all()


def test_scalar_frequencies_widen_the_scalar_input_only():
    plain, encoded = tiny_prior(num_scalars=1), tiny_prior(num_scalars=1, scalar_frequencies=4)
    assert plain.scalar_projection[0].in_features == 1 and encoded.scalar_projection[0].in_features == 9
    assert plain.state_dict().keys() == encoded.state_dict().keys()
    indices = torch.zeros(2, HEIGHT, WIDTH, dtype=torch.long)
    with torch.no_grad():
        logits = encoded(indices, scalars=torch.tensor([[0.3], [0.35]], dtype=torch.float64))
    assert not torch.allclose(logits[0], logits[1])


def test_position_condition_tells_positions_apart():
    """With one code everywhere a classic PixelCNN gives the same logits at every position away from the borders
    of its receptive field; with the position encoding every position differs, the last row included."""
    indices = torch.zeros(1, HEIGHT, WIDTH, dtype=torch.long)
    with torch.no_grad():
        classic = tiny_prior()(indices)[0]
        positioned = tiny_prior(position_frequencies=2)(indices)[0]
    assert torch.equal(classic[:, HEIGHT - 1, 4], classic[:, HEIGHT - 2, 4])  # the last row looks like any other
    flat = positioned.flatten(1).T
    assert len({tuple(row.tolist()) for row in flat}) == HEIGHT * WIDTH
    assert sum(p.numel() for p in tiny_prior(position_frequencies=2).position_projection.parameters()) == (
        8 * 16 + 16 + 16 * 16 + 16
    )


def test_global_conditions_change_logits():
    prior = tiny_prior(num_classes=3, num_scalars=1)
    indices = torch.randint(NUM_CODES, (1, HEIGHT, WIDTH))
    labels, scalars = torch.tensor([0]), torch.tensor([[0.25]], dtype=torch.float64)
    with torch.no_grad():
        reference = prior(indices, labels=labels, scalars=scalars)
        assert not torch.allclose(reference, prior(indices, labels=torch.tensor([2]), scalars=scalars))
        assert not torch.allclose(reference, prior(indices, labels=labels, scalars=scalars + 0.5))


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"spatial_dims": 1}, ValueError, r"`spatial_dims` must be 2 \(code maps\) or 3 \(code volumes\), got 1"),
        ({"kernel_size": 4}, ValueError, "`kernel_size` must be an odd integer >= 3, got 4"),
        ({"num_layers": 0}, ValueError, "`num_layers` must be an integer >= 1, got 0"),
        ({"attention_every": 1, "num_heads": 3}, ValueError, r"`num_heads` \(3\) must divide `channels` \(16\)"),
        ({"dropout": 1.0}, ValueError, r"`dropout` must be in \[0, 1\), got 1.0"),
        ({"condition_num_embeddings": 0}, ValueError, "`condition_num_embeddings` must be None or an integer >= 1"),
        ({"num_classes": -1}, ValueError, "`num_classes` must be an integer >= 0, got -1"),
        ({"scalar_frequencies": 1.5}, ValueError, "`scalar_frequencies` must be an integer >= 0, got 1.5"),
    ],
)
def test_invalid_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        PixelCNNPrior(**{**TINY, **kwargs})


def test_invalid_inputs():
    plain = tiny_prior()
    conditioned = tiny_prior(condition_num_embeddings=5, num_classes=2, num_scalars=1)
    indices = torch.zeros(2, 4, 4, dtype=torch.long)
    good = {"condition": torch.zeros(2, 2, 2, dtype=torch.long), "labels": torch.tensor([0, 1])}
    good["scalars"] = torch.zeros(2, 1)
    with pytest.raises(ValueError, match=r"`indices` must be a code map of shape \(B, H, W\), got \(4, 4\)"):
        plain(indices[0])
    with pytest.raises(ValueError, match=r"`indices` values must be in \[0, 15\], got range \[16, 16\]"):
        plain(torch.full((1, 2, 2), 16))
    with pytest.raises(ValueError, match="`indices` must be an integer tensor"):
        plain(indices.float())
    with pytest.raises(ValueError, match="built without a spatial condition"):
        plain(indices, condition=good["condition"])
    with pytest.raises(ValueError, match="`condition_num_embeddings=5`; pass `condition`"):
        conditioned(indices, labels=good["labels"], scalars=good["scalars"])
    with pytest.raises(ValueError, match=r"`condition` must have shape \(2, 2, 2\).*got \(2, 4, 4\)"):
        conditioned(indices, **{**good, "condition": indices})
    with pytest.raises(ValueError, match=r"`condition` values must be in \[0, 4\], got range \[7, 7\]"):
        conditioned(indices, **{**good, "condition": torch.full((2, 2, 2), 7)})
    with pytest.raises(ValueError, match="`num_classes=2`; pass `labels`"):
        conditioned(indices, condition=good["condition"], scalars=good["scalars"])
    with pytest.raises(ValueError, match=r"`labels` values must be in \[0, 1\], got range \[0, 2\]"):
        conditioned(indices, **{**good, "labels": torch.tensor([0, 2])})
    with pytest.raises(ValueError, match=r"`scalars` must be a floating tensor of shape \(2, 1\)"):
        conditioned(indices, **{**good, "scalars": torch.zeros(2)})
    with pytest.raises(ValueError, match="`labels` was given but this prior was built with `num_classes=0`"):
        plain(indices, labels=good["labels"])


def test_compiled_prior_gives_the_eager_logits_and_gradients():
    """``torch.compile`` (the ``prior_compile`` option of train_prior.yaml) is a speed option only."""
    torch.manual_seed(0)
    prior = PixelCNNPrior(
        spatial_dims=2,
        num_embeddings=16,
        channels=8,
        num_layers=3,
        kernel_size=3,
        attention_every=2,
        num_heads=2,
        condition_num_embeddings=8,
        num_scalars=1,
    )
    indices, condition = torch.randint(16, (2, 8, 8)), torch.randint(8, (2, 4, 4))
    scalars = torch.rand(2, 1)
    compiled = torch.compile(prior)
    eager_logits = prior(indices, condition, scalars=scalars)
    compiled_logits = compiled(indices, condition, scalars=scalars)
    torch.testing.assert_close(compiled_logits, eager_logits, rtol=1e-5, atol=1e-5)
    eager_grad = torch.autograd.grad(F.cross_entropy(eager_logits, indices), prior.embedding.weight)[0]
    compiled_grad = torch.autograd.grad(F.cross_entropy(compiled_logits, indices), prior.embedding.weight)[0]
    torch.testing.assert_close(compiled_grad, eager_grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("finer_attention_every", [0, 2])
def test_prior_for_level_sets_attention_per_level(finer_attention_every):
    vqvae = VQVAE2(2, 1, 1, channels=8, num_res_layers=1, num_res_channels=4, num_embeddings=(12, 16), embedding_dim=4)
    top, bottom = (
        prior_for_level(vqvae, level, top_attention_every=3, finer_attention_every=finer_attention_every, channels=8)
        for level in (0, 1)
    )
    assert (top.attention_every, bottom.attention_every) == (3, finer_attention_every)
    assert (top.num_embeddings, bottom.num_embeddings, bottom.condition_num_embeddings) == (12, 16, 12)


def test_prior_for_level_takes_one_value_per_level():
    vqvae = VQVAE2(2, 1, 1, channels=8, num_res_layers=1, num_res_channels=4, num_embeddings=(12, 16), embedding_dim=4)
    top, bottom = (
        prior_for_level(vqvae, level, channels=(16, 8), dropout=[0.25, 0.0], num_layers=2) for level in (0, 1)
    )
    assert (top.channels, bottom.channels) == (16, 8)
    assert {m.p for m in top.modules() if isinstance(m, torch.nn.Dropout)} == {0.25}
    assert {m.p for m in bottom.modules() if isinstance(m, torch.nn.Dropout)} == {0.0}
    assert top.num_layers == bottom.num_layers == 2
    with pytest.raises(ValueError, match=r"`dropout` must be one value or one value per level \(2, coarsest first\)"):
        prior_for_level(vqvae, 0, dropout=[0.1, 0.1, 0.0])


def test_init_embeddings_from_codebooks():
    prior = tiny_prior(condition_num_embeddings=12)
    generator = torch.Generator().manual_seed(2)
    codebook, condition_codebook = (
        torch.randn(NUM_CODES, 4, generator=generator),
        torch.randn(12, 6, generator=generator),
    )
    before = prior.embedding.weight.detach().clone(), prior.condition_embedding.weight.detach().clone()
    prior.init_embeddings(codebook, condition_codebook)
    for embedding, vectors, random in zip(
        (prior.embedding, prior.condition_embedding), (codebook, condition_codebook), before
    ):
        width = vectors.shape[1]
        torch.testing.assert_close(embedding.weight[:, :width], principal_components(vectors, 16).to(embedding.weight))
        assert torch.equal(embedding.weight[:, width:], random[:, width:])  # channels beyond the codebook's stay random
    # codes close in the codebook start close in the prior
    codebook[1] = codebook[0] + 1e-3
    prior.init_embeddings(codebook)
    first, second, third = prior.embedding.weight[:3, :4]
    assert (first - second).norm() < 0.01 * (first - third).norm()


def test_init_embeddings_rejects_mismatched_codebooks():
    prior = tiny_prior()
    with pytest.raises(ValueError, match=r"`codebook` must be a \(16, D\) tensor of code vectors, got \(15, 4\)"):
        prior.init_embeddings(torch.zeros(15, 4))
    with pytest.raises(ValueError, match="`condition_codebook` was given but this prior was built without"):
        prior.init_embeddings(torch.zeros(NUM_CODES, 4), torch.zeros(12, 4))


def test_init_prior_embeddings_uses_the_levels_codebooks():
    vqvae = VQVAE2(2, 1, 1, channels=8, num_res_layers=1, num_res_channels=4, num_embeddings=(12, 16), embedding_dim=4)
    top, bottom = (prior_for_level(vqvae, level, channels=8) for level in (0, 1))
    random = bottom.embedding.weight.detach().clone()
    assert init_prior_embeddings(bottom, vqvae, 1, mode="random") is bottom
    assert torch.equal(bottom.embedding.weight, random)
    init_prior_embeddings(top, vqvae, 0)
    init_prior_embeddings(bottom, vqvae, 1)
    codebooks = [quantizer.codebook for quantizer in vqvae.quantizers]
    torch.testing.assert_close(top.embedding.weight[:, :4], principal_components(codebooks[0], 8).float())
    torch.testing.assert_close(bottom.embedding.weight[:, :4], principal_components(codebooks[1], 8).float())
    torch.testing.assert_close(bottom.condition_embedding.weight[:, :4], principal_components(codebooks[0], 8).float())
    # one mode per level, coarsest first
    reseeded = [prior_for_level(vqvae, level, channels=8) for level in (0, 1)]
    for level, prior in enumerate(reseeded):
        before = prior.embedding.weight.detach().clone()
        init_prior_embeddings(prior, vqvae, level, mode=["random", "codebook"])
        assert torch.equal(prior.embedding.weight, before) == (level == 0)
    for mode in ("pca", ["codebook"], ["random", "pca"]):
        with pytest.raises(
            ValueError, match=r"`mode` must be one of \('codebook', 'random'\) or one of them per level"
        ):
            init_prior_embeddings(top, vqvae, 0, mode=mode)
