"""What the command line's output shares: table columns by display width, durations
written one way, and subcommands that say what they do.

A Chinese character takes two columns of a terminal (East Asian Wide and
Fullwidth), a combining mark none: ``f"{name:22}"`` counts characters, so a
column after 王芳 or 市市场监管局 was pushed right. Every table ``cti`` prints
pads its cells here.
"""

from __future__ import annotations

import argparse
import unicodedata
from typing import Any


def command(commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str,
            **options: Any) -> argparse.ArgumentParser:
    """A subcommand with ``summary`` both in its parent's list and atop its own ``--help``
    (argparse shows ``help=`` only in the parent's list)."""
    return commands.add_parser(name, help=summary, description=summary, **options)


def width(text: str) -> int:
    """The columns ``text`` takes in a terminal."""
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def cell(text: str, size: int, align: str = "<") -> str:
    """``text`` padded to ``size`` columns (``>`` right-aligned); longer text is left whole."""
    pad = " " * max(0, size - width(text))
    return pad + text if align == ">" else text + pad


def seconds(value: float | None) -> str:
    """A duration in whole seconds (``31s``), ``—`` when unknown: app_queue counts whole seconds."""
    return "—" if value is None else f"{value:.0f}s"
