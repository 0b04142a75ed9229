"""The fake DevLake in a child process, so a benchmark measures the daemon's CPU and memory alone."""
from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable


class FakeHandle:
    """Starts `target(conn, latency)` in a forked child and sends it commands over a pipe.

    The child answers its URL first, then one reply per `(command, args)`; "stop" ends it.
    """

    def __init__(self, target: Callable, latency: float):
        ctx = mp.get_context("fork")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=target, args=(child, latency), daemon=True)
        self.proc.start()
        self.url = self.conn.recv()

    def __call__(self, command: str, **args):
        self.conn.send((command, args))
        return self.conn.recv()

    def stop(self):
        self("stop")
        self.proc.join(5)
