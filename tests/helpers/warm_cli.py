"""Run ``rsmamba`` command lines in processes forked from one warm interpreter (a zygote).

Why: a fresh ``rsmamba`` process spends 2.5-5 s importing torch, rasterio and geopandas before it
reads its arguments, and the bad-input matrix starts about 270 of them (437 s of one core, most of it
imports, measured 2026-12-07). The zygote imports those libraries once; each command line then runs in
a ``fork`` of it, through ``rsmamba.__main__.run`` (what the console script calls), in its own working
folder, environment and stdout/stderr files, and ends as a process does: ``SystemExit`` taken as the
exit code, an uncaught exception printed as the interpreter prints it (a ``Traceback``), ``atexit``
handlers run, the exit code (or minus the killing signal) reported back. The zygote itself never runs
a command and starts no thread, so forking it is safe.

What it does not show: that the installed console script starts, or anything that depends on torch
not being imported yet (``OMP_WAIT_POLICY``). Tests that need those keep a real subprocess.

Protocol (one JSON object per line): request ``{"id", "argv", "cwd", "env", "stdout", "stderr"}`` on the
zygote's stdin; replies ``{"id", "pid"}`` when forked and ``{"id", "rc"}`` when the command ended.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
from pathlib import Path

PRELOAD = ("torch", "rasterio", "geopandas", "pyogrio", "rsmamba.cli", "rsmamba.predict", "rsmamba.change",
           "rsmamba.train", "rsmamba.evaluate", "rsmamba.tile", "rsmamba.vectorize", "rsmamba.models")

__all__ = ["WarmCLI", "PRELOAD"]


def _child(request: dict) -> None:
    """In the forked process: become the command line of ``request`` and exit with its code."""
    code = 1
    try:
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        for fd, target in ((null, 0), (out, 1), (err, 2)):
            os.dup2(fd, target)
            os.close(fd)
        sys.argv = ["rsmamba", *request["argv"]]
        from rsmamba.__main__ import run

        try:
            code = run()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if exc.code is not None and not isinstance(exc.code, int):
                print(exc.code, file=sys.stderr)
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        import atexit

        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code if isinstance(code, int) else 1)


def serve() -> None:
    """The zygote: import PRELOAD, then fork one child per request line and report how each ended."""
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    reply = sys.stdout
    running: dict[int, str] = {}
    pending = b""
    stdin = sys.stdin.fileno()
    open_input = True
    while open_input or running:
        ready, _, _ = select.select([stdin] if open_input else [], [], [], 0.02)
        if ready:
            chunk = os.read(stdin, 65536)
            if not chunk:
                open_input = False
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                request = json.loads(line)
                reply.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    _child(request)
                running[pid] = request["id"]
                reply.write(json.dumps({"id": request["id"], "pid": pid}) + "\n")
                reply.flush()
        while running:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            reply.write(json.dumps({"id": running.pop(pid), "rc": os.waitstatus_to_exitcode(status)}) + "\n")
            reply.flush()


class WarmCLI:
    """The test side: ``run(argv, cwd, env)`` -> (exit code, stdout, stderr); safe from many threads."""

    def __init__(self, env: dict[str, str]) -> None:
        root = Path(__file__).resolve().parents[2]
        self._proc = subprocess.Popen([sys.executable, "-m", "tests.helpers.warm_cli"], cwd=root, env=env,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self._lock = threading.Lock()
        self._done: dict[str, threading.Event] = {}
        self._replies: dict[str, dict] = {}
        self._count = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self._proc.stdout:
            reply = json.loads(line)
            with self._lock:
                self._replies.setdefault(reply["id"], {}).update(reply)
                if "rc" in reply:
                    self._done[reply["id"]].set()
        with self._lock:  # the zygote died: wake every waiter
            for event in self._done.values():
                event.set()

    def run(self, argv: list[str], cwd: Path, env: dict[str, str], io_dir: Path,
            timeout: float = 300) -> tuple[int, str, str]:
        with self._lock:
            self._count += 1
            rid = str(self._count)
            self._done[rid] = threading.Event()
            out, err = io_dir / f"warm-{rid}.out", io_dir / f"warm-{rid}.err"
            self._proc.stdin.write(json.dumps({"id": rid, "argv": argv, "cwd": str(cwd), "env": env,
                                               "stdout": str(out), "stderr": str(err)}) + "\n")
            self._proc.stdin.flush()
        if not self._done[rid].wait(timeout):
            pid = self._replies.get(rid, {}).get("pid")
            if pid:
                os.kill(pid, 9)
            raise TimeoutError(f"rsmamba {' '.join(argv)}: still running after {timeout} s")
        reply = self._replies.get(rid, {})
        if "rc" not in reply:
            raise RuntimeError(f"the warm rsmamba zygote ended (exit {self._proc.poll()}) before: rsmamba {' '.join(argv)}")
        text = [p.read_text(errors="replace") if p.exists() else "" for p in (out, err)]
        for p in (out, err):
            p.unlink(missing_ok=True)
        return reply["rc"], text[0], text[1]

    def close(self) -> None:
        self._proc.stdin.close()
        self._proc.wait(timeout=60)


if __name__ == "__main__":
    serve()
