"""``pulsegate check-config FILE``: validate an edge or a cloud config without starting."""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path
from typing import Any

from pulsegate.cli import Commands, example


def register(cmds: Commands) -> None:
    p = cmds.top.add_parser(
        "check-config", help="validate an edge or cloud TOML config: strict types, bed references, and the key, "
        "certificate and secret files it names on this machine; errors name the key and line")
    p.add_argument("file", type=Path,
                   help="the TOML file; a [gateway] table makes it an edge config, [cloud] a cloud one")
    p.add_argument("--schema-only", action="store_true",
                   help="check types and references only, not the files the config names (a config written "
                   "for another machine)")
    example(p, "pulsegate check-config /etc/pulsegate/edge.toml",
            "pulsegate check-config --schema-only examples/cloud.toml")
    p.set_defaults(handler=_check)


def config_kind(path: Path) -> str:
    """'edge' if the file has a [gateway] table, 'cloud' if it has [cloud]."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return "unknown"
    if "gateway" in data:
        return "edge"
    if "cloud" in data:
        return "cloud"
    return "unknown"


def _check(args: argparse.Namespace) -> int:
    from runtime.configload import ConfigError

    path: Path = args.file
    kind = config_kind(path)
    try:
        if kind == "edge":
            from edge.config import load_edge_config

            cfg: Any = load_edge_config(path)
        elif kind == "cloud":
            from cloud.config import load_cloud_config

            cfg = load_cloud_config(path)
        else:
            try:
                tomllib.loads(path.read_text())
            except (OSError, tomllib.TOMLDecodeError) as exc:
                print(f"{path}: cannot read TOML: {exc}", file=sys.stderr)
                return 1
            print(f"{path}: neither a [gateway] (edge) nor a [cloud] table: cannot tell which daemon it is for",
                  file=sys.stderr)
            return 1
    except ConfigError as exc:
        print(f"{path}: invalid {kind} config", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    if not args.schema_only:
        from runtime.config_files import file_problems
        from runtime.configload import located

        found = file_problems(cfg, path.parent)
        if found:
            print(f"{path}: {kind} config names files this machine cannot use (--schema-only skips this)",
                  file=sys.stderr)
            for problem in located(path.read_text(), path, found):
                print(f"  {problem}", file=sys.stderr)
            return 1
    print(f"{path}: valid {kind} config" + (" (types and references only)" if args.schema_only else ""))
    return 0
