"""Dataset commands: ``autolung verify``."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from autolung.dataset.verify import run_verification
from autolung.errors import AutolungError
from autolung_cli.app import app
from autolung_cli.common import data_root, dataset_folder, dataset_option, root_option


@app.command("verify")
def verify(
    dataset: str = dataset_option(),
    root: Optional[Path] = root_option(),
    num_processes: int = typer.Option(1, "-j", "--num-processes", min=1,
                                      help="Worker processes for reading cases."),
) -> None:
    """Check a raw dataset and list every problem (one line per problem, naming the file). Writes nothing."""
    folder = dataset_folder(dataset, data_root(root))
    result = run_verification(folder, num_processes=num_processes)
    for problem in result.problems:
        typer.echo(str(problem))
    if result.problems:
        raise AutolungError(f"{len(result.problems)} problem(s) found in {result.num_cases} case(s)", path=folder)
    typer.echo(f"ok, {result.num_cases} cases")
