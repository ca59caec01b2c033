"""Accounts, balances, the journal and verify through HTTP, scoped by role."""
from datetime import date

import pytest

from ledger import chain
from ledger.journal import AccountSpec, EntryDraft, Line, ensure_accounts, post_entry
from tests.factories import InstitutionFactory, auth, tx, unique


@pytest.fixture
def booked(engine):
    """Two banks in different regions, each with two accounts and one entry between them."""
    banks = [InstitutionFactory(region="440106"), InstitutionFactory(region="510104")]
    out = []
    for bank in banks:
        specs = [AccountSpec(unique(f"inst:{bank.id}:cash"), "cash", "asset", "settlement", institution_id=bank.id),
                 AccountSpec(unique(f"inst:{bank.id}:cap"), "capital", "equity", "capital", institution_id=bank.id)]
        ids = tx(lambda conn: ensure_accounts(conn, specs))
        cash, capital = ids[specs[0].code], ids[specs[1].code]
        tx(lambda conn: post_entry(conn, EntryDraft("capital_paid_in", date(2025, 1, 10),
                                                    (Line(cash, 100_000), Line(capital, -100_000)))))
        tx(lambda conn: post_entry(conn, EntryDraft("capital_paid_in", date(2025, 3, 10),
                                                    (Line(cash, 50), Line(capital, -50)))))
        out.append((bank, cash, capital))
    return out


def test_balance_now_and_as_of(client, booked):
    bank, cash, capital = booked[0]
    headers = auth("bank", bank.code)
    now = client.get(f"/v1/accounts/{cash}/balance", headers=headers).get_json()
    assert now["balance"] == "1000.50" and now["normal_balance"] == "1000.50"
    then = client.get(f"/v1/accounts/{capital}/balance?as_of=2025-02-01", headers=headers).get_json()
    assert then["balance"] == "-1000.00" and then["normal_balance"] == "1000.00"
    assert then["as_of"] == "2025-02-01" and then["account"]["owner"] == bank.code
    bad = client.get(f"/v1/accounts/{cash}/balance?as_of=2025-13-01", headers=headers)
    assert bad.status_code == 422


def test_a_bank_sees_only_its_own_accounts(client, booked):
    (bank, cash, _), (other, other_cash, _) = booked
    headers = auth("bank", bank.code)
    items = client.get("/v1/accounts?limit=1000", headers=headers).get_json()["items"]
    assert {item["owner"] for item in items} == {bank.code}
    assert client.get(f"/v1/accounts/{other_cash}/balance", headers=headers).status_code == 404


def test_regional_auditor_sees_its_region_only(client, booked):
    (bank, cash, _), (other, other_cash, _) = booked
    auditor_inst = InstitutionFactory(kind="auditor", region="440000")
    headers = auth("auditor", auditor_inst.code)
    assert client.get(f"/v1/accounts/{cash}/balance", headers=headers).status_code == 200
    assert client.get(f"/v1/accounts/{other_cash}/balance", headers=headers).status_code == 404
    owners = {i["owner"] for i in client.get("/v1/accounts?limit=1000", headers=headers).get_json()["items"]}
    assert bank.code in owners and other.code not in owners
    owned = client.get(f"/v1/accounts?owner={bank.code}", headers=headers).get_json()["items"]
    assert {i["id"] for i in owned} >= {cash}


def test_journal_lists_entries_with_postings_in_order(client, booked):
    bank, cash, capital = booked[0]
    body = client.get("/v1/journal?limit=1000", headers=auth("bank", bank.code)).get_json()
    entries = body["items"]
    assert [e["id"] for e in entries] == sorted(e["id"] for e in entries)
    assert len(entries) == 2
    first = entries[0]
    assert first["kind"] == "capital_paid_in" and first["effective_on"] == "2025-01-10"
    assert [(p["account"], p["amount"]) for p in first["postings"]] == [(cash, "1000.00"), (capital, "-1000.00")]
    assert first["recorded_at"].endswith("Z")


