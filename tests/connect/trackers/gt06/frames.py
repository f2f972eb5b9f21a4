"""The fixture frames, by name."""

from __future__ import annotations

from pathlib import Path

_FIXTURES = Path(__file__).parent / "fixtures" / "frames.txt"


def _load() -> dict[str, bytes]:
    frames = {}
    for line in _FIXTURES.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, hex_ = line.split()
            frames[name] = bytes.fromhex(hex_)
    return frames


FRAMES = _load()
