"""Subject-level splits: no subject crosses splits (OASIS-1 MR1/MR2, OASIS-3 sessions), seeded, saved as JSON."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monai_vqvae2.data import check_no_subject_overlap, load_split, save_split, split_by_subject


def _items(num_subjects: int, sessions_per_subject: int = 2) -> list[dict]:
    return [
        {"image": f"/d/OAS1_{s:04d}_MR{m}.hdr", "subject": f"OAS1_{s:04d}", "session": f"OAS1_{s:04d}_MR{m}"}
        for s in range(1, num_subjects + 1)
        for m in range(1, sessions_per_subject + 1)
    ]


def _subjects(items: list[dict]) -> set[str]:
    return {item["subject"] for item in items}


def test_counts_and_sessions_together():
    items = _items(20)
    split = split_by_subject(items, fractions=(0.8, 0.1, 0.1), seed=0)
    assert [len(_subjects(split[name])) for name in ("train", "validation", "test")] == [16, 2, 2]
    assert [len(split[name]) for name in ("train", "validation", "test")] == [32, 4, 4]
    check_no_subject_overlap(split)
    for part in split.values():  # MR1 and MR2 of every subject land together
        sessions = {item["session"] for item in part}
        assert all(f"{subject}_MR1" in sessions and f"{subject}_MR2" in sessions for subject in _subjects(part))


def test_seeded_and_order_independent():
    items = _items(30)
    first = split_by_subject(items, seed=3)
    assert first == split_by_subject(items, seed=3)
    reordered = split_by_subject(list(reversed(items)), seed=3)
    assert {k: _subjects(v) for k, v in reordered.items()} == {k: _subjects(v) for k, v in first.items()}
    assert _subjects(split_by_subject(items, seed=4)["test"]) != _subjects(first["test"])


@pytest.mark.parametrize(
    "num_subjects, fractions, expected",
    [
        (8, (0.8, 0.1, 0.1), [6, 1, 1]),  # the demo: every split gets a subject
        (2, (0.8, 0.1, 0.1), [2, 0, 0]),  # too few subjects for three splits
        (3, (0.8, 0.1, 0.1), [1, 1, 1]),
        (5, (0.0, 0.5, 0.5), [0, 3, 2]),
        (10, (1.0, 0.0, 0.0), [10, 0, 0]),
        (416, (0.7, 0.15, 0.15), [292, 62, 62]),  # OASIS-1 size
    ],
)
def test_subject_counts(num_subjects, fractions, expected):
    split = split_by_subject(_items(num_subjects, 1), fractions=fractions, seed=0)
    assert [len(_subjects(split[n])) for n in ("train", "validation", "test")] == expected


def test_existing_split_is_kept():
    png = [
        {"image": f"/p/{s}_{k}.png", "subject": f"case_{s}", "split": split}
        for s, split in [(1, "train"), (2, "validation"), (3, "test")]
        for k in range(3)
    ]
    split = split_by_subject(png + _items(10, 1), fractions=(0.8, 0.1, 0.1), seed=0)
    assert _subjects([i for i in split["validation"] if "split" in i]) == {"case_2"}
    assert _subjects([i for i in split["test"] if "split" in i]) == {"case_3"}
    assert len(split["train"]) == 3 + 8


def test_bad_arguments():
    with pytest.raises(ValueError, match=r"`fractions` must sum to 1, got \(0.8, 0.1, 0.2\)"):
        split_by_subject(_items(4), fractions=(0.8, 0.1, 0.2))
    with pytest.raises(ValueError, match=r"`fractions` must be three non-negative numbers .* got \(0.5, 0.5\)"):
        split_by_subject(_items(4), fractions=(0.5, 0.5))
    with pytest.raises(ValueError, match=r"`items\[0\]` has no 'subject' key"):
        split_by_subject([{"image": "/a.nii"}])
    with pytest.raises(ValueError, match=r"`items\[0\]\['split'\]` must be one of .* got 'val'"):
        split_by_subject([{"image": "/a.png", "subject": "a", "split": "val"}])
    leaking = {"train": [{"subject": "A"}], "validation": [{"subject": "A"}], "test": []}
    with pytest.raises(
        ValueError, match=r"1 subject\(s\) appear in several splits, e.g. \{'A': \['train', 'validation'\]\}"
    ):
        check_no_subject_overlap(leaking)


def test_save_and_load_round_trip(tmp_path):
    split = split_by_subject(_items(10), seed=1)
    path = save_split(split, tmp_path / "runs" / "split.json")
    assert load_split(path) == split
    assert sorted(p.name for p in path.parent.iterdir()) == ["split.json"]  # no temporary file left behind
    assert json.loads(path.read_text())["test"][0]["subject"] in _subjects(split["test"])


def test_load_rejects_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"split file '.*nope.json' does not exist"):
        load_split(tmp_path / "nope.json")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match=r"broken.json' is not valid JSON"):
        load_split(broken)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"training": [], "validation": []}))
    with pytest.raises(ValueError, match=r"must hold exactly the keys .* got \['training', 'validation'\]"):
        load_split(wrong)
    no_image = tmp_path / "no_image.json"
    no_image.write_text(json.dumps({"train": [{"subject": "a"}], "validation": [], "test": []}))
    with pytest.raises(ValueError, match=r"'train' must be a list of items with 'image' and 'subject' keys"):
        load_split(no_image)
    with pytest.raises(ValueError, match=r"`split` must have exactly the keys"):
        save_split({"train": []}, tmp_path / "x.json")


@settings(max_examples=60, deadline=None)
@given(
    sessions=st.lists(st.tuples(st.integers(0, 40), st.integers(1, 3)), min_size=1, max_size=80),
    cut=st.tuples(st.integers(0, 10), st.integers(0, 10)).filter(lambda c: c[0] + c[1] <= 10),
    seed=st.integers(0, 2**16),
)
def test_no_subject_ever_crosses_splits(sessions, cut, seed):
    items = [{"image": f"/x/{s}_{m}.nii", "subject": f"S{s}", "session": f"S{s}_{m}"} for s, m in sessions]
    fractions = (cut[0] / 10, cut[1] / 10, 1 - (cut[0] + cut[1]) / 10)
    split = split_by_subject(items, fractions=fractions, seed=seed)
    check_no_subject_overlap(split)
    assert sorted(id(i) for part in split.values() for i in part) == sorted(map(id, items))  # every item exactly once
