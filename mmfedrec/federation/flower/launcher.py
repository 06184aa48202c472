"""Launch the mmfedrec Flower app and collect its outcome, whatever runs it.

Three ways, one result (`SeedOutcome`, hence one `summary.json` shape):
- `run_inprocess`: the ServerApp's strategy and the ClientApp in this process, messages handed
  over by `InProcessGrid` (no network, no Ray): tests, debugging, and measuring Flower's own cost;
- `run_flower(config, "flower-sim")`: the Simulation Engine: a SuperLink in simulation mode
  runs the app's ServerApp and virtual SuperNodes on Ray (1 CPU each);
- `run_flower(config, "flower-deploy")`: the Deployment Engine: a SuperLink, one
  `flower-supernode` per silo (`--node-config "partition-id=i num-partitions=n"`), `flwr run`.
Every process gets one torch thread, telemetry off, offline, and runtime dependency
installation off. `flower_seed_trainer` puts either engine behind the engines' contract, so the
run folder is written by `mmfedrec.experiment` for every engine.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flwr.app import Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid

from mmfedrec.config.tree import RunConfig
from mmfedrec.errors import MmfedrecError
from mmfedrec.federation.engines.runner import SeedOutcome
from mmfedrec.federation.flower.run_config import check_flower_support, flower_split, to_run_config

ENGINES = ("flower-sim", "flower-deploy")
ROUND_LINE = re.compile(r"\[ROUND (\d+/\d+)\]")  # the ServerApp's log line as each round starts
PROJECT_ROOT = Path(__file__).resolve().parents[3]  # the Flower app: pyproject.toml with [tool.flwr.app]


# ---- in process ------------------------------------------------------------------------------


class InProcessGrid(Grid):
    """A Grid that hands each message to a ClientApp in this process, one `Context` per node.

    `down` holds node ids that answer with an error (a dead node); `replies` records every
    reply so tests can inspect exactly what left each node.
    """

    def __init__(self, client_app: ClientApp, node_configs: Sequence[dict], run_config: dict) -> None:
        from flwr.common.constant import SUPERLINK_NODE_ID
        from flwr.supercore.run import Run
        from flwr.supercore.task_identity import TaskIdentity

        # Messages stamp the sender's identity from this process-wide record (the SuperLink's here).
        TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, SUPERLINK_NODE_ID
        self.client_app = client_app
        self.contexts = {
            node_id: Context(
                run_id=1, node_id=node_id, node_config=dict(cfg), state=RecordDict(), run_config=run_config
            )
            for node_id, cfg in enumerate(node_configs, start=101)
        }
        self.down: set[int] = set()
        self.replies: list[Message] = []
        self.on_round: Callable[[Message], None] | None = None
        self._run = Run.create_empty(run_id=1)
        self._pending: dict[str, Message] = {}

    def set_run(self, run) -> None:
        self._run = run

    @property
    def run(self):
        return self._run

    def create_message(
        self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str, ttl: float | None = None
    ) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def add_node(self, node_config: dict) -> int:
        """A node joining (or rejoining with a fresh state): a new id, an empty `context.state`."""
        node_id = max(self.contexts) + 1
        run_config = next(iter(self.contexts.values())).run_config
        self.contexts[node_id] = Context(
            run_id=1, node_id=node_id, node_config=dict(node_config), state=RecordDict(), run_config=run_config
        )
        return node_id

    def get_node_ids(self) -> list[int]:
        return [node for node in self.contexts if node not in self.down]

    def push_messages(self, messages) -> list[str]:
        ids = []
        for k, message in enumerate(messages):
            key = f"{len(self._pending)}-{k}"
            self._pending[key] = self._deliver(message)
            ids.append(key)
        return ids

    def pull_messages(self, message_ids) -> list[Message]:
        return [self._pending.pop(key) for key in message_ids if key in self._pending]

    def send_and_receive(self, messages, *, timeout: float | None = None) -> list[Message]:
        return self.pull_messages(self.push_messages(messages))

    def _deliver(self, message: Message) -> Message:
        message = copy.deepcopy(message)  # each node gets its own copy, as over the wire
        node = message.metadata.dst_node_id
        if self.on_round is not None:
            self.on_round(message)
        if node in self.down:
            reply = Message(Error(code=5, reason="node unavailable"), reply_to=message)
        else:
            try:
                reply = self.client_app(message, self.contexts[node])
            except Exception as error:  # a ClientApp failure becomes an error reply, as on a SuperNode
                reply = Message(Error(code=0, reason=repr(error)), reply_to=message)
        reply.metadata.__dict__["_src_node_id"] = node
        self.replies.append(reply)
        return reply


def run_inprocess(
    config: RunConfig, num_partitions: int = 2, state=None, grid: InProcessGrid | None = None
) -> tuple[SeedOutcome, InProcessGrid]:
    """The whole app (strategy + ClientApps) in this process; returns the outcome and the grid.

    Args:
        state: the server's `ServerState` (default: built from `config`); holds the last round's state after.
        grid: a prepared grid (default: `in_process_grid(config, num_partitions)`).
    """
    from mmfedrec.federation.flower.server_app import run_server

    grid = grid or in_process_grid(config, num_partitions)
    return run_server(grid, config, state), grid


def in_process_grid(config: RunConfig, num_partitions: int = 2) -> InProcessGrid:
    from mmfedrec.federation.flower.client_app import app as client_app

    node_configs = [{"partition-id": i, "num-partitions": num_partitions} for i in range(num_partitions)]
    return InProcessGrid(client_app, node_configs, to_run_config(config, config.seeds[0]))


# ---- processes -------------------------------------------------------------------------------


@dataclass
class FlowerOptions:
    """How to launch the Flower processes (not part of the experiment's config)."""

    num_nodes: int = 2  # SuperNodes (deploy) or virtual SuperNodes (sim)
    timeout: float = 900.0  # seconds for the whole run
    work_dir: Path | None = None  # FLWR_HOME, logs and outcomes; default: a temp folder, removed after
    keep_work_dir: bool = False
    python_bin: Path = field(default_factory=lambda: Path(sys.executable).parent)  # flwr, flower-* live here
    tls: TlsFiles | None = None  # None: plaintext on 127.0.0.1; else every connection over TLS
    warm: bool = True  # deploy: one warm ClientApp runner per SuperNode (else Flower's process per message)
    supernode_auth: bool = False  # deploy over TLS: only SuperNodes whose key was registered may join


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of a TLS deployment: the CA that signed the SuperLink's certificate (SuperNodes and
    `flwr` trust it) and the SuperLink's certificate and private key."""

    ca_certificate: Path
    server_certificate: Path
    server_key: Path

    def superlink_flags(self) -> list[str]:
        return [
            "--ssl-ca-certfile",
            str(self.ca_certificate),
            "--ssl-certfile",
            str(self.server_certificate),
            "--ssl-keyfile",
            str(self.server_key),
        ]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def flower_env(home: Path, python_bin: Path) -> dict[str, str]:
    """Environment of every Flower process: offline, no telemetry, one torch thread."""
    env = dict(os.environ)
    env |= {
        "FLWR_HOME": str(home),
        "FLWR_TELEMETRY_ENABLED": "0",
        "FLWR_DISABLE_UPDATE_CHECK": "1",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MMFEDREC_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "RAY_DISABLE_USAGE_STATS": "1",
        "PATH": f"{python_bin}{os.pathsep}{env.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), *filter(None, [env.get("PYTHONPATH")])]),
    }
    return env


