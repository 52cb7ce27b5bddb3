"""Runtime tests: `async def` tests run in a fresh event loop with asyncio.run.

The runtime's tests never touch the compiler. A plain hook instead of a plugin
keeps the loop under the test's control: each test gets the same `asyncio.run`
a user's program would, including its shutdown of leftover tasks.
"""

from __future__ import annotations

import asyncio
import inspect

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    arguments = {
        name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames
    }
    asyncio.run(pyfuncitem.obj(**arguments))
    return True
