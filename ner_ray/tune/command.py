"""The study command: `python -m ner_ray.tune STUDY.yaml [--resume | --overwrite] [--address ADDR] [key=value ...]`, also
`ner-ray tune ...` (the CLI adds these same arguments). Exit status 0 done, 2 bad input, 130 interrupted
(Ctrl-C; `--resume` continues)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ner_ray.credentials import redact
from ner_ray.errors import ConfigError, DataFormatError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="study YAML")
    parser.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. tune.num_samples=8")
    parser.add_argument("--resume", action="store_true", help="continue the interrupted study in train.output_dir")
    parser.add_argument("--overwrite", action="store_true",
                        help="start over in a train.output_dir that holds a study: the old folder is moved aside, not deleted")
    parser.add_argument("--address", help="Ray cluster to join (default: resources.address, else a local Ray)")


def run(args: argparse.Namespace) -> int:
    from ner_ray.tune.study_runner import StudyInterrupted, run_study

    try:
        run_study(args.file, args.overrides, resume=args.resume, address=args.address, overwrite=args.overwrite)
    except StudyInterrupted as stop:
        print(f"interrupted: {redact(str(stop))}", file=sys.stderr)
        return 130
    return 0


def parse_with_overrides(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """argparse stops filling a positional list at the first option, so in `STUDY.yaml --resume key=value` the
    overrides after the option come back unparsed: they join the others."""
    args, extra = parser.parse_known_args(argv)
    if extra and getattr(args, "overrides", None) is not None and not any(e.startswith("-") for e in extra):
        args.overrides = [*args.overrides, *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ner_ray.tune", description="run a study on Ray Tune (ASHA + Optuna), logged to MLflow")
    add_arguments(parser)
    args = parse_with_overrides(parser, argv)
    try:
        return run(args)
    except (DataFormatError, ConfigError, ValueError, FileNotFoundError) as err:
        print(f"error: {redact(str(err))}", file=sys.stderr)
        return 2
