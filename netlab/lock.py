"""One run that changes the kernel at a time per machine: an flock on /run/netlab/lock. The kernel drops
the lock when the holder dies, however it dies, so a crash never leaves the machine locked."""

from __future__ import annotations

import fcntl
import os
import time

from .errors import LockedError

LOCK_PATH = "/run/netlab/lock"


class Lock:
    def __init__(self, timeout: float, path: str = LOCK_PATH):
        self.timeout = timeout
        self.path = path
        self.fd: int | None = None

    def __enter__(self) -> Lock:
        os.makedirs(os.path.dirname(self.path), mode=0o755, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
                    os.close(fd)
                    raise LockedError(f"another netlab run (pid {holder}) holds {self.path}; gave up after "
                                      f"{self.timeout:g} s (see --lock-timeout)") from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)
            os.close(self.fd)  # closing releases the flock
            self.fd = None


def writer(path: str = LOCK_PATH) -> str | None:
    """The PID of a run holding the lock now, or None; never waits and never creates the file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None  # closing releases it
    except BlockingIOError:
        return os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
    finally:
        os.close(fd)
