"""The ``autolung`` Typer app.

Commands live in ``autolung_cli/commands/<group>.py``, one module per group, each adding its
commands to :data:`app`. User-facing problems (:class:`autolung.errors.AutolungError`) become one
line on stderr and exit code 1; ``--debug`` shows the traceback instead. Library parameters named
in errors and log lines are shown as the flags that set them (:mod:`autolung_cli.flags`).
"""
from __future__ import annotations

import logging
import sys

import typer

from autolung.errors import AutolungError
from autolung_cli.flags import FlagFormatter, with_flags

app = typer.Typer(
    name="autolung",
    help="Self-configuring segmentation for CT, lung first.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _global_options(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at DEBUG level."),
) -> None:
    """Self-configuring segmentation for CT, lung first."""
    # ``debug`` is declared here for --help only: main() reads it from sys.argv, since it must
    # decide how to report an error that Typer's own parsing may not have reached.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(FlagFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler])


def _register_commands() -> None:
    """Import every command module; each adds its commands to :data:`app`.

    Imported here, not at the top: the modules import :data:`app` from this one (a cycle otherwise).
    A missing module is an ImportError, never skipped.
    """
    from autolung_cli.commands import (  # noqa: F401
        benchmark, data, data_tools, demo, evaluate, models, planning, postprocess, predict, preprocess, report, train)


def main() -> None:
    """Console-script entry point."""
    _register_commands()
    debug = "--debug" in sys.argv
    try:
        # Standalone mode: typer reports usage errors itself (exit 2) and exits via SystemExit.
        app()
    except AutolungError as exc:
        if debug:
            raise
        typer.echo(f"error: {with_flags(str(exc))}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        if debug:
            raise
        if isinstance(exc, OSError) and exc.filename is not None:
            # A file-system refusal outside an atomic write (a read-only output folder, a missing
            # permission): still one line naming the file.
            typer.echo(f"error: {exc.filename}: {(exc.strerror or str(exc)).lower()}", err=True)
        else:
            typer.echo(f"error: unexpected {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
                       err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
