"""One run at a time on an imgpipe home: an exclusive lock on <home>/run.lock.

Two runs on one home at once would each compare their candidate with the same baseline
and both push. A run takes the lock before anything else (fcntl.flock: the kernel drops
it when the process ends, however it ends, so a crash never leaves a stale lock) and
writes who holds it into the file; a second run says whom it waits for, then waits.
"""
import contextlib
import datetime
import fcntl
import os
import socket
from typing import Iterator, TextIO

LOCK_FILE = "run.lock"


def _holder(fd: int) -> str:
    text = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
    return text or "another imgpipe process (starting up)"


@contextlib.contextmanager
def hold(home: str, out: TextIO) -> Iterator[None]:
    """Holds the home's run lock for the duration, waiting for a holder to finish."""
    os.makedirs(home, exist_ok=True)
    path = os.path.join(home, LOCK_FILE)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"imgpipe: {home} is in use by {_holder(fd)} ({path}); waiting for it to "
                  "finish", file=out, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        started = datetime.datetime.now().isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"the run of pid {os.getpid()} on {socket.gethostname()}, started "
                      f"{started}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays (its last holder, for reference)
