"""The follow-up report: followup.json, timeline.png and a self-contained followup.html with the
"Change since the first scan" section (failure load and lesion volume against days, the projection
with its interval and the high-risk threshold). Days come from the case files, never from scan dates."""

import base64
import io
import json
from html import escape
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bonefe.outputs import atomic_write_bytes, atomic_write_json, atomic_write_text  # noqa: E402


def timeline_png(results: dict) -> bytes:
    """Failure load (both routes, projection band) and lesion volume against days since the first scan."""
    scans, course = results["scans"], results["course"]
    days = [s["days_since_baseline"] for s in scans]
    figure, axis = plt.subplots(figsize=(8, 5), dpi=110)
    axis.plot(days, [s["one_mesh"]["failure_load_n"] for s in scans], "o-", color="C0",
              label="failure load, baseline mesh")
    axis.plot(days, [s["own_mesh"]["failure_load_n"] for s in scans], "s--", color="C0", alpha=0.5,
              label="failure load, each scan's own mesh")
    projection = course["projection"]
    ahead = [days[-1] + d for d in projection["days"]]
    axis.plot(ahead, projection["failure_load_n"], ":", color="C0", label=f"projection ({course['kind']})")
    axis.fill_between(ahead, projection["low_n"], projection["high_n"], color="C0", alpha=0.15,
                      label="projection interval")
    axis.axhline(course["high_risk_threshold_n"], color="C3", lw=1, label="high-risk threshold")
    axis.set_xlabel("days since the first scan")
    axis.set_ylabel(f"failure load, {results['reference_load'].lower()} (N)")
    volume_axis = axis.twinx()
    volume_axis.plot(days, [v / 1000.0 for v in course["lesion_volumes_mm3"]], "^-", color="C1",
                     label="lesion volume")
    volume_axis.set_ylabel("lesion volume (cm³)", color="C1")
    lines = axis.get_legend_handles_labels()[0] + volume_axis.get_legend_handles_labels()[0]
    axis.legend(lines, [line.get_label() for line in lines], fontsize=7, loc="upper center",
                bbox_to_anchor=(0.5, -0.15), ncol=3)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def _number(value, digits=0, unit="") -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}{unit}"


def _scan_table(results: dict) -> str:
    rows = []
    for s, lesion in zip(results["scans"], results["course"]["lesion_volumes_mm3"]):
        one, own = s["one_mesh"], s["own_mesh"]
        verdicts = ", ".join(f"{k}: {v}" for k, v in one["verdicts"].items())
        rows.append(f"<tr><td>{escape(s['case_name'])}</td><td>{s['days_since_baseline']:g}</td>"
                    f"<td>{lesion / 1000:.2f}</td><td>{one['failure_load_n']:.0f} ({one['failure_load_bw']:.1f} BW)</td>"
                    f"<td>{own['failure_load_n']:.0f}</td><td>{100 * s['route_difference']:.1f} %</td>"
                    f"<td>{_number(one['strain_fold_ratio'], 2)}</td><td>{one['risk_category']}</td>"
                    f"<td>{escape(verdicts)}</td></tr>")
    return ("<table><tr><th>scan</th><th>day</th><th>lesion (cm³)</th><th>failure load, baseline mesh (N)</th>"
            "<th>own mesh (N)</th><th>routes differ</th><th>SFR</th><th>risk</th><th>activity verdicts</th></tr>"
            + "".join(rows) + "</table>")


