"""The volume prior (``PixelCNNPrior(spatial_dims=3)``): causal in raster order over (D, H, W) without a blind spot,
its depth stack, and its cached evaluation against the full forward pass."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from monai_vqvae2.networks import VQVAE2, PixelCNNPrior, PixelCNNVolumeIncrementalState, prior_for_level
from monai_vqvae2.networks.pixelcnn_blocks import DepthCausalStack
from tests.tiny import single_thread  # noqa: F401 (autouse fixture)

NUM_CODES = 7
TINY = {"spatial_dims": 3, "num_embeddings": NUM_CODES, "channels": 8, "num_layers": 2, "kernel_size": 3}
SHAPE = (4, 3, 4)  # (D, H, W)


def tiny_prior(**kwargs) -> PixelCNNPrior:
    torch.manual_seed(0)
    return PixelCNNPrior(**{**TINY, **kwargs}).double().eval()


def influence(prior: PixelCNNPrior, target: tuple[int, int, int]) -> set[tuple[int, int, int]]:
    """Positions whose code changes the logits at ``target`` (each code changed in turn)."""
    indices = torch.randint(NUM_CODES, (1, *SHAPE), generator=torch.Generator().manual_seed(1))
    found = set()
    with torch.no_grad():
        reference = prior(indices)[(0, slice(None), *target)]
        for position in torch.cartesian_prod(*(torch.arange(size) for size in SHAPE)).tolist():
            changed = indices.clone()
            changed[(0, *position)] = (changed[(0, *position)] + 1) % NUM_CODES
            if not torch.equal(prior(changed)[(0, slice(None), *target)], reference):
                found.add(tuple(position))
    return found


def raster(position: tuple[int, int, int]) -> int:
    depth, row, column = position
    return (depth * SHAPE[1] + row) * SHAPE[2] + column


@pytest.mark.parametrize("target", [(3, 2, 1), (2, 0, 0), (1, 1, 3), (0, 2, 2)])
def test_volume_prior_sees_every_earlier_position_and_nothing_later(target):
    # attention within the slice and a depth stack that reaches every earlier slice of this small volume (3 layers of
    # kernel 3: 3 slices back, 3 positions in-plane)
    prior = tiny_prior(num_layers=3, attention_every=1, num_heads=2)
    everything_before = {
        (d, h, w)
        for d in range(SHAPE[0])
        for h in range(SHAPE[1])
        for w in range(SHAPE[2])
        if raster((d, h, w)) < raster(target)
    }
    assert influence(prior, target) == everything_before


def test_attention_over_the_volume_reaches_beyond_the_depth_stack():
    # one layer: the depth stack reads one slice back, the attention every earlier position of the volume
    prior = tiny_prior(num_layers=1, attention_every=1, num_heads=2, attention_span="volume")
    target = (3, 1, 2)
    assert influence(prior, target) == {position for position in _all() if raster(position) < raster(target)}
    within_slice = tiny_prior(num_layers=1, attention_every=1, num_heads=2)
    assert (0, 0, 0) not in influence(within_slice, target)  # three slices back: out of the depth stack's reach


def _all() -> list[tuple[int, int, int]]:
    return [(d, h, w) for d in range(SHAPE[0]) for h in range(SHAPE[1]) for w in range(SHAPE[2])]


def test_without_attention_the_current_slice_is_the_2d_cone_and_earlier_slices_are_whole():
    prior = tiny_prior(num_layers=3)
    depth, row, column = target = (3, 2, 1)
    reach = 3  # kernel_size // 2 per layer
    in_slice = {(depth, r, c) for r in range(row) for c in range(SHAPE[2])} | {(depth, row, c) for c in range(column)}
    earlier = {(d, h, w) for d in range(depth) for h in range(SHAPE[1]) for w in range(SHAPE[2]) if depth - d <= reach}
    assert influence(prior, target) == in_slice | earlier


def test_first_position_depends_on_no_code():
    prior = tiny_prior(attention_every=1, num_heads=2)
    assert influence(prior, (0, 0, 0)) == set()


def test_depth_stack_reads_only_earlier_slices_within_its_reach():
    torch.manual_seed(0)
    stack = DepthCausalStack(channels=4, kernel_size=3, num_layers=2, dropout=0.0).double()
    embedded = torch.randn(1, 4, 6, 3, 3, dtype=torch.float64)
    reference = stack(embedded)
    assert reference.shape == embedded.shape
    for slice_index in range(6):
        changed = embedded.clone()
        changed[:, :, slice_index] += 1.0
        moved = (stack(changed) - reference).abs().amax(dim=(0, 1, 3, 4)) > 0
        # slice d reads slices d - 2 .. d - 1 (one per layer): a change at s moves slices s + 1 and s + 2 only
        assert moved.nonzero().flatten().tolist() == [d for d in (slice_index + 1, slice_index + 2) if d < 6]


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"attention_every": 1, "num_heads": 2, "num_classes": 3, "num_scalars": 2, "scalar_frequencies": 2},
        {"condition_num_embeddings": 5, "condition_upsample": 2, "kernel_size": 5, "num_layers": 3},
        {"position_frequencies": 2, "condition_num_embeddings": 5, "condition_upsample": 2, "attention_every": 2},
        {"attention_every": 1, "attention_span": "volume", "num_scalars": 1},
    ],
)
def test_volume_incremental_state_matches_forward(kwargs):
    prior = tiny_prior(**{"num_heads": 2, **kwargs})
    generator = torch.Generator().manual_seed(2)
    batch, (depth, height, width) = 2, (4, 2, 4)
    indices = torch.randint(NUM_CODES, (batch, depth, height, width), generator=generator)
    conditions = {}
    if "condition_num_embeddings" in kwargs:
        conditions["condition"] = torch.randint(5, (batch, depth // 2, height // 2, width // 2), generator=generator)
    if "num_classes" in kwargs:
        conditions["labels"] = torch.tensor([0, 2])
    if "num_scalars" in kwargs:
        conditions["scalars"] = torch.rand(batch, kwargs["num_scalars"], generator=generator, dtype=torch.float64)
    with torch.no_grad():
        full = prior(indices, **conditions)
        state = prior.incremental_state(batch, (depth, height, width), **conditions)
        assert isinstance(state, PixelCNNVolumeIncrementalState)
        for row in range(depth * height):
            state.begin_row(row)
            slice_index, row_in_slice = divmod(row, height)
            for column in range(width):
                expected = full[:, :, slice_index, row_in_slice, column]
                torch.testing.assert_close(state.logits(column), expected, rtol=0, atol=1e-12)
                state.commit(column, indices[:, slice_index, row_in_slice, column])


def test_volume_output_shape_training_loss_and_dropout():
    torch.manual_seed(0)
    prior = PixelCNNPrior(**TINY, dropout=0.2, attention_every=1, num_heads=2, num_scalars=1, position_frequencies=2)
    indices = torch.randint(NUM_CODES, (2, *SHAPE))
    logits = prior(indices, scalars=torch.rand(2, 1))
    assert logits.shape == (2, NUM_CODES, *SHAPE)
    loss = F.cross_entropy(logits, indices)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(parameter.grad is not None for parameter in prior.depth_stack.parameters())
    assert prior.position_projection[0].in_channels == 2 * 3 * 2  # sines and cosines of 3 coordinates


def test_volume_prior_rejects_maps_and_mismatched_conditions():
    with pytest.raises(ValueError, match=r"`attention_span` must be one of \('slice', 'volume'\), got 'brain'"):
        tiny_prior(attention_span="brain")
    with pytest.raises(ValueError, match=r"`attention_span='volume'` is for code volumes \(`spatial_dims=3`\)"):
        tiny_prior(spatial_dims=2, attention_span="volume")
    prior = tiny_prior(condition_num_embeddings=5, condition_upsample=2)
    with pytest.raises(ValueError, match=r"`indices` must be a code volume \(B, D, H, W\), got \(1, 4, 4\)"):
        prior(torch.zeros(1, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"`condition` must have shape \(1, 2, 1, 2\)"):
        prior(torch.zeros(1, *SHAPE[:1], 2, 4, dtype=torch.long), condition=torch.zeros(1, 2, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"`spatial_shape` must be \(D, H, W\) with positive sizes, got \(4, 4\)"):
        PixelCNNVolumeIncrementalState(prior, 1, (4, 4))


def test_prior_for_level_of_a_3d_vqvae_models_code_volumes():
    vqvae = VQVAE2(
        3,
        in_channels=1,
        out_channels=1,
        channels=8,
        num_res_layers=1,
        num_res_channels=4,
        num_embeddings=(6, 9),
        embedding_dim=4,
    )
    top, bottom = (prior_for_level(vqvae, level, channels=8, num_layers=2, kernel_size=3) for level in (0, 1))
    assert (top.spatial_dims, bottom.spatial_dims) == (3, 3)
    indices_top, indices_bottom = vqvae.index_quantize(torch.rand(1, 1, 16, 16, 16))
    assert bottom(indices_bottom, condition=indices_top).shape == (1, 9, 4, 4, 4)
