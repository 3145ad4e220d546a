"""Reading and writing sysctls under /proc/sys/net, from this thread while it is inside the namespace
(the file's namespace is the opener's thread's: /proc/sys/net follows the thread, unlike /proc/net, which
follows the process's main thread). Each failure is its own clear error: a key this kernel lacks (or
keeps for the root namespace only), a key that is read-only here, a value the kernel refuses."""

from __future__ import annotations

import errno
import os

from ..errors import KernelError
from ..state import sysctl_name
from ..sysctls import interface_of, normalize
from .namespaces import Namespaces

ROOT = "/proc/sys/"


def read(namespaces: Namespaces, ns: str, paths: frozenset[str], links: set[str], strict: bool = True
         ) -> dict[str, str]:
    """The values of `paths` in namespace `ns`; a path with '*' for its interface part stands for every
    interface's (and all's and default's). A per-interface key of a link that does not exist (yet) is
    left out; any other missing key, or one that is read-only there, is an error if `strict`, else left
    out too."""
    out: dict[str, str] = {}
    with namespaces.inside(ns):
        for path in sorted(paths):
            if "*" in path:
                head, tail = path.split("*")
                try:
                    names = os.listdir(ROOT + head)
                except FileNotFoundError:
                    continue
                for name in names:
                    value = _read(ROOT + head + name + tail)
                    if value is not None:
                        out[head + name + tail] = value
                continue
            value = _read(ROOT + path)
            if value is None:
                iface = interface_of(path)
                if (iface is not None and iface not in links) or not strict:
                    continue  # its interface is made by the plan
                raise _missing(ns, path)
            if not os.stat(ROOT + path).st_mode & 0o222:  # a key a child namespace may only read
                if not strict:
                    continue
                raise _read_only(ns, path)
            out[path] = value
    return out


def write(namespaces: Namespaces, ns: str, path: str, value: str) -> None:
    with namespaces.inside(ns):
        try:
            fd = os.open(ROOT + path, os.O_WRONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise _missing(ns, path) from None
        except PermissionError as exc:
            raise _read_only(ns, path, exc.errno) from None
        try:
            os.write(fd, value.encode() + b"\n")
        except OSError as exc:
            what = (f"the kernel refuses {value!r} for sysctl {sysctl_name(path)} in namespace {ns}"
                    if exc.errno in (errno.EINVAL, errno.ERANGE) else f"write sysctl {sysctl_name(path)} in {ns}")
            raise KernelError.of(exc.errno or errno.EIO, what) from None
        finally:
            os.close(fd)


def _read(file: str) -> str | None:
    try:
        with open(file) as f:
            return normalize(f.read())
    except FileNotFoundError:
        return None
    except PermissionError as exc:  # a write-only key (route.flush): nothing netlab could compare
        raise KernelError.of(exc.errno or errno.EACCES, f"sysctl {file.removeprefix(ROOT)} cannot be read, "
                                                        "so netlab cannot keep it as declared") from None


def _read_only(ns: str, path: str, code: int | None = None) -> KernelError:
    return KernelError.of(code or errno.EACCES, f"sysctl {sysctl_name(path)} is read-only in namespace {ns}")


def _missing(ns: str, path: str) -> KernelError:
    return KernelError.of(errno.ENOENT, f"sysctl {sysctl_name(path)} does not exist in namespace {ns}: this "
                                        "kernel lacks it, or it is kept for the root namespace only")
