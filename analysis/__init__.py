"""ptjf.analysis: event files -> tidy tables, fronts, figures and a report.

Reads event files only; imports nothing of the engine.
"""
