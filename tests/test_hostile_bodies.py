"""Hostile JSON bodies and imported lines: deep nesting, huge numbers, NaN and Infinity, lone
surrogates, duplicate keys, every field with every JSON type. None may be a 500, and the
importer reads the same lines without a traceback, on both databases."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from api_support import assert_error
from cli_support import Cli
from leads_api.fields import FIELD_NAMES
from leads_api.json_shape import MAX_DEPTH
from leads_api.store.tenants import Organization

JSON = {"Content-Type": "application/json"}
BODY_ENDPOINTS = [("POST", "/api/leads"), ("PATCH", "/api/leads"), ("POST", "/api/stats")]
# Every key any body endpoint reads, and a few it does not.
KEYS = sorted({*FIELD_NAMES, "lossReason", "alsoQualified", "period", "startDate", "endDate",
               "", "x", "__proto__"})


def nested(depth: int, inner: str = "") -> str:
    return "[" * depth + inner + "]" * depth


def custom_body(depth: int) -> bytes:
    return ('{"name": "Deep", "custom": ' + nested(depth) + "}").encode()


# --- the reproducer: a deep `custom` ---------------------------------------------------------


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 254, 255, 600, 1_023])
def test_a_deeply_nested_value_is_a_400_naming_its_field(client: TestClient, depth: int) -> None:
    response = client.post("/api/leads", content=custom_body(depth), headers=JSON)
    error = assert_error(response, 400, "VALIDATION_ERROR", field="custom", maxDepth=MAX_DEPTH)
    assert "custom" in error["message"]


def test_nesting_beyond_the_parser_is_a_400_about_the_body(client: TestClient) -> None:
    response = client.post("/api/leads", content=custom_body(5_000), headers=JSON)
    assert_error(response, 400, "VALIDATION_ERROR", field="body")


def test_nesting_up_to_the_limit_is_kept(client: TestClient) -> None:
    response = client.post("/api/leads", content=custom_body(MAX_DEPTH), headers=JSON)
    assert response.status_code == 201, response.text
    lead = client.get(f"/api/leads/{response.json()['data']['id']}").json()["data"]
    assert lead["custom"] == nested(MAX_DEPTH)


@pytest.mark.parametrize(("method", "path"), BODY_ENDPOINTS)
def test_every_body_endpoint_checks_depth(client: TestClient, method: str, path: str) -> None:
    body = '{"note": ' + nested(300) + "}"
    response = client.request(method, path, content=body.encode(), headers=JSON)
    assert_error(response, 400, "VALIDATION_ERROR", field="note")


def test_import_skips_a_deep_line_and_names_its_number(
    cli: Cli, org: Organization, read: Any, tmp_path: Path
) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_text(
        '{"name": "Before"}\n'
        + '{"custom":' + nested(255) + "}\n"
        + '{"name": "After"}\n'
    )
    result = cli.ok("import", "--org", org.name, path, "--skip-invalid")
    assert "Traceback" not in result.output
    assert re.search(r"line 2: .*custom", result.stderr), result.stderr
    assert "2 created" in result.stdout and "1 skipped" in result.stdout
    assert sorted(lead["name"] for lead in read(org)) == ["After", "Before"]


def test_import_without_skip_invalid_refuses_a_deep_line(
    cli: Cli, org: Organization, read: Any, tmp_path: Path
) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_text('{"name": "Before"}\n{"custom":' + nested(255) + "}\n")
    result = cli("import", "--org", org.name, path)
    assert result.exit_code == 1
    assert re.search(r"line 2: .*custom", result.stderr), result.stderr
    assert read(org) == []


def test_import_skips_a_line_over_one_mib(
    cli: Cli, org: Organization, read: Any, tmp_path: Path
) -> None:
    path = tmp_path / "big.jsonl"
    path.write_text('{"name": "' + "x" * (1024 * 1024) + '"}\n{"name": "Small"}\n')
    result = cli.ok("import", "--org", org.name, path, "--skip-invalid")
    assert re.search(r"line 1: .*1 MiB", result.stderr), result.stderr
    assert [lead["name"] for lead in read(org)] == ["Small"]


# --- property tests: hostile JSON text, written by hand so that it can hold what a JSON
# --- encoder would refuse to write (NaN, lone surrogates, duplicate keys) ------------------

SCALARS = st.one_of(
    st.sampled_from([
        "null", "true", "false", "0", "-0", "1e400", "-1e400", "NaN", "Infinity", "-Infinity",
        "1" * 400, "-" + "9" * 30, "18446744073709551616", "1.5e-400", "0.1", "99.999",
        '"\\ud800"', '"\\udfff x"', '"\\u0000"', '"a\\nb"', '""', '"   "', '"granted"',
        '"won"', '"2026-01-15T10:30:00.000Z"', '"custom"', '"lead_' + "a" * 20 + '"',
    ]),
    st.integers().map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.text(max_size=300).map(json.dumps),
)


def _container(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    arrays = st.lists(children, max_size=4).map(lambda items: "[" + ",".join(items) + "]")
    objects = st.lists(st.tuples(st.sampled_from(KEYS).map(json.dumps), children), max_size=4).map(
        lambda pairs: "{" + ",".join(f"{k}:{v}" for k, v in pairs) + "}"
    )
    return arrays | objects


JSON_VALUES = st.one_of(
    st.recursive(SCALARS, _container, max_leaves=12),
    # around every depth limit: this service's, the encoder's (254) and the parser's (1,024)
    st.sampled_from([MAX_DEPTH, MAX_DEPTH + 1, 254, 255, 700, 1_023, 1_024, 1_100]).map(nested),
    st.integers(min_value=1, max_value=1_100).map(nested),
    st.integers(min_value=1, max_value=400).map(lambda d: "{\"a\":" * d + "1" + "}" * d),
)
# A body: an object of known and unknown keys (repeats allowed: duplicate keys) to any value.
BODIES = st.lists(
    st.tuples(st.sampled_from(KEYS).map(json.dumps), JSON_VALUES), max_size=6
).map(lambda pairs: "{" + ",".join(f"{k}:{v}" for k, v in pairs) + "}")


@pytest.mark.parametrize(("method", "path"), BODY_ENDPOINTS)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])
@given(body=BODIES)
def test_no_body_makes_a_500(client: TestClient, method: str, path: str, body: str) -> None:
    response = client.request(method, path, content=body.encode(), headers=JSON)
    assert response.status_code < 500, (body[:300], response.text)
    envelope = response.json()
    assert isinstance(envelope["success"], bool)
    if response.status_code >= 400:
        assert envelope["error"]["code"] and envelope["error"]["message"]


# A valid lead with one field set to anything: the field's own check is reached.
BASE = {"POST": '{"name": "Typed", ', "PATCH": '{"id": "lead_' + "b" * 20 + '", '}
ONE_FIELD = st.tuples(st.sampled_from(FIELD_NAMES), JSON_VALUES).map(
    lambda pair: BASE["POST"] + json.dumps(pair[0]) + ": " + pair[1] + "}"
)


@pytest.mark.parametrize("method", ["POST", "PATCH"])
@pytest.mark.parametrize("field", KEYS)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])
@given(value=JSON_VALUES)
def test_every_field_with_every_json_type(
    client: TestClient, method: str, field: str, value: str
) -> None:
    body = BASE[method] + json.dumps(field) + ": " + value + "}"
    response = client.request(method, "/api/leads", content=body.encode(), headers=JSON)
    assert response.status_code < 500, (body[:300], response.text)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])
@given(lines=st.lists(BODIES | ONE_FIELD | ONE_FIELD, min_size=1, max_size=12))
def test_the_importer_reads_the_same_bodies_without_a_traceback(
    cli: Cli, org: Organization, tmp_path: Path, lines: list[str]
) -> None:
    path = tmp_path / "hostile.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = cli("import", "--org", org.name, path, "--skip-invalid")
    assert result.exit_code == 0, (result.output, result.exception)
    assert "Traceback" not in result.output
    counts = dict(
        (word, int(n)) for n, word in re.findall(r"(\d+) (created|updated|unchanged|skipped)",
                                               result.stdout)
    )
    assert sum(counts.values()) == len([line for line in lines if line.strip()]), result.output


@pytest.mark.parametrize("field", FIELD_NAMES)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])
@given(values=st.lists(JSON_VALUES, min_size=1, max_size=10))
def test_the_importer_reads_every_field_with_every_json_type(
    cli: Cli, org: Organization, tmp_path: Path, field: str, values: list[str]
) -> None:
    path = tmp_path / "typed.jsonl"
    path.write_text("".join(BASE["POST"] + json.dumps(field) + ": " + v + "}\n" for v in values))
    result = cli("import", "--org", org.name, path, "--skip-invalid")
    assert result.exit_code == 0, (result.output, result.exception)
