"""Recipes (ktui.probes.recipes): each way of each classic tool compiles; the choice follows what the
kernel offers and says which way it took and why."""

from __future__ import annotations

import pytest

from ktui.compiler import compile_session
from ktui.probes.recipes import RECIPES, Capabilities, choose, recipe

EVERYTHING = Capabilities(lambda _name: True, kprobes=True)
TRACEPOINTS_ONLY = Capabilities(lambda _name: True, kprobes=False)
NOTHING = Capabilities(lambda _name: False, kprobes=False)


def test_the_classic_tools_are_there():
    assert [r.name for r in RECIPES] == ["opensnoop", "execsnoop", "exitsnoop", "runqlat", "biolatency",
                                         "tcpconnect", "profile", "syscount"]


@pytest.mark.parametrize("way", [(r, w) for r in RECIPES for w in r.ways], ids=lambda rw: f"{rw[0].name}-{rw[1].mechanism[:30]}")
def test_every_way_compiles(way):
    _, w = way
    program = compile_session(w.build())
    errors = [cp.error for cp in program.probes if getattr(cp, "error", None)]
    if w.needs_kprobes and not Capabilities.of_this_kernel().kprobes:  # compiled, but nothing to attach to here
        errors = [e for e in errors if "kprobes are not available" not in e]
    assert not errors
    assert program.c_text


def test_the_choice_follows_the_kernel_and_says_why():
    with_kprobes = choose(recipe("runqlat"), EVERYTHING)
    assert with_kprobes.mechanism.startswith("kprobe schedule")
    without = choose(recipe("runqlat"), TRACEPOINTS_ONLY)
    assert without.mechanism.startswith("tracepoints sched:sched_wakeup")
    assert "this kernel has no kprobes" in without.reason
    opensnoop = choose(recipe("opensnoop"), TRACEPOINTS_ONLY)
    assert opensnoop.probes[0].spec == "tracepoint:syscalls:sys_enter_openat"
    assert "best way" in opensnoop.reason
    none = choose(recipe("execsnoop"), NOTHING)
    assert none.probes == [] and none.reason == ("execsnoop cannot run here: tracepoint syscalls:sys_enter_execve: "
                                                 "this kernel has no tracepoint syscalls:sys_enter_execve.")


def test_this_kernel_offers_every_recipe():
    """On this VM (tracepoints, no kprobes): every recipe has a way, and none of them is a kprobe."""
    caps = Capabilities.of_this_kernel()
    if caps.has_tracepoint("sched:sched_switch") is False:
        pytest.skip("no tracefs here")
    for r in RECIPES:
        chosen = choose(r, caps)
        assert chosen.probes, chosen.reason
        if not caps.kprobes:
            assert all(not p.kind.is_kernel_function for p in chosen.probes), chosen.reason


def test_recipes_are_editable_probes_that_survive_a_session():
    from ktui.probes.model import Probe

    for r in RECIPES:
        for p in choose(r, TRACEPOINTS_ONLY).probes:
            assert Probe.from_dict(p.to_dict()).to_dict() == p.to_dict()


def test_recipes_are_in_the_palette_of_live_mode_only_and_add_their_probes():
    import asyncio

    from fake_source import RecordingFactory, fake_catalog
    from ktui.app import KtuiApp

    async def run():
        factory = RecordingFactory()
        app = KtuiApp(catalog_loader=fake_catalog, mode="live", source_factory=factory)
        async with app.run_test(size=(80, 24)) as pilot:
            await app.workers.wait_for_complete()
            titles = [c.title for c in app.get_system_commands(app.screen)]
            for r in RECIPES:
                assert any(t.startswith(f"Recipe: {r.name}") for t in titles), r.name
            app.open_recipe("execsnoop")
            await pilot.pause()
            await app.workers.wait_for_complete()
            assert [p.spec for p in app.probes] == ["tracepoint:syscalls:sys_enter_execve"]
            assert app.query_one("#panes").active == "probes"
            assert any("execsnoop: uses tracepoint syscalls:sys_enter_execve" in n.message
                       for n in app._notifications), "the recipe says which mechanism it took"
        replay = KtuiApp(catalog_loader=fake_catalog, mode="replay")
        async with replay.run_test(size=(80, 24)):
            assert not [c for c in replay.get_system_commands(replay.screen) if c.title.startswith("Recipe:")]
    asyncio.run(run())
