"""Soak (issue 13 items 1 and 4): N clients x M mixed postings through real gunicorn servers on one
PostgreSQL, every request carrying an Idempotency-Key and retried at random (some retries sent
while the first is still in flight, some to the other server), then proof that the book holds.

The postings: loans, repayments, fees, defaults (claims), claim payments (by the insurer, which
pays first, and by the pool, out of its fund), recoveries on defaulted loans, and fund
contributions by the pool, over loans and claims the clients share, one pool fund (the example
programme's GZ-POOL pays only out of it) and a handful of borrowers (so claims meet the shared
borrower-year and programme-year caps). Clients draw from what they have seen accepted, so some
requests are refused (409/422: a loan already defaulted, a share already paid, the pool before
the insurer, a recovery beyond the loss); the figures count them by kind.

What must hold afterwards (`check`, which raises AssertionError naming the first breach):
- no 5xx, ever; a retry of an accepted request answers the same status and body, replayed;
- every accepted request is in the journal exactly once (its key on as many entries as one
  sequential run of it writes), and a refused request not at all;
- no cap or fund overdrawn: pool usage within its borrower-year and programme-year caps, what
  the pool owes and has not yet paid within its fund's balance, the fund never below zero, no
  share paid beyond what it owes;
- every account's balance equals that of a sequential replay of the accepted requests, in the
  order of their entries, into a fresh database (through the API, in process);
- `verify`: balanced, chain intact (sealed by the schedulers when they run, else here).

Run (from the repository root; the figures are printed):
    python bench/soak.py [--url postgresql://postgres@127.0.0.1:5432/test]
                         [--clients 16] [--postings 1000] [--servers 2] [--schedulers 2] [--seed 1]
                         [--borrowers 24]
`make soak` runs the issue's size. It creates two scratch databases `ipl_bench_<random>` and
always drops them.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `bench` is not installed

from sqlalchemy import func, select  # noqa: E402

from bench.common import (PROGRAM_CODE, PROGRAM_TERMS, REPO_ROOT, World, bank_headers, default_url,  # noqa: E402
                          make_case, setup_world, throwaway_database)
from bench.drills import Gunicorn, Reply, post  # noqa: E402
from bench.loans_server import run_threads  # noqa: E402
from jobs.tasks import seal_chain  # noqa: E402
from ledger import chain  # noqa: E402
from ledger.accounts import program_fund  # noqa: E402
from ledger.db import run_in_transaction  # noqa: E402
from ledger.keys import create_key  # noqa: E402
from ledger.money import parse_yuan  # noqa: E402
from ledger.schema import (RECOVERY_SOURCES, accounts, cap_usage, claim_shares, claims,  # noqa: E402
                           entries, institutions, loans, postings)
from ledger.terms import parse_terms  # noqa: E402

log = logging.getLogger("ipledger.soak")

# Few borrowers: claims meet the borrower-year coverage limit (20M yuan of principal a year, a
# handful of loans). Past it a claim owes nothing, so at full size (4,000 loans) `make soak` uses
# more borrowers, for more claims with something to pay; each still has ~170 loans past the limit.
SHARED_BORROWERS = 6
# How often each posting is chosen (out of their sum).
MIX = {"loan": 26, "repayment": 20, "fee": 10, "default": 10, "payment": 12, "recovery": 6,
       "contribution": 16}
PARTIES = {"PICC-GZ": "insurer", "GZ-POOL": "pool"}  # the example terms' parties, by who pays
IN_FLIGHT = "idempotency-key-in-flight"
SETTLE_PAUSE_S = 0.02
MAX_SENDS = 200  # a request still in flight after this many tries is a failure of the soak


@dataclass(frozen=True)
class SoakWorld:
    bank: World
    pool_secret: str
    insurer_secret: str

    def headers(self, party: str, key: str) -> dict:
        """The headers of a request sent by `party`: the bank, the pool or the insurer."""
        if party == "bank":
            return bank_headers(self.bank, key)
        secret = self.pool_secret if party == "pool" else self.insurer_secret
        return {"Authorization": f"Bearer {secret}", "Idempotency-Key": key}


def setup(engine, borrowers: int = SHARED_BORROWERS) -> SoakWorld:
    """The benchmark world (bank, programme, borrowers) and keys for the pool and the insurer."""
    bank = setup_world(engine, borrowers)
    pool, insurer = run_in_transaction(engine, lambda conn: (create_key(conn, "pool", "GZ-POOL")[1],
                                                             create_key(conn, "insurer", "PICC-GZ")[1]))
    return SoakWorld(bank, pool, insurer)


@dataclass
class Request:
    key: str
    kind: str
    path: str
    payload: dict
    party: str = "bank"  # who sends it: bank, pool or insurer
    replies: list[Reply] = field(default_factory=list)

    @property
    def final(self) -> list[Reply]:
        return [r for r in self.replies if r.status is not None and not _in_flight(r)]

    @property
    def accepted(self) -> bool:
        return any(200 <= r.status < 300 for r in self.final)

    @property
    def answer(self) -> dict:
        """The accepted answer's body."""
        return next(r for r in self.final if 200 <= r.status < 300).body


