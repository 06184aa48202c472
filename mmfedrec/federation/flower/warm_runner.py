"""A warm ClientApp runner: one long-lived process per SuperNode runs every message of a run.

Flower 1.42's `flower-superexec` starts a new `flwr-clientapp` process for every message: the
process installs the FAB, imports the app (torch and all) and, for us, rebuilds the silo's data,
about 2.5 s of each message on this machine. A SuperNode started with `--isolation process`
leaves running ClientApps to an outside process; this is ours. It acquires ClientApp tasks from
the node's Runtime API as `flower-superexec` does, and runs each as `flwr-clientapp` does (pull
the message and context, call the app, push the reply and the context), with Flower's own
functions, but in this process: a FAB is installed and its ClientApp loaded once, and the app's
own caches (`client_app.load_silo`) live across messages. Private state still travels in
`context.state`, as with a fresh process per message.

    python -m mmfedrec.federation.flower.warm_runner --runtime-api-address 127.0.0.1:9094
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Callable

from flwr.app import Context, Message
from flwr.app.error import Error
from flwr.cli.install import install_from_fab
from flwr.clientapp.client_app import ClientApp
from flwr.clientapp.utils import get_load_client_app_fn
from flwr.common.constant import ErrorCode, SubStatus
from flwr.common.serde import context_from_proto, fab_from_proto, run_from_proto
from flwr.proto.node_pb2 import Node  # pylint: disable=E0611
from flwr.proto.runtime_pb2 import (  # pylint: disable=E0611
    AcquireTaskRequest,
    PullAppMessagesRequest,
    PullTaskInputRequest,
)
from flwr.supercore.app_utils import start_parent_process_monitor
from flwr.supercore.constant import TaskType
from flwr.supercore.fab import Fab
from flwr.supercore.heartbeat import HeartbeatSender, make_task_heartbeat_fn_http
from flwr.supercore.inflatable.inflatable_protobuf_utils import (
    make_confirm_message_received_fn_protobuf,
    make_pull_object_fn_protobuf,
)
from flwr.supercore.inflatable.inflatable_utils import pull_and_inflate_object_from_tree
from flwr.supercore.interceptors import RuntimeTokenHttpInterceptor, RuntimeVersionHttpInterceptor
from flwr.supercore.retry import make_simple_http_retry_invoker
from flwr.supercore.run import Run
from flwr.supercore.runtime import RuntimeHttpClient
from flwr.supercore.task_identity import TaskIdentity
from flwr.supernode.runtime.run_clientapp import push_message, push_task_output

log = logging.getLogger("mmfedrec")

POLL_SECONDS = 0.02  # between task requests while idle (flower-superexec waits 1 s)
# The SuperNode is still fetching a new message's arrays from the SuperLink when a task starts;
# flwr-clientapp retries their pulls after 1 s, then 2 s, ...; a few milliseconds suffice.
PULL_BACKOFF_SECONDS = 0.01


def runtime_client(address: str, component: str, token: str | None = None) -> RuntimeHttpClient:
    """A client of a SuperNode's Runtime API on this host (plain HTTP, as flower-superexec's)."""
    interceptors = [RuntimeVersionHttpInterceptor(component_name=component)]
    if token is not None:
        interceptors.append(RuntimeTokenHttpInterceptor(token))
    return RuntimeHttpClient.from_server_address(
        server_address=address,
        insecure=True,
        root_certificates=None,
        interceptors=interceptors,
        retry_invoker=make_simple_http_retry_invoker(),
    )


class ClientAppCache:
    """ClientApps by FAB hash: each FAB is installed and loaded once per process."""

    def __init__(self) -> None:
        self._apps: dict[str, ClientApp] = {}
        self._load = get_load_client_app_fn(default_app_ref="", app_path=None, multi_app=True)

    def get(self, fab, run) -> ClientApp:
        if fab.hash_str not in self._apps:
            install_from_fab(fab.content, skip_prompt=True)
            self._apps[fab.hash_str] = self._load(run.fab_id, run.fab_version, fab.hash_str)
        return self._apps[fab.hash_str]


def pull_task_input(client: RuntimeHttpClient) -> tuple[Message, Context, Run, Fab]:
    """The task's message, context, run and FAB, as `flwr-clientapp` pulls them (shorter backoff)."""
    task = client.PullTaskInput(PullTaskInputRequest())
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = (
        task.task_id,
        task.run.run_id,
        task.context.node_id,
    )
    context, run, fab = context_from_proto(task.context), run_from_proto(task.run), fab_from_proto(task.fab)
    pulled = client.PullMessages(PullAppMessagesRequest())
    if not pulled.messages_list:
        raise RuntimeError("the SuperNode gave this task no message")
    node, tree = Node(node_id=context.node_id), pulled.message_object_trees[0]
    message = pull_and_inflate_object_from_tree(
        tree,
        make_pull_object_fn_protobuf(client.PullObject, node, context.run_id),
        make_confirm_message_received_fn_protobuf(client.ConfirmMessageReceived, node, context.run_id),
        return_type=Message,
        initial_backoff=PULL_BACKOFF_SECONDS,
        backoff_cap=1.0,
    )
    message.metadata.__dict__["_message_id"] = tree.object_id  # as flwr-clientapp: the tree's root id
    return message, context, run, fab


