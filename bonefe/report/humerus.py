"""The humerus report: report.json, report.html, report.pdf and strain.png (shoulder wording, Mirels beside the FE).

Written by rank 0 only, atomically (`bonefe.report.sections.write_site_report`). The activities are
the glenohumeral contact forces of `bonefe.sites.humerus.loads`; walking aids are named apart,
because a patient sent to crutches for a leg lesion loads the humeri with them.
"""

import html
from datetime import datetime, timezone
from pathlib import Path

from bonefe.guidelines import HUMERAL_SITE
from bonefe.report.exercise import cycles_note
from bonefe.report.sections import (
    guidance_section,
    page,
    table,
    uncertainty_section,
    whatif_section,
    window_section,
    write_site_report,
)

DISCLAIMER = ("Research software: a finite-element estimate of humeral strength and the Mirels score from "
              "the CT. It supports and never replaces the judgement of the treating team.")

HUMERUS_CYCLES = cycles_note("the shoulder activities (raising the arm, walking with crutches, steering)",
                             "walking with crutches repeats with every step, so its ψ is an underestimate")


def _mirels(results: dict) -> str:
    m = results.get("mirels")
    if m is None:
        return "<p>No lesion in the label map: no Mirels score.</p>"
    total = f"{m['total_min']}" if m["total_min"] == m["total_max"] else f"{m['total_min']}-{m['total_max']} (pain not given)"
    cutoff = results["mirels_humerus_cutoff"]
    at = {True: "at or above", False: "below", None: "around"}[cutoff["at_or_above"]]
    breach = results.get("cortical_breach")
    return (f"<p>Mirels {html.escape(total)}: {html.escape(m['recommendation'])} (site {m['site']} upper limb, "
            f"type {m['lesion_type']}, size {m['size']} ({100 * m['size_fraction']:.0f} % of the bone's width)). "
            f"Humerus: {at} the cut-off of {cutoff['cutoff']} ({html.escape(cutoff['reference'])}). "
            f"Cortical breach: {'yes' if breach else 'no'}.</p>")


def _strength(results: dict) -> str:
    s = results.get("strength")
    if not s:
        return ""
    rows = [("Torsion about the shaft axis", f"{s['torsion_nm']:.1f} N·m")]
    rows += [(f"Bending, force {name} on the head", f"{b['force_n']:.0f} N ({b['moment_nm']:.1f} N·m at the cut)")
             for name, b in s["bending"].items()]
    return ("<h2>Strength of the humerus</h2><p>Loads at which failure starts with the distal cut fixed "
            f"(lever from the cut to the head centre {s['lever_mm']:.0f} mm).</p>" + table(("Load case", "Failure"), rows))


def render_humerus_html(results: dict) -> str:
    """The report page."""
    bw = results["body_mass_kg"] * 9.81
    sfr = results["strain_fold_ratio"]
    x, y, z = results["failure_location_mm"]
    key = [("Failure load, walking with crutches", f"{results['failure_load_n']:.0f} N ({results['failure_load_bw']:.1f} x BW)"),
           ("Where failure starts", f"({x:.1f}, {y:.1f}, {z:.1f}) mm, LPS world; {results['failure_mode']}"),
           ("Strain fold ratio (lesion vs lesion-free twin)", "n/a" if sfr is None else f"{sfr:.2f}"),
           ("Risk category", results["risk_category"]),
           ("Shaft axis from", results["frame"]["shaft_from"])]
    aids = set(results["walking_aids"])
    activities = [(a["label"] + (" (walking aid)" if a["name"] in aids else ""), f"{a['peak_force_n']:.0f} N",
                   f"{a['safety_factor']:.2f}", a["verdict"], a["reference"]) for a in results["activities"]]
    avoid = [a["label"] for a in results["activities"] if a["verdict"] == "avoid"]
    warning = "" if not avoid else (f"<p><strong>Avoid: {html.escape('; '.join(avoid))}</strong> — although the "
                                    "risk category (by walking with crutches) is not high; see the assumptions.</p>")
    return page("bonefe humerus report", f"""<h1>Humerus ({html.escape(results['side'])}): {html.escape(results['risk_category'])} risk
by failure load under walking with crutches</h1>
{warning}<p>{html.escape(DISCLAIMER)}</p>
<h2>Finite-element result</h2>{table(("Quantity", "Value"), key)}
<h2>Mirels score</h2>{_mirels(results)}
<h2>Activities and walking aids</h2>
<p>Peak glenohumeral contact force from instrumented shoulder implants, scaled to {bw:.0f} N body weight;
safety factor = allowed / peak force (safe from 2, avoid below 1). Crutches, often advised for a lesion
of the leg, load this shoulder: their verdict here is this humerus's.</p>
{table(("Activity", "Peak force", "Safety factor", "Verdict", "Source"), activities)}
{guidance_section(results, HUMERAL_SITE)}
{_strength(results)}{window_section(results, HUMERAL_SITE, "a humeral lesion", HUMERUS_CYCLES)}{whatif_section(results)}{uncertainty_section(results)}
<h2>Assumptions</h2><ul>{"".join(f"<li>{html.escape(a)}</li>" for a in results.get("assumptions", []))}</ul>
<h2>Picture</h2><img src="strain.png" alt="maximum principal strain under the peak load of {html.escape(results['reference_activity'])}" width="600">
<p>Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by bonefe {html.escape(results['provenance']['bonefe'])}.</p>""")


def write_humerus_report(out_dir, results: dict, picture_mesh: dict | None = None) -> dict[str, Path]:
    """report.json, report.html, report.pdf and (given the gathered mesh) strain.png in out_dir."""
    return write_site_report(out_dir, results, picture_mesh, "bonefe-humerus-report/1", render_humerus_html,
                             HUMERAL_SITE)
