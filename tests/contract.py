"""The OpenAPI document as a test oracle: every response of every API test must be one the
document promises.

`ContractClient` is the Flask test client of the whole suite (conftest sets it on every app):
after each request it finds the documented operation (method and path template) and checks
that the status is documented, that the content type is one documented for that status, that
documented required headers are present, and that a JSON body validates against the documented
schema (OpenAPI 3.0 semantics: `nullable`, formats `date`/`date-time`). Requests outside the
document (unknown paths, methods a path does not have) are not checked: they are 404/405
problems by construction (tests/api/test_openapi.py checks those).

A test that means to provoke an undocumented response (a simulated crash) uses
`client.unchecked()`.
"""
from __future__ import annotations

import json
import re
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property

from flask.testing import FlaskClient
from openapi_schema_validator import OAS30Validator, oas30_format_checker


class ContractViolation(AssertionError):
    """A response the OpenAPI document does not promise."""


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    doc: dict


class Contract:
    """Operations of one app's document, matched by method and path, and their validators."""

    def __init__(self, spec: dict):
        self.spec = spec
        self._validators: dict = {}
        # Literal segments win over parameters: /v1/loans/batch before /v1/loans/{loan_id}.
        self._routes = sorted(((template, _template_regex(template)) for template in spec["paths"]),
                              key=lambda route: (route[0].count("{"), -len(route[0])))

    @cached_property
    def operations(self) -> list[Operation]:
        return [Operation(method.upper(), template, doc) for template, item in self.spec["paths"].items()
                for method, doc in item.items() if method in ("get", "post", "put", "patch", "delete")]

    def find(self, method: str, path: str) -> Operation | None:
        for template, regex in self._routes:
            if regex.fullmatch(path):
                doc = self.spec["paths"][template].get(method.lower())
                return Operation(method.upper(), template, doc) if doc else None
        return None

    def check(self, method: str, path: str, response) -> None:
        operation = self.find(method, path)
        if operation is None:
            return
        where = f"{operation.method} {operation.template} -> {response.status_code}"
        documented = operation.doc["responses"].get(str(response.status_code))
        if documented is None:
            raise ContractViolation(f"{where}: status not documented "
                                    f"(documented: {', '.join(operation.doc['responses'])}); "
                                    f"body: {response.get_data(as_text=True)[:500]}")
        content = documented.get("content", {})
        if content and response.mimetype not in content:
            raise ContractViolation(f"{where}: content type {response.mimetype} not documented "
                                    f"({', '.join(content)})")
        for name, header in documented.get("headers", {}).items():
            if header.get("required") and name not in response.headers:
                raise ContractViolation(f"{where}: required header {name} missing")
        media = content.get(response.mimetype, {})
        if "schema" in media and response.mimetype.endswith("json"):
            self._check_body(where, media["schema"], response)

    def _check_body(self, where: str, schema: dict, response) -> None:
        key = json.dumps(schema, sort_keys=True)
        if key not in self._validators:
            self._validators[key] = OAS30Validator({**schema, "components": self.spec["components"]},
                                                   format_checker=oas30_format_checker)
        body = json.loads(response.get_data(as_text=True))
        errors = sorted(self._validators[key].iter_errors(body), key=lambda e: list(e.absolute_path))
        if errors:
            first = errors[0]
            at = ".".join(str(part) for part in first.absolute_path) or "(body)"
            raise ContractViolation(f"{where}: body does not match the documented schema at {at}: "
                                    f"{first.message} ({len(errors)} error(s))")


def _template_regex(template: str) -> re.Pattern:
    parts = re.split(r"(\{[^}]+\})", template)
    return re.compile("".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts))


def contract_of(app) -> Contract:
    contract = app.extensions.get("tests.contract")
    if contract is None:
        with app.test_client() as raw:
            spec = FlaskClient.open(raw, "/openapi.json").get_json()
        contract = app.extensions["tests.contract"] = Contract(spec)
    return contract


class ContractClient(FlaskClient):
    """A test client that checks every response against the app's OpenAPI document."""

    checking = True

    def open(self, *args, **kwargs):
        response = super().open(*args, **kwargs)
        if self.checking:
            request = response.request
            contract_of(self.application).check(request.method, request.path, response)
        return response

    @contextmanager
    def unchecked(self):
        self.checking = False
        try:
            yield self
        finally:
            self.checking = True
