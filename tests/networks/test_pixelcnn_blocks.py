"""The layers of the gated PixelCNN prior: position and scalar encodings, principal components of a codebook and the
fused causal attention, on known values."""

from __future__ import annotations

import torch

from monai_vqvae2.networks.pixelcnn_blocks import (
    RasterCausalSelfAttention,
    position_encoding,
    principal_components,
    scalar_encoding,
)
from tests.tiny import single_thread  # noqa: F401 (autouse fixture)


def test_position_encoding_values():
    encoding = position_encoding((3, 4), 2, torch.zeros(1, dtype=torch.float64))
    assert encoding.shape == (1, 8, 3, 4)
    rows, columns = torch.tensor([-2 / 3, 0.0, 2 / 3]), torch.tensor([-0.75, -0.25, 0.25, 0.75])
    # channel order per axis: sin(pi c), sin(2 pi c), cos(pi c), cos(2 pi c); rows first, then columns
    expected_rows = torch.stack([torch.sin(torch.pi * rows), torch.sin(2 * torch.pi * rows)])
    torch.testing.assert_close(encoding[0, :2, :, 0], expected_rows.double())
    torch.testing.assert_close(
        encoding[0, 2:4, :, 3], torch.stack([torch.cos(torch.pi * rows), torch.cos(2 * torch.pi * rows)]).double()
    )
    torch.testing.assert_close(encoding[0, 4, 1], torch.sin(torch.pi * columns).double())
    torch.testing.assert_close(encoding[0, 7, 2], torch.cos(2 * torch.pi * columns).double())
    assert torch.equal(encoding[0, :4, :, 0], encoding[0, :4, :, 2]) and torch.equal(
        encoding[0, 4:, 0], encoding[0, 4:, 2]
    )


def test_scalar_encoding_values():
    scalars = torch.tensor([[0.25, 0.5]], dtype=torch.float64)
    encoded = scalar_encoding(scalars, 2)
    # the scalars, then sin(pi s), sin(2 pi s) per scalar, then the cosines
    expected = [0.25, 0.5, 2**-0.5, 1.0, 1.0, 0.0, 2**-0.5, 0.0, 0.0, -1.0]
    torch.testing.assert_close(encoded, torch.tensor([expected], dtype=torch.float64), atol=1e-12, rtol=0)
    assert scalar_encoding(scalars, 0) is scalars


def test_fused_attention_equals_explicit_masked_softmax():
    """The fused causal kernel computes the PixelSNAIL attention written out: position p attends to the "nothing"
    slot and to positions q < p, never to p itself or later."""
    torch.manual_seed(0)
    attention = RasterCausalSelfAttention(channels=8, num_heads=2, dropout=0.0).double().eval()
    torch.nn.init.normal_(attention.null_key_value)
    horizontal, embedded = torch.randn(3, 8, 4, 5, dtype=torch.float64), torch.randn(3, 8, 4, 5, dtype=torch.float64)

    batch, channels, height, width = horizontal.shape
    length, heads, head_dim = height * width, attention.num_heads, attention.head_dim
    stream, codes = horizontal.flatten(2).transpose(1, 2), embedded.flatten(2).transpose(1, 2)
    query = attention.query(stream).view(batch, length, heads, head_dim).transpose(1, 2)
    key_value = attention.key_value(torch.cat([stream, codes], dim=-1))
    key_value = torch.cat([attention.null_key_value.expand(batch, 1, -1), key_value], dim=1)
    key, value = (t.reshape(batch, length + 1, heads, head_dim).transpose(1, 2) for t in key_value.chunk(2, -1))
    scores = (query @ key.transpose(-1, -2)) / head_dim**0.5
    allowed = torch.arange(length + 1)[None, :] <= torch.arange(length)[:, None]  # slot q + 1 holds position q
    weights = torch.softmax(scores.masked_fill(~allowed, float("-inf")), dim=-1)
    attended = (weights @ value).transpose(1, 2).reshape(batch, length, channels)
    expected = horizontal + attention.out(attended).transpose(1, 2).reshape(batch, channels, height, width)

    torch.testing.assert_close(attention(horizontal, embedded), expected, rtol=1e-12, atol=1e-12)


def test_principal_components_of_known_vectors():
    # four points on the line through (1, 2): centred coordinates along it are (-2, -1, 0, 3) times its length
    direction = torch.tensor([1.0, 2.0]) / 5**0.5
    vectors = torch.tensor([0.0, 1.0, 2.0, 5.0])[:, None] * direction + torch.tensor([3.0, -1.0])
    expected = torch.tensor([-2.0, -1.0, 0.0, 3.0], dtype=torch.float64) / (14 / 3) ** 0.5  # unit (sample) variance
    components = principal_components(vectors, 8)
    assert components.shape == (4, 1)  # no more components than the vectors' rank
    torch.testing.assert_close(components[:, 0], expected)
    assert principal_components(torch.zeros(5, 3), 2).shape == (5, 0)
    # the sign convention: the largest-magnitude coordinate is positive, whatever the input's sign
    torch.testing.assert_close(principal_components(-vectors, 1)[:, 0], expected)
