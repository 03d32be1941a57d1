"""Stopping the servers that tests and benchmarks start."""

from __future__ import annotations

import signal
import subprocess


def stop_gracefully(proc: subprocess.Popen, timeout: float = 40) -> int:
    """SIGTERM (gunicorn drains live streams), then SIGKILL after `timeout`; the exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


class PausableServer:
    """A server process a test can hang (SIGSTOP: connections stay open, nothing moves), let run
    again (SIGCONT: it carries on where it stopped) and stop."""

    proc: subprocess.Popen | None = None

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Resumed first (a stopped process handles SIGTERM only once it runs), then stopped."""
        if self.proc is not None and self.proc.poll() is None:
            self.resume()
            stop_gracefully(self.proc, timeout=5)
