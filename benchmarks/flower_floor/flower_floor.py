"""An empty Flower app: the ServerApp sends every node a message with `floats` float32 values per
round and waits for all replies; the ClientApp replies at once with nothing. Its round time is the
Deployment Engine's floor on these nodes. The ServerApp writes the seconds of each round as JSON
to the run config's `out`; `reply_poll` > 0 pulls replies that often, as mmfedrec's
`flower.reply_poll` does."""

import json
import time
from pathlib import Path

import numpy as np
from flwr.app import ArrayRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

server = ServerApp()
client = ClientApp()


@client.train()
def reply_at_once(msg: Message, context: Context) -> Message:
    return Message(content=RecordDict(), reply_to=msg)


@server.main()
def rounds(grid: Grid, context: Context) -> None:
    config = context.run_config
    if float(config["reply_poll"]) > 0:
        from mmfedrec.federation.flower.polling_grid import PollingGrid

        grid = PollingGrid(grid, float(config["reply_poll"]))
    while len(nodes := list(grid.get_node_ids())) < int(config["nodes"]):
        time.sleep(0.1)
    arrays = ArrayRecord([np.zeros(int(config["floats"]), dtype=np.float32)])
    seconds = []
    for _ in range(int(config["rounds"])):
        started = time.perf_counter()
        messages = [Message(RecordDict({"arrays": arrays}), dst_node_id=node, message_type="train") for node in nodes]
        replies = list(grid.send_and_receive(messages))
        if len(replies) != len(nodes) or any(reply.has_error() for reply in replies):
            raise RuntimeError(f"{len(replies)} replies from {len(nodes)} nodes, or an error")
        seconds.append(time.perf_counter() - started)
    Path(str(config["out"])).write_text(json.dumps(seconds))
