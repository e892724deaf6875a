"""``audit --format html``: one self-contained HTML file an auditor can open or attach.

Rendered from the audit's JSON result (``audit_json`` plus ``policy`` and
``sbom-problems``), standard library only: inline CSS, charts as inline SVG, no
script, and a Content-Security-Policy that allows nothing from outside.  Every
string that comes from a bundle goes through :func:`html.escape`.  The page is a
sequence of sections (:data:`SECTIONS`); a new kind of finding is one more function.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Callable

from wheelferry import __version__
from wheelferry.clikit import human_size
from wheelferry.jsontypes import JSONValue

Section = Callable[[Mapping[str, JSONValue]], str]

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1400px;
padding:0 1.5em;color:#1d232a;background:#fff}
h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.2em;margin:1.6em 0 .5em;border-bottom:1px solid #d8dde3}
table{border-collapse:collapse;width:100%;margin:.4em 0}
th,td{text-align:left;vertical-align:top;padding:.3em .55em;border-bottom:1px solid #e6e9ed}
th{background:#f3f5f7;font-weight:600;position:sticky;top:0}
td.num{text-align:right;white-space:nowrap}code,.mono{font-family:ui-monospace,monospace;font-size:.92em}
.ok{color:#11703a;font-weight:600}.bad{color:#b3261e;font-weight:600}.warn{color:#8a5a00}
.unknown{color:#b3261e}.muted{color:#5d6873}.ev{font-size:.88em;color:#48525c;word-break:break-word}
dl.id{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1.2em;margin:.5em 0}
dl.id dt{font-weight:600}dl.id dd{margin:0;word-break:break-all}
.charts{display:flex;flex-wrap:wrap;gap:2em}.charts figure{margin:0}
figcaption{font-weight:600;margin-bottom:.3em}
svg text{font:12px system-ui,sans-serif;fill:#1d232a}
@media print{th{position:static}}
"""
# Nothing is loaded from anywhere: no script, no fetch, no remote style or image.
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
_PALETTE = ("#2f6db5", "#3c9a5f", "#c7812b", "#8e5bb5", "#c24d4d", "#3a9aa6", "#7d8a2e", "#b35c91")


def esc(value: object) -> str:
    """*value* as HTML text, quotes included (safe in element content and attribute values)."""
    return html.escape("" if value is None else str(value), quote=True)


def table(head: Sequence[str], rows: Iterable[Sequence[str]], *, raw: bool = False) -> str:
    """A table; cells are escaped unless *raw* (then they are HTML built here from escaped parts)."""
    cell = (lambda c: c) if raw else esc
    out = ["<table><thead><tr>", *(f"<th>{esc(h)}</th>" for h in head), "</tr></thead><tbody>"]
    out += ["<tr>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>" for row in rows]
    out.append("</tbody></table>")
    return "".join(out)


def bar_chart(caption: str, items: Sequence[tuple[str, float, str]], *, width: int = 560) -> str:
    """A horizontal bar chart as inline SVG: (label, value, value shown) per bar."""
    if not items:
        return ""
    top = max(v for _, v, _ in items) or 1
    row, label_w, bar_w = 22, 250, width - 250 - 90
    parts = [f'<figure><figcaption>{esc(caption)}</figcaption>'
             f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{row * len(items) + 4}" '
             f'role="img" aria-label="{esc(caption)}">']
    for i, (label, value, shown) in enumerate(items):
        y = i * row + 2
        w = max(1, round(bar_w * value / top))
        short = label if len(label) <= 32 else label[:31] + "…"
        parts.append(f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end"><title>{esc(label)}</title>'
                     f'{esc(short)}</text><rect x="{label_w}" y="{y + 3}" width="{w}" height="{row - 6}" '
                     f'fill="{_PALETTE[i % len(_PALETTE)]}"/><text x="{label_w + w + 6}" y="{y + 15}">'
                     f'{esc(shown)}</text>')
    parts.append("</svg></figure>")
    return "".join(parts)