def _in_flight(reply: Reply) -> bool:
    return reply.status == 409 and IN_FLIGHT in str((reply.body or {}).get("type", ""))


# --- the clients --------------------------------------------------------------------------------

@dataclass
class SeenClaim:
    """A claim as the clients last saw it: its loan, loss base, and what each party still owes."""

    loan_id: int
    loss_base_fen: int
    outstanding_fen: dict[str, int]  # party (insurer, pool) -> fen


class Book:
    """What the clients share: the loans and claims accepted so far, and fresh loan numbers.
    Only what was seen accepted: other clients move on, so a draw from it may be refused."""

    def __init__(self):
        self.lock = threading.Lock()
        self.loan_ids: list[int] = []
        self.claims: dict[int, SeenClaim] = {}
        self.owing: set[int] = set()  # claims with a share seen unpaid
        self.next_case = 0

    def case_index(self) -> int:
        with self.lock:
            self.next_case += 1
            return self.next_case

    def add_loan(self, loan_id: int) -> None:
        with self.lock:
            self.loan_ids.append(loan_id)

    def some_loan(self, rng: random.Random) -> int | None:
        with self.lock:
            return rng.choice(self.loan_ids) if self.loan_ids else None

    def add_claim(self, body: dict) -> None:
        owed = {PARTIES[s["institution"]]: parse_yuan(s["outstanding"]) for s in body["shares"]}
        with self.lock:
            self.claims[body["id"]] = SeenClaim(body["loan"], parse_yuan(body["loss_base"]), owed)
            if any(owed.values()):
                self.owing.add(body["id"])

    def paid(self, claim_id: int, party: str, body: dict) -> None:
        with self.lock:
            self.claims[claim_id].outstanding_fen[party] = parse_yuan(body["outstanding"])
            if not any(self.claims[claim_id].outstanding_fen.values()):
                self.owing.discard(claim_id)

    def some_claim(self, rng: random.Random, owing: bool = False) -> tuple[int, SeenClaim] | None:
        """Any claim seen; `owing`: mostly one with a share seen unpaid (None if there is none),
        now and then any (a paid one: 422)."""
        with self.lock:
            among = self.owing if owing and rng.random() < 0.9 else self.claims
            if not among:
                return None
            claim_id = rng.choice(sorted(among))
            seen = self.claims[claim_id]
            return claim_id, SeenClaim(seen.loan_id, seen.loss_base_fen, dict(seen.outstanding_fen))


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def draw(rng: random.Random, world: SoakWorld, book: Book, key: str) -> Request:
    """One posting, drawn by MIX; a loan first while there is none to post on, a default while
    there is no claim to pay or recover on."""
    kind = rng.choices(list(MIX), weights=list(MIX.values()))[0]
    claim = book.some_claim(rng, owing=kind == "payment") if kind in ("payment", "recovery") else None
    if kind in ("payment", "recovery") and claim is None:
        kind = "default"  # nothing (seen) to pay or recover on
    loan_id = book.some_loan(rng)
    if loan_id is None and kind not in ("loan", "contribution"):
        kind = "loan"
    if kind == "payment":
        return claim_payment(rng, key, *claim)
    if kind == "recovery":
        return recovery(rng, key, claim[1])
    if kind == "loan":
        case = make_case(book.case_index(), world.bank)
        return Request(key, kind, "/v1/loans", case.payload)  # borrowers: the world's few, in turn
    if kind == "repayment":
        paid_on = f"2025-{rng.randint(3, 12):02d}-{rng.randint(2, 28):02d}"
        return Request(key, kind, f"/v1/loans/{loan_id}/repayments",
                       {"paid_on": paid_on, "principal": _yuan(rng.randint(1, 400) * 50_000),
                        "interest": _yuan(rng.randint(0, 5_000_00))})
    if kind == "fee":
        return Request(key, kind, f"/v1/loans/{loan_id}/fees",
                       {"kind": rng.choice(["premium", "guarantee_fee", "appraisal_fee"]),
                        "amount": _yuan(rng.randint(100_00, 5_000_00)), "paid_on": "2025-03-05"})
    if kind == "default":
        return Request(key, kind, f"/v1/loans/{loan_id}/default",
                       {"classified_on": "2026-06-01", "overdue_days": 93,
                        "overdue_interest": _yuan(rng.randint(0, 20_000_00))})
    return Request(key, kind, f"/v1/programs/{PROGRAM_CODE}/fund-contributions",
                   {"amount": _yuan(rng.randint(200, 2_000) * 100_00), "on": "2025-06-01"},  # small: the fund binds
                   "pool")


