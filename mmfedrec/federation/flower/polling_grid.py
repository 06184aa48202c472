"""A Grid that collects replies every `interval` seconds instead of every 3 s (`flower.reply_poll`).

flwr 1.42's ServerApp grid (`HttpGrid.send_and_receive`) pushes a round's messages, pulls the
replies once, and then sleeps 3 s between pulls. `PollingGrid` wraps the run's grid and does the
same with the grid's own `push_messages` / `pull_messages`, pulling every `interval` seconds.
It pays only with SuperNodes that poll as fast: flwr 1.42's sleep 3 s whenever they find no
message, which sets the round's pace anyway (measured in docs/flower.md), so it is off by default.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from flwr.app import Message, RecordDict
from flwr.serverapp import Grid


class PollingGrid(Grid):
    """`grid` with a short wait between reply pulls; everything else is `grid`'s own."""

    def __init__(self, grid: Grid, interval: float) -> None:
        self.grid = grid
        self.interval = interval

    def set_run(self, run) -> None:
        self.grid.set_run(run)

    @property
    def run(self):
        return self.grid.run

    def create_message(
        self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str, ttl: float | None = None
    ) -> Message:
        return self.grid.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> Iterable[int]:
        return self.grid.get_node_ids()

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self.grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self.grid.pull_messages(message_ids)

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        """Push `messages`, then pull until every reply came or `timeout` seconds passed."""
        pending = set(self.push_messages(messages))
        deadline = None if timeout is None else time.monotonic() + timeout
        replies: list[Message] = []
        while pending:
            pulled = list(self.pull_messages(pending))
            replies += pulled
            pending -= {reply.metadata.reply_to_message_id for reply in pulled}
            if not pending or (deadline is not None and time.monotonic() >= deadline):
                break
            time.sleep(self.interval)
        return replies
