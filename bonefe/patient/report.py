"""The patient report: patient.json (`bonefe.patient.combine`), patient.html (self-contained) and
patient.pdf (fpdf2, as the femur report), with the same text in both layouts. Written atomically.

Reading order: the worst risk and its bone; a walking-aid conflict, in red, when there is one;
missing bones; per bone the risk and failure load; per activity the patient's verdict, the bone
that limits it and every bone's own verdict; the rules applied.
"""

from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape
from pathlib import Path

from bonefe.outputs import atomic_write_bytes, atomic_write_json, atomic_write_text
from bonefe.patient.combine import NO_RESULT, NOT_MODELLED
from bonefe.report.content import DISCLAIMER
from bonefe.report.pdf import LEVEL_COLOURS, VERDICT_FILLS, new_document, pdf_table, section_heading

UNKNOWN_FILL = (238, 238, 238)  # grey: not modelled / no result, never the green of safe
BONE_HEADER = ("Bone", "Case", "Risk", "Failure load", "Failure starts", "Weight bearing (walking)")
RULES = (
    "Each bone's numbers come from its own report (cases/<case>/report.html); nothing is recomputed here.",
    "Risk per bone: its report's headline; the patient's risk is the highest over the bones "
    "(low < moderate < indeterminate < high).",
    "Per activity the worst verdict over every bone: safe < not modelled = no result < caution < avoid; "
    "an activity is safe for the patient only when every bone has it safe. 'Not modelled': the bone's "
    "site has no such activity (never counted as safe); 'no result': the bone did not run.",
    "Among bones with the worst verdict the lowest safety factor (allowed / peak force) limits.",
    "A bone that models walking calls for a walking aid when its walking is not safe or allows only partial "
    "weight bearing; "
    "an aid that is not safe for another bone is flagged.",
)


@dataclass(frozen=True)
class Content:
    """The patient report's text; table rows are tuples of strings, verdicts name each cell's class."""

    title: str
    level: str
    headline: str
    aid_message: str
    aid_flag: bool
    missing: list[str]
    bone_rows: list[tuple[str, ...]]
    activity_header: tuple[str, ...]
    activity_rows: list[tuple[str, ...]]
    activity_verdicts: list[list[str]]


def _cell(cell: dict) -> str:
    factor = cell.get("safety_factor")
    return cell["verdict"] if factor is None else f"{cell['verdict']} (SF {factor:.2f})"


def _limiting(activity: dict) -> str:
    """The limiting bone; when the patient's verdict is unknown, every bone that leaves it unknown
    with why ("vertebra-L1 (not modelled)"), so no reader takes that bone for the one at risk."""
    if activity["verdict"] not in (NOT_MODELLED, NO_RESULT):
        return activity["limiting_bone"]
    unknown = activity["not_modelled"] + activity["no_result"]
    return ", ".join(f"{bone} ({activity['bones'][bone]['verdict']})" for bone in unknown)


def _bone_row(b: dict) -> tuple[str, ...]:
    if b["status"] != "done":
        return (b["bone"], b["case"], f"MISSING ({b['status']})", b["error"], "", "")
    where = ", ".join(x for x in (b["failure_site"], b["failure_mode"]) if x)
    fraction = b["walking_weight_bearing_fraction"]
    return (b["bone"], b["case"], f"{b['risk']} (by failure load: {b['risk_by_failure_load']})",
            ", ".join(x for x in (f"{b['failure_load_n']:,.0f} N ({b['failure_load_bw']:.1f} × BW)",
                                   b["failure_load_case"]) if x),
            where, "" if fraction is None else f"{100 * min(fraction, 1.0):.0f} % of body weight")


def build_content(report: dict) -> Content:
    """The report's text from patient.json."""
    bones = [b["bone"] for b in report["bones"]]
    risk = report["risk"]
    headline = (f"{risk.upper()} fracture risk, limited by {report['limiting_bone']}" if risk
                else "No bone has a result yet")
    rows, verdicts = [], []
    for a in report["activities"]:
        rows.append((a["label"], _cell(a), _limiting(a), *(_cell(a["bones"][b]) for b in bones)))
        verdicts.append(["", a["verdict"], "", *(a["bones"][b]["verdict"] for b in bones)])
    return Content(
        title=f"Patient {report['patient']}: {len(bones)} bones, body mass {report['body_mass_kg']:g} kg",
        level=risk or "indeterminate", headline=headline,
        aid_message=report["walking_aids"]["message"], aid_flag=report["walking_aids"]["flag"],
        missing=[f"{m['bone']} has no result ({m['status']}): {m['error']}" for m in report["missing"]],
        bone_rows=[_bone_row(b) for b in report["bones"]],
        activity_header=("Activity", "Patient", "Limiting bone", *bones),
        activity_rows=rows, activity_verdicts=verdicts)