class ProcessGroup:
    """Processes started in their own process groups, all stopped by `stop()` (also on error)."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen] = {}

    def start(self, name: str, command: list[str]) -> subprocess.Popen:
        log = (self.log_dir / f"{name}.log").open("w")
        process = subprocess.Popen(
            command, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT, start_new_session=True
        )
        self.processes[name] = process
        return process

    def kill(self, name: str, sig: int = signal.SIGTERM, wait: float = 10.0) -> None:
        """Signal the process's whole group, wait for it, then SIGKILL what is left of the group
        (a child still in its shutdown handlers, e.g. a ServerApp retrying a SuperLink that is gone)."""
        process = self.processes.get(name)
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(wait)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            self.kill(name)

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def wait_for_port(port: int, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise MmfedrecError(f"process exited with {process.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.2)
    raise MmfedrecError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def write_flower_config(home: Path, name: str, port: int, tls: TlsFiles | None = None) -> None:
    """The `flwr` CLI's connection to our SuperLink (FLWR_HOME/config.toml, not pyproject)."""
    home.mkdir(parents=True, exist_ok=True)
    trust = "insecure = true" if tls is None else f'root-certificates = "{tls.ca_certificate}"'
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "{name}"\n\n[superlink.{name}]\naddress = "127.0.0.1:{port}"\n{trust}\n'
    )


