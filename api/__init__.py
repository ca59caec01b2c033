"""The HTTP service: app factory, error handling, auth hook and the blueprints.

`api/` is thin: it parses, authorises, calls one function of `ledger/`, and renders.
"""
from __future__ import annotations

import logging
import re
import uuid

from flask import Flask, g, request, send_from_directory
from flask_smorest import Api
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from api import problems
from api.auth import authenticate_request
from api.openapi import ErrorResponses, money_input, null_in_enum, null_or_object
from api.settings import session_config
from ledger.db import make_engine
from ledger.errors import DomainError

MAX_REQUEST_BYTES = 16 * 1024 * 1024  # a batch of 10,000 loans is ~8 MB of JSON
JSON_TYPES = ("application/json",)
REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:-]{1,100}")


SWAGGER_UI_URL = "/docs/static/"
MAX_ID = 2**63 - 1  # BIGINT: a larger number in a path names nothing (404), not an overflow (500)


class IdConverter(IntegerConverter):
    """`<id:loan_id>`: a database id, 1 to 2^63-1."""

    def __init__(self, url_map, *args, **kwargs):
        super().__init__(url_map, min=1, max=MAX_ID)


class ProblemApi(Api):
    """flask-smorest's Api, answering every HTTP error as problem+json, and saying so in the
    OpenAPI document (every error response is a `Problem` of `application/problem+json`)."""

    ERROR_SCHEMA = problems.ProblemSchema
    DEFAULT_ERROR_RESPONSE_NAME = None  # every status is documented (api.openapi); no catch-all

    def handle_http_exception(self, error):
        return problems.from_http_exception(error)

    def _register_responses(self):
        import http

        from flask_smorest.spec import prepare_response
        for status in http.HTTPStatus:
            response = {"description": status.phrase}
            if status >= 400:
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, problems.PROBLEM_JSON)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "An RFC 9457 problem", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, problems.PROBLEM_JSON)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)


def create_app(engine: Engine | None = None, config: dict | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(
        API_TITLE="ipledger", API_VERSION="v1", OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/", OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL=SWAGGER_UI_URL,  # served from the installed package: no CDN
        MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES,
        API_SPEC_OPTIONS={
            "info": {"description": "Books for IP pledge loans and their risk-sharing schemes. "
                                    "Money is a string of yuan with two decimals; errors are "
                                    "RFC 9457 problem+json whose `type` is `urn:ipledger:problem:<slug>`. "
                                    "Every /v1 call needs `Authorization: Bearer <key>`; another "
                                    "institution's object is a 404. Query parameters an operation "
                                    "does not list are ignored. Every response carries X-Request-Id."},
            "security": [{"bearerAuth": []}],
            "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
        },
    )
    app.config.update(session_config())
    app.config.update(config or {})
    app.json.sort_keys = False  # keep the schemas' field order (id first), in JSON and CSV
    app.extensions["ipledger.engine"] = engine or make_engine()
    app.url_map.converters["id"] = IdConverter
    api = ProblemApi(app, spec_kwargs={"extra_plugins": [ErrorResponses()]})
    for attribute_function in (money_input, null_or_object, null_in_enum):
        api.ma_plugin.converter.add_attribute_function(attribute_function)
    api.register_converter(IdConverter, lambda converter: {"type": "integer", "minimum": 1,
                                                            "maximum": MAX_ID})
    _register_hooks(app)
    _register_blueprints(api)
    from api import dashboard
    app.register_blueprint(dashboard.blp)  # HTML pages: a plain blueprint, not in the OpenAPI document
    app.add_url_rule(f"{SWAGGER_UI_URL}<path:filename>", "swagger_ui_static", _swagger_ui_file)
    return app


def _swagger_ui_file(filename: str):
    """Swagger UI's scripts and styles for /docs, from the swagger-ui-bundle package, so the
    reference renders on a bank's network without internet."""
    from swagger_ui_bundle import swagger_ui_path
    return send_from_directory(swagger_ui_path, filename, max_age=86400)


def _register_hooks(app: Flask) -> None:
    @app.before_request
    def _request_id():
        # A caller's own id is echoed (to correlate logs) if it is short and plain; else ours.
        given = request.headers.get("X-Request-Id", "")
        g.request_id = given if REQUEST_ID_RE.fullmatch(given) else uuid.uuid4().hex

    app.before_request(_refuse_nul)
    app.before_request(_check_content_type)
    app.before_request(authenticate_request)

    @app.after_request
    def _stamp(response):
        response.headers["X-Request-Id"] = g.get("request_id", "")
        return response

    app.register_error_handler(DomainError, problems.from_domain_error)
    app.register_error_handler(HTTPException, problems.from_http_exception)
    app.register_error_handler(Exception, _unexpected)


def _unexpected(error: Exception):
    if isinstance(error, HTTPException):  # pragma: no cover - routed above
        return problems.from_http_exception(error)
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        # The database went away under a pooled connection (a restart, a failover): the
        # request wrote nothing; the next attempt gets a fresh connection.
        return problems.problem(503, "Service Unavailable", "The database connection was lost; "
                                "nothing was written. Retry the request.", "database-unavailable",
                                headers={"Retry-After": "1"})
    return problems.unexpected(error)


# A JSON "\u0000" escape not itself escaped (an even run of backslashes before it).
JSON_NUL_RE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000", re.IGNORECASE)


def _refuse_nul():
    """PostgreSQL text cannot hold NUL; SQLite can. Refuse it at the edge, on both, so that a
    request means the same everywhere and never reaches the database as a 500."""
    if "\x00" in request.path or any("\x00" in value for value in request.args.values()):
        return problems.problem(400, "Bad Request", "NUL characters are not allowed in the path or query.",
                                "nul-character")
    if request.content_length and JSON_NUL_RE.search(request.get_data(cache=True)):
        return problems.problem(422, "Validation failed", "NUL characters (\\u0000) are not allowed in text.",
                                "validation-error", [{"field": "body", "message": "contains a NUL character"}])
    return None


def _check_content_type():
    """A body we cannot read is 415, before anything else looks at it."""
    if request.method not in ("POST", "PUT", "PATCH") or not request.content_length:
        return None
    accepted = JSON_TYPES + getattr(app_view(), "_ipledger_extra_types", ())
    if request.mimetype not in accepted:
        return problems.problem(415, "Unsupported Media Type",
                                f"Send the body as {' or '.join(accepted)}.", "unsupported-media-type")
    return None


def app_view():
    from flask import current_app
    rule = request.url_rule
    return current_app.view_functions.get(rule.endpoint) if rule else None


def _register_blueprints(api: Api) -> None:
    from api import (accounts, audit, borrowers, claims, health, institutions, jobs, journal, loans,
                     programs, rates, reconciliations, recoveries, stress_tests, subsidy_batches, targets)
    for module in (health, institutions, borrowers, rates, programs, loans, recoveries, accounts, journal,
                   claims, subsidy_batches, targets, audit, reconciliations, stress_tests, jobs):
        api.register_blueprint(module.blp)


logging.getLogger("ipledger").setLevel(logging.INFO)
