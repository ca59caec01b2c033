"""The README's walkthrough files are accepted by the API as they are (docs stay true)."""
import json
from pathlib import Path


from tests.factories import InstitutionFactory, auth

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def test_walkthrough_files_post_cleanly(fresh_engine):
    from api import create_app
    client = create_app(fresh_engine).test_client()
    for code, kind in [("ICBC-GZ", "bank"), ("PICC-GZ", "insurer"), ("GZ-POOL", "pool"), ("GZ-TREASURY", "treasury")]:
        InstitutionFactory(code=code, kind=kind, region="440100")
    bank = auth("bank", "ICBC-GZ")
    for path, headers in [("programme.json", auth("admin")), ("borrower.json", bank),
                          ("loan.json", {**bank, "Idempotency-Key": "ICBC-GZ-2025-0042"})]:
        body = json.loads((EXAMPLES / path).read_text())
        url = {"programme.json": "/v1/programs", "borrower.json": "/v1/borrowers", "loan.json": "/v1/loans"}[path]
        response = client.post(url, json=body, headers=headers)
        assert response.status_code == 201, (path, response.get_json())