def superlink_command(
    bin_dir: Path, port: int, simulation: bool, tls: TlsFiles | None = None, supernode_auth: bool = False
) -> list[str]:
    command = [
        str(bin_dir / "flower-superlink"),
        *(["--insecure"] if tls is None else tls.superlink_flags()),
        *(["--enable-supernode-auth"] if supernode_auth else []),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--disable-runtime-dependency-installation",  # offline: never `uv sync` the app
    ]
    return [*command, "--simulation"] if simulation else command


def supernode_command(
    bin_dir: Path,
    superlink_port: int,
    runtime_port: int,
    partition: int,
    n: int,
    tls: TlsFiles | None = None,
    warm: bool = False,
    auth_key: Path | None = None,
) -> list[str]:
    """A SuperNode of silo `partition`; `warm`: its ClientApps are left to our warm runner;
    `auth_key`: the OpenSSH EC private key it signs its requests with."""
    return [
        str(bin_dir / "flower-supernode"),
        *(["--isolation", "process"] if warm else []),
        *(["--auth-supernode-private-key", str(auth_key)] if auth_key else []),
        *(["--insecure"] if tls is None else ["--root-certificates", str(tls.ca_certificate)]),
        "--superlink",
        f"127.0.0.1:{superlink_port}",
        "--port",
        str(runtime_port),  # this node's Runtime API (where its ClientApp processes connect)
        "--node-config",
        f"partition-id={partition} num-partitions={n}",
    ]


def write_run_config(config: RunConfig, path: Path) -> Path:
    """The run config as a TOML file for `flwr run --run-config FILE`.

    One file, not one `--run-config key=value` per key: flwr 1.42 merges separate dotted
    overrides section by section, so only the last key of each section would survive.
    """
    import tomli_w

    nested: dict[str, dict] = {}
    for key, value in to_run_config(config, config.seeds[0]).items():
        *sections, name = key.split(".")
        node = nested
        for section in sections:
            node = node.setdefault(section, {})
        node[name] = value
    path.write_text(tomli_w.dumps(nested))
    return path


