from __future__ import annotations

import pytest
import torch

from monai_vqvae2.inferers import HierarchicalSampler, SampleOutput
from monai_vqvae2.inferers.sampler import level_temperatures
from monai_vqvae2.networks import VQVAE2, PixelCNNPrior, init_prior_embeddings
from tests.tiny import single_thread  # noqa: F401 (autouse fixture)

SPATIAL_SHAPE = (32, 48)  # top (4, 6), bottom (8, 12)
TOP_CODES, BOTTOM_CODES = 12, 16
PRIOR = {"spatial_dims": 2, "channels": 16, "num_layers": 3, "kernel_size": 3}


def build(
    num_classes: int = 0,
    num_scalars: int = 0,
    top_attention: int = 2,
    bottom_attention: int = 0,
    position_frequencies: int = 0,
    scalar_frequencies: int = 0,
    codebook_embeddings: bool = False,
) -> tuple[VQVAE2, list[PixelCNNPrior]]:
    torch.manual_seed(0)
    vqvae = VQVAE2(
        2,
        in_channels=1,
        out_channels=1,
        channels=8,
        num_res_layers=1,
        num_res_channels=4,
        num_embeddings=(TOP_CODES, BOTTOM_CODES),
        embedding_dim=4,
    )
    global_conditions = {
        "num_classes": num_classes,
        "num_scalars": num_scalars,
        "scalar_frequencies": scalar_frequencies,
    }
    positions = {"position_frequencies": position_frequencies}
    top = PixelCNNPrior(
        num_embeddings=TOP_CODES,
        attention_every=top_attention,
        num_heads=2,
        **PRIOR,
        **global_conditions,
        **positions,
    )
    bottom = PixelCNNPrior(
        num_embeddings=BOTTOM_CODES,
        condition_num_embeddings=TOP_CODES,
        condition_upsample=2,
        attention_every=bottom_attention,
        num_heads=2,
        **PRIOR,
        **positions,
    )
    if codebook_embeddings:
        for level, prior in enumerate((top, bottom)):
            init_prior_embeddings(prior, vqvae, level)
    return vqvae, [top, bottom]


def assert_same_codes(first: SampleOutput, second: SampleOutput) -> None:
    assert len(first.indices) == len(second.indices) == 2
    for a, b in zip(first.indices, second.indices):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "conditions,options",
    [
        ({}, {}),
        ({}, {"temperature": 0.7, "top_k": 5}),
        ({"num_classes": 3, "num_scalars": 1}, {"labels": torch.tensor([0, 2, 1]), "scalars": 0.25}),
        ({"num_classes": 3, "num_scalars": 2}, {"labels": 1, "scalars": torch.rand(3, 2), "temperature": 1.5}),
        ({"num_scalars": 1, "bottom_attention": 1}, {"scalars": 0.5}),  # a bottom prior that sees its whole map
        ({"num_scalars": 1, "position_frequencies": 3}, {"scalars": 0.5}),  # both priors know where they are
        # the bundle's priors: the slice position at several frequencies, embeddings from the codebooks
        (
            {"num_scalars": 1, "position_frequencies": 3, "scalar_frequencies": 2, "codebook_embeddings": True},
            {"scalars": 0.3},
        ),
        ({}, {"temperature": [1.2, 0.4]}),  # one temperature per level
    ],
)
def test_fast_sampling_gives_exactly_the_naive_codes(conditions, options):
    vqvae, priors = build(**conditions)
    sampler = HierarchicalSampler(vqvae, priors, SPATIAL_SHAPE)
    fast = sampler.sample(3, seed=7, method="fast", **options)
    naive = sampler.sample(3, seed=7, method="naive", **options)
    assert_same_codes(fast, naive)
    torch.testing.assert_close(fast.images, naive.images)


def test_samples_have_the_right_shapes_range_and_depend_on_the_seed():
    vqvae, priors = build()
    sampler = HierarchicalSampler(vqvae, priors, SPATIAL_SHAPE)
    output = sampler.sample(2, seed=0)
    assert output.images.shape == (2, 1, *SPATIAL_SHAPE)
    assert [tuple(i.shape) for i in output.indices] == [(2, 4, 6), (2, 8, 12)]
    for level_indices, codes in zip(output.indices, (TOP_CODES, BOTTOM_CODES)):
        assert level_indices.dtype == torch.long
        assert 0 <= int(level_indices.min()) and int(level_indices.max()) < codes
    assert_same_codes(output, sampler.sample(2, seed=0))
    other = sampler.sample(2, seed=1)
    assert not all(torch.equal(a, b) for a, b in zip(output.indices, other.indices))


