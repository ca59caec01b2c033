"""Loss histories (issue 8 item 6): `GET /v1/audit/losses` lists one row per loss event with the
running net loss per party, scoped to the caller, paged in JSON and streamed as CSV.

The book: the example terms (docs/examples/programme.json), a fund of 1,500,000.00 and a
5,000,000.00 loan with IP share 0.8 defaulting in full on 2026-06-01: insurer 1,000,000.00,
pool 1,500,000.00, the bank retains 2,500,000.00. The insurer pays in full, the pool half; a
recovery of 1,000,000.00 comes back in proportion (insurer 200,000.00, pool 300,000.00 sent to
the treasury, bank 500,000.00). A second loan's claim is opened and withdrawn.
Payments and recoveries are recorded by `ledger.claim_payments` and `ledger.recoveries`.
"""
import csv
import io
from datetime import date

import pytest

from ledger.claims import open_claim, withdraw_claim
from ledger.journal import SYSTEM
from ledger.claim_payments import pay_claim
from ledger.recoveries import record_recovery
from tests.api.claim_world import example_claim_book
from tests.factories import InstitutionFactory, auth, tx, unique


@pytest.fixture(scope="module")
def book(engine):
    from tests import factories
    factories.bind(engine)
    world = example_claim_book()
    ids, claim, bank_id = world.ids, world.claim, world.ids["bank"]
    second = world.another_loan()
    for payer, fen, on in ((ids["insurer"], 100_000_000, date(2026, 6, 10)), (ids["pool"], 75_000_000, date(2026, 6, 15))):
        tx(lambda conn: pay_claim(conn, claim["id"], payer, fen, on, unique("PAY"), SYSTEM))
    # The terms send the pool's part to the treasury (recoveries_to).
    tx(lambda conn: record_recovery(conn, world.loan_id, bank_id, date(2026, 9, 1), 100_000_000, 0, "auction",
                                    unique("REC"), SYSTEM))
    withdrawn = tx(lambda conn: open_claim(conn, second, bank_id, date(2026, 7, 1), SYSTEM, overdue_days=93))
    tx(lambda conn: withdraw_claim(conn, withdrawn["id"], bank_id, date(2026, 7, 2), SYSTEM))
    return {"program": world.program, "bank": world.codes["bank"], "claim": claim["id"], "withdrawn": withdrawn,
            **{f"{role}_code": code for role, code in world.codes.items()}}


def rows(client, book, headers=None, query=""):
    response = client.get(f"/v1/audit/losses?program={book['program']}&limit=1000{query}",
                          headers=headers or auth("admin"))
    assert response.status_code == 200, response.get_json()
    return [(r["on"], r["event"], r["institution"], r["amount"], r["loss"], r["net_loss"]) for r in response.get_json()["items"]]


def test_one_row_per_loss_event_with_the_running_net_loss(client, book):
    ins, pool, bank = book["insurer_code"], book["pool_code"], book["bank"]
    assert rows(client, book) == [
        ("2026-06-01", "claim_share", ins, "1000000.00", "1000000.00", "1000000.00"),
        ("2026-06-01", "claim_share", pool, "1500000.00", "1500000.00", "1500000.00"),
        ("2026-06-01", "bank_retained", bank, "2500000.00", "2500000.00", "2500000.00"),
        ("2026-06-10", "payment", ins, "1000000.00", "0.00", "1000000.00"),
        ("2026-06-15", "payment", pool, "750000.00", "0.00", "1500000.00"),
        # The second claim: the fund is owed out (1,500,000.00 unpaid... 750,000.00 still owed),
        # so the pool's share is cut; it is withdrawn the next day and every part given back.
        *_second_claim(book),
        ("2026-09-01", "recovery", ins, "200000.00", "-200000.00", "800000.00"),
        ("2026-09-01", "recovery", pool, "300000.00", "-300000.00", "1200000.00"),
        ("2026-09-01", "recovery", bank, "500000.00", "-500000.00", _bank_after(book, 2_500_000_00 - 500_000_00)),
    ]
    recovery = [r for r in client.get(f"/v1/audit/losses?program={book['program']}&from=2026-09-01",
                                      headers=auth("admin")).get_json()["items"]]
    assert [r["to"] for r in recovery] == [ins, book["treasury_code"], bank]


