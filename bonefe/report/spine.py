"""The vertebra report: report.json, report.html, report.pdf and strain.png (spine wording, SINS beside the FE).

Written by rank 0 only, atomically (`bonefe.outputs`). The wording names the spine's own
guidance: SINS 7–18 calls for a spinal surgeon's opinion (Fisher et al. 2010; Fourney et al. 2011),
and the activities are those of the spinal-load literature (`bonefe.sites.vertebra.activities`).
"""

import html
from datetime import datetime, timezone
from pathlib import Path

from bonefe.guidelines import spinal_site
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

DISCLAIMER = ("Research software: a finite-element estimate of vertebral strength and spinal instability "
              "scoring from the CT. It supports and never replaces the judgement of the treating team.")
SINS_ADVICE = {"stable": "SINS 0-6: stable; no surgical consultation needed for instability.",
               "indeterminate": "SINS 7-12: potentially unstable; surgical consultation is recommended.",
               "unstable": "SINS 13-18: unstable; surgical consultation is recommended."}


SPINE_CYCLES = cycles_note("the spinal activities (postures, flexion, lifting and holding a weight)",
                           "standing and sitting are held rather than repeated, so their ψ is nominal")


def _sins_text(sins: dict) -> str:
    lo, hi = sins["total"]
    total = f"{lo}" if lo == hi else f"{lo}-{hi} (pain or alignment not given)"
    advice = " ".join(SINS_ADVICE[c] for c in dict.fromkeys(sins["categories"]))
    return f"SINS {total}. {advice}"


def render_spine_html(results: dict) -> str:
    """The report page."""
    level, bw = results["level"], results["body_mass_kg"] * 9.81
    sins = results["sins"]
    sfr = results["strain_fold_ratio"]
    key = [("Failure load, axial compression", f"{results['failure_load_n']:.0f} N ({results['failure_load_bw']:.1f} x BW)"),
           ("Where failure starts", f"{results['failure_region']}, {results['failure_mode']}"),
           ("Strain fold ratio (lesion vs lesion-free twin)", "n/a" if sfr is None else f"{sfr:.2f}"),
           ("Risk category (daily activities)", results["risk_category"]),
           ("Endplate layer", results["endplate_layer"])]
    units = [(u["name"], f"{u['failure_load']:.1f} {u['unit']}", u["region"], u["mode"]) for u in results["unit_loads"]]
    activities = [(a["label"] + (" (exercise)" if a["name"] in results["exercises"] else ""),
                   f"{a['peak_force_n']:.0f} N", f"{a['safety_factor']:.2f}", a["verdict"], a["reference"])
                  for a in results["activities"]]
    components = [(k.replace("_", " "), v[0] if v[0] == v[1] else f"{v[0]}-{v[1]}") for k, v in sins["components"].items()]
    return page("bonefe vertebra report", f"""<h1>Vertebra {html.escape(level)}: {html.escape(results['risk_category'])} risk</h1>
<p>{html.escape(DISCLAIMER)}</p>
<h2>Finite-element result</h2>{table(("Quantity", "Value"), key)}
<h2>Spinal Instability Neoplastic Score</h2><p>{html.escape(_sins_text(sins))}</p>
{table(("Component", "Points"), components)}
<p>Body involvement {100 * sins['body_involvement']:.0f} %; posterolateral involvement:
{html.escape(', '.join(sins['posterolateral_sides']) or 'none')}; collapse:
{'not measured (no whole neighbour)' if sins['collapse_fraction'] is None else f"{100 * sins['collapse_fraction']:.0f} % height loss"}.</p>
<h2>Strength under each load direction</h2>{table(("Unit load", "Allowed", "Where", "Mode"), units)}
<h2>Activities and exercise</h2>
<p>Peak compressive force on the vertebral body from in-vivo data, scaled to {bw:.0f} N body weight;
safety factor = allowed / peak force (safe from 2, avoid below 1). Flexion, lifting and twisting
are the movements spinal guidance restricts in patients with an unstable spine.</p>
{table(("Activity", "Peak force", "Safety factor", "Verdict", "Source"), activities)}
{guidance_section(results, spinal_site(level))}
{window_section(results, spinal_site(level), "a vertebral lesion", SPINE_CYCLES)}{whatif_section(results)}{uncertainty_section(results)}
<h2>Picture</h2><img src="strain.png" alt="maximum principal strain under the peak load of {html.escape(results['reference_activity'])}" width="600">
<p>Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by bonefe {html.escape(results['provenance']['bonefe'])}.</p>""")


def write_spine_report(out_dir, results: dict, picture_mesh: dict | None = None) -> dict[str, Path]:
    """report.json, report.html, report.pdf and (given the gathered mesh) strain.png in out_dir."""
    return write_site_report(out_dir, results, picture_mesh, "bonefe-vertebra-report/1", render_spine_html,
                             spinal_site(results["level"]))
