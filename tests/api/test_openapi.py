"""The OpenAPI document is valid, complete and truthful, and /docs renders without a network.

What each operation may answer is checked on every response of the suite (tests/contract.py);
here: the document itself, and that the oracle does fail on an undocumented answer.
"""
import re
from html.parser import HTMLParser

import pytest
from openapi_spec_validator import validate

from tests.contract import ContractViolation, contract_of
from tests.factories import auth

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


@pytest.fixture(scope="module")
def spec(app):
    return contract_of(app).spec


def test_the_document_is_valid_openapi(spec):
    validate(spec)  # openapi-spec-validator: raises on any violation of OpenAPI 3.0


def test_every_route_of_the_app_is_documented(app, spec):
    routed = {(method, re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)) for rule in app.url_map.iter_rules()
              if rule.rule.startswith(("/v1", "/healthz", "/readyz"))
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(method.upper(), path) for path, item in spec["paths"].items() for method in item
                  if method != "parameters"}
    assert routed == documented


def test_every_error_is_a_problem_and_nothing_is_left_to_a_default(spec):
    for path, item in spec["paths"].items():
        for method, operation in _operations(item):
            assert "default" not in operation["responses"], (method, path)
            for status, response in operation["responses"].items():
                assert response.get("description"), (method, path, status)
                if int(status) >= 400:
                    assert response["content"] == {"application/problem+json": {"schema": PROBLEM_REF}}, (
                        method, path, status)


def test_statuses_follow_from_the_route_shape_and_roles(spec):
    for path, item in spec["paths"].items():
        for method, operation in _operations(item):
            statuses = set(operation["responses"])
            if path.startswith("/v1"):
                assert {"401", "503"} <= statuses, (method, path)
            if "{" in path:
                assert "404" in statuses, (method, path)
            if "requestBody" in operation:
                assert {"400", "413", "415", "422"} <= statuses, (method, path)
            if method == "post":
                assert "Idempotency-Key" in [p["name"] for p in operation.get("parameters", [])], path
    everyone = spec["paths"]["/v1/loans"]["get"]
    assert "403" not in everyone["responses"] and "Roles: bank, insurer" in everyone["description"]
    banks_only = spec["paths"]["/v1/loans/{loan_id}/repayments"]["post"]
    assert "allowed: bank" in banks_only["responses"]["403"]["description"]


def test_response_schemas_mark_every_always_present_field_required(spec):
    schemas = spec["components"]["schemas"]
    outputs = [name for name in schemas if name.endswith(("Out", "Page", "List"))] + ["Problem"]
    assert len(outputs) > 20
    # Every schema a response reaches (programme terms nested in versions included) is one of them.
    assert _reached_by_responses(spec) - {"Problem", "FieldError"} <= set(outputs)
    for name in outputs:
        schema = schemas[name]
        optional = {"errors"} if name == "Problem" else set()
        assert set(schema.get("required", [])) == set(schema["properties"]) - optional, name
    assert schemas["LoanOut"]["properties"]["closed_on"]["nullable"] is True
    assert schemas["Problem"]["properties"]["request_id"]["nullable"] is True


def test_a_nullable_object_is_that_object_or_null_exactly(spec):
    first_break = spec["components"]["schemas"]["VerifyOut"]["properties"]["first_break"]
    assert first_break == {"anyOf": [{"$ref": "#/components/schemas/ChainBreakOut"},
                                     {"type": "object", "nullable": True, "enum": [None]}]}


def test_list_cursors_have_no_default(spec):
    for path, item in spec["paths"].items():
        for _method, operation in _operations(item):
            for parameter in operation.get("parameters", []):
                if parameter["name"] == "after":
                    assert "default" not in parameter["schema"], path


