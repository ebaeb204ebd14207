"""The Python API mirrors the CLI: same names, same results."""
from __future__ import annotations

import json

import numpy as np
import typer

from autolung import api
from autolung_cli.app import _register_commands, app


def test_every_cli_command_has_an_api_function_of_the_same_name():
    _register_commands()
    group = typer.main.get_command(app)
    context = typer.Context(group)
    visible = [name for name in group.list_commands(context) if not group.get_command(context, name).hidden]
    assert visible, "no commands registered"
    missing = [name for name in visible if not callable(getattr(api, name, None))]
    assert missing == []


def test_verify_and_plan_and_preprocess_through_the_api(tiny_msd, data_root):
    assert api.verify("Tiny_CT", data_root) == []
    summary = api.plan_and_preprocess("Tiny_CT", data_root, configurations=["3d_fullres"], num_processes=1,
                                      planner="default", run_verify=True)
    folder = data_root.preprocessed_configuration("Tiny_CT", "3d_fullres")
    plans = json.loads(data_root.plans_file("Tiny_CT").read_text())
    assert plans["dataset_name"] == "Tiny_CT" and summary is not None
    stored = sorted(p.name for p in folder.glob("*_seg.npy"))
    assert stored == [f"case_{i:03d}_seg.npy" for i in range(4)]
    data = np.load(folder / "case_000.npy", mmap_mode="r")
    assert data.dtype == np.float32 and data.shape[0] == 1
