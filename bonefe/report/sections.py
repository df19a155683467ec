"""Report sections every site's HTML report shares (the femur's `bonefe.report.html` and the site
reports): tables, pictures, published exercise guidance, the exercise window, what-if and uncertainty
(the site reports' from the results dict as plain values, `bonefe.schema.plain_values`)."""

import base64
import html
import re
from pathlib import Path

from bonefe.guidelines import GALVAO, GUIDELINE_HEADER, ROW_SOURCE, guidance_summary, guideline_rows
from bonefe.outputs import atomic_write_bytes, atomic_write_json, atomic_write_text
from bonefe.report.exercise import (
    WINDOW_HEADER,
    has_chart,
    window_notes,
    window_picture,
    window_rows,
    window_summary,
)
from bonefe.report.pdf import render_page_pdf
from bonefe.report.pictures import Picture, png_bytes, render_strain
from bonefe.risk import ActivityAssessment, VerdictPolicy
from bonefe.schema import as_plain, build, plain_values
from bonefe.window import ExerciseWindow


def table(header, rows, cell_classes=None) -> str:
    """An HTML table of a header row and rows of cells (escaped); cell_classes(row_index,
    column_index) -> CSS class or ''."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cells = []
        for j, text in enumerate(row):
            css = cell_classes(i, j) if cell_classes else ""
            attribute = f' class="{css}"' if css else ""
            cells.append(f"<td{attribute}>{html.escape(str(text))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def figure(picture: Picture) -> str:
    """A <figure> with the PNG as a data URI."""
    data = base64.b64encode(picture.png).decode("ascii")
    return (
        f'<figure id="picture-{html.escape(picture.name)}"><img alt="{html.escape(picture.title)}" '
        f'src="data:image/png;base64,{data}"><figcaption><b>{html.escape(picture.title)}.</b> '
        f"{html.escape(picture.caption)}</figcaption></figure>"
    )


def guidance_html(summary: str, rows: list[tuple[str, ...]]) -> str:
    """The section "Exercise guidance beside the FE verdict" (empty without rows)."""
    if not rows:
        return ""
    return (f"<h2>Exercise guidance beside the FE verdict</h2><p id=\"guidelines\">{html.escape(summary)}</p>"
            + table(GUIDELINE_HEADER, rows, lambda i, j: "ref" if j == 4 else ""))


def window_html(summary: str, rows: list[tuple[str, ...]], notes: list[str], chart: Picture | None = None) -> str:
    """The section "Exercise that may build bone" (`bonefe.report.exercise`; empty without rows):
    summary, table, the chart when given, then the assumptions and references."""
    if not rows:
        return ""
    items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return (f"<h2>Exercise that may build bone</h2><p id=\"exercise-window\">{html.escape(summary)}</p>"
            + table(WINDOW_HEADER, rows) + (figure(chart) if chart else "") + f"<ul class=\"ref\">{items}</ul>")


def has_lesion(results: dict) -> bool:
    """Whether the bone has a lesion: the lesion-free twin is computed exactly then (`bonefe.pipeline`)."""
    return results.get("twin_failure_load_n") is not None


def _guidance_rows(results: dict, site: str):
    """`bonefe.guidelines.GuidelineRow`s for a lesion at `site`, none for a bone without a lesion."""
    if not has_lesion(results):
        return []
    return guideline_rows([build(ActivityAssessment, a, "activities") for a in results["activities"]], site)


def site_guidance(results: dict, site: str) -> list[dict]:
    """The guidance rows (plain, for report.json) for a lesion at `site` (a `SITE_RULES` row)."""
    return as_plain(_guidance_rows(results, site))


def guidance_section(results: dict, site: str) -> str:
    """Published guidance beside each FE verdict of a site report, for a lesion at `site`."""
    rows = _guidance_rows(results, site)
    summary = guidance_summary(rows, f"for a {site} lesion ({ROW_SOURCE.get(site, GALVAO)})")
    return guidance_html(summary, [(r.label, r.fe, r.guideline, r.comparison, r.source) for r in rows])


def whatif_section(results: dict) -> str:
    """What-if tables (lesion growth, re-mineralisation), empty without them."""
    parts = []
    for key, title, unit in (("whatif_growth", "Lesion growth", "mm"), ("whatif_remineralisation",
                                                                        "Re-mineralisation", "fraction")):
        series = results.get(key)
        if series:
            rows = [(f"{s['value']:g} {unit}", f"{s['equivalent_diameter_mm']:.0f} mm", f"{s['failure_load_n']:.0f} N",
                     s["risk_category"]) for s in series["steps"]]
            parts.append(f"<h3>{title}</h3>" + table(("Step", "Lesion (equivalent diameter)", "Failure load", "Risk"),
                                                     rows))
    return ("<h2>What if</h2>" + "".join(parts)) if parts else ""


def uncertainty_section(results: dict) -> str:
    u = results.get("uncertainty")
    if not u:
        return ""
    n = len(u["samples"])
    what = (f"{100 * u['interval']:g} % interval of {n} samples" if u["expected_coverage"] + 1e-9 >= u["interval"]
            else f"range of {n} samples, expected coverage {100 * u['expected_coverage']:.0f} %")
    return (f"<h2>Uncertainty</h2><p>Failure load {u['lower_n']:.0f}-{u['upper_n']:.0f} N "
            f"({what}); risk categories at the nominal "
            f"load and the interval's ends: {html.escape(', '.join(u['categories']))}; most from "
            f"{html.escape(u['dominant_words'])}.</p>")


def window_section(results: dict, site: str, lesion: str, cycles: str) -> str:
    """The exercise window of a site report, as the femur's (`window_html`): guidance for a lesion at
    `site`, the chart, the notes with the site's lesion in words and its cycles assumption."""
    if not results.get("exercise_window"):
        return ""
    w = build(ExerciseWindow, results["exercise_window"], "exercise_window")
    policy = build(VerdictPolicy, results["verdict_policy"], "verdict_policy")
    chart = window_picture(w, policy.safe_factor, policy.avoid_factor) if has_chart(w) else None
    return window_html(window_summary(w), window_rows(w, site if has_lesion(results) else None),
                       window_notes(w, lesion, cycles=cycles), chart)


