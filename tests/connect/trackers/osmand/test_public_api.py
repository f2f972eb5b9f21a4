"""The package's public names: importable, listed once, sorted."""

from __future__ import annotations

from m2mhub.connect.trackers import osmand


def test_all_names_exist_and_are_sorted() -> None:
    assert osmand.__all__ == sorted(set(osmand.__all__))
    for name in osmand.__all__:
        assert getattr(osmand, name) is not None
