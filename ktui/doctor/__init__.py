"""What this kernel can trace, with evidence (``ktui doctor``), and the sentences
the engine and the app use to explain why something cannot be traced."""

from ktui.doctor.diagnose import diagnose
from ktui.doctor.explain import explain_attach_failure, summary_warnings
from ktui.doctor.report import MECHANISMS, Check, Report, render_table

__all__ = ["Check", "MECHANISMS", "Report", "diagnose", "explain_attach_failure", "render_table", "summary_warnings"]
