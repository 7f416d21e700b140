"""EMA vector quantizer that keeps its codebook alive: data-dependent initialisation and dead-code restart."""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from monai.networks.layers import EMAQuantizer

__all__ = ["RestartEMAQuantizer", "kmeans", "perplexity"]

CODEBOOK_INITS = ("kmeans", "normal")


def perplexity(counts: torch.Tensor) -> float:
    """``exp`` of the entropy of a code histogram: 1 when a single code is used, ``len(counts)`` when all are used
    equally; NaN for an empty histogram."""
    counts = counts.double()
    total = counts.sum()
    if total == 0:
        return float("nan")
    probabilities = counts[counts > 0] / total
    return math.exp(float(-(probabilities * probabilities.log()).sum()))


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _nearest_code(flat: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of, and squared distance to, the nearest code for every row of ``flat``.

    One matmul, no ``(N, K, D)`` temporary: ``|x - e|^2 = |x|^2 + |e|^2 - 2 x.e``.
    """
    partial = torch.addmm((codebook * codebook).sum(1), flat, codebook.t(), alpha=-2.0)
    min_partial, indices = partial.min(dim=1)
    squared_distance = ((flat * flat).sum(1) + min_partial).clamp_min_(0.0)
    return indices, squared_distance


def _sample_by_distance(
    points: torch.Tensor, squared_distance: torch.Tensor, num_samples: int, generator: torch.Generator | None
) -> torch.Tensor:
    """Draw rows of ``points`` with probability proportional to ``squared_distance`` (uniform if all are 0)."""
    weights = squared_distance.double()
    total = weights.sum()
    if not torch.isfinite(total) or total <= 0:
        weights = torch.ones_like(weights)
    replacement = num_samples > int((weights > 0).sum())
    chosen = torch.multinomial(weights, num_samples, replacement=replacement, generator=generator)
    return points[chosen]


def kmeans(
    points: torch.Tensor, num_clusters: int, num_iters: int = 5, generator: torch.Generator | None = None
) -> torch.Tensor:
    """K-means with k-means++ seeding (Arthur & Vassilvitskii 2007, https://dl.acm.org/doi/10.5555/1283383.1283494).

    Args:
        points: data, shape ``(N, D)``.
        num_clusters: number of centroids ``K``; may exceed ``N`` (extra centroids repeat points with a tiny jitter).
        num_iters: Lloyd iterations after seeding.
        generator: random generator for reproducible seeding.

    Returns:
        centroids, shape ``(K, D)``.
    """
    points = points.float()
    first = torch.randint(points.shape[0], (1,), generator=generator, device=points.device)
    centroids = [points[first]]
    squared_distance = ((points - centroids[0]) ** 2).sum(1)
    for _ in range(1, num_clusters):
        new = _sample_by_distance(points, squared_distance, 1, generator)
        centroids.append(new)
        squared_distance = torch.minimum(squared_distance, ((points - new) ** 2).sum(1))
    centroid_matrix = torch.cat(centroids)
    for _ in range(num_iters):
        assignment, _ = _nearest_code(points, centroid_matrix)
        sums = torch.zeros_like(centroid_matrix).index_add_(0, assignment, points)
        counts = torch.bincount(assignment, minlength=num_clusters).unsqueeze(1)
        centroid_matrix = torch.where(counts > 0, sums / counts.clamp_min(1), centroid_matrix)
    # duplicated seeds (fewer distinct points than clusters) are split apart by a jitter far below the data scale
    scale = points.std().clamp_min(1e-6)
    jitter = torch.randn(centroid_matrix.shape, generator=generator, device=points.device) * (1e-3 * scale)
    return centroid_matrix + jitter


class RestartEMAQuantizer(EMAQuantizer):
    """EMA vector quantizer (van den Oord et al. 2017, https://arxiv.org/abs/1711.00937) with a codebook that stays
    in use: k-means initialisation on the first training batch and restart of dead codes.

    MONAI's :class:`~monai.networks.layers.EMAQuantizer` starts its EMA cluster sizes at zero, so after the first
    update every code the first batch did not pick is divided by a tiny smoothed count and is never picked again; on
    brain slices with a black background this collapses a 512-code book to a handful of codes at step one. Here the
    codebook is initialised by k-means on the first training batch with EMA counts of one (Łańcucki et al. 2020,
    https://arxiv.org/abs/2005.08520), and every ``restart_interval`` updates the codes whose EMA count fell below
    ``restart_threshold`` are moved onto current encoder outputs, drawn in proportion to their squared distance to the
    nearest code (Dhariwal et al. 2020, Jukebox, https://arxiv.org/abs/2005.00341). Under DDP the statistics are
    all-reduced as in MONAI and initial/restarted codes are broadcast from rank 0, so every rank holds the same book.

    The codebook changes only inside :meth:`forward` in training mode with ``update=True``; :meth:`index` and
    evaluation-mode forward passes never touch it.

    Args:
        spatial_dims: number of spatial dimensions of the input (2 or 3).
        num_embeddings: number of codes ``K``.
        embedding_dim: size of each code ``D`` (the input's channel count).
        commitment_cost: weight of the commitment loss ``|z - sg(e)|^2``.
        decay: EMA decay of the cluster sizes and sums.
        epsilon: Laplace smoothing of the cluster sizes.
        codebook_init: ``"kmeans"`` (k-means++ and ``kmeans_iters`` Lloyd steps on the first training batch) or
            ``"normal"`` (MONAI's behaviour: N(0, 1) codes, EMA counts start at zero).
        kmeans_iters: Lloyd iterations of the k-means initialisation.
        max_init_points: at most this many encoder outputs (drawn at random) feed the k-means initialisation.
        restart_threshold: codes whose EMA count is below this are restarted; ``0`` disables restarts.
        restart_interval: number of training updates between dead-code checks.
        seed: seed of the initialisation and restart draws; each draw uses ``seed`` and the update count, so a
            resumed run makes the same draws as an uninterrupted one, whatever the global random state.
        ddp_sync: all-reduce EMA statistics and broadcast re-seeded codes when ``torch.distributed`` is initialised.

    Example::

        quantizer = RestartEMAQuantizer(spatial_dims=2, num_embeddings=512, embedding_dim=64)
        quantized, loss, indices = quantizer(torch.randn(8, 64, 32, 32))
    """

    def __init__(
        self,
        spatial_dims: int,
        num_embeddings: int,
        embedding_dim: int,
        commitment_cost: float = 0.25,
        decay: float = 0.99,
        epsilon: float = 1e-5,
        codebook_init: str = "kmeans",
        kmeans_iters: int = 5,
        max_init_points: int = 16384,
        restart_threshold: float = 1.0,
        restart_interval: int = 20,
        seed: int = 0,
        ddp_sync: bool = True,
    ) -> None:
        if spatial_dims not in (2, 3):
            raise ValueError(f"`spatial_dims` must be 2 or 3, got {spatial_dims}.")
        if codebook_init not in CODEBOOK_INITS:
            raise ValueError(f"`codebook_init` must be one of {CODEBOOK_INITS}, got {codebook_init!r}.")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"`decay` must be in [0, 1), got {decay}.")
        if restart_threshold < 0:
            raise ValueError(f"`restart_threshold` must be >= 0 (0 disables restarts), got {restart_threshold}.")
        if restart_interval < 1:
            raise ValueError(f"`restart_interval` must be a positive number of updates, got {restart_interval}.")
        super().__init__(
            spatial_dims=spatial_dims,
            num_embeddings=num_embeddings,
            embedding_dim=embedding_dim,
            commitment_cost=commitment_cost,
            decay=decay,
            epsilon=epsilon,
            ddp_sync=ddp_sync,
        )
        self.codebook_init = codebook_init
        self.kmeans_iters = kmeans_iters
        self.max_init_points = max_init_points
        self.restart_threshold = restart_threshold
        self.restart_interval = restart_interval
        self.seed = seed
        # persistent: a resumed run neither re-initialises its codebook nor shifts its restart schedule
        self.register_buffer("initialized", torch.tensor(codebook_init == "normal"))
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("num_restarted", torch.zeros((), dtype=torch.long))
        # not persistent: usage counts are monitoring state, reset by whoever reads them
        self.register_buffer("usage_counts", torch.zeros(num_embeddings), persistent=False)
        self.initialized: torch.Tensor
        self.num_updates: torch.Tensor
        self.num_restarted: torch.Tensor
        self.usage_counts: torch.Tensor

    @property
    def codebook(self) -> torch.Tensor:
        """The codes, shape ``(num_embeddings, embedding_dim)``."""
        return self.embedding.weight

    def _flatten(self, inputs: torch.Tensor) -> torch.Tensor:
        return inputs.float().permute(self.flatten_permutation).reshape(-1, self.embedding_dim)

    def _check_input(self, inputs: torch.Tensor) -> None:
        if inputs.ndim != self.spatial_dims + 2 or inputs.shape[1] != self.embedding_dim:
            raise ValueError(
                f"Quantizer input must have shape (B, {self.embedding_dim}, *{self.spatial_dims} spatial dims), "
                f"got {tuple(inputs.shape)}."
            )

    def index(self, inputs: torch.Tensor) -> torch.Tensor:
        """Nearest-code indices, never updating the codebook (whatever the module's mode).

        Args:
            inputs: encoder outputs, shape ``(B, D, *spatial)``.

        Returns:
            indices, shape ``(B, *spatial)``, dtype long.
        """
        self._check_input(inputs)
        with torch.no_grad(), torch.autocast(inputs.device.type, enabled=False):
            indices, _ = _nearest_code(self._flatten(inputs), self.codebook.float())
        return indices.view(inputs.shape[0], *inputs.shape[2:])

    def forward(  # type: ignore[override]
        self, inputs: torch.Tensor, update: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Quantize ``inputs``; in training mode with ``update=True`` also run the EMA, init and restart updates.

        Args:
            inputs: encoder outputs, shape ``(B, D, *spatial)``.
            update: allow codebook updates (only effective in training mode).

        Returns:
            ``(quantized, commitment_loss, indices)`` like MONAI's ``EMAQuantizer``: quantized ``(B, D, *spatial)``
            with a straight-through gradient, scalar loss, indices ``(B, *spatial)``.
        """
        self._check_input(inputs)
        with torch.autocast(inputs.device.type, enabled=False):
            inputs = inputs.float()
            flat = self._flatten(inputs).detach()
            update = update and self.training
            if update and not bool(self.initialized):
                self._initialise(flat)
            indices, squared_distance = _nearest_code(flat, self.codebook)
            quantized = (
                self.embedding(indices)
                .view(inputs.shape[0], *inputs.shape[2:], self.embedding_dim)
                .permute(self.quantization_permutation)
            )
            counts = torch.bincount(indices, minlength=self.num_embeddings).to(flat.dtype)
            if not torch.jit.is_tracing():
                self.usage_counts += counts
            if update:
                self._ema_update(flat, indices, squared_distance, counts)
            loss = self.commitment_cost * torch.nn.functional.mse_loss(inputs, quantized.detach())
            quantized = inputs + (quantized - inputs).detach()
        return quantized, loss, indices.view(inputs.shape[0], *inputs.shape[2:])

    def _generator(self, device: torch.device) -> torch.Generator:
        generator = torch.Generator(device=device)
        generator.manual_seed(self.seed * 1_000_003 + int(self.num_updates))
        return generator

    @torch.no_grad()
    def _initialise(self, flat: torch.Tensor) -> None:
        generator = self._generator(flat.device)
        if flat.shape[0] > self.max_init_points:
            flat = flat[torch.randperm(flat.shape[0], device=flat.device, generator=generator)[: self.max_init_points]]
        codebook = kmeans(flat, self.num_embeddings, self.kmeans_iters, generator)
        self._broadcast(codebook)
        self.embedding.weight.data.copy_(codebook)
        self.ema_w.data.copy_(codebook)
        self.ema_cluster_size.data.fill_(1.0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def _ema_update(
        self, flat: torch.Tensor, indices: torch.Tensor, squared_distance: torch.Tensor, counts: torch.Tensor
    ) -> None:
        encodings_sum = counts.clone()  # all-reduced in place below; the local counts stay for usage statistics
        dw = torch.zeros_like(self.ema_w).index_add_(0, indices, flat)
        if self.ddp_sync:
            self.distributed_synchronization(encodings_sum, dw)
        self.ema_cluster_size.mul_(self.decay).add_(encodings_sum, alpha=1 - self.decay)
        self.ema_w.mul_(self.decay).add_(dw, alpha=1 - self.decay)
        total = self.ema_cluster_size.sum()
        smoothed = (self.ema_cluster_size + self.epsilon) / (total + self.num_embeddings * self.epsilon) * total
        self.embedding.weight.data.copy_(self.ema_w / smoothed.unsqueeze(1))
        self.num_updates += 1
        if self.restart_threshold > 0 and int(self.num_updates) % self.restart_interval == 0:
            self._restart_dead_codes(flat, squared_distance)

    @torch.no_grad()
    def _restart_dead_codes(self, flat: torch.Tensor, squared_distance: torch.Tensor) -> None:
        # ema_cluster_size is identical on every rank after the all-reduce, so is the dead set
        dead = torch.nonzero(self.ema_cluster_size < self.restart_threshold).squeeze(1)
        if dead.numel() == 0:
            return
        generator = self._generator(flat.device)
        new_codes = _sample_by_distance(flat, squared_distance, dead.numel(), generator)
        noise = torch.randn(new_codes.shape, generator=generator, device=new_codes.device)
        new_codes = new_codes + noise * (1e-2 * flat.std().clamp_min(1e-6))
        self._broadcast(new_codes)
        self.embedding.weight.data[dead] = new_codes
        self.ema_w.data[dead] = new_codes
        self.ema_cluster_size.data[dead] = 1.0
        self.num_restarted += dead.numel()

    def _broadcast(self, tensor: torch.Tensor) -> None:
        if self.ddp_sync and _distributed():
            dist.broadcast(tensor, src=0)

    def reset_usage(self) -> None:
        """Zero the usage counts (call at the start of a monitoring window, e.g. each validation)."""
        self.usage_counts.zero_()

    def usage_statistics(self, sync: bool = True) -> dict[str, float]:
        """Codebook usage over the window since the last :meth:`reset_usage`.

        Args:
            sync: sum the counts over DDP ranks when ``torch.distributed`` is initialised.

        Returns:
            ``{"usage": fraction of codes picked at least once, "perplexity": exp(entropy of code frequencies),
            "num_quantized": number of vectors counted}``; ``usage`` and ``perplexity`` are 0 for an empty window.
        """
        counts = self.usage_counts.clone()
        if sync and _distributed():
            dist.all_reduce(counts)
        total = float(counts.sum())
        if total == 0:
            return {"usage": 0.0, "perplexity": 0.0, "num_quantized": 0.0}
        return {
            "usage": float((counts > 0).sum()) / self.num_embeddings,
            "perplexity": perplexity(counts),
            "num_quantized": total,
        }
