"""What one loan post costs the database, counted: a guard against round trips creeping back
(issue 11). The figures are statements the app sends per `POST /v1/loans` in steady state (the
bank's key cached, its settlement and the borrower's cash accounts existing)."""
from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import event

from tests.api.test_loans import Book
from tests.factories import unique

# Statements of one single post (BEGIN/COMMIT not counted: the DBAPI sends those).
MAX_STATEMENTS = {"postgresql": 13, "sqlite": 14}  # before issue 11: 20 and 22, plus a key read transaction


@contextmanager
def counting(engine):
    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement.split(None, 1)[0].upper() + " " + statement[:60].replace("\n", " "))
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_a_single_post_costs_few_statements(client, engine):
    book = Book()
    assert book.post(client).status_code == 201  # warm: key cached, shared accounts exist
    with counting(engine) as statements:
        response = book.post(client)
    assert response.status_code == 201, response.get_json()
    print(f"\n{engine.dialect.name}: {len(statements)} statements per single loan post")
    for statement in statements:
        print("   ", statement)
    assert len(statements) <= MAX_STATEMENTS[engine.dialect.name], statements


def test_the_posted_loan_is_what_a_read_returns(client, engine):
    """The response is built from what was written, not read back: it must equal the read."""
    book = Book()
    response = book.post(client, key=unique("k"))
    assert response.status_code == 201
    read = client.get(response.headers["Location"], headers=book.headers)
    assert read.status_code == 200
    assert response.get_json() == read.get_json()
