"""Picking up a changed main.cf or table file at a safe point: `ConfigReloader`.

A long-running process (``mailcarrier run``: cli.py keeps one, queue/daemon.py's `serve()`
asks it between units of work) loads its configuration through a `ConfigReloader`.
`changed()` says whether main.cf or any table file it names changed since the last load
(inode, size or mtime, see `mailcarrier.tables.FileWatcher`); `reload()` (then, or on
SIGHUP) loads the configuration again. On success the new `Settings` replaces the old one;
a `ConfigError` leaves the old one in force and is raised for logging, and the files as they
were when the attempt began count as seen, so one bad edit is reported once and a typo never
stops delivery. Work in progress keeps the `Settings` it started with; nothing is
interrupted or repeated. No threads, no asyncio.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from mailcarrier.config.settings import Settings


class ConfigReloader:
    __slots__ = ("_config_dir", "_overrides", "_watcher", "settings")

    def __init__(
        self, config_dir: str | Path | None = None, overrides: Mapping[str, str] | None = None
    ) -> None:
        self._config_dir = config_dir
        self._overrides = dict(overrides or {})
        self.settings = Settings.load(config_dir, self._overrides)
        self._watcher = self.settings.watcher()

    def changed_files(self) -> tuple[Path, ...]:
        """The files of the configuration that changed since the last load."""
        return tuple(self._watcher.changed_files())

    def changed(self) -> bool:
        return self._watcher.changed()

    def reload(self) -> Settings:
        """Load the configuration again; the new settings (now `settings`). A failure
        (ConfigError) is raised with the old settings kept."""
        # Armed before loading: an edit made while the files are read is seen next time.
        seen = self.settings.watcher()
        try:
            fresh = Settings.load(self._config_dir, self._overrides)
        except Exception:
            self._watcher = seen
            raise
        self.settings = fresh
        self._watcher = fresh.watcher()
        return fresh
