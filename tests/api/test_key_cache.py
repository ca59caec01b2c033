"""The principal cache of `ledger.keys`: a key is looked up once per `KEY_CACHE_SECONDS` per
process, a key revoked elsewhere stops working within that delay, and one revoked in this
process (CLI/API path: `revoke_key`) stops at once."""
from __future__ import annotations

from sqlalchemy import update

from ledger import keys
from ledger.db import utcnow
from ledger.schema import api_keys
from tests.factories import make_key, tx


def assert_problem(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _revoke_elsewhere(prefix: str) -> None:
    """What another process's revocation looks like from here: the row changes, this process's
    cache is not told."""
    tx(lambda conn: conn.execute(update(api_keys).where(api_keys.c.prefix == prefix)
                                 .values(revoked_at=utcnow())))


def test_a_key_revoked_elsewhere_stops_within_the_stated_delay(client, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(keys, "principals", keys.PrincipalCache(ttl_s=keys.KEY_CACHE_SECONDS, clock=clock))
    secret = make_key("admin")
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.get("/v1/institutions", headers=headers).status_code == 200
    _revoke_elsewhere(secret.split("_")[1])
    clock.now += keys.KEY_CACHE_SECONDS - 0.01   # inside the delay: still the cached principal
    assert client.get("/v1/institutions", headers=headers).status_code == 200
    clock.now += 0.02                            # the delay is over: looked up again, refused
    assert_problem(client.get("/v1/institutions", headers=headers), 401)
    clock.now += 60                              # and never cached as revoked-then-valid
    assert_problem(client.get("/v1/institutions", headers=headers), 401)


def test_revoking_in_this_process_stops_the_key_at_once(client, monkeypatch):
    monkeypatch.setattr(keys, "principals", keys.PrincipalCache(ttl_s=3600, clock=FakeClock()))
    secret = make_key("admin")
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.get("/v1/institutions", headers=headers).status_code == 200
    tx(lambda conn: keys.revoke_key(conn, secret.split("_")[1]))
    assert_problem(client.get("/v1/institutions", headers=headers), 401)


def test_a_hit_needs_the_whole_secret(client, monkeypatch):
    monkeypatch.setattr(keys, "principals", keys.PrincipalCache(ttl_s=3600, clock=FakeClock()))
    secret = make_key("admin")
    assert client.get("/v1/institutions", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    forged = secret[:-1] + ("A" if secret[-1] != "A" else "B")  # same prefix, other secret
    assert_problem(client.get("/v1/institutions", headers={"Authorization": f"Bearer {forged}"}), 401)


def test_a_hit_costs_no_database_call(client, monkeypatch):
    monkeypatch.setattr(keys, "principals", keys.PrincipalCache(ttl_s=3600, clock=FakeClock()))
    secret = make_key("admin")
    calls = []
    real = keys.authenticate
    monkeypatch.setattr(keys, "authenticate", lambda conn, s: calls.append(s) or real(conn, s))
    for _ in range(3):
        assert client.get("/v1/institutions", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    assert len(calls) == 1


def test_the_cache_stays_bounded():
    cache = keys.PrincipalCache(ttl_s=60, clock=FakeClock(), max_entries=2)
    who = keys.Principal(1, "abcdef01", "admin", None, None, "000000")
    for n in range(5):
        cache.put(f"hash{n}", who)
    assert len(cache._entries) <= 2 and cache.get("hash4") is who