def section_identity(report: Mapping[str, JSONValue]) -> str:
    """The bundle: name, sequence, dates, manifest hash, signer, targets, SBOM check."""
    sig = report.get("signature")
    signer = (f'<span class="ok">good signature</span> by <code>{esc(sig.get("fingerprint"))}</code> '
              f'{esc(sig.get("uid"))} <span class="muted">({esc(sig.get("created"))})</span>'
              if sig else '<span class="bad">NOT signature-checked (--allow-unsigned)</span>')
    problems = report.get("sbom-problems") or []
    sbom = ('<span class="ok">matches the wheels (files, SHA-256, licences)</span>' if not problems else
            '<span class="bad">does not match:</span><ul>' + "".join(f"<li>{esc(p)}</li>" for p in problems)
            + "</ul>")
    wheels = report.get("wheels", [])
    items = [("Bundle", esc(report.get("bundle"))), ("Sequence", esc(report.get("sequence"))),
             ("Created", esc(report.get("created"))), ("Expires", esc(report.get("expires") or "never")),
             ("Manifest SHA-256", f'<code>{esc(report.get("manifest-sha256"))}</code>'),
             ("Signed", signer),
             ("Targets", ", ".join(f"<code>{esc(t.get('id'))}</code>" for t in report.get("targets", []))),
             ("Wheels", f"{len(wheels)} ({esc(human_size(report.get('total-size', 0)))})"),
             ("Bundle's SBOM", sbom)]
    return "<h2>Bundle</h2><dl class=\"id\">" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def section_policy(report: Mapping[str, JSONValue]) -> str:
    """The policy's verdict and every violation with its evidence."""
    policy = report.get("policy")
    if not policy:
        return '<h2>Policy</h2><p class="muted">No policy was applied (audit --policy POLICY.toml).</p>'
    verdict = (f'<p class="ok">Policy {esc(policy.get("policy"))}: passed.</p>' if policy.get("ok") else
               f'<p class="bad">Policy {esc(policy.get("policy"))}: {len(policy.get("violations", []))} '
               f'violation(s).</p>')
    head = ("Package", "Version", "Rule", "Detail", "Evidence")
    out = ["<h2>Policy</h2>", verdict]
    for title, key in (("Violations", "violations"), ("Warnings", "warnings")):
        found = policy.get(key) or []
        if found:
            out.append(f"<h3>{title}</h3>" + table(head, [(v.get("package"), v.get("version"), v.get("rule"),
                                                           v.get("detail"), v.get("evidence")) for v in found]))
    if policy.get("skipped"):
        out.append("<p class=\"muted\">Not judged here: " + esc(", ".join(policy["skipped"])) + "</p>")
    return "".join(out)


def section_charts(report: Mapping[str, JSONValue]) -> str:
    """Licences by number of wheels and by size; the largest wheels."""
    wheels = report.get("wheels", [])
    if not wheels:
        return ""
    count: dict[str, int] = {}
    size: dict[str, int] = {}
    for w in wheels:
        label = str(w.get("license-spdx") or "unknown")
        count[label] = count.get(label, 0) + 1
        size[label] = size.get(label, 0) + int(w.get("size", 0))
    by_count = sorted(count.items(), key=lambda kv: (-kv[1], kv[0]))[:15]
    by_size = sorted(size.items(), key=lambda kv: (-kv[1], kv[0]))[:15]
    largest = sorted(wheels, key=lambda w: (-int(w.get("size", 0)), str(w.get("file"))))[:15]
    return ("<h2>Summary</h2><div class=\"charts\">"
            + bar_chart("Licences: wheels", [(k, v, str(v)) for k, v in by_count])
            + bar_chart("Licences: size", [(k, v, human_size(v)) for k, v in by_size])
            + bar_chart("Largest wheels", [(f"{w.get('name')} {w.get('version')}", int(w.get("size", 0)),
                                            human_size(int(w.get("size", 0)))) for w in largest])
            + "</div>")


def _why(w: Mapping[str, JSONValue]) -> str:
    """Who requires the package, each edge with the targets it holds for."""
    edges: dict[tuple[str, str], list[str]] = {}
    for e in w.get("required-by", []):
        edges.setdefault((str(e.get("parent") or "(spec)"), str(e.get("requirement") or "")), []).append(
            str(e.get("target")))
    return "<br>".join(f"{esc(parent)} → <span class=\"mono\">{esc(req)}</span> "
                       f"<span class=\"muted\">[{esc(', '.join(sorted(set(ts))))}]</span>"
                       for (parent, req), ts in sorted(edges.items()))


