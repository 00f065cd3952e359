"""pyctr's Varlink client tells a hang-up before any reply from one after."""

import json
import socket
import threading
from pathlib import Path

import pytest

from pyctrd.cli.varlinkclient import VarlinkClient, VarlinkHungUp


def serve(path: Path, answers: int) -> threading.Thread:
    """Accept one connection, answer ``answers`` calls, then hang up on the next."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def run() -> None:
        conn, _ = listener.accept()
        with conn, listener:
            buffer = b""
            for replied in range(answers + 1):
                while b"\0" not in buffer:
                    buffer += conn.recv(4096)
                _call, buffer = buffer.split(b"\0", 1)
                if replied == answers:
                    return  # this call: hung up on, unanswered
                conn.sendall(json.dumps({"parameters": {"n": replied}}).encode() + b"\0")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("answered", [0, 1])
def test_a_hang_up_is_told_with_how_many_replies_came_before(tmp_path: Path,
                                                             answered: int) -> None:
    path = tmp_path / "io.pyctrd"
    thread = serve(path, answered)
    client = VarlinkClient.connect(str(path))
    try:
        for _ in range(answered):
            assert client.call_once("io.pyctrd.Image.Get", {"reference": "x"}) == {"n": 0}
        with pytest.raises(VarlinkHungUp):
            client.call_once("io.pyctrd.Container.Create", {"image": "x", "command": []})
        assert client.replies == answered
    finally:
        client.close()
        thread.join(5)