def claim_payment(rng: random.Random, key: str, claim_id: int, seen: SeenClaim) -> Request:
    """The insurer pays (it pays first) until its share is paid, then the pool; now and then the
    pool too early (409) or a payer more than it owes (422). Part of what is owed or all of it."""
    party = "insurer" if seen.outstanding_fen.get("insurer", 0) > 0 else "pool"
    if rng.random() < 0.1:
        party = "pool"
    owed_fen = seen.outstanding_fen.get(party, 0)
    if owed_fen <= 0 or rng.random() < 0.05:
        amount_fen = owed_fen + rng.randint(1, 100_00)
    else:
        amount_fen = owed_fen if rng.random() < 0.4 else rng.randint(1, owed_fen)
    paid_on = f"2026-{rng.randint(6, 11):02d}-{rng.randint(2, 28):02d}"
    return Request(key, "payment", f"/v1/claims/{claim_id}/payments",
                   {"amount": _yuan(amount_fen), "paid_on": paid_on, "reference": key}, party)


def recovery(rng: random.Random, key: str, seen: SeenClaim) -> Request:
    """A recovery on a defaulted loan: net = gross - costs, up to 40% of the loss base, so several
    reach it and the next is refused (422)."""
    gross_fen = rng.randint(max(1, seen.loss_base_fen // 100), max(2, seen.loss_base_fen * 2 // 5))
    costs_fen = rng.randint(0, gross_fen // 10)  # below the gross: every accepted one has an entry
    return Request(key, "recovery", f"/v1/loans/{seen.loan_id}/recoveries",
                   {"received_on": f"2026-{rng.randint(6, 11):02d}-{rng.randint(2, 28):02d}",
                    "gross": _yuan(gross_fen), "costs": _yuan(costs_fen),
                    "source": rng.choice(RECOVERY_SOURCES), "reference": key})


def settle(request: Request, port: int, headers: dict) -> None:
    """Send until there is an answer that is not 'still in flight' (or a dropped connection)."""
    for _ in range(MAX_SENDS):
        reply = post(port, request.path, request.payload, headers)
        request.replies.append(reply)
        if reply.status is not None and not _in_flight(reply):
            return
        time.sleep(SETTLE_PAUSE_S)
    raise AssertionError(f"{request.key}: no final answer after {MAX_SENDS} sends")


def perform(request: Request, ports: list[int], headers: dict, rng: random.Random) -> None:
    """Once; or retried after the answer; or retried at once, concurrently (maybe on the other server)."""
    how = rng.choices(["once", "retry after", "retry in flight"], weights=[6, 2, 2])[0]
    if how == "retry in flight":
        twin = threading.Thread(target=settle, args=(request, ports[-1], headers))
        twin.start()
        settle(request, ports[0], headers)
        twin.join()
        return
    settle(request, ports[0], headers)
    if how == "retry after":
        settle(request, ports[-1], headers)


def client(k: int, postings: int, world: SoakWorld, book: Book, ports: list[int], seed: int,
           out: list[Request]) -> None:
    rng = random.Random(seed * 1_000 + k)
    mine = ports[k % len(ports):] + ports[:k % len(ports)]  # retries go to the other server
    for n in range(postings):
        request = draw(rng, world, book, f"soak-{k}-{n}")
        perform(request, mine, world.headers(request.party, request.key), rng)
        out.append(request)
        if request.accepted:
            learn(book, request)


def learn(book: Book, request: Request) -> None:
    """What an accepted request tells the other clients: a loan, a claim, a share paid."""
    if request.kind == "loan":
        book.add_loan(request.answer["id"])
    elif request.kind == "default":
        book.add_claim(request.answer)
    elif request.kind == "payment":
        book.paid(int(request.path.split("/")[3]), request.party, request.answer)


def drive(world: SoakWorld, ports: list[int], clients: int, postings: int, seed: int) -> list[Request]:
    book, done = Book(), []
    run_threads(lambda k, _share: client(k, postings, world, book, ports, seed, done), [[]] * clients)
    return done


# --- the proof ----------------------------------------------------------------------------------

def entries_by_key(engine) -> dict[str, tuple[int, int]]:
    """Idempotency key -> (its entries, the first entry's id)."""
    with engine.connect() as conn:
        rows = conn.execute(select(entries.c.idempotency_key, func.count(), func.min(entries.c.id))
                            .where(entries.c.idempotency_key.is_not(None))
                            .group_by(entries.c.idempotency_key)).all()
    return {key: (count, first) for key, count, first in rows}


def balances(engine) -> dict[tuple, int]:
    """Every account's balance under a name that does not depend on ids the run allocated
    (a loan's accounts are named by its contract number; setup ids are the same in both books)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(accounts.c.kind, accounts.c.purpose, accounts.c.institution_id, accounts.c.borrower_id,
                   accounts.c.program_id, loans.c.contract_no,
                   func.coalesce(func.sum(postings.c.amount_fen), 0))
            .outerjoin(loans, loans.c.id == accounts.c.loan_id)
            .outerjoin(postings, postings.c.account_id == accounts.c.id)
            .group_by(accounts.c.id, loans.c.contract_no)).all()
    found = {tuple(row[:6]): int(row[6]) for row in rows}
    assert len(found) == len(rows), "two accounts share a name: the comparison would be ambiguous"
    return found


def replay(requests: list[Request], first_entry: dict[str, tuple[int, int]], engine, world: SoakWorld) -> int:
    """The accepted requests, one at a time in the order of their first entries, through the API
    into `engine` (set up like the original); loan and claim ids in paths are mapped to the
    replay's own (a replayed loan's accounts carry its contract number, so balances compare)."""
    from api import create_app
    http = create_app(engine).test_client()
    ids: dict[str, dict[int, int]] = {"loans": {}, "claims": {}}
    accepted = sorted((r for r in requests if r.accepted), key=lambda r: first_entry[r.key][1])
    for request in accepted:
        reply = http.post(_replay_path(request.path, ids), json=request.payload,
                          headers=world.headers(request.party, request.key))
        assert 200 <= reply.status_code < 300, (
            f"replay of {request.key} {request.path}: {reply.status_code} {reply.get_data(as_text=True)[:500]}")
        if request.kind in ("loan", "default"):
            ids["loans" if request.kind == "loan" else "claims"][request.answer["id"]] = reply.get_json()["id"]
    return len(accepted)


def _replay_path(path: str, ids: dict[str, dict[int, int]]) -> str:
    """/v1/loans/{id}/... and /v1/claims/{id}/... with the replay's id for the original's."""
    parts = path.split("/")
    if parts[2] in ids and len(parts) > 4:
        parts[3] = str(ids[parts[2]][int(parts[3])])
    return "/".join(parts)


def check_caps(engine, world: SoakWorld) -> None:
    """The pool's shared caps and its fund: never more used than allowed; no share overpaid."""
    terms = parse_terms(PROGRAM_TERMS, None)  # the terms setup_world created the programme with
    caps = next(p for p in terms.parties if p.institution == "GZ-POOL").caps
    limit = {"borrower_year": caps.per_borrower_year_fen, "program_year": caps.per_program_year_fen}
    with engine.connect() as conn:
        pool_id = conn.execute(select(institutions.c.id).where(institutions.c.code == "GZ-POOL")).scalar_one()
        used = conn.execute(select(cap_usage.c.scope, cap_usage.c.scope_key, cap_usage.c.used_fen)
                            .where(cap_usage.c.institution_id == pool_id)).all()
        fund = program_fund(world.bank.program_id).code
        fund_fen = conn.execute(select(func.coalesce(func.sum(postings.c.amount_fen), 0))
                                .join(accounts, accounts.c.id == postings.c.account_id)
                                .where(accounts.c.code == fund)).scalar_one()
        pool_paid_fen = conn.execute(select(func.coalesce(func.sum(claim_shares.c.paid_fen), 0))
                                     .join(claims, claims.c.id == claim_shares.c.claim_id)
                                     .where(claim_shares.c.institution_id == pool_id,
                                            claims.c.status != "withdrawn")).scalar_one()
        overpaid = conn.execute(select(func.count()).select_from(claim_shares)
                                .where(claim_shares.c.paid_fen > claim_shares.c.amount_fen)).scalar_one()
    assert fund_fen >= 0, f"the pool's fund is overdrawn: {fund_fen} fen"
    assert overpaid == 0, f"{overpaid} claim shares paid beyond what they owe"
    for scope, scope_key, used_fen in used:
        if scope in limit:
            assert used_fen <= limit[scope], f"pool {scope} {scope_key}: {used_fen} fen used, cap {limit[scope]}"
        if scope == "all":  # what it paid, the fund paid: the rest it still owes out of the fund
            assert used_fen - pool_paid_fen <= fund_fen, (
                f"the pool owes {used_fen - pool_paid_fen} fen unpaid, its fund holds {fund_fen}")


@dataclass
class Figures:
    requests: int
    sends: int
    retries: int
    replayed: int
    in_flight_409: int
    conflicts_409: int
    other_4xx: int
    accepted: int
    by_kind: dict
    refused_by_kind: dict  # kind -> {status: requests whose final answer it was}
    paid_by_party: dict  # party -> accepted claim payments
    p50_ms: float
    p99_ms: float
    entries: int
    replays: int = 0

    def accepted_of(self, kind: str) -> int:
        return self.by_kind.get(kind, 0) - sum(self.refused_by_kind.get(kind, {}).values())

    def lines(self) -> list[str]:
        refused = "; ".join(f"{kind} " + ", ".join(f"{status} x{n}" for status, n in sorted(counts.items()))
                            for kind, counts in sorted(self.refused_by_kind.items()))
        return [f"requests {self.requests:,} ({', '.join(f'{k} {v}' for k, v in sorted(self.by_kind.items()))})",
                f"accepted {self.accepted:,}; refused: 409 conflicts {self.conflicts_409:,}, other 4xx {self.other_4xx:,}",
                f"refused by kind: {refused or 'none'}",
                f"claim payments accepted by payer: "
                f"{', '.join(f'{k} {v}' for k, v in sorted(self.paid_by_party.items())) or 'none'}",
                f"sends {self.sends:,}: retries {self.retries:,}, answered 'still in flight' (409) "
                f"{self.in_flight_409:,}, replayed {self.replayed:,}",
                f"latency per send p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms",
                f"journal entries {self.entries:,}; replayed sequentially into a fresh book: {self.replays:,}"]


def _percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))] if sorted_values else 0.0