def section_packages(report: Mapping[str, JSONValue]) -> str:
    """Every wheel: version, licence and its evidence, size, Python, targets, why it is there."""
    rows = []
    for w in report.get("wheels", []):
        spdx = w.get("license-spdx")
        licence = (f"<code>{esc(spdx)}</code>" if spdx else
                   f'<span class="unknown">unknown</span><br><span class="ev">{esc(w.get("license"))}</span>')
        evidence = f'<span class="ev">{esc(w.get("license-evidence") or "nothing found")}' \
                   f'<br><span class="muted">{esc(w.get("license-source"))}</span></span>'
        trimmed = "".join(f'<br><span class="muted">trimmed: {esc(t.get("requirement"))}</span>'
                          for t in w.get("trimmed", []))
        rows.append((f"<b>{esc(w.get('name'))}</b><br><span class=\"ev mono\">{esc(w.get('file'))}</span>",
                     esc(w.get("version")), licence, evidence,
                     f'<span class="num">{esc(human_size(int(w.get("size", 0))))}</span>',
                     esc(w.get("requires-python") or ""), esc(", ".join(w.get("targets", []))),
                     _why(w) + trimmed, f'<span class="mono" title="{esc(w.get("sha256"))}">'
                                        f'{esc(str(w.get("sha256", ""))[:16])}…</span>'))
    head = ("Package", "Version", "Licence", "Evidence", "Size", "Python", "Targets", "Why it is there", "SHA-256")
    return "<h2>Packages</h2>" + table(head, rows, raw=True)


def section_trims(report: Mapping[str, JSONValue]) -> str:
    """What the lock left out on purpose: trimmed edges and excluded packages, per target."""
    rows = []
    for t in report.get("trimmed", []):
        for e in t.get("edges", []):
            rows.append((t.get("target"), e.get("parent") or "(spec)", e.get("requirement"), e.get("reason")))
        for r in t.get("removed", []):
            rows.append((t.get("target"), ", ".join(r.get("declared-by") or []) or "(spec)",
                         f"{r.get('name')} {r.get('version') or ''}".strip(), "excluded"))
    if not rows:
        return ""
    return "<h2>Left out on purpose</h2>" + table(("Target", "Required by", "Requirement", "Reason"), rows)


def section_advisories(report: Mapping[str, JSONValue]) -> str:
    """Known vulnerabilities (audit --advisories DB) and the identity of the database judged against."""
    adv = report.get("advisories")
    if not adv:
        return ""
    db = adv.get("database", {})
    found = adv.get("findings", [])
    items = [("Database", f'<code>{esc(db.get("path"))}</code> ({esc(db.get("format"))})'),
             ("SHA-256", f'<code>{esc(db.get("sha256"))}</code>'), ("Records", esc(db.get("records"))),
             ("Newest modified", esc(db.get("newest-modified") or "unknown")),
             ("Read for this bundle", f"{esc(adv.get('examined'))} examined, {esc(adv.get('withdrawn'))} "
                                      f"withdrawn (ignored), {esc(adv.get('malformed'))} malformed (skipped)")]
    out = ["<h2>Known vulnerabilities</h2><dl class=\"id\">",
           *(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items), "</dl>"]
    verdict = (f'<p class="bad">{len(found)} known vulnerabilities.</p>' if found else
               '<p class="ok">No known vulnerabilities in this database.</p>')
    out.append(verdict)
    if found:
        out.append(table(("Package", "Version", "Ids", "Severity", "Fixed in", "Summary"),
                         [(f.get("package"), f.get("version"), ", ".join(f.get("ids", [])), f.get("severity") or "",
                           ", ".join(f.get("fixed-in", [])) or "-", f.get("summary")) for f in found]))
    skipped = adv.get("malformed-records") or []
    if skipped:
        out.append("<h3>Skipped malformed records</h3>" + table(
            ("Record", "Problem"), [(m.get("record"), m.get("problem")) for m in skipped]))
    return "".join(out)


SECTIONS: tuple[Section, ...] = (section_identity, section_policy, section_advisories, section_charts,
                                 section_packages, section_trims)


def render_html(report: Mapping[str, JSONValue], sections: Sequence[Section] = SECTIONS) -> str:
    """The whole page for one audit result, in ASCII (anything else as character references).

    ASCII goes through any stdout encoding and any mail gateway unchanged.
    """
    title = f"Audit of {report.get('bundle')} #{report.get('sequence')}"
    body = "".join(s(report) for s in sections)
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{esc(_CSP)}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{esc(title)}</h1><p class=\"muted\">wheelferry {esc(__version__)} audit, "
            f"verified offline</p>{body}</body></html>\n")
    return page.encode("ascii", "xmlcharrefreplace").decode("ascii")
