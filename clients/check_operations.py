"""Checks that both generated clients carry every operation of the spec under
its operationId: neither generator complains about a missing operationId (each
silently makes up a name from the method and path), so this does.

Usage: python check_operations.py SPEC TS_TYPES_FILE PYTHON_PACKAGE_DIR
(runs with the venv's Python, which has ruamel.yaml through openapi-python-client)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from ruamel.yaml import YAML

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def main() -> int:
    spec_path, ts_file, py_package = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    spec = YAML(typ="safe").load(spec_path.read_text())
    ts_types = ts_file.read_text()
    problems: list[str] = []
    count = 0
    for path, item in spec["paths"].items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            count += 1
            where = f"{method.upper()} {path}"
            operation_id = operation.get("operationId")
            if not operation_id:
                problems.append(f"{where}: no operationId")
                continue
            if f'{method}: operations["{operation_id}"];' not in ts_types:
                problems.append(f"{where}: operations[\"{operation_id}\"] missing from {ts_file.name}")
            tags = operation.get("tags") or []
            module = py_package / "api" / (snake(tags[0]) if tags else "default") / f"{snake(operation_id)}.py"
            if not module.is_file():
                problems.append(f"{where}: {module.relative_to(py_package.parent)} missing from the Python client")
    for problem in problems:
        print(f"    {problem}", file=sys.stderr)
    if problems or count == 0:
        return 1
    print(f"    {count} operations, each under its operationId in both clients")
    return 0


if __name__ == "__main__":
    sys.exit(main())
