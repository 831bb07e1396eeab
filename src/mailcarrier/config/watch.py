"""Picking up a changed main.cf or table file at a safe point: `ConfigReloader`.

A long-running process (the queue runner) keeps one `ConfigReloader` and calls `poll()`
between units of work. When main.cf or any table file it names changed (inode, size or mtime,
see `mailcarrier.tables.FileWatcher`), `poll()` loads the configuration again; on success the
new `Settings` replaces the old one, on a `ConfigError` the old one stays in force and the
error is returned for logging, so a typo never stops delivery. Work in progress keeps the
`Settings` it started with; nothing is interrupted or repeated. No threads, no asyncio.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mailcarrier.config.settings import Settings
from mailcarrier.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Reload:
    """The outcome of a reload attempt: the new settings, or the error that kept the old."""

    settings: Settings | None
    error: ConfigError | None
    changed_files: tuple[Path, ...]


class ConfigReloader:
    __slots__ = ("_config_dir", "_overrides", "_watcher", "settings")

    def __init__(
        self, config_dir: str | Path | None = None, overrides: Mapping[str, str] | None = None
    ) -> None:
        self._config_dir = config_dir
        self._overrides = dict(overrides or {})
        self.settings = Settings.load(config_dir, self._overrides)
        self._watcher = self.settings.watcher()

    def poll(self) -> Reload | None:
        """None when nothing changed; otherwise the outcome of reloading."""
        changed = tuple(self._watcher.changed_files())
        if not changed:
            return None
        try:
            fresh = Settings.load(self._config_dir, self._overrides)
        except ConfigError as exc:
            # Re-arm on the files as they are now, so one bad edit is reported once.
            self._watcher = self.settings.watcher()
            return Reload(None, exc, changed)
        self.settings = fresh
        self._watcher = fresh.watcher()
        return Reload(fresh, None, changed)
