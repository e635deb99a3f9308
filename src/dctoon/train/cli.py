"""Argument parsing for the training entry points, built from their settings dataclasses."""

from __future__ import annotations

import argparse

from . import settings
from ._util import add_dataclass_arguments, dataclass_from_args

# sub-command: (settings dataclass, module and function run with it, help)
COMMANDS = {
    "prepare": (settings.PrepareSettings, "dctoon.train.prepare", "prepare", "detect, align and filter a data set"),
    "ttn": (settings.TTNSettings, "dctoon.train.gan", "train_ttn", "train the texture translation network"),
    "distill": (settings.DistillSettings, "dctoon.train.distill", "distill",
                "distil a teacher style into a smaller, faster student TTN"),
    "export": (settings.ExportSettings, "dctoon.train.export", "export",
               "export a TTN checkpoint (or re-export a style) as a style folder"),
    "average": (settings.AverageSettings, "dctoon.train.export", "average",
                "average the weights of runs fine-tuned from one start (a model soup) into one checkpoint"),
    "ccn": (settings.CCNSettings, "dctoon.train.ccn", "run_ccn",
            "content calibration: few-shot StyleGAN2 fine-tuning, layer swap, samples"),
    "evaluate": (settings.EvalSettings, "dctoon.train.evaluate", "evaluate", "metrics and contact sheet of a style"),
}


def _load(module: str, attr: str):
    import importlib

    return getattr(importlib.import_module(module), attr)


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    """Add the sub-commands of ``COMMANDS`` to a sub-parser group; each sets
    ``args.train_run``, a callable taking the parsed args. PyTorch is imported only when a command
    runs, so ``--help`` works without it."""
    for name, (cls, module, fn_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_dataclass_arguments(p, cls)
        p.set_defaults(train_run=lambda args, cls=cls, module=module, fn_name=fn_name: _run(cls, module, fn_name, args))


def _run(cls, module: str, fn_name: str, args: argparse.Namespace):
    try:
        fn = _load(module, fn_name)
    except ImportError as e:
        if getattr(e, "name", "") == "torch" or "torch" in str(e):
            raise SystemExit(f"dctoon train needs PyTorch: pip install 'dctoon[train]' ({e})") from None
        raise
    return fn(dataclass_from_args(cls, args))
