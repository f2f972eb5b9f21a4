"""The SDK's public names: changing them breaks every device program."""

from __future__ import annotations

import m2mhub.device


def test_the_public_api_is_what_it_was() -> None:
    assert m2mhub.device.__all__ == [
        "Counters",
        "DesiredState",
        "DeviceClient",
        "M2MHubError",
        "PayloadError",
    ]
    for name in m2mhub.device.__all__:
        assert getattr(m2mhub.device, name).__doc__, f"{name} has no docstring"
    public = {name for name in vars(m2mhub.device) if not name.startswith("_")}
    assert public == set(m2mhub.device.__all__)
