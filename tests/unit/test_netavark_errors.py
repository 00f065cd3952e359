"""netavark's errors as the caller sees them: its JSON message, and a hint when the
cause is a missing iptables (Debian's netavark needs it but does not depend on it)."""

import asyncio
import stat
from pathlib import Path

import pytest

from pyctrd.errors import RuntimeFailed
from pyctrd.network.netavark import Netavark

ENOENT_ANSWER = '{"error": "netavark setup failed: No such file or directory (os error 2)"}'


def fake_netavark(tmp_path: Path, answer: str) -> Netavark:
    binary = tmp_path / "netavark"
    binary.write_text(f"#!/bin/sh\necho '{answer}'\nexit 1\n")
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    return Netavark(tmp_path / "config", binary=str(binary), host_lock=tmp_path / "lock")


def setup_error(net: Netavark, tmp_path: Path) -> str:
    with pytest.raises(RuntimeFailed) as caught:
        asyncio.run(net.setup(tmp_path / "netns", {}))
    return str(caught.value)


def test_a_missing_iptables_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    net = fake_netavark(tmp_path, ENOENT_ANSWER)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    message = setup_error(net, tmp_path)
    assert "No such file or directory" in message
    assert "apt install iptables" in message


def test_with_iptables_present_the_message_is_netavarks_own(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    net = fake_netavark(tmp_path, ENOENT_ANSWER)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    iptables = bin_dir / "iptables"
    iptables.write_text("#!/bin/sh\n")
    iptables.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    message = setup_error(net, tmp_path)
    assert message == "netavark setup failed: " + ENOENT_ANSWER.split('"')[3]
