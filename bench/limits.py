"""The process and network limits a benchmark of thousands of sessions needs, raised where allowed.

Ten thousand concurrent sessions on 127.0.0.1 need, in each of the client, smtp-sink and
smtp-source, a file descriptor per session (the usual soft limit is 1,024), and at the
sink a listen backlog that holds the connections arriving faster than it accepts them:
Linux caps every backlog at ``net.core.somaxconn`` (4,096 in a new network namespace), and
a connection that finds the accept queue full waits for its SYN to be sent again, a second
or more later. `raise_open_files` lifts this process's RLIMIT_NOFILE (soft to hard, and the
hard limit too when the process may: root with CAP_SYS_RESOURCE); the programs it starts
inherit it. `raise_backlog` raises ``somaxconn`` and ``tcp_max_syn_backlog`` only inside a
network namespace of the benchmark's own (``scripts/loopback-only``), never the host's.
Each returns what is in force, for the report. Starting and measuring the peers is
bench/common.py's.
"""

from __future__ import annotations

import contextlib
import os
import resource
from pathlib import Path
from typing import Final

NR_OPEN: Final = Path("/proc/sys/fs/nr_open")
SOMAXCONN: Final = Path("/proc/sys/net/core/somaxconn")
SYN_BACKLOG: Final = Path("/proc/sys/net/ipv4/tcp_max_syn_backlog")


def raise_open_files(need: int) -> int:
    """Raise RLIMIT_NOFILE towards `need` (at least the hard limit's soft value); the soft
    limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < need:
        ceiling = _read_int(NR_OPEN) or need
        with contextlib.suppress(OSError, ValueError):  # not allowed: keep the hard limit
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, ceiling),) * 2)
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    return soft if soft != resource.RLIM_INFINITY else need


def private_network_namespace() -> bool:
    """Does this process run in a network namespace of its own: another than init's, or,
    where init's cannot be looked at (a container), one whose only interface is loopback
    (what scripts/loopback-only makes)? Settings changed there reach no other network."""
    try:
        return os.stat("/proc/self/ns/net").st_ino != os.stat("/proc/1/ns/net").st_ino
    except OSError:
        pass
    try:
        lines = Path("/proc/net/dev").read_text(encoding="ascii").splitlines()[2:]
    except OSError:  # no /proc: assume the host's
        return False
    return [line.split(":", 1)[0].strip() for line in lines] == ["lo"]


def raise_backlog(need: int) -> int:
    """Raise the kernel's cap on listen backlogs to `need` when this is a private network
    namespace and we may; the cap in force (0 when it cannot be read)."""
    current = _read_int(SOMAXCONN)
    if current < need and private_network_namespace():
        for path in (SOMAXCONN, SYN_BACKLOG):
            with contextlib.suppress(OSError):
                if _read_int(path) < need:
                    path.write_text(f"{need}\n", encoding="ascii")
        current = _read_int(SOMAXCONN)
    return current


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return 0
