"""Keys handled one at a time, each after the one before has finished, so none is lost or misdirected.

Textual forwards each key to the widget focused when the app takes it from its queue, and the
widget handles it later in its own queue. Keys that wait together in the app's queue (typed while
the app was starting or busy, as during the first compile on a loaded machine, or typed fast over a
slow link) were all forwarded before the first had been handled: after "/" the search box had not
yet got the keyboard, so "schedule" typed right after went to the stream and was lost (and Enter typed
before the terminal was in raw mode came as ctrl+j and did nothing). Here a key is
forwarded only when the one before has travelled its whole way (the widget, then each parent it
bubbled to, up to the app and the binding it ran).

A key may change the screen (ctrl+r pushes the recorder's dialog, Enter or Escape dismisses one): the
widget that will have the keyboard is then on the new screen, which mounts and gives the keyboard to
its field in its own queue. So the rule is one for every screen: when the screen on top is not the
one a key was sent on, the next key waits until the new screen is mounted and its queue (and the
app's, where focus changes are queued) has caught up, then goes to what it focused. Without that,
the keys typed right after ctrl+r reached the dialog before its path field had the keyboard, and
landed in the stream or in the wrong field.

Escape and the key right after it can arrive together (typed fast, pasted, or over a slow link):
the terminal parser reads them as one alt+key, which a text box types as the plain character
(Escape lost, the key typed into the box it should have left). ktui binds no alt+printable key,
so such a pair is taken apart again into the Escape and the key.

A paste (the terminal's bracketed paste) is typing too, and takes its turn in the same queue: left to
Textual it went to the focused box at once, ahead of the keys typed just before it that were still
waiting here, so "hello" then a paste gave "htracepoint:...ello", and ctrl+u then a paste emptied the
box (the paste landed first, ctrl+u then deleted it; NEWCOMER F10).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from textual import events
from textual.keys import _character_to_key
from textual.message_pump import MessagePump

SETTLE_TIMEOUT_S = 1.0  # a widget that never answers (closing, or flooded) does not hold the keyboard longer
RECENT_S = 1.0  # a key dispatched this recently may still be on its way: the next one waits for it
HOLD_MAX_S = 30.0  # keys wait at most this long behind an answer still coming (the catalog loading)


@runtime_checkable
class HoldsKeys(Protocol):
    """A screen whose answer to a key comes later, from a worker (the recorder's dialog starts the
    recording on a thread and closes when it has started): while ``holds_keys`` is True the keys
    after it wait, so they reach what is on screen once the answer came, not the closing dialog."""

    @property
    def holds_keys(self) -> bool: ...


class KeyQueue:
    def __init__(self, focused: Callable[[], MessagePump],
                 dispatch: Callable[[events.Key | events.Paste], Awaitable[None]],
                 hold: Callable[[], bool] = lambda: False,
                 screen: Callable[[], MessagePump | None] = lambda: None) -> None:
        self.focused = focused  # where the app forwards a key now (the focused widget, else the screen)
        self.screen = screen  # the screen on top now (the one whose focused widget gets keys)
        self.dispatch = dispatch  # the app's own handling of one key (bindings, then forwarding)
        # True while a key already handled waits for an answer that decides where the next keys go
        # (Enter in the browser before the catalog is loaded opens the editor only when it is).
        self.hold = hold
        self.waiting: deque[events.Key | events.Paste] = deque()
        self._task: asyncio.Task[None] | None = None
        # Where the last key went, when, and the screen on top when it was sent.
        self._last: tuple[MessagePump, float, MessagePump | None] | None = None

    def put(self, event: events.Key | events.Paste) -> None:
        if isinstance(event, events.Paste):
            self._append(event)
            return
        if event.key == "ctrl+j":
            # Enter typed before the app put the terminal in raw mode arrives as a line feed (the tty
            # turned CR into NL); Ctrl-J is Enter in shells and readline too.
            event = events.Key("enter", "\r")
        plain = escape_then_key(event)
        if plain is not None:
            self.waiting.append(events.Key("escape", "\x1b"))
            event = plain
        self._append(event)

    def _append(self, event: events.Key | events.Paste) -> None:
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
            deadline = loop.time() + HOLD_MAX_S
            while self.hold() and loop.time() < deadline:
                await asyncio.sleep(0.05)
            now_on = self.screen()
            if self._last is not None and now_on is not None and now_on is not self._last[2]:
                await screen_ready(now_on)  # the key before pushed or closed a screen: wait for the new one
            self._last = None
            event = self.waiting.popleft()
            target, on = self.focused(), self.screen()
            await self.dispatch(event)
            self._last = (target, loop.time(), on)


def escape_then_key(event: events.Key) -> events.Key | None:
    """The plain key of alt+x (alt+shift+x for X) with a printable character x: what the terminal
    parser makes of Escape followed at once by x. None for any other key."""
    char = event.character
    if not event.key.startswith("alt+") or char is None or len(char) != 1 or not char.isprintable():
        return None
    name = _character_to_key(char)  # the parser's own naming of a plain character
    if event.key not in (f"alt+{name}", f"alt+shift+{name.lower()}"):
        return None
    return events.Key(name, char)


async def screen_ready(screen: MessagePump) -> None:
    """Wait until a screen just pushed (or uncovered) is mounted and has given the keyboard to its
    widget: its Mount handler ran (it focuses a field, often by a callback queued at the app) and
    what that queued, here and at the app, has run too."""
    try:
        await asyncio.wait_for(screen._mounted_event.wait(), SETTLE_TIMEOUT_S)
    except TimeoutError:
        pass
    await settled(screen)
    await settled(screen)


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
