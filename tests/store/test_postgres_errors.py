"""PostgreSQL connection problems are reported plainly, without the password."""

from __future__ import annotations

import pytest

from m2mhub.core.errors import StoreError
from m2mhub.store.postgres import PostgresStore, redact
from tests.conftest import free_port


def test_redact_hides_only_the_password() -> None:
    assert redact("postgresql://root:s3cret@db:5432/m2m") == "postgresql://root:***@db:5432/m2m"
    assert redact("postgresql://root@db/m2m") == "postgresql://root@db/m2m"


async def test_an_unreachable_server_is_named_without_its_password() -> None:
    url = f"postgresql://root:s3cret@127.0.0.1:{free_port()}/m2m"
    with pytest.raises(StoreError) as caught:
        await PostgresStore(url, schema="m2m").open()
    assert "127.0.0.1" in caught.value.message and "s3cret" not in caught.value.message
