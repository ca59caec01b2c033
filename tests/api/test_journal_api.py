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
    borrower = BorrowerFactory()
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
    auditor = {**auth("auditor"), "Accept": "text/csv"}
    journal = client.get("/v1/journal?limit=2", headers=auditor)
    assert journal.status_code == 200 and journal.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(journal.get_data(as_text=True))))
    page = client.get("/v1/journal?limit=2", headers=auth("auditor")).get_json()["items"]
    assert len(rows) == sum(len(entry["postings"]) for entry in page)  # a row per posting
    assert {"id", "kind", "effective_on", "posting_account", "posting_amount"} <= set(rows[0])
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
    ids = [make_loan(bank.id, BorrowerFactory().facts.credit_code, ProgramFactory().code) for _ in range(2)]
    response = client.get("/v1/loans?limit=10", headers={**auth("bank", bank.code), "Accept": "text/csv"})
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [int(r["id"]) for r in rows] == ids and rows[0]["pledge_count"] == "2"
    assert rows[0]["principal"] == "5000000.00"
