"""Self-contained HTML: the template in templates/report.html filled with escaped text and
pictures embedded as base64 PNG data URIs, so the file opens offline and alone."""

from __future__ import annotations

import base64
from html import escape
from importlib.resources import files
from string import Template

from bonefe.report.content import ACTIVITY_HEADER, GUIDELINE_HEADER, INPUT_HEADER, KEY_HEADER, Content
from bonefe.report.exercise import WINDOW_HEADER
from bonefe.report.pictures import Picture


def _table(header, rows, cell_classes=None) -> str:
    """An HTML table; cell_classes(row_index, column_index) -> CSS class or ''."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        cells = []
        for j, text in enumerate(row):
            css = cell_classes(i, j) if cell_classes else ""
            attribute = f' class="{css}"' if css else ""
            cells.append(f"<td{attribute}>{escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _figure(picture: Picture) -> str:
    """A <figure> with the PNG as a data URI."""
    data = base64.b64encode(picture.png).decode("ascii")
    return (
        f'<figure id="picture-{escape(picture.name)}"><img alt="{escape(picture.title)}" '
        f'src="data:image/png;base64,{data}"><figcaption><b>{escape(picture.title)}.</b> '
        f"{escape(picture.caption)}</figcaption></figure>"
    )


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
    guidelines = (f"<h2>Exercise guidance beside the FE verdict</h2><p id=\"guidelines\">"
                  f"{escape(content.guideline_summary)}</p>"
                  + _table(GUIDELINE_HEADER, content.guideline_rows, lambda i, j: "ref" if j == 4 else "")
                  if content.guideline_rows else "")
    notes = "".join(f"<li>{escape(n)}</li>" for n in content.window_notes)
    window = (f"<h2>Exercise that may build bone</h2><p id=\"exercise-window\">{escape(content.window_summary)}</p>"
              + _table(WINDOW_HEADER, content.window_rows) + f"<ul class=\"ref\">{notes}</ul>"
              if content.window_rows else "")
    return template.substitute(
        title=escape(content.title),
        level=escape(content.level),
        headline=escape(content.headline),
        summary=escape(content.summary),
        walking_advice=escape(content.walking_advice),
        agreement=escape(content.agreement),
        key_table=_table(KEY_HEADER, content.key_rows, lambda i, j: "ref" if j == 3 else ""),
        pictures="\n".join(_figure(p) for p in pictures),
        activity_table=_table(ACTIVITY_HEADER, content.activity_rows, activity_class),
        guidelines=guidelines,
        exercise_window=window,
        input_table=_table(INPUT_HEADER, content.input_rows),
        assumptions=f"<ul>{assumptions}</ul>" if assumptions else "<p>None recorded.</p>",
        generated=escape(generated),
        provenance=escape(content.provenance_text),
        disclaimer=escape(content.disclaimer),
    )
