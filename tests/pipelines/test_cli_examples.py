"""Every example the command line shows in its ``--help`` runs: with ``--dry-run`` where it would reach a
cluster or start a pipeline, from a folder holding the files the help text says it needs."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
from pathlib import Path

import pytest

from kfpc.pipelines import cli

REPO = Path(__file__).resolve().parents[2]
_FILE_BLOCK = re.compile(r"where ``([\w.-]+)`` holds[^\n]*::\n\n((?:    .*\n?)+)")


def _parsers(parser: argparse.ArgumentParser, path=("kfpc",)):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def _help_text(parser: argparse.ArgumentParser) -> str:
    # the parser's own texts, not format_help(): `run --help` prints more than argparse knows
    return "\n".join(filter(None, (parser.description, parser.epilog)))


def _examples(text: str) -> list[str]:
    """Command lines starting with ``kfpc `` (backslash continuations joined)."""
    found, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("kfpc "):
            command = line
            while command.endswith("\\") and i + 1 < len(lines):
                i += 1
                command = command[:-1].rstrip() + " " + lines[i].strip()
            found.append(command.split("  #")[0].strip())
        i += 1
    return found


def _collect():
    seen = {}
    for path, parser in _parsers(cli.build_parser()):
        text = _help_text(parser)
        files = {name: "\n".join(line[4:] for line in block.splitlines()) for name, block in _FILE_BLOCK.findall(text)}
        for example in _examples(text):
            seen.setdefault(example, (" ".join(path), files))
    return seen


EXAMPLES = _collect()


def test_the_help_texts_show_examples_of_every_command_that_reaches_out():
    commands = {shlex.split(example)[1] for example in EXAMPLES}
    assert {"run", "params", "submit", "schedule", "upload"} <= commands, sorted(EXAMPLES)


@pytest.mark.parametrize("example", sorted(EXAMPLES), ids=lambda e: e[:60])
def test_every_help_example_runs(example, tmp_path, monkeypatch):
    where, files = EXAMPLES[example]
    for name, content in files.items():
        (tmp_path / name).write_text(content + "\n")
    (tmp_path / "pipelines").symlink_to(REPO / "pipelines")  # examples name compiled packages by repo path
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KFPC_KFP_TOKEN", "example-token")  # the KFP examples would otherwise look for one
    argv = shlex.split(example)[1:]
    if argv[0] in ("run", "submit", "schedule", "push", "upload") and "--dry-run" not in argv:
        argv.append("--dry-run")
    argv = [a for a in argv if a != "--wait"]  # --wait follows a run that a dry run never starts
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = cli.main(argv)
    assert code == 0, f"`{example}` (from `{where} --help`) exited {code}:\n{out.getvalue()[-3000:]}"
    assert not os.path.exists(tmp_path / "runs"), "a dry run ran something"
