"""The report's PNG figures, drawn with PIL: the samples beside their nearest training slices, and the samples
grouped by slice position beside real test slices at the nearest positions."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from monai_vqvae2.io import atomic_write
from monai_vqvae2.quality.images import ImageSet
from monai_vqvae2.quality.similarity import NearestTraining
from monai_vqvae2.slice_io import label_overlay

__all__ = ["MAX_POSITION_ROWS", "label_pairs_figure", "nearest_figure", "position_figure"]

_MIN_TILE = 64  # figure tiles are enlarged (nearest neighbour, integer factor) to at least this many pixels
_GAP = 2
_NEAR_COPY_COLOUR = (220, 40, 40)
MAX_POSITION_ROWS = 8  # rows of the slice-position figure (positions are grouped beyond that)
_REAL_PER_POSITION = 4  # real test slices shown beside each row of the slice-position figure


@functools.lru_cache(maxsize=1)
def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default()


def _tile(image: torch.Tensor, scale: int) -> np.ndarray:
    """``(1, H, W)`` in [0, 1] -> ``(H*scale, W*scale, 3)`` uint8."""
    picture = (image[0].clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    picture = np.kron(picture, np.ones((scale, scale), dtype=np.uint8))
    return np.repeat(picture[:, :, None], 3, axis=2)


def _scale(spatial_shape: Sequence[int]) -> int:
    return max(1, math.ceil(_MIN_TILE / max(spatial_shape)))


def _text_width(draw: ImageDraw.ImageDraw, text: str) -> int:
    left, _, right, _ = draw.textbbox((0, 0), text, font=_font())
    return int(right - left)


def _save_png(path: Path, canvas: Image.Image) -> Path:
    return atomic_write(path, lambda temporary: canvas.save(temporary, format="PNG"))


def nearest_figure(
    samples: ImageSet, training: ImageSet, nearest: NearestTraining, shown: Sequence[int], threshold: float, path: Path
) -> Path:
    """Columns: samples (most similar to the training set first); rows: sample, nearest training slice, |difference|;
    the SSIM above each column, in red for near-copies."""
    scale = _scale(samples.spatial_shape)
    height, width = (s * scale for s in samples.spatial_shape)
    labels = ("sample", "nearest training", "|difference|")
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    margin = max(_text_width(probe, label) for label in labels) + 8
    header = 16
    canvas = Image.new("RGB", (margin + len(shown) * (width + _GAP), header + 3 * (height + _GAP)), "white")
    draw = ImageDraw.Draw(canvas)
    for row, label in enumerate(labels):
        draw.text((2, header + row * (height + _GAP) + height // 2 - 6), label, fill="black", font=_font())
    sample_images = samples.get(list(shown))
    neighbour_images = training.get([int(nearest.index[i]) for i in shown])
    for column, (index, sample, neighbour) in enumerate(zip(shown, sample_images, neighbour_images)):
        left = margin + column * (width + _GAP)
        value = float(nearest.ssim[index])
        colour = _NEAR_COPY_COLOUR if value >= threshold else (0, 0, 0)
        draw.text((left + 2, 2), f"#{index} {value:.3f}", fill=colour, font=_font())
        for row, picture in enumerate((sample, neighbour, (sample - neighbour).abs())):
            canvas.paste(Image.fromarray(_tile(picture, scale)), (left, header + row * (height + _GAP)))
    return _save_png(path, canvas)


def _position_groups(positions: Sequence[float], max_rows: int) -> list[list[int]]:
    """Sample indices grouped by slice position, lowest first: one group per distinct position (3 decimals), or
    ``max_rows`` groups of consecutive positions when there are more."""
    order = sorted(range(len(positions)), key=lambda i: (positions[i], i))
    distinct = sorted({round(p, 3) for p in positions})
    if len(distinct) <= max_rows:
        return [[i for i in order if round(positions[i], 3) == value] for value in distinct]
    return [chunk.tolist() for chunk in np.array_split(np.asarray(order), max_rows) if len(chunk)]


def position_figure(
    samples: ImageSet,
    positions: Sequence[float],
    real: ImageSet,
    real_positions: Sequence[float] | None,
    per_row: int,
    max_rows: int,
    path: Path,
) -> Path:
    """One row per slice-position group: up to ``per_row`` samples, then (when real positions are known) the real
    test slices nearest that position."""
    scale = _scale(samples.spatial_shape)
    height, width = (s * scale for s in samples.spatial_shape)
    groups = _position_groups(positions, max_rows)
    num_real = min(_REAL_PER_POSITION, len(real_positions)) if real_positions is not None else 0
    labels = []
    for group in groups:
        low, high = min(positions[i] for i in group), max(positions[i] for i in group)
        span = f"{low:.2f}" if round(low, 2) == round(high, 2) else f"{low:.2f}-{high:.2f}"
        labels.append(f"position {span} (n={len(group)})")
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    margin = max(_text_width(probe, label) for label in labels) + 8
    header, separator = 16, 12
    columns = min(per_row, max(len(g) for g in groups))
    real_left = margin + columns * (width + _GAP) + separator
    canvas = Image.new("RGB", (real_left + num_real * (width + _GAP), header + len(groups) * (height + _GAP)), "white")
    draw = ImageDraw.Draw(canvas)
    draw.text((margin, 2), "samples", fill="black", font=_font())
    if num_real:
        draw.text((real_left, 2), "real test slices at the nearest positions", fill="black", font=_font())
    for row, (group, label) in enumerate(zip(groups, labels)):
        top = header + row * (height + _GAP)
        draw.text((2, top + height // 2 - 6), label, fill="black", font=_font())
        for column, image in enumerate(samples.get(group[:per_row])):
            canvas.paste(Image.fromarray(_tile(image, scale)), (margin + column * (width + _GAP), top))
        if num_real:
            centre = float(np.median([positions[i] for i in group]))
            closest = sorted(range(len(real_positions)), key=lambda i: (abs(real_positions[i] - centre), i))
            for column, image in enumerate(real.get(closest[:num_real])):
                canvas.paste(Image.fromarray(_tile(image, scale)), (real_left + column * (width + _GAP), top))
    return _save_png(path, canvas)


def label_pairs_figure(images: torch.Tensor, labels: torch.Tensor, segmented: torch.Tensor, path: Path) -> Path:
    """Columns: slices; rows: the slice, with its own label map overlaid, with the reference segmenter's label map
    overlaid (agreement shows as two rows of the same colours)."""
    scale = _scale(images.shape[2:])
    rows = []
    for overlay in (None, labels, segmented):
        tiles = []
        for index in range(len(images)):
            if overlay is None:
                tiles.append(_tile(images[index], scale))
            else:
                picture = label_overlay(images[index, 0].numpy(), overlay[index, 0].cpu().numpy())
                tiles.append(np.kron(picture, np.ones((scale, scale, 1), dtype=np.uint8)))
        gap = np.zeros((tiles[0].shape[0], _GAP, 3), dtype=np.uint8)
        rows.append(np.concatenate([part for tile in tiles for part in (tile, gap)][:-1], axis=1))
    spacer = np.zeros((_GAP, rows[0].shape[1], 3), dtype=np.uint8)
    canvas = np.concatenate([rows[0], spacer, rows[1], spacer, rows[2]], axis=0)
    return _save_png(path, Image.fromarray(canvas))
