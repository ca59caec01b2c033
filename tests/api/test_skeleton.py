"""The service skeleton through real HTTP requests: problems, auth, idempotency, paging."""
import json

import pytest

from tests.factories import InstitutionFactory, auth, make_key, tx, unique

PROBLEM = "application/problem+json"


def assert_problem(response, status):
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.content_type == PROBLEM
    body = response.get_json(force=True)
    assert body["status"] == status and body["title"] and "detail" in body and body["type"]
    assert "Traceback" not in response.get_data(as_text=True)
    return body


def institution_body(**over):
    body = {"code": unique("BANK"), "name": "Bank of Tests", "kind": "bank", "region": "440106"}
    body.update(over)
    return body


def test_health_and_readiness(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["revision"] == ready.get_json()["head"]


def test_readyz_is_503_before_migrations(unmigrated_engine):
    from api import create_app
    response = create_app(unmigrated_engine).test_client().get("/readyz")
    assert_problem(response, 503)


def test_openapi_and_docs_are_served(client):
    spec = client.get("/openapi.json").get_json()
    assert "/v1/institutions" in spec["paths"] and "/v1/audit/verify" in spec["paths"]
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert client.get("/docs").status_code == 200


def test_missing_bad_and_revoked_keys_are_401(client):
    assert_problem(client.get("/v1/institutions"), 401)
    assert_problem(client.get("/v1/institutions", headers={"Authorization": "Bearer nope"}), 401)
    secret = make_key("admin")
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.get("/v1/institutions", headers=headers).status_code == 200
    from ledger.keys import revoke_key
    tx(lambda conn: revoke_key(conn, secret.split("_")[1]))
    assert_problem(client.get("/v1/institutions", headers=headers), 401)


def test_wrong_role_is_403(client):
    body = assert_problem(client.post("/v1/institutions", json=institution_body(), headers=auth("bank")), 403)
    assert "admin" in body["detail"]


def test_create_and_list_institutions(client):
    admin = auth("admin")
    data = institution_body()
    created = client.post("/v1/institutions", json=data, headers=admin)
    assert created.status_code == 201
    assert created.headers["Location"] == f"/v1/institutions/{data['code']}"
    assert created.get_json()["code"] == data["code"]
    listed = client.get("/v1/institutions?region=440100&kind=bank&limit=1000", headers=admin).get_json()
    assert data["code"] in [item["code"] for item in listed["items"]]
    assert client.get(f"/v1/institutions/{data['code']}", headers=admin).get_json()["region"] == "440106"
    assert_problem(client.post("/v1/institutions", json=data, headers=admin), 409)


@pytest.mark.parametrize("override, field", [
    ({"kind": "casino"}, "kind"), ({"region": "44010"}, "region"), ({"code": ""}, "code"),
    ({"name": None}, "name"),
])
def test_validation_errors_name_the_field(client, override, field):
    body = assert_problem(client.post("/v1/institutions", json=institution_body(**override),
                                      headers=auth("admin")), 422)
    assert field in [error["field"] for error in body["errors"]]


def test_http_errors_are_problems(client, app):
    admin = auth("admin")
    assert_problem(client.get("/v1/nothing-here", headers=admin), 404)
    assert_problem(client.get("/v1/institutions/NOPE", headers=admin), 404)
    response = client.delete("/v1/institutions", headers=admin)
    assert_problem(response, 405)
    assert "GET" in response.headers["Allow"]
    assert_problem(client.post("/v1/institutions", data="code=x", headers=admin,
                               content_type="application/x-www-form-urlencoded"), 415)
    assert_problem(client.post("/v1/institutions", data="{not json", headers=admin,
                               content_type="application/json"), 400)
    big = "x" * (app.config["MAX_CONTENT_LENGTH"] + 1)
    assert_problem(client.post("/v1/institutions", data=big, headers=admin,
                               content_type="application/json"), 413)


def test_unexpected_exception_is_a_500_problem_without_trace(engine, monkeypatch):
    from api import create_app
    import api.institutions as view_module
    app = create_app(engine)
    monkeypatch.setattr(view_module.domain, "list_institutions",
                        lambda *a, **k: (_ for _ in ()).throw(RuntimeError("secret internals")))
    with app.test_client().unchecked() as client:  # a crash is, by design, undocumented
        response = client.get("/v1/institutions", headers=auth("admin"))
    body = assert_problem(response, 500)
    assert "secret internals" not in response.get_data(as_text=True)
    assert body["request_id"] == response.headers["X-Request-Id"]


def test_idempotent_replay_returns_the_first_response(client):
    headers = {**auth("admin"), "Idempotency-Key": unique("key")}
    data = institution_body()
    first = client.post("/v1/institutions", json=data, headers=headers)
    again = client.post("/v1/institutions", data=json.dumps(data, indent=4), headers=headers,
                        content_type="application/json")
    assert first.status_code == again.status_code == 201
    assert again.get_data() == first.get_data()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    assert "Idempotent-Replayed" not in first.headers


def test_same_key_different_body_is_422(client):
    headers = {**auth("admin"), "Idempotency-Key": unique("key")}
    assert client.post("/v1/institutions", json=institution_body(), headers=headers).status_code == 201
    other = institution_body()
    assert_problem(client.post("/v1/institutions", json=other, headers=headers), 422)
    listed = client.get("/v1/institutions?limit=1000", headers=headers).get_json()["items"]
    assert other["code"] not in [item["code"] for item in listed]


def test_keys_are_scoped_to_the_caller(client):
    key = unique("key")
    data = institution_body()
    first = client.post("/v1/institutions", json=data, headers={**auth("admin"), "Idempotency-Key": key})
    assert first.status_code == 201
    # admin keys share the platform scope: the same key from another admin key replays.
    again = client.post("/v1/institutions", json=data, headers={**auth("admin"), "Idempotency-Key": key})
    assert again.headers.get("Idempotent-Replayed") == "true"


def test_failed_request_is_not_stored_and_key_can_be_reused(client):
    headers = {**auth("admin"), "Idempotency-Key": unique("key")}
    assert_problem(client.post("/v1/institutions", json=institution_body(kind="casino"), headers=headers), 422)
    assert client.post("/v1/institutions", json=institution_body(), headers=headers).status_code == 201


def test_overlong_idempotency_key_is_400(client):
    headers = {**auth("admin"), "Idempotency-Key": "k" * 256}
    assert_problem(client.post("/v1/institutions", json=institution_body(), headers=headers), 400)


def test_in_flight_key_is_409(client, engine, backend):
    """While the first request holds the key, a second one with the same key is refused."""
    from api import idempotency
    headers = {**auth("admin"), "Idempotency-Key": unique("key")}
    scope = "platform"
    if backend == "postgres":
        from sqlalchemy import text
        with engine.connect() as holder:
            holder.execute(text("SELECT pg_advisory_xact_lock(:ns, hashtext(:k))"),
                           {"ns": idempotency.INFLIGHT_LOCK_NS, "k": f"{scope}\n{headers['Idempotency-Key']}"})
            response = client.post("/v1/institutions", json=institution_body(), headers=headers)
            holder.rollback()
    else:
        with idempotency._local_key(scope, headers["Idempotency-Key"]):
            response = client.post("/v1/institutions", json=institution_body(), headers=headers)
    assert_problem(response, 409)
    assert client.post("/v1/institutions", json=institution_body(), headers=headers).status_code == 201


def test_cursor_pagination_is_stable_and_complete(client):
    admin = auth("admin")
    region = "65" + unique("")[-4:].translate(str.maketrans("ABCDEF", "123456"))[:4]
    codes = {InstitutionFactory(region=region).code for _ in range(5)}
    seen, cursor = [], None
    while True:
        url = f"/v1/institutions?region={region}&limit=2" + (f"&after={cursor}" if cursor else "")
        body = client.get(url, headers=admin).get_json()
        seen += [item["code"] for item in body["items"]]
        assert len(body["items"]) <= 2
        cursor = body["next"]
        if cursor is None:
            break
    assert set(seen) == codes and len(seen) == 5
    assert_problem(client.get("/v1/institutions?limit=1001", headers=admin), 422)
    assert_problem(client.get("/v1/institutions?after=garbage", headers=admin), 422)


def test_lost_database_connection_is_503_not_500(engine, monkeypatch):
    from sqlalchemy.exc import DBAPIError
    from api import create_app
    import api.institutions as view_module

    def lost(*args, **kwargs):
        raise DBAPIError("SELECT 1", {}, Exception("server closed the connection"), connection_invalidated=True)
    app = create_app(engine)
    monkeypatch.setattr(view_module.domain, "list_institutions", lost)
    response = app.test_client().get("/v1/institutions", headers=auth("admin"))
    assert_problem(response, 503)
    assert response.headers["Retry-After"] == "1"


API_PATHS = {  # API.md paths built so far, with their methods
    "/v1/institutions": {"get", "post"}, "/v1/borrowers": {"post"}, "/v1/borrowers/{credit_code}": {"get"},
    "/v1/reference-rates/{name}": {"get", "post"}, "/v1/programs": {"get", "post"},
    "/v1/programs/{code}": {"get"}, "/v1/programs/{code}/versions": {"post"},
    "/v1/programs/{code}/fund-contributions": {"post"}, "/v1/programs/{code}/fund": {"get"},
    "/v1/loans": {"get", "post"}, "/v1/loans/batch": {"post"}, "/v1/loans/{loan_id}": {"get"},
    "/v1/loans/{loan_id}/repayments": {"post"}, "/v1/loans/{loan_id}/fees": {"post"},
    "/v1/accounts": {"get"}, "/v1/accounts/{account_id}/balance": {"get"}, "/v1/journal": {"get"},
    "/v1/audit/verify": {"get"}, "/healthz": {"get"}, "/readyz": {"get"},
}


def test_openapi_documents_the_contract(client):
    spec = client.get("/openapi.json").get_json()
    for path, methods in API_PATHS.items():
        assert methods <= set(spec["paths"].get(path, {})), path
    problem = spec["paths"]["/v1/institutions"]["post"]["responses"]["422"]["content"]
    assert problem["application/problem+json"]["schema"]["$ref"] == "#/components/schemas/Problem"
    repay = spec["paths"]["/v1/loans/{loan_id}/repayments"]["post"]
    [header] = [p for p in repay["parameters"] if p["name"] == "Idempotency-Key"]
    assert header["required"] is True and {"400", "409", "422", "201"} <= set(repay["responses"])
    assert spec["paths"]["/v1/loans"]["post"]["requestBody"]["content"]["application/json"]["schema"]


def test_request_id_is_echoed_only_when_plain(client):
    assert client.get("/healthz", headers={"X-Request-Id": "bank-42.a"}).headers["X-Request-Id"] == "bank-42.a"
    ours = client.get("/healthz", headers={"X-Request-Id": "x" * 101}).headers["X-Request-Id"]
    assert len(ours) == 32 and ours != "x" * 101


@pytest.mark.parametrize("path", ["/v1/loans/388416804463294018410774528", "/v1/loans/0",
                                  "/v1/accounts/9223372036854775808/balance"])
def test_ids_beyond_bigint_are_404_not_500(client, path):
    assert_problem(client.get(path, headers=auth("admin")), 404)


def test_forged_cursor_beyond_bigint_is_422(client):
    import base64
    cursor = base64.urlsafe_b64encode(b"id:99999999999999999999999").decode().rstrip("=")
    assert_problem(client.get(f"/v1/journal?after={cursor}", headers=auth("admin")), 422)


def test_nul_characters_are_refused_at_the_edge_on_every_database(client):
    """PostgreSQL text cannot hold NUL: refused before it reaches any database, never a 500."""
    admin = auth("admin")
    body = institution_body(name="bad\u0000name")
    assert_problem(client.post("/v1/institutions", json=body, headers=admin), 422)
    fine = institution_body(name="back\\u0000slash is text")  # an escaped backslash, not a NUL
    assert client.post("/v1/institutions", json=fine, headers=admin).status_code == 201
    assert_problem(client.get("/v1/institutions/A%00B", headers=admin), 400)
    assert_problem(client.get("/v1/institutions?kind=bank%00", headers=admin), 400)
    assert_problem(client.get("/v1/institutions", headers={"Authorization": "Bearer ipl_\u0000abcdefg_x"}), 401)