def check(engine, requests: list[Request]) -> Figures:
    """Everything but the replay: no 5xx, retries consistent, exactly once; returns the figures."""
    replies = [r for q in requests for r in q.replies]
    broken = [(q.key, r.status) for q in requests for r in q.replies if r.status is None or r.status >= 500]
    assert not broken, f"5xx or dropped connections: {broken[:10]}"
    for q in requests:
        answers = {(r.status, json.dumps(r.body, sort_keys=True)) for r in q.final if 200 <= r.status < 300}
        assert len(answers) <= 1, f"{q.key}: two different accepted answers {answers}"
        # (concurrent senders append in the order they finish, not the order they ran)
        ran = [r for r in q.final if 200 <= r.status < 300 and not r.replayed]
        assert len(ran) <= 1, f"{q.key}: accepted {len(ran)} times, not replayed"
    by_key = entries_by_key(engine)
    for q in requests:
        assert (q.key in by_key) == q.accepted, f"{q.key}: accepted={q.accepted}, entries={by_key.get(q.key)}"
    assert set(by_key) <= {q.key for q in requests}, "entries under keys nobody sent"
    finals = [q.final[-1].status for q in requests]
    refused: dict[str, Counter] = {}
    for q in requests:
        if not q.accepted:
            refused.setdefault(q.kind, Counter())[q.final[-1].status] += 1
    latencies = sorted(r.seconds * 1000 for r in replies)
    return Figures(requests=len(requests), sends=len(replies), retries=len(replies) - len(requests),
                   replayed=sum(r.replayed for r in replies), in_flight_409=sum(_in_flight(r) for r in replies),
                   conflicts_409=finals.count(409), other_4xx=sum(400 <= s < 500 and s != 409 for s in finals),
                   accepted=sum(q.accepted for q in requests), by_kind=dict(Counter(q.kind for q in requests)),
                refused_by_kind={kind: dict(counts) for kind, counts in refused.items()},
                paid_by_party=dict(Counter(q.party for q in requests if q.kind == "payment" and q.accepted)),
                   p50_ms=_percentile(latencies, 0.50), p99_ms=_percentile(latencies, 0.99),
                   entries=sum(count for count, _ in by_key.values()))


