"""Analysis of a results store: statistics, the report, its figures.

Public API: :func:`make_report` (``selfcross report``). Modules: :mod:`.stats` (paired tests,
intervals), :mod:`.report` (classification), :mod:`.regression_report`, :mod:`.robustness`,
:mod:`.plots`, :mod:`.curves`.
"""

from selfcross.analysis.report import make_report

__all__ = ["make_report"]