def test_journal_pages_with_cursor(client, booked):
    admin = auth("admin")
    page_one = client.get("/v1/journal?limit=1", headers=admin).get_json()
    page_two = client.get(f"/v1/journal?limit=1&after={page_one['next']}", headers=admin).get_json()
    assert page_two["items"][0]["id"] > page_one["items"][0]["id"]


def test_verify_is_for_auditors_and_reports_the_books(client, booked):
    assert client.get("/v1/audit/verify", headers=auth("bank")).status_code == 403
    tx(chain.seal_pending)
    body = client.get("/v1/audit/verify", headers=auth("auditor")).get_json()
    assert body["balanced"] is True and body["chain_intact"] is True
    assert body["entries"] >= 4 and body["postings"] >= 8 and body["first_break"] is None


def test_loan_sub_ledgers_are_visible_to_their_bank_with_owners_named(client, engine):
    from tests.factories import BorrowerFactory, ProgramFactory, make_loan
    bank = InstitutionFactory()
    borrower = BorrowerFactory(bank_id=bank.id)
    loan_id = make_loan(bank.id, borrower.facts.credit_code, ProgramFactory().code)
    items = client.get("/v1/accounts?limit=1000", headers=auth("bank", bank.code)).get_json()["items"]
    mine = {(i["code"], i["owner"], i["owner_kind"], i["loan"]) for i in items}
    assert (f"loan:{loan_id}:receivable", bank.code, "institution", loan_id) in mine
    assert (f"loan:{loan_id}:payable", borrower.facts.credit_code, "borrower", loan_id) in mine
    by_owner = client.get(f"/v1/accounts?owner={borrower.facts.credit_code}", headers=auth("auditor")).get_json()
    assert {i["code"] for i in by_owner["items"]} >= {f"loan:{loan_id}:payable", f"borrower:{borrower.id}:cash"}


def test_auditor_lists_answer_csv(client, booked):
    import csv
    import io
    from sqlalchemy import func, select

    from api.pagination import encode_cursor
    from ledger.schema import postings
    # A national auditor, paging from this fixture's first entry: what comes before depends on
    # the tests that ran earlier in this session's database.
    auditor = {**auth("auditor", InstitutionFactory(kind="auditor", region="000000").code), "Accept": "text/csv"}
    first = tx(lambda conn: conn.execute(select(func.min(postings.c.entry_id))
                                         .where(postings.c.account_id == booked[0][1])).scalar_one())
    journal = client.get(f"/v1/journal?limit=2&after={encode_cursor(first - 1)}", headers=auditor)
    assert journal.status_code == 200 and journal.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(journal.get_data(as_text=True))))
    assert len(rows) == 4 and {"id", "kind", "effective_on", "posting_account", "posting_amount"} <= set(rows[0])
    assert journal.headers["X-Next-Cursor"] and 'rel="next"' in journal.headers["Link"]
    nxt = client.get(f"/v1/journal?limit=2&after={journal.headers['X-Next-Cursor']}", headers=auditor)
    assert int(next(csv.DictReader(io.StringIO(nxt.get_data(as_text=True))))["id"]) > int(rows[-1]["id"])
    accounts = client.get("/v1/accounts?limit=5", headers=auditor)
    assert accounts.get_data(as_text=True).startswith("id,code,name,kind")
    assert client.get("/v1/journal?limit=2", headers=auth("auditor")).mimetype == "application/json"


def test_loans_csv_has_one_row_per_loan(client, engine):
    import csv
    import io
    from tests.factories import BorrowerFactory, ProgramFactory, make_loan
    bank = InstitutionFactory()
    ids = [make_loan(bank.id, BorrowerFactory(bank_id=bank.id).facts.credit_code, ProgramFactory().code) for _ in range(2)]
    response = client.get("/v1/loans?limit=10", headers={**auth("bank", bank.code), "Accept": "text/csv"})
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [int(r["id"]) for r in rows] == ids and rows[0]["pledge_count"] == "2"
    assert rows[0]["principal"] == "5000000.00"


# --- the chain head and proving extension (issue 7, item 5) --------------------------------