def test_top_k_one_is_greedy_and_batching_does_not_change_samples():
    vqvae, priors = build()
    sampler = HierarchicalSampler(vqvae, priors, SPATIAL_SHAPE)
    greedy = [sampler.sample(2, top_k=1, seed=seed) for seed in (0, 1)]
    assert_same_codes(*greedy)
    whole = sampler.sample(3, seed=4)
    assert_same_codes(whole, sampler.sample(3, seed=4, batch_size=2))


def test_bottom_codes_depend_on_the_top_codes_and_labels_on_the_top():
    vqvae, priors = build(num_classes=2)
    sampler = HierarchicalSampler(vqvae, priors, SPATIAL_SHAPE)
    first = sampler.sample(2, labels=0, seed=3)
    second = sampler.sample(2, labels=1, seed=3)
    assert not torch.equal(first.indices[0], second.indices[0])
    assert not torch.equal(first.indices[1], second.indices[1])


def test_sampling_uses_neither_the_global_rng_nor_training_mode():
    vqvae, priors = build()
    vqvae.train()
    priors[0].train()
    sampler = HierarchicalSampler(vqvae, priors, SPATIAL_SHAPE)
    state = torch.random.get_rng_state()
    sampler.sample(1, seed=0)
    assert torch.equal(state, torch.random.get_rng_state())
    assert vqvae.training and priors[0].training
    assert next(priors[0].parameters()).dtype == torch.float32


def test_per_level_temperatures_change_only_their_level():
    sampler = HierarchicalSampler(*build(), SPATIAL_SHAPE)
    same = sampler.sample(4, temperature=0.7, seed=3)
    assert_same_codes(same, sampler.sample(4, temperature=[0.7, 0.7], seed=3))
    sharper_bottom = sampler.sample(4, temperature=[0.7, 0.2], seed=3)
    assert torch.equal(sharper_bottom.indices[0], same.indices[0])  # the same uniforms: the top is unchanged
    assert not torch.equal(sharper_bottom.indices[1], same.indices[1])


def test_level_temperatures():
    assert level_temperatures(0.5, 3) == [0.5, 0.5, 0.5]
    assert level_temperatures([1, 0.5], 2) == [1.0, 0.5]
    assert level_temperatures((0.9, 0.4)) == [0.9, 0.4]
    with pytest.raises(ValueError, match="got an empty sequence"):
        level_temperatures([], 2)
    with pytest.raises(ValueError, match="one per level, got True"):
        level_temperatures(True, 2)


def test_invalid_sampler_arguments():
    vqvae, priors = build()
    with pytest.raises(ValueError, match="`priors` needs 2 entries .* got 1"):
        HierarchicalSampler(vqvae, priors[:1], SPATIAL_SHAPE)
    with pytest.raises(ValueError, match=r"`priors\[0\].num_embeddings` is 16 but level 0 of the VQ-VAE-2 has 12"):
        HierarchicalSampler(vqvae, [priors[1], priors[1]], SPATIAL_SHAPE)
    unconditioned = PixelCNNPrior(num_embeddings=BOTTOM_CODES, **PRIOR)
    with pytest.raises(ValueError, match=r"`priors\[1\].condition_num_embeddings` must be 12 .* got None"):
        HierarchicalSampler(vqvae, [priors[0], unconditioned], SPATIAL_SHAPE)
    factor4 = PixelCNNPrior(
        num_embeddings=BOTTOM_CODES, condition_num_embeddings=TOP_CODES, condition_upsample=4, **PRIOR
    )
    with pytest.raises(ValueError, match=r"`priors\[1\].condition_upsample=4` does not map level 0's latent shape"):
        HierarchicalSampler(vqvae, [priors[0], factor4], SPATIAL_SHAPE)
    with pytest.raises(ValueError, match="not divisible by the total downsampling 8"):
        HierarchicalSampler(vqvae, priors, (30, 48))

    sampler = HierarchicalSampler(vqvae, priors, SPATIAL_SHAPE)
    for kwargs, match in [
        ({"num_samples": 0}, "`num_samples` must be a positive integer, got 0"),
        ({"temperature": 0.0}, "`temperature` must be a positive finite number or one per level, got 0.0"),
        ({"temperature": [1.0, -1.0]}, r"one per level, got \[1.0, -1.0\]"),
        ({"temperature": [0.8, 0.5, 0.5]}, "`temperature` has 3 values but the VQ-VAE-2 has 2 levels"),
        ({"top_k": 0}, "`top_k` must be None or a positive integer, got 0"),
        ({"method": "cached"}, r"`method` must be one of \('fast', 'naive'\), got 'cached'"),
        ({"batch_size": 0}, "`batch_size` must be None or a positive integer, got 0"),
        ({"labels": 1}, "`labels` was given but no prior was built with `num_classes > 0`"),
        ({"scalars": 0.5}, "`scalars` was given but no prior was built with `num_scalars > 0`"),
    ]:
        with pytest.raises(ValueError, match=match):
            sampler.sample(**{"num_samples": 2, **kwargs})

    conditioned = HierarchicalSampler(*build(num_classes=2, num_scalars=1), SPATIAL_SHAPE)
    with pytest.raises(ValueError, match="`num_classes=2`; pass `labels`"):
        conditioned.sample(2, scalars=0.5)
    with pytest.raises(ValueError, match="`num_scalars=1`; pass `scalars`"):
        conditioned.sample(2, labels=0)
    with pytest.raises(ValueError, match=r"`scalars` must be a float or have shape \(2, 1\), got \(2,\)"):
        conditioned.sample(2, labels=0, scalars=torch.zeros(2))
    with pytest.raises(ValueError, match=r"`labels` values must be in \[0, 1\], got range \[5, 5\]"):
        conditioned.sample(2, labels=5, scalars=0.5)


