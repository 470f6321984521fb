"""Parse untrusted PDF, Word and HTML files in a worker process under resource limits.

A compressed file can unpack to gigabytes (a 1.5 MB PDF of zeros, a 760 KB .docx of 300 MB
of XML) or keep a parser busy for minutes. The worker (``python -m ingest.sandbox``) runs
with an address-space limit (``RLIMIT_AS``) and a CPU-time limit per file (``RLIMIT_CPU``),
and the ingest waits for each answer with a wall-clock timeout. A file that breaks a limit
is refused with a message naming the limit; the worker is replaced and the next file goes on.
"""
from __future__ import annotations

import json
import os
import resource
import select
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

from ingest.loaders import LoadError, Parsed, ParseLimits, Skipped, parse_bytes
from ingest.types import Heading

# Parsed in this process: plain text is decoded in one linear pass, within the size limit.
IN_PROCESS = {".txt", ".md"}
_FRAME = struct.Struct(">Q")


class SandboxedParser:
    """``parse(ext, raw)`` like ``loaders.parse_bytes``, in a worker under ``ParseLimits``.

    The worker starts on the first file that needs it and serves the following ones;
    ``close()`` stops it.
    """

    def __init__(self, limits: ParseLimits = ParseLimits()) -> None:
        self.limits = limits
        self.peak_rss_mb = 0.0  # the highest peak RSS a worker reported
        self._proc: subprocess.Popen | None = None

    def __call__(self, ext: str, raw: bytes) -> Parsed:
        return self.parse(ext, raw)

    def parse(self, ext: str, raw: bytes) -> Parsed:
        if ext in IN_PROCESS:
            return parse_bytes(ext, raw, self.limits)
        proc = self._worker()
        header = json.dumps({"ext": ext}).encode("utf-8")
        try:
            proc.stdin.write(_FRAME.pack(len(header)) + header + _FRAME.pack(len(raw)) + raw)
            proc.stdin.flush()
            reply = self._read(proc, time.monotonic() + 2 * self.limits.seconds + 10)
        except BrokenPipeError:
            reply = None
        if reply is None:
            raise LoadError(Path(), _exit_problem(self._stop(), self.limits))
        self.peak_rss_mb = max(self.peak_rss_mb, reply.get("peak_rss_mb", 0.0))
        if "ok" in reply:
            text, headings, pages = reply["ok"]
            return text, tuple(Heading(*h) for h in headings), tuple(pages)
        if reply.get("memory"):
            self._stop()
            raise LoadError(Path(), _memory_problem(self.limits))
        error = Skipped if reply.get("skipped") else LoadError
        raise error(Path(), reply["problem"])

    def _worker(self) -> subprocess.Popen:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "ingest.sandbox", json.dumps(self.limits.__dict__)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            )
        return self._proc

    @staticmethod
    def _read(proc: subprocess.Popen, deadline: float) -> dict | None:
        """One framed reply, or None when the worker died or the deadline passed."""
        fd = proc.stdout.fileno()
        data = b""
        need = _FRAME.size
        while len(data) < need:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                return None
            part = os.read(fd, need - len(data))
            if not part:
                return None
            data += part
            if need == _FRAME.size and len(data) == need:
                need += _FRAME.unpack(data)[0]
        return json.loads(data[_FRAME.size:].decode("utf-8"))

    def _stop(self) -> int | None:
        """Stop the worker; its exit status (negative: the signal that ended it)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.kill()
        status = proc.wait()
        for f in (proc.stdin, proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        return status

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            try:
                self._proc.stdin.close()  # the worker ends at end of input
                self._proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self._stop()


def _memory_problem(limits: ParseLimits) -> str:
    return (f"reading it needs more than {limits.memory_mb} MB of memory (the limit for one file; "
            "a compressed bomb or a damaged file); not indexed")


def _exit_problem(status: int | None, limits: ParseLimits) -> str:
    if status is not None and status < 0 and -status == signal.SIGXCPU:
        problem = f"reading it took more than {limits.seconds:g} s of CPU (the limit for one file); not indexed"
    elif status == -signal.SIGKILL or status is None:
        problem = (f"reading it took longer than {2 * limits.seconds + 10:g} s (the limit for one file); "
                   "not indexed")
    else:
        problem = f"the file reader stopped (exit status {status}) on this file; not indexed"
    return problem


# ---- the worker ------------------------------------------------------------------------

def _read_exact(stream, n: int) -> bytes | None:
    data = stream.read(n)
    return data if len(data) == n else None


def _peak_rss_mb() -> float:
    try:
        for line in open("/proc/self/status", encoding="ascii"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    return 0.0


def _reply(out, payload: dict) -> None:
    data = json.dumps({**payload, "peak_rss_mb": _peak_rss_mb()}, ensure_ascii=False).encode("utf-8")
    out.write(_FRAME.pack(len(data)) + data)
    out.flush()


def worker(limits: ParseLimits) -> None:
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # whatever a library prints never gets into the replies
    soft = limits.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (soft, resource.getrlimit(resource.RLIMIT_AS)[1]))
    stdin = sys.stdin.buffer
    while True:
        head = _read_exact(stdin, _FRAME.size)
        if head is None:
            return
        request = json.loads(_read_exact(stdin, _FRAME.unpack(head)[0]))
        raw = _read_exact(stdin, _FRAME.unpack(_read_exact(stdin, _FRAME.size))[0])
        used = resource.getrusage(resource.RUSAGE_SELF)
        cpu = int(used.ru_utime + used.ru_stime + limits.seconds) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, resource.getrlimit(resource.RLIMIT_CPU)[1]))
        try:
            text, headings, pages = parse_bytes(request["ext"], raw, limits)
            payload = {"ok": [text, [[h.start, h.end, h.level] for h in headings], list(pages)]}
        except MemoryError:
            del raw
            _reply(out, {"memory": True})
            return  # a fresh worker for the next file: this heap may be left fragmented
        except Skipped as exc:
            payload = {"skipped": True, "problem": exc.problem}
        except LoadError as exc:
            payload = {"problem": exc.problem}
        except RecursionError:
            payload = {"problem": "the file is nested too deeply to read; not indexed"}
        except Exception as exc:  # a parser bug on a hostile file must not stop the ingest
            payload = {"problem": f"cannot read the file ({exc.__class__.__name__}); not indexed"}
        _reply(out, payload)


if __name__ == "__main__":
    worker(ParseLimits(**json.loads(sys.argv[1])))
