"""Options that take several values after one flag: ``-c 2d 3d_fullres``, ``--patch-size 32 64 64``.

Click options (vendored inside Typer) take a fixed number of values, so a command class rewrites the arguments before
parsing: ``-c 2d 3d_fullres`` becomes ``-c 2d -c 3d_fullres``. Declare those options as lists
(``list[str]``, repeated) and name them in ``multi_value_command(...)``::

    @app.command("preprocess", cls=multi_value_command("-c", "--configurations"))
    def preprocess(configurations: list[str] = typer.Option(None, "-c", "--configurations")): ...

Values run until the next token starting with ``-`` (so negative numbers cannot follow; none of
these options needs them). ``--opt=value`` and the repeated form keep working.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from typer.core import TyperCommand


def regroup_multi_value_args(args: Sequence[str], options: Iterable[str]) -> list[str]:
    """Rewrite ``OPT a b c`` into ``OPT a OPT b OPT c`` for every option in ``options``.

    Args:
        args: command-line arguments (without the program and command names).
        options: option spellings that take several values, e.g. ``{"-c", "--configurations"}``.

    Returns:
        The rewritten arguments; everything after ``--`` is left alone.
    """
    names = set(options)
    out: list[str] = []
    index = 0
    while index < len(args):
        token = args[index]
        if token == "--":
            out.extend(args[index:])
            break
        index += 1
        if token not in names:
            out.append(token)
            continue
        values = []
        while index < len(args) and not args[index].startswith("-"):
            values.append(args[index])
            index += 1
        if not values:
            out.append(token)  # let click report the missing value
        for value in values:
            out.extend([token, value])
    return out


def multi_value_command(*options: str) -> type[TyperCommand]:
    """A Typer command class whose ``options`` accept several values after one flag.

    Args:
        options: option spellings, e.g. ``"-c", "--configurations", "--patch-size"``.

    Returns:
        A ``TyperCommand`` subclass to pass as ``cls=`` to ``app.command``.
    """
    spellings = frozenset(options)

    class MultiValueCommand(TyperCommand):
        def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
            return super().parse_args(ctx, regroup_multi_value_args(args, spellings))

    return MultiValueCommand
