"""Nothing ever runs code from file contents: a scan of the library's source.

Model files are loaded with ``torch.load(..., weights_only=True)`` only, arrays with
``allow_pickle=False`` (numpy's default), and no ``eval``/``exec``/``pickle.load``/``yaml.load``
appears. The behavioural side (a malicious pickle in a bundle is refused without creating its
file) is tests/inference/test_bundle.py::test_malicious_pickle_is_refused_without_running.
"""
from __future__ import annotations

import ast
from pathlib import Path

from .helpers import REPO

SOURCES = [p for folder in ("autolung", "autolung_cli") for p in (REPO / folder).rglob("*.py")]


def _calls(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Call):
            yield node


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return f"{_name(func.value)}.{func.attr}"
    return ""


def test_no_eval_exec_or_unsafe_deserialisation_in_the_library():
    assert len(SOURCES) > 50
    problems = []
    for path in SOURCES:
        for call in _calls(path):
            name = _name(call.func)
            keywords = {k.arg: k.value for k in call.keywords}
            where = f"{path.relative_to(REPO)}:{call.lineno} {name}"
            if name in ("eval", "exec", "builtins.eval", "builtins.exec", "compile"):
                problems.append(where)
            if name.endswith(("pickle.load", "pickle.loads", "yaml.load", "yaml.unsafe_load", "marshal.loads",
                              "dill.load", "joblib.load")):
                problems.append(where)
            if name == "torch.load":
                safe = keywords.get("weights_only")
                if not (isinstance(safe, ast.Constant) and safe.value is True):
                    problems.append(f"{where} without weights_only=True")
            if name in ("np.load", "numpy.load"):
                allow = keywords.get("allow_pickle")
                if allow is not None and not (isinstance(allow, ast.Constant) and allow.value is False):
                    problems.append(f"{where} with allow_pickle")
    assert not problems, problems