def _course_text(course: dict) -> str:
    lines = [f"Course: <b>{course['kind']}</b> (fitted on the last {course['scans_fitted']} scans"
             + (f", R² {course['fit_r2']:.3f}" if course.get("fit_r2") is not None else "") + ")."]
    if course["kind"] == "growth":
        low, high = course["doubling_time_interval_days"]
        lines.append(f"Volume doubling time {_number(course['doubling_time_days'], 0)} days "
                     f"(95 % interval {low:.0f}–{high:.0f} days).")
    if course["kind"] == "healing":
        rate = course["healing_rate_per_month"]
        lines.append(f"Re-mineralisation {100 * rate['value']:.1f} % of the gap to healthy bone per month "
                     f"(interval {100 * rate['low']:.1f}–{100 * rate['high']:.1f} %"
                     + ("; one follow-up: the interval reaches the typical rate after radiotherapy, "
                        "Foerster et al. 2015" if course["literature_rate_used"] else "") + ").")
    lines.append(f"Time to reach the high-risk threshold ({course['high_risk_threshold_n']:.0f} N): "
                 f"{escape(course['time_to_high_risk'])}.")
    if course["projection"]["beyond_whatif_from_days"] is not None:
        lines.append(f"From day {course['projection']['beyond_whatif_from_days']:.0f} after the last scan the "
                     "projected state lies beyond the largest what-if step; the load is held there (optimistic).")
    return "".join(f"<p>{line}</p>" for line in lines)


def _registration_text(results: dict) -> str:
    items = [f"scan {i + 1}: {r['kind']}, rotation {r['rotation_deg']:.2f}°, translation {r['translation_mm']:.1f} mm, "
             f"bone-surface residual {r['surface_residual_mm']:.2f} mm, Dice {r['dice']:.3f}"
             for i, r in enumerate(results["registrations"])]
    return "<p>Registration to the first scan: " + "; ".join(items) + ".</p>"


def _disagreeing(results: dict) -> str:
    names = [escape(s["case_name"]) for s in results["scans"] if not s["routes_agree"]]
    return ("; <b>they do not for " + ", ".join(names) + "</b>: read that scan's change with care (mesh noise "
            "at the lesion's edge)") if names else ""


def render_html(results: dict, png: bytes) -> str:
    image = base64.b64encode(png).decode("ascii")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>bonefe follow-up: {escape(results['baseline'])}</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}table{{border-collapse:collapse;font-size:90%}}
td,th{{border:1px solid #bbb;padding:3px 6px}}img{{max-width:100%}}</style></head><body>
<h1>Follow-up of {escape(results['baseline'])} ({escape(results['bone'])})</h1>
<section id="change"><h2>Change since the first scan</h2>
<figure><img alt="timeline" src="data:image/png;base64,{image}"><figcaption>Failure load under the reference
load ({escape(results['reference_load'].lower())}) and lesion volume against days since the first scan (intervals from the case files); dotted: projection along the
measured change with its interval.</figcaption></figure>
{_scan_table(results)}
{_course_text(results['course'])}
{_registration_text(results)}
<p>Both routes give each scan's failure load; the baseline-mesh route (every scan's CT mapped onto the first
scan's mesh) is the one compared over time; there a healing lesion's modulus factor follows its healing
fraction (as in the what-if re-mineralisation), while the routes are compared with the lesion as labelled
(as <code>bonefe run</code> reads it). They are expected to agree within
{100 * results['route_tolerance']:.0f} %{_disagreeing(results)}.</p>
</section>
<p id="image-check" data-state="pending"></p>
<script>
  // Self-check as in report.html: the page says so if the timeline did not decode.
  window.addEventListener("load", function () {{
    var images = Array.prototype.slice.call(document.images);
    var ok = images.length > 0 && images.every(function (img) {{ return img.complete && img.naturalWidth > 0; }});
    var check = document.getElementById("image-check");
    check.setAttribute("data-images", String(images.length));
    check.setAttribute("data-state", ok ? "ok" : "failed");
    if (!ok) {{ check.textContent = "The timeline could not be shown."; }}
  }});
</script></body></html>
"""


def write_followup(out: Path, results: dict) -> None:
    """Write followup.json, timeline.png and followup.html into `out` (atomic files)."""
    out = Path(out)
    png = timeline_png(results)
    atomic_write_json(out / "followup.json", json.loads(json.dumps(results, default=float)))
    atomic_write_bytes(out / "timeline.png", png)
    atomic_write_text(out / "followup.html", render_html(results, png))
