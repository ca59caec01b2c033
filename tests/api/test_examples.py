"""The README's walkthrough works as written, on an empty database and on a demo database with
the CSV sample imported (docs stay true): the institutions of its loop, the bank key, and the
example files posted by the keys and with the Idempotency-Key the README shows."""
import json
import re
from pathlib import Path

import pytest

from ledger import demo
from tests.factories import auth

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"
URLS = {"programme.json": "/v1/programs", "borrower.json": "/v1/borrowers", "loan.json": "/v1/loans"}


def walkthrough() -> dict:
    """What the README's 'A first loan, by hand' does, read from the README itself."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## A first loan, by hand", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    institutions = [item.split() for item in re.findall(r'"([^"$]+)"', block.split("; do", 1)[0])
                    if len(item.split()) == 3]
    region = re.search(r'\\"region\\":\\"(\d{6})\\"', block).group(1)
    posts = re.findall(r"curl -s localhost:8000(/v1/\w+) -H \"Authorization: Bearer \$(\w+)\"(.*?)-d @docs/examples/"
                       r"(\w+\.json)", block)
    return {"institutions": [(code, name.replace("_", " "), kind, region) for code, name, kind in institutions],
            "bank": re.search(r"keys create --institution (\S+) --role bank", block).group(1),
            "posts": [(url, who, re.findall(r"Idempotency-Key: ([^\"]+)\"", extra), file)
                      for url, who, extra, file in posts]}


def run_walkthrough(client, existing: set[str]) -> None:
    steps = walkthrough()
    admin = auth("admin")
    for code, name, kind, region in steps["institutions"]:
        made = client.post("/v1/institutions", json={"code": code, "name": name, "kind": kind, "region": region},
                           headers=admin)
        assert made.status_code == (409 if code in existing else 201), (code, made.get_json())
    keys = {"ADMIN": admin, "BANK": auth("bank", steps["bank"])}
    assert [file for _url, _who, _key, file in steps["posts"]] == ["programme.json", "borrower.json", "loan.json"]
    for url, who, idempotency, file in steps["posts"]:
        assert URLS[file] == url
        headers = {**keys[who], **({"Idempotency-Key": idempotency[0]} if idempotency else {})}
        response = client.post(url, json=json.loads((EXAMPLES / file).read_text()), headers=headers)
        assert response.status_code == 201, (file, response.get_json())


def test_walkthrough_on_an_empty_database(fresh_engine):
    from api import create_app
    run_walkthrough(create_app(fresh_engine).test_client(), existing=set())


def test_walkthrough_on_a_demo_database_with_the_csv_sample(fresh_engine):
    from api import create_app
    from ledger.loan_import import import_loans, read_file
    demo.run(fresh_engine, borrowers=30, loans=40)
    with read_file(ROOT / "docs" / "loans-sample.csv") as rows:
        assert import_loans(fresh_engine, "ICBC-GZ", list(rows)) == 3
    demo_codes = {code for code, *_ in demo.INSTITUTIONS}
    run_walkthrough(create_app(fresh_engine).test_client(), existing=demo_codes)
    steps = walkthrough()
    assert {code for code, *_ in steps["institutions"]} & demo_codes == {"GZ-POOL", "GZ-TREASURY"}  # as README says


def test_the_keys_section_names_an_institution_the_demo_does_not_have():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    created = re.findall(r"ipledger institutions create (\S+)", readme)
    assert created and not set(created) & {code for code, *_ in demo.INSTITUTIONS}


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.name)
def test_example_files_are_json_objects(path):
    assert isinstance(json.loads(path.read_text(encoding="utf-8")), dict)
