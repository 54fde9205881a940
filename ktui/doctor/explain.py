"""Sentences for the engine and the app: why a probe cannot attach, what to show in the status bar."""

from __future__ import annotations

from ktui.doctor.report import Report


def summary_warnings(report: Report) -> list[str]:
    return []


def explain_attach_failure(kind: str, target: str) -> str:
    return ""
