"""The SDK and the wire schemas stay light: importing ``fairpool.client`` into a training script,
or ``fairpool.schemas`` anywhere, loads no server code (no SQLAlchemy, FastAPI, store, services,
control loop or executors). Each check runs in a fresh interpreter, so what the test process
already imported does not hide what the import pulls in."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: top-level packages and fairpool subpackages a client must never load
SERVER_ONLY = ("sqlalchemy", "fastapi", "starlette", "uvicorn", "alembic", "ray",
               "fairpool.store", "fairpool.services", "fairpool.api", "fairpool.control",
               "fairpool.executors")

#: prints the modules of SERVER_ONLY that are loaded after running the code before it
REPORT = """
import json, sys
heavy = {heavy!r}
print(json.dumps(sorted(m for m in sys.modules
                        if any(m == h or m.startswith(h + ".") for h in heavy))))
"""

CLIENT = """
import fairpool.client
from fairpool.client import Client, FairpoolError, LogPage
from fairpool.schemas.jobs import JobSubmit

client = Client(url="http://127.0.0.1:9", token="not-a-real-token")
client.close()
# validation the SDK runs before sending: the image rule once came from the executors
JobSubmit(project="p", command=["python", "train.py"], image="ghcr.io/org/train:1.2")
"""

SCHEMAS = """
import importlib, pkgutil
import fairpool.schemas
for info in pkgutil.iter_modules(fairpool.schemas.__path__, "fairpool.schemas."):
    importlib.import_module(info.name)
"""


def loaded_after(code: str, home: Path) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAIRPOOL_")}
    env["HOME"] = str(home)  # no client config of whoever runs the tests
    out = subprocess.run([sys.executable, "-c", code + REPORT.format(heavy=SERVER_ONLY)],
                         capture_output=True, text=True, env=env, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    loaded: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return loaded


@pytest.mark.parametrize("code", [CLIENT, SCHEMAS], ids=["client", "schemas"])
def test_imports_no_server_code(code: str, tmp_path: Path) -> None:
    assert loaded_after(code, tmp_path) == []


def test_schemas_import_only_the_domain() -> None:
    """The wire format rests on pydantic, the standard library and ``fairpool.domain`` alone,
    lazy imports inside functions included."""
    import fairpool.schemas

    for path in Path(fairpool.schemas.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                if name == "fairpool" or name.startswith("fairpool."):
                    assert name.startswith(("fairpool.domain", "fairpool.schemas")), \
                        f"{path.name} imports {name}"


def test_the_check_sees_server_code(tmp_path: Path) -> None:
    """The report is not vacuous: importing the store does show up in it."""
    assert "fairpool.store" in loaded_after("import fairpool.store.models\n", tmp_path)
