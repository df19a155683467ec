"""Self-contained HTML: the template in templates/report.html filled with escaped text and
pictures embedded as base64 PNG data URIs, so the file opens offline and alone."""

from __future__ import annotations

from html import escape
from importlib.resources import files
from string import Template

from bonefe.report.content import ACTIVITY_HEADER, INPUT_HEADER, KEY_HEADER, Content
from bonefe.report.pictures import Picture
from bonefe.report.sections import figure, guidance_html, table, window_html


def render_html(content: Content, pictures: list[Picture], generated: str) -> str:
    """The report page as one HTML string."""
    template = Template(files("bonefe.report").joinpath("templates/report.html").read_text("utf-8"))
    verdict_column = ACTIVITY_HEADER.index("Verdict")
    reference_column = len(ACTIVITY_HEADER) - 1

    def activity_class(i, j):
        if j == verdict_column:
            return f"verdict-{content.activity_verdicts[i]}"
        return "ref" if j == reference_column else ""

    assumptions = "".join(f"<li>{escape(a)}</li>" for a in content.assumptions)
    guidelines = guidance_html(content.guideline_summary, content.guideline_rows)
    window = window_html(content.window_summary, content.window_rows, content.window_notes)
    return template.substitute(
        title=escape(content.title),
        level=escape(content.level),
        headline=escape(content.headline),
        summary=escape(content.summary),
        walking_advice=escape(content.walking_advice),
        agreement=escape(content.agreement),
        key_table=table(KEY_HEADER, content.key_rows, lambda i, j: "ref" if j == 3 else ""),
        pictures="\n".join(figure(p) for p in pictures),
        activity_table=table(ACTIVITY_HEADER, content.activity_rows, activity_class),
        guidelines=guidelines,
        exercise_window=window,
        input_table=table(INPUT_HEADER, content.input_rows),
        assumptions=f"<ul>{assumptions}</ul>" if assumptions else "<p>None recorded.</p>",
        generated=escape(generated),
        provenance=escape(content.provenance_text),
        disclaimer=escape(content.disclaimer),
    )
