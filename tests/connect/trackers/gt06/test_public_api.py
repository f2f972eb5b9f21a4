"""The package's public names: importable, listed once, sorted."""

from __future__ import annotations

from m2mhub.connect.trackers import gt06


def test_all_names_exist_and_are_sorted() -> None:
    assert gt06.__all__ == sorted(set(gt06.__all__))
    for name in gt06.__all__:
        assert getattr(gt06, name) is not None