def test_a_prior_of_another_type_is_rejected():
    vqvae, priors = build()
    with pytest.raises(TypeError, match=r"`priors\[1\]` must be a PixelCNNPrior, got Linear"):
        HierarchicalSampler(vqvae, [priors[0], torch.nn.Linear(2, 2)], SPATIAL_SHAPE)


def test_three_levels_fast_equals_naive_and_float32_sampling_runs():
    torch.manual_seed(0)
    vqvae = VQVAE2(
        2, 1, 1, channels=8, num_res_layers=1, num_res_channels=4, num_levels=3, num_embeddings=8, embedding_dim=4
    )
    priors = [PixelCNNPrior(num_embeddings=8, attention_every=1, num_heads=2, **PRIOR)]
    priors += [PixelCNNPrior(num_embeddings=8, condition_num_embeddings=8, **PRIOR) for _ in range(2)]
    for dtype in (torch.float64, torch.float32):
        sampler = HierarchicalSampler(vqvae, priors, SPATIAL_SHAPE, dtype=dtype)
        fast = sampler.sample(2, seed=5)
        assert [tuple(i.shape) for i in fast.indices] == [(2, 2, 3), (2, 4, 6), (2, 8, 12)]
        if dtype == torch.float64:
            naive = sampler.sample(2, seed=5, method="naive")
            for a, b in zip(fast.indices, naive.indices):
                assert torch.equal(a, b)


@pytest.mark.parametrize(
    "options, span",
    [({}, "slice"), ({"scalars": 0.4, "temperature": [0.9, 0.5], "top_k": 4}, "slice"), ({}, "volume")],
)
def test_volumes_fast_sampling_gives_exactly_the_naive_codes(options, span):
    torch.manual_seed(0)
    vqvae = VQVAE2(3, 1, 1, channels=8, num_res_layers=1, num_res_channels=4, num_embeddings=(6, 9), embedding_dim=4)
    volume_prior = {**PRIOR, "spatial_dims": 3, "num_scalars": int("scalars" in options), "position_frequencies": 2}
    priors = [
        PixelCNNPrior(num_embeddings=6, attention_every=1, num_heads=2, attention_span=span, **volume_prior),
        PixelCNNPrior(num_embeddings=9, condition_num_embeddings=6, **volume_prior),
    ]
    sampler = HierarchicalSampler(vqvae, priors, (16, 16, 24))
    fast = sampler.sample(2, seed=3, **options)
    naive = sampler.sample(2, seed=3, method="naive", **options)
    assert [tuple(i.shape) for i in fast.indices] == [(2, 2, 2, 3), (2, 4, 4, 6)]
    assert fast.images.shape == (2, 1, 16, 16, 24)
    assert_same_codes(fast, naive)
    assert len({tuple(i.flatten().tolist()) for i in fast.indices[1]}) == 2  # the two volumes differ
