from __future__ import annotations

from monai_vqvae2.quality.figures import _position_groups


def test_position_groups_are_ordered_and_capped():
    assert _position_groups([0.5, 0.25, 0.5, 0.2501], max_rows=8) == [[1, 3], [0, 2]]
    groups = _position_groups([i / 19 for i in reversed(range(20))], max_rows=8)
    assert len(groups) == 8 and [i for group in groups for i in group] == list(reversed(range(20)))