@pytest.mark.parametrize("path", ["/v1/journal", "/v1/loans", "/v1/accounts", "/v1/institutions"])
def test_csv_lists_document_json_and_csv_with_the_paging_headers(spec, path):
    ok = spec["paths"][path]["get"]["responses"]["200"]
    assert ok["description"] and set(ok["content"]) == {"application/json", "text/csv"}
    page = ok["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert page.endswith("Page") and {"items", "next"} <= set(spec["components"]["schemas"][page]["properties"])
    assert {"Link", "X-Next-Cursor"} <= set(ok["headers"])


def test_request_money_is_a_yuan_string_or_an_integer_and_response_money_a_string(spec):
    amount_in = spec["components"]["schemas"]["RepaymentIn"]["properties"]["principal"]
    assert [branch["type"] for branch in amount_in["oneOf"]] == ["string", "integer"]
    assert "type" not in amount_in
    assert spec["components"]["schemas"]["RepaymentOut"]["properties"]["principal"]["type"] == "string"
    requests = responses = 0
    for name, schema in spec["components"]["schemas"].items():
        for field_name, field in schema.get("properties", {}).items():
            said = field.get("description", "")
            if "oneOf" in field:  # request money: its form said once, in its description
                requests += 1
                assert said.count("JSON integer") == 1 and "type" not in field, (name, field_name)
            elif name.endswith("Out") and field.get("pattern", "").endswith(r"\.[0-9]{2}$"):
                responses += 1
                assert said.endswith("Yuan, a string with two decimals.") and "JSON" not in said, (name, field_name)
                assert "default" not in field, (name, field_name)
    assert requests >= 20 and responses >= 20


def test_the_oracle_fails_on_an_undocumented_status_or_body(client, monkeypatch):
    """tests.contract itself can fail: an answer the document does not promise is refused."""
    import api.institutions as view
    from werkzeug.exceptions import ImATeapot
    from ledger.institutions import Institution

    def teapot(conn, code):
        raise ImATeapot()
    monkeypatch.setattr(view.domain, "get_institution", teapot)
    with pytest.raises(ContractViolation, match="418: status not documented"):
        client.get("/v1/institutions/ANY", headers=auth("admin"))
    monkeypatch.setattr(view.domain, "get_institution", lambda conn, code: Institution(1, code, "n", "bank", None))
    with pytest.raises(ContractViolation, match="at region: None"):
        client.get("/v1/institutions/ANY", headers=auth("admin"))


# --- /docs without a network ----------------------------------------------------------------

class _Assets(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        found = dict(attrs)
        if tag in ("script", "link") and (found.get("src") or found.get("href")):
            self.urls.append(found.get("src") or found.get("href"))


def test_docs_and_every_asset_they_load_are_served_by_the_app(client):
    page = client.get("/docs")
    assert page.status_code == 200
    parser = _Assets()
    parser.feed(page.get_data(as_text=True))
    assert len(parser.urls) == 3 and not [url for url in parser.urls if "//" in url]  # no other host
    for url in parser.urls:
        asset = client.get(url)
        assert asset.status_code == 200 and len(asset.get_data()) > 1000, url
    assert "SwaggerUIBundle" in client.get(next(u for u in parser.urls if u.endswith("bundle.js"))).get_data(as_text=True)
    assert client.get("/openapi.json").status_code == 200


def test_readyz_reads_the_migration_scripts_once(client, monkeypatch):
    import api.health
    calls = []
    real = api.health.head_revision
    monkeypatch.setattr(api.health, "head_revision", lambda: calls.append(1) or real())
    api.health._head.cache_clear()
    for _ in range(20):
        assert client.get("/readyz").status_code == 200
    assert len(calls) == 1


def _reached_by_responses(spec: dict) -> set[str]:
    """The component schemas any response body refers to, directly or nested."""
    reached: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] not in reached:
                reached.add(ref.rsplit("/", 1)[1])
                walk(spec["components"]["schemas"][ref.rsplit("/", 1)[1]])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    for item in spec["paths"].values():
        for _method, operation in _operations(item):
            walk(operation["responses"])
    return reached


def _operations(item: dict):
    return [(method, operation) for method, operation in item.items() if method != "parameters"]


def test_each_415_names_every_body_type_the_operation_reads(spec):
    for path, item in spec["paths"].items():
        for method, operation in _operations(item):
            if "requestBody" not in operation:
                continue
            description = operation["responses"]["415"]["description"]
            for media_type in operation["requestBody"]["content"]:
                assert f"`{media_type}`" in description, (method, path, media_type)