def _post_between(bank_region: str = "440106") -> None:
    bank = InstitutionFactory(region=bank_region)
    specs = [AccountSpec(unique(f"inst:{bank.id}:cash"), "cash", "asset", "settlement", institution_id=bank.id),
             AccountSpec(unique(f"inst:{bank.id}:cap"), "capital", "equity", "capital", institution_id=bank.id)]
    ids = list(tx(lambda conn: ensure_accounts(conn, specs)).values())
    tx(lambda conn: post_entry(conn, EntryDraft("capital_paid_in", date(2025, 1, 10),
                                                (Line(ids[0], 700), Line(ids[1], -700)))))


def test_the_head_is_published_to_auditors_and_admins(client, booked):
    tx(chain.seal_pending)
    head = tx(chain.head)
    for role in ("bank", "insurer", "fiscal"):
        assert client.get("/v1/audit/head", headers=auth(role)).status_code == 403
    body = client.get("/v1/audit/head", headers=auth("auditor")).get_json()
    assert body == {"seq": head.seq, "hash": head.hash, "entry_id": head.entry_id,
                    "sealed_at": body["sealed_at"], "anchor": f"{head.seq}:{head.hash}"}
    assert body["sealed_at"].endswith("Z")
    assert client.get("/v1/audit/head", headers=auth("admin")).get_json() == body


def test_verify_proves_the_book_extends_a_head_written_down_earlier(client, booked):
    auditor = auth("auditor")
    tx(chain.seal_pending)
    written_down = client.get("/v1/audit/head", headers=auditor).get_json()["anchor"]
    _post_between()
    tx(chain.seal_pending)
    body = client.get(f"/v1/audit/verify?expect={written_down}", headers=auditor).get_json()
    seq, hash_ = written_down.split(":")
    assert body["expect"] == {"seq": int(seq), "hash": hash_, "extends": True, "reason": None}
    assert body["head"]["seq"] > int(seq) and body["chain_intact"] is True
    other_hash = ("1" if hash_[0] == "0" else "0") + hash_[1:]
    refused = client.get(f"/v1/audit/verify?expect={seq}:{other_hash}", headers=auditor).get_json()
    assert refused["expect"]["extends"] is False and "another hash" in refused["expect"]["reason"]
    assert client.get("/v1/audit/verify", headers=auditor).get_json()["expect"] is None


@pytest.mark.parametrize("expect", ["12", "abc", "1:xyz", "0:" + "a" * 64, "1:" + "a" * 65, ""])
def test_verify_refuses_a_malformed_head_with_422(client, expect):
    response = client.get(f"/v1/audit/verify?expect={expect}", headers=auth("auditor"))
    assert response.status_code == 422 and response.mimetype == "application/problem+json"
    assert [e["field"] for e in response.get_json()["errors"]] == ["query.expect"]


def test_a_regional_auditor_gets_the_whole_book_proof_and_its_regions_counts(client, booked):
    _post_between("540102")  # Lhasa: no other test books there
    _post_between("540102")
    tx(chain.seal_pending)
    regional = client.get("/v1/audit/verify", headers=auth("auditor", InstitutionFactory(
        kind="auditor", region="540000").code)).get_json()
    national = client.get("/v1/audit/verify", headers=auth("auditor", InstitutionFactory(
        kind="auditor", region="000000").code)).get_json()
    assert regional["scope"] == {"region": "540000", "entries": 2, "postings": 4}
    assert national["scope"] == {"region": "000000", "entries": national["entries"],
                                 "postings": national["postings"]}
    assert regional["entries"] == national["entries"] and regional["head"] == national["head"]


def test_the_head_of_an_unsealed_book_is_all_null(fresh_engine):
    from api import create_app
    client = create_app(fresh_engine, {"TESTING": True}).test_client()
    body = client.get("/v1/audit/head", headers=auth("admin")).get_json()
    assert body == {"seq": None, "hash": None, "entry_id": None, "sealed_at": None, "anchor": None}
    verified = client.get("/v1/audit/verify", headers=auth("admin")).get_json()
    assert verified["head"] is None and verified["scope"] == {"region": "000000", "entries": 0, "postings": 0}
