"""Calls every operation of a `prism mock` of the served spec once and checks
that it answers the operation's first documented success status with the
documented example of that response, and that the example validates against
the response's schema (OpenAPI 3.1 / JSON Schema 2020-12, with
openapi-schema-validator of contract/requirements.txt).

A front-end team that develops against the mock sees exactly what the spec
promises; an example that drifted from its schema fails here, naming the
operation.

Usage: python check_mock.py SPEC.json MOCK_BASE_URL
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from typing import Any

from openapi_schema_validator import OAS31Validator

METHODS = ("get", "put", "post", "delete", "patch")


def deref(spec: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = spec
        for token in node["$ref"].removeprefix("#/").split("/"):
            target = target[token.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def path_value(spec: dict[str, Any], parameter: dict[str, Any]) -> str:
    """A value for a path parameter: its example, else one its pattern accepts."""
    parameter = deref(spec, parameter)
    return str(parameter.get("example", "mock-id-1"))


def request_for(spec: dict[str, Any], base_url: str, path: str, method: str, op: dict[str, Any]) -> urllib.request.Request:
    url_path = path
    for parameter in op.get("parameters", []):
        parameter = deref(spec, parameter)
        if parameter["in"] == "path":
            url_path = url_path.replace("{" + parameter["name"] + "}", path_value(spec, parameter))
    body = None
    headers = {"Accept": "*/*"}
    if op.get("security", spec.get("security")):
        headers["Authorization"] = "Bearer mock-token"
    if "requestBody" in op:
        content = deref(spec, op["requestBody"])["content"]["application/json"]
        example = content.get("example")
        if example is None:
            raise SystemExit(f"{op['operationId']}: the request body has no example to send")
        body = json.dumps(example).encode()
        headers["Content-Type"] = "application/json"
    return urllib.request.Request(base_url + url_path, data=body, headers=headers, method=method.upper())


def main() -> int:
    spec_path, base_url = sys.argv[1], sys.argv[2].rstrip("/")
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    problems: list[str] = []
    called = 0
    for path, item in spec["paths"].items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            name = op["operationId"]
            status = min(code for code in op["responses"] if code.startswith("2"))
            response = deref(spec, op["responses"][status])
            (media, content), *_ = response["content"].items()
            if "example" in content:
                example = content["example"]
            elif content.get("examples"):
                example = deref(spec, next(iter(content["examples"].values())))["value"]
            else:
                problems.append(f"{name}: response {status} {media} has no example")
                continue
            schema = dict(content["schema"], components=spec["components"])
            for error in OAS31Validator(schema).iter_errors(example):
                path_in = "/".join(str(p) for p in error.absolute_path)
                problems.append(f"{name}: the {status} example does not match its schema at /{path_in}: {error.message}")

            request = request_for(spec, base_url, path, method, op)
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    got_status, got_type, raw = answer.status, answer.headers.get("Content-Type", ""), answer.read()
            except urllib.error.HTTPError as error:
                got_status, got_type, raw = error.code, error.headers.get("Content-Type", ""), error.read()
            called += 1
            if str(got_status) != status:
                problems.append(f"{name}: {method.upper()} {path} answered {got_status}, not {status}: {raw[:300]!r}")
                continue
            if media == "application/json":
                got: Any = json.loads(raw) if raw else None
            else:
                got = raw.decode()
            if got != example:
                problems.append(f"{name}: the mock's {status} body is not the documented example: {raw[:300]!r}")
                continue
            print(f"  {name:22} {method.upper():6} {path:30} {got_status} {got_type.split(';')[0]}: the documented example")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    print(f"prism mock: {called} operations answered their documented example, each valid against its schema")
    return 0


if __name__ == "__main__":
    sys.exit(main())
