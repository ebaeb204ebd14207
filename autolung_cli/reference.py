"""Generate the CLI reference (docs/cli.md) from the Typer app itself, so it cannot drift.

Run ``python -m autolung_cli.reference > docs/cli.md``; a test checks the file is current.
"""
from __future__ import annotations

import typer

from autolung_cli.app import _register_commands, app


def _format_param(param) -> str:
    # typer vendors its own click, so parameters are told apart by their type name, not by class.
    if param.param_type_name == "argument":
        return f"| `{param.name.upper()}` | argument | {'required' if param.required else 'optional'} |"
    names = ", ".join(f"`{name}`" for name in (*param.opts, *param.secondary_opts))
    help_text = (getattr(param, "help", None) or "").replace("|", "\\|").replace("\n", " ")
    default = param.default
    if callable(default) or default in (None, (), [], False):
        shown = ""
    else:
        shown = f"`{default}`"
    return f"| {names} | {help_text} | {shown} |"


def command_reference() -> str:
    """Markdown describing every visible command and its options."""
    _register_commands()
    group = typer.main.get_command(app)
    lines = ["# CLI reference", "", "Generated from the Typer app by `python -m autolung_cli.reference`;",
             "do not edit by hand.", ""]
    context = typer.Context(group)
    for name in sorted(group.list_commands(context)):
        command = group.get_command(context, name)
        if command is None or command.hidden:
            continue
        lines += [f"## `autolung {name}`", "", (command.help or "").strip(), "",
                  "| option | help | default |", "| --- | --- | --- |"]
        lines += [_format_param(p) for p in command.params if p.name != "help"]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    print(command_reference(), end="")