def verified(engine) -> chain.Verification:
    seal_chain(engine)  # every pending entry, batch by batch (as the scheduler does)
    with engine.connect() as conn:
        return chain.verify(conn)


def prove(engine, replay_engine, world: SoakWorld, requests: list[Request]) -> Figures:
    figures = check(engine, requests)
    check_caps(engine, world)
    by_key = entries_by_key(engine)
    replay_world = setup(replay_engine, len(world.bank.borrowers))
    figures.replays = replay(requests, by_key, replay_engine, replay_world)
    replayed_counts = {key: count for key, (count, _) in entries_by_key(replay_engine).items()}
    assert replayed_counts == {key: count for key, (count, _) in by_key.items()}, "entries per key differ"
    original, again = balances(engine), balances(replay_engine)
    differ = {name: (original.get(name), again.get(name)) for name in original.keys() | again.keys()
              if original.get(name) != again.get(name)}
    assert not differ, f"{len(differ)} balances differ from the sequential replay, e.g. {list(differ.items())[:5]}"
    result = verified(engine)
    assert result.balanced and result.chain_intact, result
    return figures


# --- processes ----------------------------------------------------------------------------------

def start_schedulers(database_url: str, count: int) -> list[subprocess.Popen]:
    env = {**os.environ, "IPLEDGER_DATABASE_URL": database_url}
    return [subprocess.Popen([sys.executable, "-m", "api.cli", "scheduler"], env=env, cwd=str(REPO_ROOT),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(count)]


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def soak(engine, replay_engine, *, clients: int, postings: int, servers: int = 1, schedulers: int = 0,
         borrowers: int = SHARED_BORROWERS,
         seed: int = 1) -> Figures:
    """Set up, drive `clients` x `postings` through `servers` gunicorns (2 workers each) with
    `schedulers` scheduler processes running, stop them, and prove the book (AssertionError if not)."""
    url = engine.url.render_as_string(hide_password=False)
    running = [Gunicorn(url).launch() for _ in range(servers)]  # they boot while the world is set up
    jobs = start_schedulers(url, schedulers)
    try:
        world = setup(engine, borrowers)
        for server in running:
            server.wait_until_ready()
        started = time.monotonic()
        requests = drive(world, [s.port for s in running], clients, postings, seed)
        log.info("drive %.1fs", time.monotonic() - started)
    finally:
        stop(jobs)
        for server in running:
            server.stop()
    started = time.monotonic()
    figures = prove(engine, replay_engine, world, requests)
    log.info("prove %.1fs", time.monotonic() - started)
    return figures


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--url", default=default_url())
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--postings", type=int, default=1000, help="postings per client")
    parser.add_argument("--servers", type=int, default=2, choices=[1, 2])
    parser.add_argument("--schedulers", type=int, default=2, choices=[0, 1, 2])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--borrowers", type=int, default=SHARED_BORROWERS, help="shared borrowers (1..200)")
    args = parser.parse_args(argv)
    if not (1 <= args.clients <= 64 and 1 <= args.postings <= 100_000 and 1 <= args.borrowers <= 200):
        parser.error("--clients 1..64, --postings 1..100,000, --borrowers 1..200")
    started = time.monotonic()
    with throwaway_database(args.url) as first, throwaway_database(args.url) as second:
        figures = soak(first.engine, second.engine, clients=args.clients, postings=args.postings,
                       borrowers=args.borrowers, servers=args.servers, schedulers=args.schedulers,
                       seed=args.seed)
    print(f"soak: {args.clients} clients x {args.postings} postings, {args.servers} gunicorn (2 workers"
          f" each), {args.schedulers} schedulers, {args.borrowers} borrowers, seed {args.seed}:"
          f" {time.monotonic() - started:.0f} s")
    for line in figures.lines():
        print("  " + line)
    print("  no 5xx; every accepted request once in the journal; caps and fund within limits;"
          " balances equal to the replay; verify intact")


if __name__ == "__main__":
    main()
