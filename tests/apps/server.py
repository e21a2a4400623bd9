"""Start an app script on a free loopback port in a subprocess, for the tests and the load benchmark."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve(args: list[str], log_path: Path, timeout: float = 120) -> Iterator[str]:
    """Run `python <args> --port P` from the project root until its page answers; yield the URL, then stop it."""
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": str(ROOT)}  # the app imports this checkout, whichever copy pip installed
    with log_path.open("w") as log:
        process = subprocess.Popen([sys.executable, *args, "--port", str(port)], cwd=ROOT, env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert process.poll() is None, f"app exited early:\n{log_path.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"app not up after {timeout} s:\n{log_path.read_text()[-3000:]}"
            try:
                if httpx.get(url, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
