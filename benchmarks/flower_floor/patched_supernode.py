"""Experiment only: `flower-supernode` with every sleep in its message loop capped at
$MMFEDREC_NODE_IDLE seconds (flwr 1.42 sleeps 3 s whenever a pull finds no message, 0.5 s while
it waits for a reply). It measures what that fixed interval costs a round
(`benchmarks/flower_overhead.py --node-idle`); nothing in mmfedrec runs it."""

import os
import sys
import time

import flwr.supernode.start_client_internal as loop

CAP = float(os.environ.get("MMFEDREC_NODE_IDLE", "0.02"))
_sleep = time.sleep


class _CappedTime:
    def __getattr__(self, name: str):
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        _sleep(min(seconds, CAP))


loop.time = _CappedTime()  # the module's `time`, not the process's

from flwr.supernode.cli.flower_supernode import flower_supernode  # noqa: E402

sys.argv[0] = "flower-supernode"
flower_supernode()
