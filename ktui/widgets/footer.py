"""The footer, recomposed only when the keys it shows change.

Textual's Footer recomposes (unmounts and mounts one widget per key, each styled by the
stylesheet) on every bindings signal, once per signal: a tab switch sends several (focus
leaves, focus arrives), so under load a tab switch paid for several full footers. Here the
signals of one frame coalesce into one check, and the footer is rebuilt only when the keys
it would show (key, label, enabled) differ from what it shows.
"""

from __future__ import annotations

from textual.widgets import Footer


class KtuiFooter(Footer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._check_pending = False
        self._shown: tuple | None = None

    def _signature(self) -> tuple:
        screen = self.screen
        app = self.app
        keys = tuple((binding.action, binding.key, app.get_key_display(binding), binding.description, enabled)
                     for (_, binding, enabled, _tooltip) in screen.active_bindings.values() if binding.show)
        return keys, self.compact, self.show_command_palette

    def bindings_changed(self, screen) -> None:
        self._bindings_ready = True
        if not screen.app.app_focus:
            return
        if self.is_attached and screen is self.screen and not self._check_pending:
            self._check_pending = True
            self.call_after_refresh(self._recompose_if_changed)

    async def _recompose_if_changed(self) -> None:
        self._check_pending = False
        if not self.is_attached:
            return
        signature = self._signature()
        if signature == self._shown:
            return
        self._shown = signature
        await self.recompose()
