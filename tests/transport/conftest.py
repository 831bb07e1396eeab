"""Fixtures for transport tests: a factory of scripted servers, stopped after each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tests.transport.scripted import ScriptedServer, Step

StartScripted = Callable[..., Awaitable[ScriptedServer]]


@pytest.fixture
async def scripted() -> AsyncIterator[StartScripted]:
    servers: list[ScriptedServer] = []

    async def start(*scripts: list[Step], host: str = "127.0.0.1") -> ScriptedServer:
        server = await ScriptedServer(*scripts, host=host).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.stop()
