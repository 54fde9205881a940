"""Keys handled one at a time, each after the one before has finished, so none is lost or misdirected.

Textual forwards each key to the widget focused when the app takes it from its queue, and the
widget handles it later in its own queue. Keys that wait together in the app's queue (typed while
the app was starting or busy, as during the first compile on a loaded machine, or typed fast over a
slow link) were all forwarded before the first had been handled: after "/" the search box had not
yet got the keyboard, so "schedule" typed right after went to the stream and was lost (and Enter typed
before the terminal was in raw mode came as ctrl+j and did nothing). Here a key is
forwarded only when the one before has travelled its whole way (the widget, then each parent it
bubbled to, up to the app and the binding it ran).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

from textual import events
from textual.message_pump import MessagePump

SETTLE_TIMEOUT_S = 1.0  # a widget that never answers (closing, or flooded) does not hold the keyboard longer
RECENT_S = 1.0  # a key dispatched this recently may still be on its way: the next one waits for it
HOLD_MAX_S = 30.0  # keys wait at most this long behind an answer still coming (the catalog loading)


class KeyQueue:
    def __init__(self, focused: Callable[[], MessagePump], dispatch: Callable[[events.Key], Awaitable[None]],
                 hold: Callable[[], bool] = lambda: False) -> None:
        self.focused = focused  # where the app forwards a key now (the focused widget, else the screen)
        self.dispatch = dispatch  # the app's own handling of one key (bindings, then forwarding)
        # True while a key already handled waits for an answer that decides where the next keys go
        # (Enter in the browser before the catalog is loaded opens the editor only when it is).
        self.hold = hold
        self.waiting: deque[events.Key] = deque()
        self._task: asyncio.Task[None] | None = None
        self._last: tuple[MessagePump, float] | None = None  # where the last key went, and when

    def put(self, event: events.Key) -> None:
        if event.key == "ctrl+j":
            # Enter typed before the app put the terminal in raw mode arrives as a line feed (the tty
            # turned CR into NL); Ctrl-J is Enter in shells and readline too.
            event = events.Key("enter", "\r")
        self.waiting.append(event)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._pump(), name="ktui-keys")

    async def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        while self.waiting:
            # The key before, if it may still be on its way, is followed to its end first. A key typed
            # alone, long after the one before, is dispatched at once: no cost when nothing waits.
            if self._last is not None and loop.time() - self._last[1] < RECENT_S:
                # Twice: a message the key made a widget post (Enter -> Input.Submitted) is queued
                # behind the first round's callback; the second round follows it up too.
                await settled(self._last[0])
                await settled(self._last[0])
            self._last = None
            deadline = loop.time() + HOLD_MAX_S
            while self.hold() and loop.time() < deadline:
                await asyncio.sleep(0.05)
            event = self.waiting.popleft()
            target = self.focused()
            await self.dispatch(event)
            self._last = (target, loop.time())


async def settled(node: MessagePump | None) -> None:
    """Wait until every message queued so far at ``node`` and each of its ancestors has been handled:
    a callback queued behind them runs, level by level from the widget up, so a key that bubbled up
    is followed to the top."""
    loop = asyncio.get_running_loop()
    while node is not None:
        done: asyncio.Future[None] = loop.create_future()
        if node.call_later(lambda done=done: done.done() or done.set_result(None)):
            try:
                await asyncio.wait_for(done, SETTLE_TIMEOUT_S)
            except TimeoutError:
                pass
        node = node._parent
