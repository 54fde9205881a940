"""The probe model -> one BCC C program, with per-probe record layouts and attach plans."""

from ktui.compiler.fallback import KernelFacts
from ktui.compiler.program import AttachPlan, CompiledProbe, CompiledProgram
from ktui.compiler.session import DEFAULT_RING_PAGES, compile_session

__all__ = ["AttachPlan", "CompiledProbe", "CompiledProgram", "DEFAULT_RING_PAGES", "KernelFacts", "compile_session"]
