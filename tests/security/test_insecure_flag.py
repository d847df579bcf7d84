"""``--insecure``: beyond loopback without a token the server starts only when asked to, and says so
loudly (a WARNING in the log and on stderr). Nothing here listens beyond loopback: the real start uses
an address from the documentation range (192.0.2.0/24) that no interface of this machine has, so the
check is passed, the warning is written, and the bind then fails without exposing a port."""

from __future__ import annotations

import errno
import logging
import socket
import subprocess

import pytest
from serving import CLI, server_env

from escalation_matrix.cli.common import CliError


def check_bind(*args, **kwargs):
    from escalation_matrix.cli.serve import check_bind

    return check_bind(*args, **kwargs)

UNASSIGNED = "192.0.2.1"  # TEST-NET-1 (RFC 5737): never an address of this machine


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_needs_neither_a_token_nor_the_flag(host, caplog):
    assert check_bind(host, 8765, has_token=False, insecure=False) is None
    assert "INSECURE" not in caplog.text


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "server.example"])
def test_beyond_loopback_a_token_is_enough(host, caplog):
    assert check_bind(host, 8765, has_token=True, insecure=False) is None
    assert "INSECURE" not in caplog.text


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "server.example"])
def test_beyond_loopback_without_a_token_is_refused_unless_insecure(host, caplog):
    with pytest.raises(CliError, match="--insecure"):
        check_bind(host, 8765, has_token=False, insecure=False)
    with caplog.at_level(logging.WARNING, logger="escalation_matrix.cli.serve"):
        warning = check_bind(host, 8765, has_token=False, insecure=True)
    assert warning and host in warning and "without any token" in warning
    assert [r.levelname for r in caplog.records] == ["WARNING"] and "INSECURE" in caplog.text


def _unassigned_here() -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((UNASSIGNED, 0))  # bound, never listening; closed at once
        except OSError as exc:
            return exc.errno == errno.EADDRNOTAVAIL
    return False


@pytest.mark.slow
def test_the_real_server_with_insecure_warns_and_goes_on_to_bind(tmp_path, fake_policies):
    if not _unassigned_here():
        pytest.skip(f"{UNASSIGNED} is an address of this machine; not binding beyond loopback")
    args = [CLI, "--policies", str(fake_policies), "serve", "--transport", "http", "--host", UNASSIGNED,
            "--port", "0", "--db", str(tmp_path / "s.db")]
    refused = subprocess.run(args, env=server_env(), capture_output=True, text=True, timeout=120)
    insecure = subprocess.run([*args, "--insecure"], env=server_env(), capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "--insecure" in refused.stderr and "WARNING" not in refused.stderr
    assert not (tmp_path / "s.db").exists() or "INSECURE" not in refused.stderr  # refused before anything ran
    assert "WARNING: --insecure" in insecure.stderr and f"{UNASSIGNED}:0 without any token" in insecure.stderr
    # the check let it through: it loaded the policy and state, then the bind itself failed
    assert insecure.returncode != 0 and "assign requested address" in insecure.stderr
