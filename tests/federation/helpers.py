"""Small seeded splits with planted structure for federation tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mmfedrec.data.splits import Split, leave_one_out
from mmfedrec.data.types import make_interactions


def planted_split(
    n_users: int = 60, n_items: int = 80, n_groups: int = 4, seed: int = 0, n_negatives: int = 20
) -> Split:
    """Users in `n_groups` taste groups, each liking its own block of items; 5-30 events each."""
    rng = np.random.default_rng(seed)
    rows = []
    block = n_items // n_groups
    for user in range(n_users):
        group = user % n_groups
        n = int(rng.integers(5, 30))
        liked = rng.choice(np.arange(group * block, (group + 1) * block), size=min(n, block), replace=False)
        for t, item in enumerate(liked):
            rows.append((user, int(item), t, 5.0))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "rating"])
    return leave_one_out(make_interactions(frame), seed=seed, n_negatives=n_negatives)


def small_flower_config(tmp_path, **changes):
    """A 2-round Flower run on 60 synthetic users: the shared setting of the Flower tests."""
    from mmfedrec.config import RunConfig
    from mmfedrec.config.codec import with_settings

    values = {
        "method": "ours-id-only",
        "synthetic_users": 60,
        "synthetic_items": 50,
        "cache_dir": str(tmp_path / "cache"),
        "rounds": 2,
        "dim": 16,
        "batch_size": 16,
        "eval_negatives": 20,
        "steps_probe": 0,  # Flower decides the client steps by the count; the in-process twin likewise
    }
    return with_settings(RunConfig(), **(values | changes))


def localhost_tls(folder):
    """A throwaway CA and a SuperLink certificate for 127.0.0.1 (PEM files in `folder`), as a
    deployment's operator would make them with openssl."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from mmfedrec.federation.flower.launcher import TlsFiles

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    def certificate(subject, issuer, public_key, signing_key, ca: bool, names=None):
        now = datetime.datetime.now(datetime.UTC)
        builder = x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
        builder = builder.serial_number(x509.random_serial_number()).not_valid_before(now)
        builder = builder.not_valid_after(now + datetime.timedelta(days=1))
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return builder.sign(signing_key, hashes.SHA256())

    folder.mkdir(parents=True, exist_ok=True)
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = certificate(name("mmfedrec test CA"), name("mmfedrec test CA"), ca_key.public_key(), ca_key, True)
    names = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    server = certificate(name("127.0.0.1"), ca.subject, server_key.public_key(), ca_key, False, names)
    files = TlsFiles(folder / "ca.crt", folder / "server.pem", folder / "server.key")
    files.ca_certificate.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.server_certificate.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_format = serialization.PrivateFormat.PKCS8
    pem = server_key.private_bytes(serialization.Encoding.PEM, key_format, serialization.NoEncryption())
    files.server_key.write_bytes(pem)
    return files


FLOWER_PROGRAMS = (
    b"flower-superlink",
    b"flower-supernode",
    b"flower-superexec",
    b"flwr-serverapp",
    b"flwr-clientapp",
    b"flwr-simulation",
    b"mmfedrec.federation.flower.warm_runner",
)


def flower_processes() -> dict[int, str]:
    """Running Flower processes (pid -> command line), read from /proc."""
    found = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:  # it ended meanwhile
            continue
        if any(program in command for program in FLOWER_PROGRAMS):
            found[int(entry.name)] = command.replace(b"\0", b" ").decode(errors="replace")[:200]
    return found
