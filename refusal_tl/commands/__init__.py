"""The ``refusal-tl`` subcommands, one module each: its ``NAME``, ``HELP``, ``DESCRIPTION``, its
options (``add_arguments``) and what it does (``run``: build the config, validated before any model
loads, call the library, print a short summary). :mod:`refusal_tl.cli` assembles the parser."""

from refusal_tl.commands import (
    bench,
    chat,
    compare,
    cone,
    dim,
    evaluate,
    export,
    gcg,
    rdo,
    repind,
    reproduce,
    search,
    traces,
)

# in the order `refusal-tl --help` lists them (the paper's, then the tools)
COMMANDS = (reproduce, dim, rdo, cone, repind, traces, gcg, evaluate, compare, search, bench, export, chat)
