"""Dataset commands: ``autolung verify``."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from autolung import api
from autolung.errors import DatasetProblemsError
from autolung_cli.app import app
from autolung_cli.common import data_root, dataset_option, root_option


@app.command("verify")
def verify(
    dataset: str = dataset_option(),
    root: Optional[Path] = root_option(),
    num_processes: int = typer.Option(1, "-j", "--num-processes", min=1,
                                      help="Worker processes for reading cases."),
) -> None:
    """Check a raw dataset and list every problem (one line per problem, naming the file). Writes nothing."""
    try:
        # The problems are listed one a line here, so the error itself names none.
        result = api.check_dataset(dataset, data_root(root), num_processes=num_processes, max_listed=0)
    except DatasetProblemsError as exc:
        for problem in exc.problems:
            typer.echo(str(problem))
        raise
    typer.echo(f"ok, {result.num_cases} cases")
