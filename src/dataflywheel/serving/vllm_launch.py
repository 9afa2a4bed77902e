"""``python -m dataflywheel.serving.vllm_launch --parent-pid PID -- VLLM_ARGS...``: vLLM's OpenAI-compatible
server, stopped when process ``PID`` is gone.

vLLM has no ``--parent-pid`` (our own ``serve-model`` has one), and its server starts engine processes of
its own. This supervisor leads the deployment's process group (the deployment manager starts it with
``start_new_session``), runs vLLM's server as its child, and twice a second checks that:

* the parent still lives (``os.getppid()`` is still ``PID``; a killed parent re-parents us): if not, the
  whole group gets SIGTERM, then SIGKILL after :data:`GRACE_S` seconds;
* vLLM's server still runs: if it exited, so does the supervisor, with its exit code (the deployment manager
  sees a server that died).

SIGTERM or SIGINT to the supervisor (a normal stop: the manager signals the group) is passed on and waited
for the same way.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from types import FrameType

GRACE_S = 10.0
POLL_S = 0.5


def _stop_group(server: subprocess.Popen[bytes]) -> int:
    """SIGTERM the process group (us included: we ignore it), wait for the server, SIGKILL what is left."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    leader = os.getpgrp() == os.getpid()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if leader:
            os.killpg(os.getpgrp(), signal.SIGTERM)
        else:  # started by hand, not in a session of our own: never signal the caller's group
            server.terminate()
    try:
        code = server.wait(GRACE_S)
    except subprocess.TimeoutExpired:
        code = -signal.SIGKILL
    if leader:
        # vLLM's engine processes, if any outlived the server; this ends the supervisor too
        sys.stdout.flush()
        os.killpg(os.getpgrp(), signal.SIGKILL)
    server.kill()
    return code


def supervise(parent_pid: int, server_argv: list[str]) -> int:
    """Run ``server_argv`` until it exits, the parent is gone, or we are told to stop; its exit code."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = subprocess.Popen(server_argv)
    while True:
        code = server.poll()
        if code is not None:
            return code
        if os.getppid() != parent_pid:
            print(f"vllm_launch: parent {parent_pid} is gone: stopping the server", file=sys.stderr, flush=True)
            return _stop_group(server)
        if stop.is_set():
            return _stop_group(server)
        time.sleep(POLL_S)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dataflywheel.serving.vllm_launch", description=__doc__)
    parser.add_argument("--parent-pid", type=int, required=True, help="Stop when this process is gone.")
    parser.add_argument("vllm_args", nargs=argparse.REMAINDER, help="-- then vLLM api_server's arguments")
    args = parser.parse_args(argv)
    rest = list(args.vllm_args)
    if rest[:1] == ["--"]:
        rest = rest[1:]
    return supervise(args.parent_pid, [sys.executable, "-m", "vllm.entrypoints.openai.api_server", *rest])


if __name__ == "__main__":
    sys.exit(main())