def page(title: str, body: str) -> str:
    """A self-contained HTML page (plain style, opens offline) titled `title` around `body`."""
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:auto}}img{{max-width:100%;height:auto}}
table{{border-collapse:collapse}}
td,th{{border:1px solid #bbb;padding:3px 8px}}</style></head><body>
{body}
</body></html>"""


def embed_pictures(page_html: str, pictures: dict[str, bytes]) -> str:
    """The page with each <img src="NAME"> given as a data URI from pictures[NAME] (PNG bytes), so it
    opens alone (and under the service's script-free policy); an <img> whose picture is not given
    (no mesh gathered) is left out."""
    def embed(match: re.Match) -> str:
        png = pictures.get(html.unescape(match.group(1)))
        if png is None:
            return ""
        return match.group(0).replace(match.group(1), "data:image/png;base64," + base64.b64encode(png).decode("ascii"))

    return re.sub(r'<img [^>]*?src="(?!data:)([^"]*)"[^>]*>', embed, page_html)


def write_site_report(out_dir, results: dict, picture_mesh: dict | None, schema: str, render,
                      guidance_site: str) -> dict[str, Path]:
    """report.json (with `schema` and the guidance rows for a lesion at `guidance_site`), report.html
    (`render(results)`, pictures embedded), report.pdf (the same page, `bonefe.report.pdf.render_page_pdf`)
    and, given the gathered mesh, strain.png in out_dir, atomically; results as plain values. Rank 0 only."""
    out_dir = Path(out_dir)
    results = plain_values(results)
    results["exercise_guidance"] = site_guidance(results, guidance_site)
    paths = {"json": out_dir / "report.json", "html": out_dir / "report.html", "pdf": out_dir / "report.pdf"}
    atomic_write_json(paths["json"], {"schema": schema, **results})
    pictures = {}
    if picture_mesh is not None:
        paths["png"] = out_dir / "strain.png"
        pictures["strain.png"] = png_bytes(render_strain(picture_mesh, results["failure_location_mm"]))
        atomic_write_bytes(paths["png"], pictures["strain.png"])
    page_html = embed_pictures(render(results), pictures)
    atomic_write_text(paths["html"], page_html)
    atomic_write_bytes(paths["pdf"], render_page_pdf(page_html))
    return paths
