"""Report sections every site's HTML report shares: tables, what-if, uncertainty and exercise window
(from the results dict as plain values, `bonefe.schema.plain_values`)."""

import html
from pathlib import Path

from bonefe.outputs import atomic_write_bytes, atomic_write_json, atomic_write_text
from bonefe.report.pictures import png_bytes, render_strain
from bonefe.schema import plain_values


def table(header, rows) -> str:
    """An HTML table of a header row and rows of cells (escaped)."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


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


def window_section(results: dict) -> str:
    w = results.get("exercise_window")
    if not w:
        return ""
    rows = [(r["label"], f"{r['safety_factor']:.2f}", r["verdict"], f"{100 * r['stimulus']['region_above_high']:.0f} %",
             "yes" if r["in_window"] else "no") for r in w["rows"]]
    return (f"<h2>Exercise window</h2><p>Region: {html.escape(w['region'])}; in the window when safe and at least "
            f"{100 * w['target_fraction']:.0f} % of the region reaches {1e6 * w['mes_high']:.0f} µε.</p>"
            + table(("Activity", "Safety factor", "Verdict", "Region above threshold", "In window"), rows))


def page(title: str, body: str) -> str:
    """A self-contained HTML page (plain style, opens offline) titled `title` around `body`."""
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:auto}}table{{border-collapse:collapse}}
td,th{{border:1px solid #bbb;padding:3px 8px}}</style></head><body>
{body}
</body></html>"""


def write_site_report(out_dir, results: dict, picture_mesh: dict | None, schema: str, render) -> dict[str, Path]:
    """report.json (with `schema`), report.html (`render(results)`) and, given the gathered mesh,
    strain.png in out_dir, atomically; results as plain values. Rank 0 only."""
    out_dir = Path(out_dir)
    results = plain_values(results)
    paths = {"json": out_dir / "report.json", "html": out_dir / "report.html"}
    atomic_write_json(paths["json"], {"schema": schema, **results})
    if picture_mesh is not None:
        paths["png"] = out_dir / "strain.png"
        atomic_write_bytes(paths["png"], png_bytes(render_strain(picture_mesh, results["failure_location_mm"])))
    atomic_write_text(paths["html"], render(results))
    return paths
