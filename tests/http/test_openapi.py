"""GET /openapi.json: a valid OpenAPI 3.1 document that names every route of the app."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate

from escalator.http import openapi
from escalator.http.openapi import ERRORS

METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE"}


@pytest.fixture
def document(client: FlaskClient) -> dict[str, Any]:
    """The document as a caller gets it."""
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert isinstance(body, dict)
    return body


def flask_operations(app: Flask) -> set[tuple[str, str]]:
    """(method, path) of every route, with <name> written as OpenAPI's {name}."""
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        found |= {(method, path) for method in (rule.methods or set()) & METHODS}
    return found


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema
    assert document["openapi"].startswith("3.1.")


def test_every_route_is_documented_and_nothing_else(app: Flask,
                                                   document: dict[str, Any]) -> None:
    documented = {(method.upper(), path) for path, item in document["paths"].items()
                  for method in item if method.upper() in METHODS}
    assert flask_operations(app) == documented
    assert ("POST", "/v1/conversations/{conversation_id}/turns") in documented


def test_every_operation_documents_its_responses_with_schemas(document: dict[str, Any]
                                                             ) -> None:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            statuses = set(operation["responses"])
            assert any(s.startswith("2") for s in statuses), (method, path)
            for status, response in operation["responses"].items():
                if "$ref" in response:
                    name = response["$ref"].rsplit("/", 1)[1]
                    assert str(ERRORS[name][0]) == status, (method, path, status)
                elif status != "204":
                    assert response["content"], (method, path, status)


def test_errors_are_the_envelope_with_their_stable_code(document: dict[str, Any]) -> None:
    responses = document["components"]["responses"]
    assert set(responses) == set(ERRORS)
    for code, response in responses.items():
        schema = response["content"]["application/json"]["schema"]
        assert schema["allOf"][0] == {"$ref": "#/components/schemas/Error"}
        assert schema["allOf"][1]["properties"]["error"]["properties"]["code"] == {
            "const": code}
    body = document["components"]["schemas"]["ErrorBody"]
    assert set(body["required"]) == {"code", "message"}
    assert "details" in body["properties"]


def test_request_bodies_come_from_the_marshmallow_schemas(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    turns = document["paths"]["/v1/conversations/{conversation_id}/turns"]["post"]
    assert turns["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Turn"}
    assert set(schemas["Turn"]["required"]) == {"turn_id", "message"}
    assert schemas["Turn"]["additionalProperties"] is False
    assert schemas["Message"]["properties"]["text"]["maxLength"] == 8000
    assert "turn_id" not in schemas["TranscriptTurn"]["required"]
    evaluate = document["paths"]["/v1/evaluate"]["post"]
    assert evaluate["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/EvaluateRequest"}


def test_context_limit_follows_the_app_config(document: dict[str, Any]) -> None:
    context = document["components"]["schemas"]["Turn"]["properties"]["context"]
    assert context["anyOf"][0]["maxProperties"] == 32
    assert context["anyOf"][1] == {"type": "null"}


def test_ids_in_paths_have_the_id_pattern(document: dict[str, Any]) -> None:
    parameter = document["components"]["parameters"]["conversation_id"]
    assert parameter["in"] == "path" and parameter["required"] is True
    assert parameter["schema"]["pattern"] == "^[A-Za-z0-9._:@-]{1,128}$"
    for path, item in document["paths"].items():
        if "{conversation_id}" in path:
            assert item["parameters"] == [{"$ref": "#/components/parameters/conversation_id"}]


def test_bearer_security_callers_everywhere_admin_for_reload(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert {s["scheme"] for s in schemes.values()} == {"bearer"}
    assert document["security"] == [{"caller": []}, {"admin": []}]
    paths = document["paths"]
    assert paths["/v1/ruleset/reload"]["post"]["security"] == [{"admin": []}]
    assert "403" in paths["/v1/ruleset/reload"]["post"]["responses"]
    assert paths["/v1/evaluate"]["post"]["security"] == [{"caller": []}, {"admin": []}]
    for open_path in ("/healthz", "/readyz", "/metrics", "/openapi.json"):
        assert paths[open_path]["get"]["security"] == []
    for path, item in paths.items():
        if path.startswith("/v1/"):
            for method, operation in item.items():
                if method != "parameters":
                    assert "401" in operation["responses"], (method, path)


def test_the_document_is_built_once_per_app(app: Flask, client: FlaskClient,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    build = openapi.build_document

    def counting_build(**limits: Any) -> dict[str, Any]:
        calls.append(limits)
        return build(**limits)

    monkeypatch.setattr(openapi, "build_document", counting_build)
    first = client.get("/openapi.json").data
    assert client.get("/openapi.json").data == first
    assert calls == [{"max_context_keys": 32, "max_body_bytes": 64 * 1024}]


def test_the_limits_in_the_document_are_the_apps() -> None:
    document = openapi.build_document(max_context_keys=5, max_body_bytes=1000)
    context = document["components"]["schemas"]["Turn"]["properties"]["context"]
    assert context["anyOf"][0]["maxProperties"] == 5
    assert "1000 bytes" in document["info"]["description"]