@contextlib.contextmanager
def flower_processes(options: FlowerOptions) -> Iterator[tuple[ProcessGroup, Path]]:
    """A work folder and a ProcessGroup that is always stopped and cleaned up."""
    work = Path(options.work_dir or tempfile.mkdtemp(prefix="mmfedrec-flower-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "logs").mkdir(exist_ok=True)
    group = ProcessGroup(flower_env(work / "flwr-home", options.python_bin), work / "logs")
    try:
        yield group, work
    finally:
        group.stop()
        if options.work_dir is None and not options.keep_work_dir:
            shutil.rmtree(work, ignore_errors=True)


def start_superlink(group: ProcessGroup, options: FlowerOptions, simulation: bool, home: Path) -> int:
    port = free_port()
    command = superlink_command(options.python_bin, port, simulation, options.tls, options.supernode_auth)
    process = group.start("superlink", command)
    wait_for_port(port, 60.0, process)
    write_flower_config(home, "mmfedrec", port, options.tls)
    return port


def warm_runner_command(bin_dir: Path, runtime_port: int, node_pid: int) -> list[str]:
    """The warm ClientApp runner of the SuperNode `node_pid` whose Runtime API listens on `runtime_port`."""
    address = f"127.0.0.1:{runtime_port}"
    python = str(bin_dir / Path(sys.executable).name)
    module = "mmfedrec.federation.flower.warm_runner"
    return [python, "-m", module, "--runtime-api-address", address, "--node-pid", str(node_pid)]


def supernode_key(folder: Path, name: str) -> tuple[Path, Path]:
    """A new EC (P-384) key pair in OpenSSH format, as `ssh-keygen -t ecdsa -b 384` writes it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP384R1())
    private, public = folder / name, folder / f"{name}.pub"
    folder.mkdir(parents=True, exist_ok=True)
    ssh = serialization.PrivateFormat.OpenSSH
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, ssh, serialization.NoEncryption()))
    private.chmod(0o600)
    openssh = serialization.PublicFormat.OpenSSH
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.OpenSSH, openssh))
    return private, public


def register_supernode(group: ProcessGroup, options: FlowerOptions, public_key: Path) -> None:
    """`flwr supernode register KEY.pub mmfedrec`: the SuperLink admits the node holding the key."""
    command = [str(options.python_bin / "flwr"), "supernode", "register", str(public_key), "mmfedrec"]
    done = subprocess.run(command, env=group.env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise MmfedrecError(f"flwr supernode register failed: {(done.stdout + done.stderr)[-2000:]}")


def start_supernodes(group: ProcessGroup, options: FlowerOptions, superlink_port: int) -> list[str]:
    """One SuperNode per silo (`supernode-i`), with its warm runner (`runner-i`) when `options.warm`;
    under `supernode_auth` each gets a key pair, registered with the SuperLink before it starts."""
    if options.supernode_auth and options.tls is None:
        raise MmfedrecError("SuperNode authentication needs TLS (FlowerOptions.tls)")
    names = []
    for partition in range(options.num_nodes):
        name, runtime_port, key = f"supernode-{partition}", free_port(), None
        if options.supernode_auth:
            key, public = supernode_key(Path(group.log_dir).parent / "keys", name)
            register_supernode(group, options, public)
        command = supernode_command(
            options.python_bin,
            superlink_port,
            runtime_port,
            partition,
            options.num_nodes,
            options.tls,
            options.warm,
            key,
        )
        node = group.start(name, command)
        if options.warm:
            group.start(f"runner-{partition}", warm_runner_command(options.python_bin, runtime_port, node.pid))
        names.append(name)
    return names


def submit_run(
    group: ProcessGroup, options: FlowerOptions, config: RunConfig, federation_config: list[str] | None = None
) -> subprocess.Popen:
    """`flwr run` of the mmfedrec app with `config` as its run config."""
    run_config = write_run_config(config, Path(group.log_dir) / "run-config.toml")
    return submit_app(group, options, PROJECT_ROOT, run_config, federation_config)


def submit_app(
    group: ProcessGroup,
    options: FlowerOptions,
    app_dir: Path,
    run_config: Path,
    federation_config: list[str] | None = None,
) -> subprocess.Popen:
    """`flwr run APP_DIR mmfedrec --stream --run-config FILE`: streams the run's logs until it ends."""
    command = [str(options.python_bin / "flwr"), "run", str(app_dir), "mmfedrec", "--stream"]
    for item in federation_config or []:
        command += ["--federation-config", item]
    return group.start("flwr-run", [*command, "--run-config", str(run_config)])


def wait_for_outcome(
    group: ProcessGroup,
    run: subprocess.Popen,
    out_dir: Path,
    seed: int,
    timeout: float,
    on_progress: Callable[[str], None] | None = None,
) -> SeedOutcome:
    """The run's outcome once the ServerApp writes it; `on_progress` hears each new round as it starts."""
    from mmfedrec.federation.flower.server_app import read_outcome

    deadline = time.monotonic() + timeout
    path = out_dir / f"outcome-seed{seed}.json"
    reported = ""
    while not path.exists():
        rounds = ROUND_LINE.findall(group.log("flwr-run"))
        if on_progress is not None and rounds and rounds[-1] != reported:
            reported = rounds[-1]
            on_progress(f"round {reported}")
        if time.monotonic() > deadline:
            raise MmfedrecError(f"Flower run gave no outcome in {timeout} s; log:\n{group.log('flwr-run')[-4000:]}")
        if run.poll() is not None and not path.exists():
            time.sleep(1.0)  # the file may land just after the stream ends
            if not path.exists():
                raise MmfedrecError(f"Flower run ended without an outcome; log:\n{group.log('flwr-run')[-4000:]}")
        time.sleep(0.5)
    return read_outcome(out_dir, seed)


def run_flower(
    config: RunConfig,
    engine: str,
    options: FlowerOptions | None = None,
    on_started: Callable[[ProcessGroup], None] | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> SeedOutcome:
    """Run `config` (one seed) on the Flower Simulation ("flower-sim") or Deployment ("flower-deploy") Engine.

    Args:
        on_started: called with the process group once the run is submitted (tests kill nodes with it).
        on_progress: called with a line as the run goes (processes started, each round begun).
    """
    say = on_progress or (lambda line: None)
    if engine not in ENGINES:
        raise MmfedrecError(f"engine must be one of {ENGINES}, got {engine!r}")
    check_flower_support(config)
    options = options or FlowerOptions()
    flower_split(config)  # build the shared data cache once, before several processes race to write it
    with flower_processes(options) as (group, work):
        out_dir = work / "outcome"
        flower = dataclasses.replace(config.flower, outcome_dir=str(out_dir), min_nodes=options.num_nodes)
        config = dataclasses.replace(config, flower=flower)
        port = start_superlink(group, options, engine == "flower-sim", work / "flwr-home")
        federation_config = None
        if engine == "flower-deploy":
            start_supernodes(group, options, port)
        else:
            federation_config = [
                f"num-supernodes={options.num_nodes}",
                "client-resources-num-cpus=1",
                f"init-args-num-cpus={options.num_nodes}",
            ]
        say(f"{engine}: SuperLink and {options.num_nodes} SuperNodes started; submitting the run")
        run = submit_run(group, options, config, federation_config)
        if on_started is not None:
            on_started(group)
        outcome = wait_for_outcome(group, run, out_dir, config.seeds[0], options.timeout, say)
        outcome.curve = [{**entry, "engine": engine} for entry in outcome.curve]
        return outcome


def flower_seed_trainer(
    engine: str, options: FlowerOptions | None = None, on_progress: Callable[[str], None] | None = None
) -> Callable[..., SeedOutcome]:
    """A Flower engine behind the engines' contract (`mmfedrec.federation.engines.runner.train_seed`).

    The ServerApp builds its item features itself and Flower runs every round, so `features`,
    `groups`, `pseudo` and `checkpoint` are not used (`check_flower_support` refuses what needs
    them); the rounds reach `on_round` when the run ends.
    """

    def train_seed_on_flower(
        method,
        split,
        features,
        config: RunConfig,
        seed: int,
        groups=None,
        pseudo=None,
        on_round=None,
        checkpoint=None,
        joining=None,  # always None: check_flower_support refuses the new-client protocol
    ) -> SeedOutcome:
        say = None if on_progress is None else (lambda line: on_progress(f"[{config.method} seed {seed}] {line}"))
        outcome = run_flower(dataclasses.replace(config, seeds=(seed,)), engine, options, on_progress=say)
        for entry in outcome.curve:
            if on_round is not None:
                on_round(entry)
        return outcome

    return train_seed_on_flower
