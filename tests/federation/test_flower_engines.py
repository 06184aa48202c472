"""Real Flower processes on 127.0.0.1: a SuperLink, SuperNodes and `flwr run` (Deployment Engine),
and the Simulation Engine (SuperLink in simulation mode, Ray). Every process is stopped at the end."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from mmfedrec.config import RunConfig
from mmfedrec.config.methods import method_spec
from mmfedrec.federation.engines.runner import train_seed
from mmfedrec.federation.flower.launcher import (
    FlowerOptions,
    ProcessGroup,
    free_port,
    run_flower,
    supernode_command,
    supernode_key,
)
from mmfedrec.federation.flower.run_config import flower_split
from tests.federation.helpers import flower_processes, localhost_tls, small_flower_config


def small_config(tmp_path, **changes) -> RunConfig:
    return small_flower_config(tmp_path, **({"round_timeout": 120.0} | changes))


@pytest.fixture
def work_dir(tmp_path):
    """Logs and FLWR_HOME of the run; printed on failure."""
    folder = tmp_path / "flower"
    yield folder
    for log in sorted((folder / "logs").glob("*.log")) if (folder / "logs").exists() else []:
        print(f"---- {log.name}\n{log.read_text(errors='replace')[-3000:]}")


def inprocess_outcome(config: RunConfig, features=None):
    """What the in-process engine reaches for `config` (its one seed)."""
    return train_seed(method_spec(config.method), flower_split(config), features, config, config.seeds[0])


def assert_same_metrics(outcome, reference) -> None:
    assert outcome.best_round == reference.best_round
    for flower_entry, entry in zip(outcome.curve, reference.curve, strict=True):
        for protocol in ("sampled", "full"):
            for metric, value in entry["valid"][protocol].items():
                assert flower_entry["valid"][protocol][metric] == pytest.approx(value, abs=1e-6), metric
    for protocol in ("sampled", "full"):
        for metric, value in reference.test[protocol].items():
            assert outcome.test[protocol][metric] == pytest.approx(value, abs=1e-6), metric


@pytest.mark.timeout(300)
def test_deployment_engine_with_two_supernodes_matches_the_inprocess_engine(tmp_path, work_dir) -> None:
    config = small_config(tmp_path)
    progress: list[str] = []
    options = FlowerOptions(num_nodes=2, timeout=240, work_dir=work_dir)
    outcome = run_flower(config, "flower-deploy", options, on_progress=progress.append)
    reference = inprocess_outcome(config)
    assert progress[0].startswith("flower-deploy: SuperLink and 2 SuperNodes started")
    assert "round 2/2" in progress  # a long run says where it is, not silence until the table
    assert [entry["nodes"] for entry in outcome.curve] == [2, 2]
    assert outcome.test["users"] == 60
    assert_same_metrics(outcome, reference)
    assert not any(name.startswith("private.") for name in outcome.best_state)
    for node in (0, 1):  # every message ran in the node's one warm runner
        runner_log = (work_dir / "logs" / f"runner-{node}.log").read_text()
        assert runner_log.count("train message: pulled") == 2
        assert runner_log.count("evaluate message: pulled") == 3  # two validations and the test


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_deployment_engine_with_dp_secure_aggregation_and_compression_matches_the_inprocess_engine(
    tmp_path, work_dir
) -> None:
    """Real SuperNodes mask their clients' clipped, compressed uploads; the server adds masked
    totals and the accountant's noise: the same run as in-process."""
    config = small_config(tmp_path, secure_agg=True, dp_epsilon=8.0, dp_clip=0.5, compress_bits=8)
    outcome = run_flower(config, "flower-deploy", FlowerOptions(num_nodes=2, timeout=240, work_dir=work_dir))
    reference = inprocess_outcome(config)
    assert_same_metrics(outcome, reference)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_deployment_engine_runs_a_content_model_under_the_cold_start_protocol(tmp_path, work_dir) -> None:
    """`ours-no-image` on real SuperNodes: the ServerApp encodes the item texts, the silos' positives
    give its tower the in-process evidence, and cold items are ranked as in-process."""
    from mmfedrec.data.registry import load_dataset
    from mmfedrec.encoders.features import features_for_run

    config = small_config(tmp_path, method="ours-no-image", cold_items=0.2)
    outcome = run_flower(config, "flower-deploy", FlowerOptions(num_nodes=2, timeout=240, work_dir=work_dir))
    features = features_for_run(config, load_dataset(config.data).catalog)
    reference = inprocess_outcome(config, features)
    assert_same_metrics(outcome, reference)
    assert outcome.test["buckets"]["cold"]["users"] > 0


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_deployment_engine_with_flowers_own_clientapp_processes_matches_too(tmp_path, work_dir) -> None:
    """`warm=False`: Flower's stock isolation, a `flwr-clientapp` process per message."""
    config = small_config(tmp_path)
    started: list[list[list[str]]] = []
    options = FlowerOptions(num_nodes=2, timeout=240, work_dir=work_dir, warm=False)
    outcome = run_flower(config, "flower-deploy", options, on_started=lambda group: started.append(group_args(group)))
    reference = inprocess_outcome(config)
    assert_same_metrics(outcome, reference)
    assert not any("warm_runner" in " ".join(args) or "--isolation" in args for args in started[0])


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_deployment_engine_over_tls_matches_the_inprocess_engine(tmp_path, work_dir) -> None:
    """SuperLink, SuperNodes and `flwr run` over TLS (a CA the nodes trust): no plaintext flag anywhere."""
    config = small_config(tmp_path)
    tls = localhost_tls(tmp_path / "tls")
    options = FlowerOptions(num_nodes=2, timeout=240, work_dir=work_dir, tls=tls)
    started: list[list[str]] = []
    outcome = run_flower(config, "flower-deploy", options, on_started=lambda group: started.append(group_args(group)))
    reference = inprocess_outcome(config)
    assert_same_metrics(outcome, reference)
    assert started and not any("--insecure" in args for args in started[0])
    assert "insecure" not in (work_dir / "flwr-home" / "config.toml").read_text()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_supernode_authentication_admits_registered_nodes_only(tmp_path, work_dir) -> None:
    """`--enable-supernode-auth`: the two SuperNodes whose keys were registered with
    `flwr supernode register` run the federation; a third with an unregistered key is refused."""
    config = small_config(tmp_path)
    tls = localhost_tls(tmp_path / "tls")
    options = FlowerOptions(num_nodes=2, timeout=240, work_dir=work_dir, tls=tls, supernode_auth=True)

    def intrude(group: ProcessGroup) -> None:
        key, _ = supernode_key(tmp_path / "intruder", "intruder")
        node_args = list(group.processes["supernode-0"].args)
        superlink_port = int(node_args[node_args.index("--superlink") + 1].rsplit(":", 1)[1])
        command = supernode_command(options.python_bin, superlink_port, free_port(), 0, 2, tls, True, key)
        group.start("intruder", command)

    outcome = run_flower(config, "flower-deploy", options, on_started=intrude)
    reference = inprocess_outcome(config)
    assert_same_metrics(outcome, reference)
    assert [entry["nodes"] for entry in outcome.curve] == [2, 2]
    intruder_log = (work_dir / "logs" / "intruder.log").read_text()
    assert "Failed to activate SuperNode" in intruder_log


