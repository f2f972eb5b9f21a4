"""Signing in and out, the session cookie, CSRF, and the API accepting the session."""

from __future__ import annotations

import httpx

from m2mhub.auth.sessions import COOKIE
from m2mhub.core.values import Role
from tests.web.conftest import PASSWORD, USERS, Console, csrf_of, sign_in


def _set_cookie(response: httpx.Response, name: str) -> str:
    found = [h for h in response.headers.get_list("set-cookie") if h.startswith(f"{name}=")]
    assert found, response.headers
    return found[0]


async def test_signing_in_sets_an_httponly_samesite_cookie(console: Console) -> None:
    client = await console.client(None)
    response = await sign_in(client, USERS[Role.OPERATOR])
    assert response.status_code == 303
    assert response.headers["location"] == "/console/"
    cookie = _set_cookie(response, COOKIE).lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    assert "path=/" in cookie
    assert "secure" not in cookie  # plain http: a Secure cookie would never come back
    page = await client.get("/console/")
    assert page.status_code == 200
    assert "operator@example.com" in page.text


async def test_over_https_the_cookie_is_secure(console: Console) -> None:
    client = await console.client(None, base_url="https://m2mhub.test")
    response = await sign_in(client, USERS[Role.VIEWER])
    assert "secure" in _set_cookie(response, COOKIE).lower()


async def test_a_wrong_password_is_refused_and_says_so(console: Console) -> None:
    client = await console.client(None)
    response = await sign_in(client, USERS[Role.ADMIN], "not the password")
    assert response.status_code == 401
    assert "wrong e-mail or password" in response.text
    assert COOKIE not in client.cookies
    unknown = await sign_in(client, "nobody@example.com")
    assert unknown.status_code == 401
    assert "wrong e-mail or password" in unknown.text  # same answer: no e-mail enumeration


async def test_the_sign_in_form_needs_its_own_token(console: Console) -> None:
    """Another site cannot post the form to sign a browser in (login CSRF)."""
    client = await console.client(None)
    response = await client.post(
        "/console/login", data={"email": USERS[Role.ADMIN], "password": PASSWORD}
    )
    assert response.status_code == 403
    assert COOKIE not in client.cookies


async def test_pages_send_strangers_to_sign_in_and_back(console: Console) -> None:
    client = await console.client(None)
    response = await client.get("/console/devices/meter-1")
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login?next=/console/devices/meter-1"
    fragment = await client.get("/console/summary", headers={"HX-Request": "true"})
    assert fragment.headers["HX-Redirect"].startswith("/console/login")
    back = await sign_in(client, USERS[Role.VIEWER], next="/console/devices/meter-1")
    assert back.headers["location"] == "/console/devices/meter-1"
    stranger = await console.client(None)
    elsewhere = await sign_in(stranger, USERS[Role.VIEWER], next="https://evil.example/")
    assert elsewhere.headers["location"] == "/console/"


async def test_a_forged_or_tampered_cookie_is_not_a_session(console: Console) -> None:
    client = await console.client(Role.VIEWER)
    value = client.cookies[COOKIE]
    payload, signature = value.split(".")
    client.cookies.set(COOKIE, payload[:-2] + "AA." + signature, domain="m2mhub.test")
    assert (await client.get("/console/")).status_code == 303
    client.cookies.set(COOKIE, "e30.e30", domain="m2mhub.test")
    assert (await client.get("/api/v1/devices")).status_code == 401


async def test_the_api_accepts_the_session_with_the_callers_role(console: Console) -> None:
    client = await console.client(Role.VIEWER)
    devices = await client.get("/api/v1/devices")
    assert devices.status_code == 200
    assert {d["id"] for d in devices.json()["items"]} == {"meter-1", "meter-2"}
    # Viewers read; the same routes refuse them changes (role checked as for API keys).
    csrf = await console.csrf(client)
    refused = await client.post(
        "/api/v1/devices/meter-1/commands",
        json={"method": "reboot"},
        headers={"X-CSRF-Token": csrf},
    )
    assert refused.status_code == 403
    assert "operator" in refused.json()["error"]["message"]


async def test_changes_through_a_session_need_the_csrf_token(console: Console) -> None:
    client = await console.client(Role.OPERATOR)
    without = await client.post("/api/v1/devices/meter-1/commands", json={"method": "reboot"})
    assert without.status_code == 403
    assert "X-CSRF-Token" in without.json()["error"]["message"]
    wrong = await client.post(
        "/api/v1/devices/meter-1/commands", json={"method": "reboot"}, headers={"X-CSRF-Token": "x"}
    )
    assert wrong.status_code == 403
    csrf = await console.csrf(client)
    sent = await client.post(
        "/api/v1/devices/meter-1/commands",
        json={"method": "reboot"},
        headers={"X-CSRF-Token": csrf},
    )
    assert sent.status_code == 201
    assert sent.json()["created_by"] == "user:operator@example.com"


async def test_an_api_key_needs_no_csrf_token(console: Console) -> None:
    """Keys are sent by programs, not by browsers: cross-site forms cannot carry them."""
    response = await console.api.client.post(
        "/api/v1/devices/meter-1/commands", json={"method": "reboot"}, headers=console.api.admin
    )
    assert response.status_code == 201


async def test_signing_out_needs_the_token_and_removes_the_cookie(console: Console) -> None:
    client = await console.client(Role.ADMIN)
    refused = await client.post("/console/logout", data={"csrf_token": "stale"})
    assert refused.status_code == 403
    csrf = csrf_of((await client.get("/console/")).text)
    response = await client.post("/console/logout", data={"csrf_token": csrf})
    assert response.status_code == 303
    assert COOKIE not in client.cookies
    assert (await client.get("/console/")).status_code == 303
