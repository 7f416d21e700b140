"""``report.md``: the report's numbers in Markdown tables, the samples beside the real reference, with how they were
computed and links to the figures."""

from __future__ import annotations

from typing import Any

from monai_vqvae2.quality.plan import REFERENCE, SETS

__all__ = ["report_markdown"]


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _format(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _table(measures: dict[str, Any], threshold: float, with_reading: bool) -> list[str]:
    """Markdown table of one comparison: a row per measure, samples beside the real reference."""
    if "skipped" in measures:
        return [f"Not computed: {measures['skipped']}."]
    counts = measures["counts"]

    def pair(key: str, field: str | None = None) -> tuple[Any, Any]:
        values = measures[key]
        return tuple(values[n] if field is None else values[n][field] for n in SETS)

    copies = measures["near_copies"]
    rows = [
        (
            "Fréchet distance, encoder features",
            *pair("frechet_distance_encoder"),
            "lower = closer to the training slices",
        ),
        ("MMD² (RBF, V-statistic), encoder features", *pair("mmd2_encoder"), "lower = closer; 0 = identical sets"),
        ("MMD² (RBF, unbiased), encoder features", *pair("mmd2_unbiased_encoder"), "about 0 = same distribution"),
        (
            "Fréchet distance, random-CNN features",
            *pair("frechet_distance_random_cnn"),
            "lower = closer, in a space no model was fitted to",
        ),
        ("in-brain intensity Wasserstein distance", *pair("intensity_wasserstein"), "intensity units; lower = closer"),
        (
            f"mean pairwise MS-SSIM ({_count(measures['pairwise_ms_ssim']['num_pairs'], 'pair')})",
            *pair("pairwise_ms_ssim", "mean"),
            "diversity: higher = less varied",
        ),
        (
            "nearest-training SSIM, median",
            *pair("nearest_training_ssim", "median"),
            "above the real reference = closer to copying",
        ),
        ("nearest-training SSIM, max", *pair("nearest_training_ssim", "max"), "1.0 = an exact training slice"),
        (
            f"near-copies (SSIM ≥ {threshold:g})",
            f"{copies['samples']} / {counts['samples']}",
            f"{copies['real']} / {counts['real']}",
            "should not exceed the real reference",
        ),
    ]
    header = "| measure | samples | real reference |" + (" how to read |" if with_reading else "")
    lines = [header, "|---|---|---|" + ("---|" if with_reading else "")]
    for label, samples, real, reading in rows:
        lines.append(f"| {label} | {_format(samples)} | {_format(real)} |" + (f" {reading} |" if with_reading else ""))
    return lines


def report_markdown(report: dict[str, Any]) -> str:
    """The text of ``report.md`` for a report as :func:`~monai_vqvae2.quality.report.quality_report` returns it."""
    counts, selection, threshold = report["counts"], report["selection"], report["memorisation"]["threshold"]
    window = selection["position_window"]
    positions = report["sample_positions"]
    if positions is None:
        where = "slice positions unknown"
    else:
        distinct = sorted({round(p, 3) for p in positions})
        where = "at slice position" + ("s " if len(distinct) > 1 else " ") + ", ".join(f"{p:g}" for p in distinct)
    base = f"{counts['training_base']} training slices (of {counts['training']}"
    if window is None:
        real = f"{counts['real_reference']} real slices of held-out subjects (of {counts['real_test']} test slices)"
        base += ")"
    else:
        real = (
            f"{counts['real_reference']} real slices of held-out subjects within ±{window:g} of those positions (of "
            f"{selection['real_test_in_windows']} there, {counts['real_test']} test slices in all)"
        )
        base += f"; {selection['training_in_windows']} within ±{window:g})"
    summary = (
        f"{counts['samples']} samples {where}; {real}; base: {base}; {report['image_size'][0]}×"
        f"{report['image_size'][1]} pixels, seed {report['seed']}."
    )
    lines = ["# Quality of generated slices", "", summary, "", REFERENCE, "", "## All positions", ""]
    lines += _table(report["overall"], threshold, with_reading=True)
    if report["by_position"]:
        lines += ["", "## By slice position", ""]
        for entry in report["by_position"]:
            entry_counts = entry["counts"]
            lines += [
                (
                    f"### Position {entry['position']:g} (±{window:g}): {_count(entry_counts['samples'], 'sample')}, "
                    f"{_count(entry_counts['real'], 'real reference slice')}, "
                    f"{_count(entry_counts['training_base'], 'training base slice')}"
                ),
                "",
                *_table(entry, threshold, with_reading=False),
                "",
            ]
        lines.pop()
    agreement = report.get("label_agreement")
    if agreement:
        classes = list(agreement["samples"]["per_class"])
        lines += [
            "",
            "## Label agreement",
            "",
            agreement["description"] + " 1 is perfect agreement; read the samples against the real reference.",
            "",
            "| | " + " | ".join(classes) + " | mean | per-slice min / median |",
            "|---|" + "---|" * (len(classes) + 2),
        ]
        for name, key in (("samples", "samples"), ("real reference", "real")):
            row = agreement[key]
            values = " | ".join(_format(row["per_class"][c], 3) for c in classes)
            spread = f"{_format(row['per_slice']['min'], 3)} / {_format(row['per_slice']['median'], 3)}"
            lines.append(f"| {name} | {values} | {_format(row['mean'], 3)} | {spread} |")
    encoder, random_cnn = report["feature_spaces"]["encoder"], report["feature_spaces"]["random_cnn"]
    diversity, memorisation, histogram = report["diversity"], report["memorisation"], report["histogram"]
    weights = ", ".join(f"{w:.3f}" for w in diversity["weights"])
    method = [
        (
            "Every measure compares a set (the samples, or the real reference) with the same training base; the real "
            "reference is what real, unseen brains score, so read each sample value against the value beside it."
        ),
        "",
        (
            f"- Encoder space: {encoder['description']} ({encoder['dimension']} numbers per slice); comparable "
            "only between reports made with the same autoencoder checkpoint."
        ),
        (
            f"- Independent space: {random_cnn['description']} ({random_cnn['dimension']} numbers per slice, seed "
            f"{random_cnn['seed']}, weights SHA-256 `{random_cnn['digest'][:16]}…`); no model was fitted in this space."
        ),
        (
            "- Fréchet distance: `‖mu_b - mu_x‖² + tr(S_b) + tr(S_x) - 2 tr((S_b S_x)^½)` between Gaussians fitted to "
            "the training base (b) and the set (x). It grows as sets shrink, which is why the real reference has as "
            "many slices as the samples."
        ),
        (
            f"- MMD²: RBF kernel `exp(-d² / (2σ²))`, σ = {_format(report['mmd_bandwidth'])} (median pairwise distance "
            "of the training base's encoder features); V-statistic and unbiased U-statistic."
        ),
        (
            "- In-brain intensity distance: 1-D Wasserstein distance between the pooled histograms "
            f"({histogram['bins']} bins on [0, 1]) of the pixels above {histogram['foreground_threshold']:g}."
        ),
        (
            f"- Diversity: mean {diversity['measure']} (MONAI `MultiScaleSSIMMetric`, weights {weights}) over seeded "
            "random pairs within the set, as many pairs for the samples as for the real reference."
        ),
        (
            "- Memorisation: SSIM (MONAI `SSIMMetric`) of each slice to its nearest slice of the whole training set; "
            f"candidates are the {memorisation['num_candidates']} training slices nearest in "
            f"{memorisation['candidate_size']}-pixel thumbnail distance. Exact copies are always found."
        ),
    ]
    figure = (
        f"- [Samples beside their nearest training slices]({report['figures']['nearest_neighbours']}) (most "
        "similar first; the number is the SSIM, red for near-copies)"
    )
    lines += ["", "## How these were computed", "", *method, "", "## Figures", "", figure]
    if report["figures"].get("label_pairs"):
        lines.append(
            f"- [Samples with their labels]({report['figures']['label_pairs']}) (rows: sample, its generated label, "
            "the real-data segmenter's label)"
        )
    if report["figures"].get("by_position"):
        lines.append(f"- [Samples by slice position]({report['figures']['by_position']})")
    else:
        lines.append("- Samples by slice position: not drawn (the samples' slice positions are unknown)")
    return "\n".join(lines) + "\n"
