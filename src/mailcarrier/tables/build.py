"""Building an indexed table from its source file, as postmap(1) does: `build_index`.

`build_index(source, kind, options)` reads ``source`` (source.py: postmap's input format),
folds each key as postmap does (lower case; Unicode case folding for non-ASCII keys unless
UTF-8 is off; not at all with ``-f``), keeps the first of duplicate keys with postmap's
warning (``-w``: silently; ``-r``: the last instead), adds the trailing null byte that
postmap adds for this type (or not: ``-N``/``-n``) and writes the file in the type's format
(formats.py). The file is written under a temporary name beside the final one, fsynced and
renamed (durable.py), so no reader, Postfix's or ours, ever sees half of it, and a reader
that has the old file open keeps a whole one (Postfix's daemons notice the rename and start
afresh). As postmap, the new file gets the group and other read permissions of the source
(mode 0644 with ``-p``) and, when run by root, the owner of the source (not with ``-o``).
Returns (entries written, warnings in postmap's words and order).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mailcarrier.durable import AtomicFile
from mailcarrier.progress import NULL_PROGRESS, Progress
from mailcarrier.tables.base import TableError
from mailcarrier.tables.formats import FORMATS, Format
from mailcarrier.tables.indexed import decode, fold_bytes, require
from mailcarrier.tables.source import read_entries

Duplicates = Literal["warn", "ignore", "replace"]


@dataclass(frozen=True, slots=True)
class BuildOptions:
    """postmap's options for a build: -f, -N/-n, -u, -w/-r, -p, -o."""

    fold: bool = True
    nulls: bool | None = None  # None: the type's default; True: -N; False: -n
    utf8: bool = True
    duplicates: Duplicates = "warn"
    keep_permissions: bool = True
    as_owner: bool = True


def _entries(
    source: Path, found: Format, options: BuildOptions, warnings: list[str], progress: Progress
) -> dict[bytes, bytes]:
    entries: dict[bytes, bytes] = {}
    for entry in read_entries(source, warnings, utf8=options.utf8, progress=progress):
        key = fold_bytes(entry.key, utf8=options.utf8) if options.fold else entry.key
        if key in entries:
            if options.duplicates == "warn":
                warnings.append(f'{found.dict_name(source)}: duplicate entry: "{decode(key)}"')
            if options.duplicates != "replace":
                continue
        entries[key] = entry.value
    return entries


def _mode(st: os.stat_result, options: BuildOptions) -> int:
    """postmap's umask(022 | (~source mode & 077)) applied to a new file's 0644."""
    if not options.keep_permissions or not stat.S_ISREG(st.st_mode):
        return 0o644
    return 0o644 & ~(0o022 | (~st.st_mode & 0o077))


def _owner_warnings(source: Path, st: os.stat_result, options: BuildOptions) -> list[str]:
    if not options.as_owner or os.geteuid() != 0 or st.st_uid != 0:
        return []
    parent = source.parent
    try:
        parent_uid = parent.stat().st_uid
    except OSError as exc:
        raise TableError(f"stat {parent}: {exc.strerror or exc}") from None
    if parent_uid == 0:
        return []
    return [
        f"Creating root-owned database file(s) {source}.* in non-root-owned directory "
        f"{parent}. Files {source}, {source}.*, and directory {parent} should have the same "
        "owner. Please fix ownership to avoid a privilege-escalation attack."
    ]


def build_index(
    source: Path,
    kind: str = "hash",
    options: BuildOptions | None = None,
    progress: Progress = NULL_PROGRESS,
) -> tuple[int, list[str]]:
    """Compile `source` into its `kind` index file; return (entries written, warnings).
    `progress` is told how many lines of `source` are read (``map`` on a terminal)."""
    options = options or BuildOptions()
    try:
        found = FORMATS[kind]
    except KeyError:
        raise TableError(f"cannot build {kind} tables: they are read directly") from None
    spec = f"{kind}:{source}"
    require(found.package, spec)  # before anything else: one line saying what to install
    try:
        st = source.stat()
    except OSError as exc:
        raise TableError(f"open {source}: {exc.strerror or exc}") from None
    warnings = _owner_warnings(source, st, options)
    entries = _entries(source, found, options, warnings, progress)
    tail = b"\0" if (found.null_by_default if options.nulls is None else options.nulls) else b""
    items = [(key + tail, value + tail) for key, value in entries.items()]
    target = found.index(source)
    with AtomicFile(target, prefix=f".{target.name}.", mode=_mode(st, options)) as out:
        found.writer(out, items, spec)
        if options.as_owner and os.geteuid() == 0 and st.st_uid != 0:
            os.chown(out.path, st.st_uid, st.st_gid)
        out.commit()
    return len(items), warnings
