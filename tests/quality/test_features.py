from __future__ import annotations

import pytest
import torch

from monai_vqvae2.networks import VQVAE2Reconstructor
from monai_vqvae2.quality.features import FEATURE_SPACE, RandomCNNFeatures, encoder_features
from tests.quality.conftest import SIZE, textures, tiny_vqvae
from tests.tiny import single_thread  # noqa: F401 (autouse fixture)


# ---------------------------------------------------------------------------------------------- random features
def test_random_cnn_features_are_seeded_and_leave_the_global_generator_alone():
    state = torch.get_rng_state()
    extract = RandomCNNFeatures(seed=0)
    assert torch.equal(torch.get_rng_state(), state)
    assert extract.stage_channels == (64, 64, 128, 256, 512) and extract.dimension == 1024
    images = textures(3, seed=0)
    features = extract(images)
    assert features.shape == (3, 1024) and features.dtype == torch.float64
    again = RandomCNNFeatures(seed=0)
    assert again.digest == extract.digest and torch.equal(again(images), features)
    assert RandomCNNFeatures(seed=1).digest != extract.digest
    batched = torch.cat([extract(images[:1]), extract(images[1:])])
    torch.testing.assert_close(batched, features, rtol=1e-5, atol=1e-6)  # float32 network
    with pytest.raises(ValueError, match=r"`seed` must be a non-negative integer, got -1"):
        RandomCNNFeatures(seed=-1)
    with pytest.raises(ValueError, match=r"`images` must have shape \(B, 1, H, W\), got \(3, 32, 32\)"):
        extract(images[:, 0])


# ------------------------------------------------------------------------------------------------------ features
def test_encoder_features_pool_each_level_and_do_not_depend_on_batching():
    vqvae = tiny_vqvae()
    images = textures(5, seed=0)
    features = encoder_features(VQVAE2Reconstructor(vqvae), images, batch_size=2)
    assert features.shape == (5, 16) and features.dtype == torch.float64  # 8 channels per level, 2 levels
    torch.testing.assert_close(features, encoder_features(vqvae, images, batch_size=64))
    with torch.no_grad():
        bottom = vqvae.encoders[1](images)
        top = vqvae.encoders[0](bottom)
    torch.testing.assert_close(features[:, :8], top.mean(dim=(2, 3)).double())  # coarsest level first
    assert vqvae.training  # the mode is restored
    dataset = [{"image": image} for image in images]
    torch.testing.assert_close(encoder_features(vqvae, dataset), features)
    assert "global-average-pooled" in FEATURE_SPACE


def test_encoder_features_refuse_bad_images():
    vqvae = tiny_vqvae()
    with pytest.raises(ValueError, match=r"`images` must have shape \(N, 1, H, W\).*got \(2, 32, 32\)"):
        encoder_features(vqvae, torch.rand(2, SIZE, SIZE))
    with pytest.raises(ValueError, match=r"`images` must hold intensities in \[0, 1\], got values in \[0, 2\]"):
        encoder_features(vqvae, torch.tensor([0.0, 2.0]).repeat(2, 1, 16, 16))
    with pytest.raises(ValueError, match=r"not divisible by the total downsampling 8"):
        encoder_features(vqvae, torch.rand(2, 1, 20, 20))
