"""The worker's event loops: uvloop for the main loop and for Faust's consumer thread."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator

import pytest

from streams.shell.worker import _new_loop


@pytest.fixture
def restored_policy() -> Iterator[None]:
    policy = asyncio.get_event_loop_policy()
    yield
    asyncio.set_event_loop_policy(policy)


@pytest.mark.skipif(sys.platform == "win32", reason="no uvloop on Windows")
@pytest.mark.usefixtures("restored_policy")
def test_a_loop_made_later_in_another_thread_is_uvloop_too() -> None:
    # Faust's consumer thread makes its loop with asyncio.new_event_loop() when it
    # starts: on the selector loop its fetches cost ~20% more CPU per event.
    import uvloop

    main = _new_loop()
    made: list[asyncio.AbstractEventLoop] = []
    thread = threading.Thread(target=lambda: made.append(asyncio.new_event_loop()))
    thread.start()
    thread.join()
    try:
        assert isinstance(main, uvloop.Loop)
        assert isinstance(made[0], uvloop.Loop)
    finally:
        main.close()
        made[0].close()
