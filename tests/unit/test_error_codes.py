"""Error codes are defined once (`ErrorCode`) and named through it everywhere in app/."""

import ast
from pathlib import Path

from app.services.errors import GEMINI_ERRORS, ErrorCode

APP = Path(__file__).resolve().parents[2] / "app"
# Words that are also a JSON key ("error"), a metric label or a health check's reason ("timeout"):
# a literal of these is not necessarily a code.
AMBIGUOUS = {ErrorCode.ERROR, ErrorCode.TIMEOUT}


def _docstrings(tree: ast.AST) -> set[int]:
    kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, kinds) and node.body and isinstance(node.body[0], ast.Expr)
    }


def test_no_module_spells_an_error_code_as_a_literal():
    codes = {code.value for code in ErrorCode} - {code.value for code in AMBIGUOUS}
    found = []
    for path in sorted(APP.rglob("*.py")):
        if path == APP / "services" / "errors.py":
            continue
        tree = ast.parse(path.read_text(), str(path))
        docstrings = _docstrings(tree)
        found += [
            f"{path.relative_to(APP.parent)}:{node.lineno} {node.value!r}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and node.value in codes and id(node) not in docstrings
        ]
    assert found == [], "use app.services.errors.ErrorCode instead of the literal"


def test_codes_are_unique_snake_case_and_gemini_s_are_codes():
    values = [code.value for code in ErrorCode]
    assert len(values) == len(set(values))
    assert all(value.isidentifier() and value.islower() for value in values)
    assert GEMINI_ERRORS < set(ErrorCode)
    # The reader leaving, a worker stopping or the index failing are never Gemini's failures.
    assert (
        not {
            ErrorCode.CLIENT_DISCONNECTED,
            ErrorCode.SHUTDOWN,
            ErrorCode.WORKER_STOPPED,
            ErrorCode.INDEX_NOT_READY,
            ErrorCode.INDEX_UNAVAILABLE,
            ErrorCode.INTERNAL_ERROR,
        }
        & GEMINI_ERRORS
    )