def _second_claim(book):
    """The withdrawn claim's rows, from its own record (its split is test_claims_db's business)."""
    claim, bank = book["withdrawn"], book["bank"]
    taken = [("2026-07-01", "claim_share", s["institution"], s["amount_fen"]) for s in claim["shares"] if s["amount_fen"]]
    running = {book["insurer_code"]: 1_000_000_00, book["pool_code"]: 1_500_000_00, bank: 2_500_000_00}
    out = []
    for on, event, who, fen in taken + [("2026-07-01", "bank_retained", bank, claim["bank_retained_fen"])]:
        running[who] += fen
        out.append((on, event, who, _yuan(fen), _yuan(fen), _yuan(running[who])))
    for on, event, who, fen in [("2026-07-02", "withdrawal", w, f) for _, _, w, f in taken] + [
            ("2026-07-02", "withdrawal", bank, claim["bank_retained_fen"])]:
        running[who] -= fen
        out.append((on, event, who, _yuan(fen), _yuan(-fen), _yuan(running[who])))
    return out


def _bank_after(book, fen):
    return _yuan(fen)


def _yuan(fen: int) -> str:
    from ledger.money import format_yuan
    return format_yuan(fen)


def test_each_caller_sees_its_own_rows_or_its_region(client, book):
    everything = rows(client, book)
    for role in ("insurer", "pool"):
        code = book[f"{role}_code"]
        assert rows(client, book, auth(role, code)) == [r for r in everything if r[2] == code], role
    assert rows(client, book, auth("bank", book["bank"])) == [r for r in everything if r[2] == book["bank"]]
    for region in ("440100", "440106", "000000"):
        assert rows(client, book, auth("auditor", InstitutionFactory(kind="auditor", region=region).code)) == everything
    assert rows(client, book, auth("fiscal", InstitutionFactory(kind="fiscal", region="440100").code)) == everything
    for outsider in (auth("bank"), auth("insurer"), auth("auditor", InstitutionFactory(kind="auditor", region="510100").code),
                     auth("auditor", InstitutionFactory(kind="auditor", region="440103").code)):
        assert rows(client, book, outsider) == []
    # A filter narrows and never widens: a bank asking for the insurer's rows gets none.
    assert rows(client, book, auth("bank", book["bank"]), f"&institution={book['insurer_code']}") == []


def test_filters_keep_the_running_figure_of_earlier_events(client, book):
    everything = rows(client, book)
    assert rows(client, book, query="&from=2026-06-10&to=2026-06-15") == everything[3:5]
    ins = book["insurer_code"]
    assert rows(client, book, query=f"&institution={ins}") == [r for r in everything if r[2] == ins]
    assert rows(client, book, query="&region=510100") == []
    assert rows(client, book, query="&region=440106") == everything


def test_pages_follow_each_other_with_the_running_figures(client, book):
    everything = rows(client, book)
    seen, cursor = [], ""
    while True:
        body = client.get(f"/v1/audit/losses?program={book['program']}&limit=2{cursor}", headers=auth("admin")).get_json()
        seen += [(r["on"], r["event"], r["institution"], r["amount"], r["loss"], r["net_loss"]) for r in body["items"]]
        if body["next"] is None:
            break
        assert len(body["items"]) == 2
        cursor = f"&after={body['next']}"
    assert seen == everything


def test_csv_is_streamed_whole(client, book):
    response = client.get(f"/v1/audit/losses?program={book['program']}&limit=1",
                          headers={**auth("admin"), "Accept": "text/csv"})
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.is_streamed
    table = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [(r["on"], r["event"], r["institution"], r["amount"], r["loss"], r["net_loss"]) for r in table] == rows(client, book)
    assert table[0]["to"] == "" and table[-1]["to"] == book["bank"]


def test_a_bad_cursor_and_a_backwards_span_are_422(client):
    for query in ("after=bm90LWEtY3Vyc29y", "from=2026-02-01&to=2026-01-01", "region=44", "from=2026-13-01"):
        response = client.get(f"/v1/audit/losses?{query}", headers=auth("admin"))
        assert response.status_code == 422, query