def run_task(address: str, token: str, apps: ClientAppCache) -> bool:
    """Run one ClientApp task in this process; True when the app replied without an error."""
    started = time.perf_counter()
    client = runtime_client(address, "flwr-clientapp", token)
    heartbeat = HeartbeatSender(make_task_heartbeat_fn_http(client))
    heartbeat.start()
    message: Message | None = None
    context: Context | None = None
    reply: Message | None = None
    status, details = SubStatus.FAILED, "ClientApp task failed"
    try:
        message, context, run, fab = pull_task_input(client)
        pulled = time.perf_counter()
        reply = apps.get(fab, run)(message=message, context=context)
        status, details = SubStatus.COMPLETED, ""
        log.info(
            "%s message: pulled in %.3f s, ran in %.3f s",
            message.metadata.message_type,
            pulled - started,
            time.perf_counter() - pulled,
        )
    except Exception as error:  # the run goes on; the ServerApp sees this node's error reply
        log.exception("ClientApp task failed")
        details = f"{type(error).__name__}: {error}"
        if message is not None:
            reply = Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=details), reply_to=message)
    finally:
        try:
            if reply is not None and context is not None:
                push_message(client, reply, context)
            push_task_output(client, context, status, details)
        finally:
            heartbeat.stop()
            client.close()
    return status == SubStatus.COMPLETED


def serve(address: str, poll_seconds: float = POLL_SECONDS, stop: Callable[[], bool] = lambda: False) -> None:
    """Acquire and run this SuperNode's ClientApp tasks until `stop()` or the process is stopped."""
    superexec = runtime_client(address, "SuperExec")
    apps = ClientAppCache()
    request = AcquireTaskRequest(supported_task_types=[TaskType.CLIENT_APP.value])
    try:
        while not stop():
            acquired = superexec.AcquireTask(request)
            if acquired.HasField("task") and acquired.token:
                run_task(address, acquired.token, apps)
            else:
                time.sleep(poll_seconds)
    finally:
        superexec.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime-api-address", required=True, help="the SuperNode's --port, as HOST:PORT")
    parser.add_argument("--node-pid", type=int, help="stop when this process (the SuperNode) is gone")
    parser.add_argument("--poll-seconds", type=float, default=POLL_SECONDS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per Runtime API call otherwise
    log.info("warm ClientApp runner (pid %d) serving %s", os.getpid(), args.runtime_api_address)
    if args.node_pid is not None:
        start_parent_process_monitor(args.node_pid)  # SIGINT to this process once the node is gone
    try:
        serve(args.runtime_api_address, args.poll_seconds)
    except KeyboardInterrupt:
        log.info("stopped")


if __name__ == "__main__":
    main()
