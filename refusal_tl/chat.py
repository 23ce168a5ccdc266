"""Side-by-side chat: the original model and the intervened one answer every message, streamed
token by token into two columns (``refusal-tl chat``).

Each side keeps its own conversation (its own earlier answers), is prompted through the
tokenizer's chat template and decoded greedily with :func:`refusal_tl.steer.generation.decode_steps`,
whose hooks are scoped to each forward, so the two streams interleave without leaking hooks.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from rich.console import Console
from rich.live import Live
from rich.table import Table

from refusal_tl.model import Batch, RefusalModel
from refusal_tl.steer.generation import decode_steps, stop_ids
from refusal_tl.steer.hooks import Hook


@dataclass
class Side:
    """One column: a title, its hooks and its conversation so far."""

    title: str
    hooks: Sequence[Hook] = ()
    history: list[dict] = field(default_factory=list)

    def batch(self, model: RefusalModel, message: str) -> Batch:
        messages = self.history + [{"role": "user", "content": message}]
        text = model.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ids = model.tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids.to(model.device)
        return Batch(ids, torch.ones_like(ids))


def chat_turn(model: RefusalModel, sides: Sequence[Side], message: str,
              max_new_tokens: int = 256) -> Iterator[list[str]]:
    """Yield every side's answer so far after each decode step; at the end the answers join
    their side's history."""
    streams = [decode_steps(model, s.batch(model, message), max_new_tokens, s.hooks) for s in sides]
    ids: list[list[int]] = [[] for _ in sides]
    stops, live = set(stop_ids(model)), [True] * len(sides)
    texts = [""] * len(sides)
    while any(live):
        changed = False
        for i, stream in enumerate(streams):
            tok = next(stream, None) if live[i] else None
            if tok is None or int(tok[0]) in stops:
                live[i] = False
                continue
            ids[i].append(int(tok[0]))
            texts[i], changed = model.tokenizer.decode(ids[i], skip_special_tokens=True), True
        if changed:
            yield list(texts)
    for side, text in zip(sides, texts):
        side.history += [{"role": "user", "content": message}, {"role": "assistant", "content": text.strip()}]


def run_chat(model: RefusalModel, sides: Sequence[Side], max_new_tokens: int = 256, stdin=None,
             console=None) -> None:
    """Read messages until EOF, ``/quit`` or ``/exit``; ``/reset`` clears both conversations."""
    stdin = stdin or sys.stdin
    console = console or Console()

    def table(texts: list[str]) -> Table:
        t = Table(expand=True, show_lines=False)
        for s in sides:
            t.add_column(s.title, ratio=1, overflow="fold")
        t.add_row(*texts)
        return t

    console.print(f"[bold]{model.name}[/bold]: {' | '.join(s.title for s in sides)}. "
                  "/reset clears the conversation, /quit (or Ctrl-D) leaves.")
    while True:
        console.print("[bold green]you>[/bold green] ", end="")
        line = stdin.readline()
        if not line or line.strip() in ("/quit", "/exit"):
            console.print()
            return
        message = line.strip()
        if not message:
            continue
        if message == "/reset":
            for s in sides:
                s.history.clear()
            console.print("(conversation cleared)")
            continue
        with Live(table([""] * len(sides)), console=console, auto_refresh=False) as live:
            for texts in chat_turn(model, sides, message, max_new_tokens):
                live.update(table(texts), refresh=True)
