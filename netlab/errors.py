"""The errors netlab raises: each has a kind, a message that names the object and the rule, and a fix
where one exists.

Every error is a `NetlabError`; those that have a natural stdlib twin inherit it too (as nmstate does), so
`except PermissionError` works for callers who do not know netlab's types. The `kind` strings are part of
the interface: they appear in messages and in `--output json` and are never renamed.
"""

from __future__ import annotations

import errno as _errno
import os
from dataclasses import dataclass
from typing import Any


class NetlabError(Exception):
    """Base of every error netlab raises on purpose. `str(err)` is the complete message for a user."""

    kind = "ERROR"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "message": self.message}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a topology file: where (file, line, field path) and what rule it breaks."""

    path: tuple[str | int, ...]
    message: str
    line: int | None = None
    file: str | None = None

    def __str__(self) -> str:
        where = self.file or "<topology>"
        if self.line is not None:
            where += f":{self.line}"
        field = ".".join(str(p) for p in self.path)
        return f"{where} {field}: {self.message}" if field else f"{where}: {self.message}"


class ValidationError(NetlabError, ValueError):
    """The topology file is not valid. Holds every problem found, not only the first."""

    kind = "VALIDATION"

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "problems": [str(p) for p in self.problems]}


class ConflictError(NetlabError):
    """A name the topology wants exists in the kernel without this topology's mark."""

    kind = "CONFLICT"


class MissingError(NetlabError):
    """Something the topology relies on and does not make is not in the kernel: an external parent link,
    a kernel module."""

    kind = "MISSING"


class PrivilegeError(NetlabError, PermissionError):
    kind = "PERMISSION"


class LockedError(NetlabError, TimeoutError):
    kind = "LOCKED"


class KernelError(NetlabError, OSError):
    """The kernel refused a request. `errno` is the kernel's reason."""

    kind = "KERNEL"

    def __init__(self, message: str, errno: int | None = None):
        NetlabError.__init__(self, message)
        self.errno = errno

    @classmethod
    def of(cls, code: int, what: str = "", detail: str | None = None) -> KernelError:
        """The error for errno `code`, what was being done first, the errno as people and scripts look
        for it, then the kernel's own explanation when it gave one (netlink's extended ack): 'look up
        n1/eth0: No such device (ENODEV, errno 19)'; '...: Numerical result out of range (ERANGE, errno
        34): the kernel says "Attribute failed policy validation"'."""
        reason = f"{os.strerror(code)} ({_errno.errorcode.get(code, '?')}, errno {code})"
        if detail:
            reason += f': the kernel says "{detail}"'
        return cls(f"{what}: {reason}" if what else reason, code)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "errno": self.errno}


class RolledBack(NetlabError):
    """A step failed; everything done before it was undone and the kernel is as it was before the apply."""

    kind = "ROLLED_BACK"

    def __init__(self, message: str, cause: KernelError):
        super().__init__(message)
        self.cause = cause


class RollbackIncomplete(NetlabError):
    """A step failed and undoing it failed too, or the kernel did not return to its state before the apply."""

    kind = "ROLLBACK_INCOMPLETE"

    def __init__(self, message: str, leftovers: list[str]):
        super().__init__(message)
        self.leftovers = leftovers

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "leftovers": self.leftovers}


class Stopped(NetlabError):
    """A destroy was interrupted: it stopped between two steps and undid nothing; running it again finishes."""

    kind = "INTERRUPTED"


class NotConverged(NetlabError):
    """Every step succeeded, yet the kernel read back afterwards still differs from the topology."""

    kind = "NOT_CONVERGED"