def _table(header, rows, classes=None) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(
        f'<td class="{(classes[i][j] if classes else "").replace(" ", "-")}">{escape(text)}</td>'
        for j, text in enumerate(row)) + "</tr>" for i, row in enumerate(rows))
    return f"<table><tr>{head}</tr>{body}</table>"


def render_html(c: Content, generated: str) -> str:
    """The report page as one self-contained HTML string."""
    aid = f'<p id="walking-aids" class="{"flag" if c.aid_flag else "note"}">{escape(c.aid_message)}</p>'
    missing = "".join(f'<p class="missing">{escape(m)}</p>' for m in c.missing)
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(c.title)}</title>
<style>body{{font-family:"DejaVu Sans",Arial,sans-serif;max-width:1100px;margin:auto;padding:24px}}
table{{border-collapse:collapse;width:100%}}td,th{{border:1px solid #ccc;padding:5px 8px;text-align:left}}
th{{background:#f2f2f2}}.verdict{{border-radius:8px;padding:16px 24px;color:white;font-size:2em;font-weight:bold}}
.level-high{{background:#c62828}}.level-moderate,.level-indeterminate{{background:#ef8f00}}
.level-low{{background:#2e7d32}}
.flag{{background:#c62828;color:white;font-size:1.3em;font-weight:bold;padding:12px 16px;border-radius:6px}}
.note{{font-size:1.1em}}.missing{{color:#b71c1c;font-weight:bold}}
.safe{{background:#e3f1e4}}.caution{{background:#fff1dc}}.avoid{{background:#fbe3e3;font-weight:bold}}
.not-modelled,.no-result{{background:#eee;color:#555;font-style:italic}}</style></head><body>
<h1>{escape(c.title)}</h1>
<p class="verdict level-{escape(c.level)}" id="headline">{escape(c.headline)}</p>
{aid}{missing}
<h2>Bones</h2>{_table(BONE_HEADER, c.bone_rows)}
<h2>Activities across bones</h2>{_table(c.activity_header, c.activity_rows, c.activity_verdicts)}
<h2>Rules</h2><ul>{"".join(f"<li>{escape(r)}</li>" for r in RULES)}</ul>
<p>Generated {escape(generated)}.</p><p>{escape(DISCLAIMER)}</p></body></html>"""


def render_pdf(c: Content, generated: str) -> bytes:
    """The same content as PDF bytes (landscape: one column per bone)."""
    pdf = new_document("landscape")
    pdf.set_title(c.title)
    pdf.set_font("DejaVu", "", 11)
    pdf.multi_cell(0, 7, c.title, new_x="LMARGIN", new_y="NEXT")
    pdf.set_fill_color(*LEVEL_COLOURS[c.level])
    pdf.set_text_color(255, 255, 255)
    pdf.set_font("DejaVu", "B", 20)
    pdf.multi_cell(0, 11, c.headline, fill=True, new_x="LMARGIN", new_y="NEXT", padding=(2, 4))
    pdf.ln(2)
    if c.aid_flag:  # white on red, as the HTML's flag
        pdf.set_fill_color(*LEVEL_COLOURS["high"])
        pdf.set_font("DejaVu", "B", 12)
    else:
        pdf.set_text_color(0, 0, 0)
        pdf.set_font("DejaVu", "", 10)
    pdf.multi_cell(0, 6, c.aid_message, fill=c.aid_flag, new_x="LMARGIN", new_y="NEXT", padding=(1, 4))
    pdf.set_text_color(183, 28, 28)
    for line in c.missing:
        pdf.multi_cell(0, 6, line, new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)
    pdf.set_fill_color(255, 255, 255)
    section_heading(pdf, "Bones")
    pdf_table(pdf, BONE_HEADER, c.bone_rows, (30, 30, 45, 70, 50, 42))
    section_heading(pdf, "Activities across bones")
    colours = {**VERDICT_FILLS, NOT_MODELLED: UNKNOWN_FILL, NO_RESULT: UNKNOWN_FILL}
    fills = {(i, j): colours[v] for i, row in enumerate(c.activity_verdicts) for j, v in enumerate(row) if v}
    bones = len(c.activity_header) - 3
    pdf_table(pdf, c.activity_header, c.activity_rows, (55, 35, 30, *[(267 - 120) / bones] * bones), fills)
    section_heading(pdf, "Rules")
    for rule in RULES:
        pdf.multi_cell(0, 4.5, f"• {rule}", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.multi_cell(0, 4.5, f"Generated {generated}. {DISCLAIMER}", new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


def write_patient_report(folder: Path, report: dict) -> dict[str, Path]:
    """patient.json, patient.html and patient.pdf in `folder`, each written atomically."""
    content = build_content(report)
    generated = datetime.now(timezone.utc).isoformat(timespec="seconds")
    paths = {"json": folder / "patient.json", "html": folder / "patient.html", "pdf": folder / "patient.pdf"}
    atomic_write_json(paths["json"], report)
    atomic_write_text(paths["html"], render_html(content, generated))
    atomic_write_bytes(paths["pdf"], render_pdf(content, generated))
    return paths
