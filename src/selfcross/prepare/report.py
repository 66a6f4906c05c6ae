"""``prepare_report.md``: what a preparation kept, skipped and why, with settings and timings."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfcross.folds import layout
from selfcross.folds.writer import save_text

if TYPE_CHECKING:
    from selfcross.prepare.records import PrepareResult



def write_report(
    result: PrepareResult,
    configs: dict[str, dict[str, Any]],
    *,
    title: str,
    notes: Sequence[str] = (),
    source: str = "",
    extra: dict[str, str] | None = None,
) -> Path:
    """Write ``prepare_report.md``: counts, folds, skips, problems, settings, cache, timings."""
    groups = sorted({g for per in result.counts.values() for g in per})
    lines = [f"# {title}", ""]
    if source:
        lines += [f"Source: `{source}`  ", ""]
    lines += [f"Modalities written: {', '.join(result.modalities)}. Utterances kept: {len(result.kept)}; "
              f"skipped: {len(result.skipped)}; malformed input lines/files: {len(result.problems)}.", ""]
    for n in notes:
        lines += [f"> {n}", ""]
    lines += ["## Utterances per class and group", "",
              "| class | " + " | ".join(groups) + " | total |",
              "|---|" + "---|" * (len(groups) + 1)]
    for c, per in result.counts.items():
        cells = " | ".join(str(per.get(g, 0)) for g in groups)
        lines.append(f"| {c} | {cells} | {sum(per.values())} |")
    tot = [sum(per.get(g, 0) for per in result.counts.values()) for g in groups]
    lines += ["| **total** | " + " | ".join(map(str, tot)) + f" | {sum(tot)} |", ""]

    lines += _folds_section(result)
    lines += _skipped_section(result)
    lines += ["## Extractor settings", "", "```json",
              json.dumps({**configs, **({"extra": extra} if extra else {})}, indent=2, sort_keys=True),
              "```", ""]
    lines += ["## Feature cache", "", "| modality | reused | computed |", "|---|---|---|"]
    lines += [f"| {m} | {s['hits']} | {s['computed']} |" for m, s in result.cache.items()]
    lines += ["", "## Timings", "", "| step | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in result.timings.items()]
    lines.append("")
    return save_text(result.report, "\n".join(lines).split("\n"))


def _folds_section(result: PrepareResult) -> list[str]:
    lines = ["## Folds", "",
             "Fold k tests on group k; dev = whole held-out speakers of the training groups "
             "(no speaker is in two splits of a fold).", "",
             "| fold | test groups | train | dev | test | dev speakers |", "|---|---|---|---|---|---|"]
    for k, p in enumerate(result.folds, start=1):
        lines.append(f"| {layout.fold_name(k)} | {', '.join(p.test_groups)} | {len(p.train)} | "
                     f"{len(p.dev)} | {len(p.test)} | {', '.join(p.dev_speakers)} |")
    lines.append("")
    return lines


def _skipped_section(result: PrepareResult) -> list[str]:
    """Skip reasons with counts, every skipped utterance (folded), and the malformed input."""
    lines = ["## Skipped utterances", ""]
    if result.skipped:
        reasons = Counter(s.reason for s in result.skipped)
        lines += ["| reason | utterances |", "|---|---|"]
        lines += [f"| {r} | {n} |" for r, n in sorted(reasons.items())]
        lines += ["", "<details><summary>every skipped utterance</summary>", "",
                  "| utterance | reason | detail |", "|---|---|---|"]
        lines += [f"| {s.id} | {s.reason} | {_cell(s.detail)} |" for s in result.skipped]
        lines += ["", "</details>", ""]
    else:
        lines += ["None.", ""]

    lines += ["## Malformed input", ""]
    lines += [f"- `{p}`" for p in result.problems] if result.problems else ["None."]
    lines.append("")
    return lines


def _cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")[:300]


def count_extractions(result: PrepareResult) -> int:
    """Utterance feature extractions actually run (0 when everything came from the cache)."""
    return sum(s["computed"] for s in result.cache.values())