def group_args(group) -> list[list[str]]:
    return [list(process.args) for process in group.processes.values()]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_simulation_engine_matches_the_inprocess_engine(tmp_path, work_dir) -> None:
    config = small_config(tmp_path)
    outcome = run_flower(config, "flower-sim", FlowerOptions(num_nodes=2, timeout=240, work_dir=work_dir))
    reference = inprocess_outcome(config)
    assert_same_metrics(outcome, reference)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_supernode_killed_after_round_one_does_not_stop_the_run(tmp_path, work_dir) -> None:
    config = small_config(tmp_path)
    killed = threading.Event()
    runners = []

    def kill_after_round_one(group: ProcessGroup) -> None:
        def watch() -> None:
            deadline = time.monotonic() + 200
            while time.monotonic() < deadline and not killed.is_set():
                if "[ROUND 2/2]" in group.log("flwr-run"):
                    group.kill("supernode-1", signal.SIGKILL)  # a node that dies, not one that says goodbye
                    runners.append(group.processes["runner-1"])
                    killed.set()
                    return
                time.sleep(0.2)

        threading.Thread(target=watch, daemon=True).start()

    options = FlowerOptions(num_nodes=2, timeout=240, work_dir=work_dir)
    outcome = run_flower(config, "flower-deploy", options, on_started=kill_after_round_one)
    assert killed.is_set()
    first, second = outcome.curve
    assert first["nodes"] == 2 and first["clients"] == 60
    assert second["nodes"] == 1 and second["clients"] == 30  # the surviving silo
    assert first["lost_silos"] == [] and second["lost_silos"] == [1]  # the run says which silo it lost
    assert runners[0].wait(10) is not None  # its warm runner stopped with it
    assert "valid" in second
    assert outcome.test["users"] == 30
    run_log = (work_dir / "logs" / "flwr-run.log").read_text(errors="replace")
    assert "Sampled 1 nodes" in run_log or "1 failures" in run_log


def test_the_leftover_check_sees_a_flower_process() -> None:
    """The session's check (tests/conftest.py) can fail: it finds a process named like a SuperNode."""
    import subprocess

    process = subprocess.Popen(["bash", "-c", "exec -a flower-supernode-probe sleep 30"])
    try:

        def probe_seen() -> bool:  # after bash's exec (bash's own command line names it too)
            return flower_processes().get(process.pid, "").startswith("flower-supernode-probe")

        deadline = time.monotonic() + 10
        while not probe_seen() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert probe_seen()
    finally:
        process.kill()
        process.wait()
    assert process.pid not in flower_processes()
