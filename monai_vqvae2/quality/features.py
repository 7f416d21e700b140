"""Feature spaces the report measures distances in: the trained VQ-VAE-2's own encoder, and a fixed, seeded,
randomly initialised MONAI CNN that the trained model did not shape.

- **Encoder features** (:func:`encoder_features`): each level's encoder output (before quantization) is
  global-average-pooled and the levels are concatenated, coarsest first: ``sum(channels)`` numbers per slice;
  comparable only between reports made with the same autoencoder checkpoint.
- **Random-CNN features** (:class:`RandomCNNFeatures`): MONAI's ``ResNetFeatures("resnet10")`` in 2D with one input
  channel, its weights drawn with a fixed seed (MONAI's own Kaiming initialisation) and never trained; each of its
  five stages is global-average-pooled and the stages are concatenated (64 + 64 + 128 + 256 + 512 = 1024 numbers per
  slice). Randomly initialised networks are a known evaluation embedding when no pretrained network fits the data
  (Naeem et al. 2020, https://arxiv.org/abs/2002.09797; Lee, Kim and Lee 2023, https://arxiv.org/abs/2208.09218):
  their pooled activations are multi-scale statistics of local filter responses (texture, edges, blob sizes), and
  unlike the VQ-VAE-2 encoder they were not fitted to the training slices, so a generator cannot have learned to
  satisfy them. Nothing is downloaded. :func:`~monai_vqvae2.quality.measures.stage_scales` gives every stage the same
  weight in a distance.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from monai.networks.nets import ResNetFeatures

from monai_vqvae2.networks import VQVAE2, unwrap
from monai_vqvae2.quality.images import ImageSet
from monai_vqvae2.quality.measures import positive_int

__all__ = ["FEATURE_SPACE", "RANDOM_FEATURE_SPACE", "RandomCNNFeatures", "encoder_features"]

FEATURE_SPACE = (
    "VQ-VAE-2 encoder features: each level's encoder output (before quantization), global-average-pooled over "
    "space, levels concatenated coarsest first"
)
RANDOM_FEATURE_MODEL = "resnet10"
RANDOM_FEATURE_SPACE = (
    f"a seeded random CNN, never trained: MONAI ResNetFeatures('{RANDOM_FEATURE_MODEL}', pretrained=False, "
    "spatial_dims=2, in_channels=1) in evaluation mode; each of its five stages global-average-pooled, the stages "
    "concatenated, each stage scaled to total variance 1 over the training base"
)


@torch.no_grad()
def encoder_features(vqvae: torch.nn.Module, images: Any, batch_size: int = 64) -> torch.Tensor:
    """Features of slices in the VQ-VAE-2's own encoder space (nothing to download): each level's encoder output
    (before quantization) global-average-pooled over space, the levels concatenated coarsest first.

    The network runs in evaluation mode (its mode is restored afterwards) on the device of its parameters; the
    codebooks are not touched.

    Args:
        vqvae: a 2D :class:`~monai_vqvae2.networks.VQVAE2` (possibly wrapped in ``VQVAE2Reconstructor`` or DDP).
        images: a tensor ``(N, 1, H, W)`` in [0, 1] or a dataset of dicts with an ``"image"`` ``(1, H, W)``.
        batch_size: slices encoded at once.

    Returns:
        ``(N, sum(vqvae.channels))`` float64 on the CPU.

    Raises:
        TypeError: ``vqvae`` is not a VQVAE2, or ``images`` is neither a tensor nor a dataset of image dicts.
        ValueError: a 3D network, images of the wrong shape or range, or sizes the network cannot encode.
    """
    network = unwrap(vqvae)
    if not isinstance(network, VQVAE2):
        raise TypeError(f"`vqvae` must be a monai_vqvae2.networks.VQVAE2, got {type(network).__name__}.")
    if network.spatial_dims != 2:
        raise ValueError(f"`vqvae` must be a 2D VQVAE2 (slices), got spatial_dims={network.spatial_dims}.")
    batch_size = positive_int(batch_size, "batch_size")
    source = ImageSet(images, "images")
    network.latent_shapes(source.spatial_shape)  # a clear error for sizes the network cannot encode
    device = next(network.parameters()).device
    was_training = network.training
    network.eval()
    features = []
    try:
        for batch in source.batches(batch_size):
            hidden = batch.to(device)
            pooled: list[torch.Tensor] = []
            for level in reversed(range(network.num_levels)):  # finest level first, as VQVAE2 encodes
                hidden = network.encoders[level](hidden)
                pooled.insert(0, hidden.mean(dim=(2, 3)))
            features.append(torch.cat(pooled, dim=1).double().cpu())
    finally:
        network.train(was_training)
    return torch.cat(features)


class RandomCNNFeatures:
    """A fixed feature space that no training has shaped: MONAI ``ResNetFeatures("resnet10", pretrained=False,
    spatial_dims=2, in_channels=1)`` with weights drawn by MONAI's Kaiming initialisation from
    ``torch.manual_seed(seed)`` (in a forked random state: the global generator is left as it was), in evaluation mode
    (batch norms are then the identity up to ``1 / sqrt(1 + eps)``). Each of its five stages (the stem and the four
    residual layers) is global-average-pooled over space and the stages are concatenated, finest first.

    The same seed and the same MONAI and PyTorch versions give the same weights on every machine; :attr:`digest`
    identifies them, so two reports can check that they used the same feature space.

    Args:
        seed: seed of the weights.
        device: where the network runs (default CPU).

    Raises:
        ValueError: a seed that is not a non-negative integer.

    Example::

        extract = RandomCNNFeatures(seed=0)
        features = extract(images)  # (N, 1024) float64
    """

    def __init__(self, seed: int = 0, device: str | torch.device | None = None) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"`seed` must be a non-negative integer, got {seed!r}.")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            network = ResNetFeatures(RANDOM_FEATURE_MODEL, pretrained=False, spatial_dims=2, in_channels=1)
        network.requires_grad_(False).eval()
        digest = hashlib.sha256()
        for name, tensor in sorted(network.state_dict().items()):
            value = tensor.detach().cpu().contiguous()
            digest.update(f"{name}:{value.dtype}:{tuple(value.shape)}".encode())
            digest.update(value.numpy().tobytes())
        self.seed = seed
        self.digest = digest.hexdigest()
        self.network = network.to(device if device is not None else "cpu")
        self.stage_channels = tuple(int(c) for c in self._stage_channels(network))

    @staticmethod
    def _stage_channels(network: ResNetFeatures) -> list[int]:
        with torch.no_grad():
            return [stage.shape[1] for stage in network(torch.zeros(1, 1, 32, 32))]

    @property
    def dimension(self) -> int:
        """Numbers per image: the sum of the stages' channels."""
        return sum(self.stage_channels)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Features of a batch.

        Args:
            images: ``(B, 1, H, W)`` intensities in [0, 1].

        Returns:
            ``(B, dimension)`` float64 on the CPU.

        Raises:
            ValueError: images that are not ``(B, 1, H, W)``.
        """
        images = torch.as_tensor(images)
        if images.ndim != 4 or images.shape[1] != 1:
            raise ValueError(f"`images` must have shape (B, 1, H, W), got {tuple(images.shape)}.")
        device = next(self.network.parameters()).device
        stages = self.network(images.to(device=device, dtype=torch.float32))
        return torch.cat([stage.mean(dim=(2, 3)) for stage in stages], dim=1).double().cpu()
