"""Renders a review as plain text for the terminal and as Markdown for a pull request description."""

from __future__ import annotations

from tools.proto_review.compare import Change
from tools.proto_review.review import Review


def _verdict(ok: bool) -> str:
    return "compatible" if ok else "BREAKING"


def _mark(review: Review, change: Change) -> str:
    if not change.breaking:
        return ""
    allowance = review.allowance(change)
    kinds = "/".join(
        kind
        for kind, bad in (("wire", change.wire_breaking), ("source", change.source_breaking))
        if bad
    )
    return f"breaking ({kinds})" + (f", allowed: {allowance}" if allowance else ", NOT allowed")


def _missing_stubs(review: Review) -> list[str]:
    return [p for p in review.stubs_expected if p not in review.stubs_changed]


def text(review: Review) -> str:
    lines = [f"API review of {review.base}..{review.head}", ""]
    lines.append("Proto files changed:")
    lines.extend(f"  {p}" for p in review.changed_protos or ["(none)"])
    lines.append("")
    lines.append("Changes:")
    if not review.changes:
        lines.append("  (none to the API surface)")
    for change in review.changes:
        mark = _mark(review, change)
        lines.append(
            f"  {change.kind.value:<10} {change.element:<10} {change.subject}"
            + (f"  {change.detail}" if change.detail else "")
            + (f"  [{mark}]" if mark else "")
        )
        if change.breaking:
            lines.append(f"             id: {change.id}")
    lines.append("")
    lines.append(f"Wire compatibility:   {_verdict(review.wire_compatible)}")
    lines.append(f"Source compatibility: {_verdict(review.source_compatible)}")
    lines.append("")
    lines.append("buf breaking (FILE rules):")
    if not review.buf_findings:
        lines.append("  no findings")
    for finding in review.buf_findings:
        allowance = review.buf_allowance(finding)
        lines.append(
            f"  {finding.path}:{finding.line} {finding.rule}: {finding.message}"
            + (
                f"  [{allowance}]"
                if allowance
                else f"  [NOT allowed; id: buf:{finding.rule}:{finding.path}]"
            )
        )
    lines.append("")
    lines.append("Generated stub files that change:")
    lines.extend(f"  {p}" for p in review.stubs_changed or ["(none)"])
    for path in _missing_stubs(review):
        lines.append(f"  expected but unchanged (run ./pants generate?): {path}")
    lines.append("")
    lines.append(
        "Result: PASS"
        if review.passed
        else "Result: FAIL (breaking changes; see docs in CONTRIBUTING.md)"
    )
    return "\n".join(lines) + "\n"


def markdown(review: Review) -> str:
    lines = [f"## API review: `{review.base}..{review.head}`", ""]
    lines.append(
        f"**Result: {'pass' if review.passed else 'FAIL'}** · wire: "
        f"{_verdict(review.wire_compatible)} · source: {_verdict(review.source_compatible)}"
    )
    lines.append("")
    lines.append("### Proto files changed")
    lines.extend(f"- `{p}`" for p in review.changed_protos or ["(none)"])
    lines.append("")
    lines.append("### Changes")
    if review.changes:
        lines.append("| change | element | subject | detail | compatibility |")
        lines.append("| --- | --- | --- | --- | --- |")
        for change in review.changes:
            lines.append(
                f"| {change.kind.value} | {change.element} | `{change.subject}` | "
                f"{change.detail or ''} | {_mark(review, change) or 'compatible'} |"
            )
    else:
        lines.append("No change to the API surface.")
    if review.buf_findings:
        lines.append("")
        lines.append("### buf breaking")
        lines.extend(f"- `{f.path}:{f.line}` {f.rule}: {f.message}" for f in review.buf_findings)
    lines.append("")
    lines.append("### Generated stubs that change")
    lines.extend(f"- `{p}`" for p in review.stubs_changed or ["(none)"])
    missing = _missing_stubs(review)
    if missing:
        lines.append("")
        lines.append("Expected but unchanged (stubs not regenerated?):")
        lines.extend(f"- `{p}`" for p in missing)
    return "\n".join(lines) + "\n"
