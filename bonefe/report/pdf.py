"""PDF with the same content as the HTML (fpdf2), in matplotlib's bundled DejaVu Sans for µ, ×, ≥."""

from __future__ import annotations

import html
import io
import re
from pathlib import Path

import matplotlib
from fpdf import FPDF
from fpdf.fonts import FontFace, TextStyle

from bonefe.guidelines import GUIDELINE_HEADER
from bonefe.report.content import ACTIVITY_HEADER, INPUT_HEADER, KEY_HEADER, Content
from bonefe.report.exercise import WINDOW_HEADER
from bonefe.report.pictures import Picture

FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
LEVEL_COLOURS = {"high": (198, 40, 40), "moderate": (239, 143, 0), "indeterminate": (239, 143, 0),
                 "low": (46, 125, 50)}
VERDICT_FILLS = {"safe": (227, 241, 228), "caution": (255, 241, 220), "avoid": (251, 227, 227)}


def new_document(orientation: str = "portrait") -> FPDF:
    """An A4 document with DejaVu Sans regular and bold (also the patient report's, `bonefe.patient.report`)."""
    pdf = FPDF(orientation=orientation, unit="mm", format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_font("DejaVu", "", str(FONT_DIR / "DejaVuSans.ttf"))
    pdf.add_font("DejaVu", "B", str(FONT_DIR / "DejaVuSans-Bold.ttf"))
    pdf.add_page()
    return pdf


def section_heading(pdf: FPDF, text: str) -> None:
    """A section heading."""
    pdf.ln(4)
    pdf.set_font("DejaVu", "B", 13)
    pdf.cell(0, 8, text, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 9)


def _verdict(pdf: FPDF, content: Content) -> None:
    """The coloured verdict box: headline, summary, walking advice."""
    pdf.set_fill_color(*LEVEL_COLOURS[content.level])
    pdf.set_text_color(255, 255, 255)
    pdf.set_font("DejaVu", "B", 24)
    pdf.multi_cell(0, 13, content.headline, fill=True, new_x="LMARGIN", new_y="NEXT", padding=(2, 4))
    pdf.set_font("DejaVu", "", 11)
    text = f"{content.summary}\n{content.walking_advice}"
    pdf.multi_cell(0, 6, text, fill=True, new_x="LMARGIN", new_y="NEXT", padding=(1, 4, 3, 4))
    pdf.set_text_color(0, 0, 0)
    pdf.set_fill_color(255, 255, 255)


def pdf_table(pdf: FPDF, header, rows, widths, fills=None) -> None:
    """A table with a header row; fills[(i, j)] = RGB background of a cell."""
    pdf.set_font("DejaVu", "", 8)
    headings = FontFace(emphasis="BOLD", fill_color=(242, 242, 242))
    with pdf.table(
        col_widths=widths, text_align="LEFT", line_height=4.5, padding=1, headings_style=headings
    ) as table:
        heading = table.row()
        for text in header:
            heading.cell(text)
        for i, values in enumerate(rows):
            row = table.row()
            for j, text in enumerate(values):
                fill = (fills or {}).get((i, j))
                row.cell(text, style=FontFace(fill_color=fill) if fill else None)


def _pictures(pdf: FPDF, pictures: list[Picture]) -> None:
    """Each picture centred at 80 % of the text width (two bone pictures fit a page), with caption."""
    for picture in pictures:
        width = 0.8 * pdf.epw
        pdf.image(io.BytesIO(picture.png), x=pdf.l_margin + 0.1 * pdf.epw, w=width)
        pdf.set_font("DejaVu", "", 8)
        pdf.multi_cell(0, 4, f"{picture.title}. {picture.caption}", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)


def render_pdf(content: Content, pictures: list[Picture], generated: str) -> bytes:
    """The report as PDF bytes, in the HTML's order."""
    pdf = new_document()
    pdf.set_title(content.title)
    pdf.set_font("DejaVu", "", 11)
    pdf.cell(0, 7, content.title, new_x="LMARGIN", new_y="NEXT")
    _verdict(pdf, content)
    if content.agreement:
        pdf.ln(2)
        pdf.set_font("DejaVu", "B", 10)
        pdf.multi_cell(0, 5, content.agreement, new_x="LMARGIN", new_y="NEXT")
    section_heading(pdf, "Key numbers")
    pdf_table(pdf, KEY_HEADER, content.key_rows, (30, 45, 55, 50))
    section_heading(pdf, "Activities")
    verdict_column = ACTIVITY_HEADER.index("Verdict")
    fills = {(i, verdict_column): VERDICT_FILLS[v] for i, v in enumerate(content.activity_verdicts)}
    pdf_table(pdf, ACTIVITY_HEADER, content.activity_rows, (28, 30, 30, 17, 17, 58), fills)
    if content.guideline_rows:
        section_heading(pdf, "Exercise guidance beside the FE verdict")
        pdf.multi_cell(0, 4.5, content.guideline_summary, new_x="LMARGIN", new_y="NEXT")
        pdf_table(pdf, GUIDELINE_HEADER, content.guideline_rows, (30, 30, 42, 42, 36))
    if content.window_rows:
        section_heading(pdf, "Exercise that may build bone")
        pdf.multi_cell(0, 4.5, content.window_summary, new_x="LMARGIN", new_y="NEXT")
        pdf_table(pdf, WINDOW_HEADER, content.window_rows, (26, 20, 28, 22, 26, 30, 28))
        for note in content.window_notes:
            pdf.multi_cell(0, 4, f"• {note}", new_x="LMARGIN", new_y="NEXT")
    pdf.add_page()
    section_heading(pdf, "Pictures")
    _pictures(pdf, pictures)
    section_heading(pdf, "Inputs")
    pdf_table(pdf, INPUT_HEADER, content.input_rows, (50, 130))
    section_heading(pdf, "Assumptions")
    for assumption in content.assumptions or ["None recorded."]:
        pdf.multi_cell(0, 4.5, f"• {assumption}", new_x="LMARGIN", new_y="NEXT")
    section_heading(pdf, "Provenance")
    pdf.multi_cell(0, 4.5, f"Generated {generated}.", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("DejaVu", "", 6.5)
    pdf.multi_cell(0, 3.2, content.provenance_text, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    pdf.set_font("DejaVu", "", 8)
    pdf.multi_cell(0, 4, content.disclaimer, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())


PAGE_STYLES = {tag: TextStyle(font_family="DejaVu", font_style="B", font_size_pt=size, color=(0, 0, 0), t_margin=3,
                              b_margin=1)
               for tag, size in (("h1", 16), ("h2", 13), ("h3", 11))}
"""Headings of `render_page_pdf`: bold and black, as the femur PDF's."""


def _fit_width(img_tag: str, width_pt: float) -> str:
    """The <img> tag drawn across the text width (pt; fpdf2 takes width in points, height follows the
    aspect ratio): the HTML's own width is in screen pixels and would run off the page."""
    img_tag = re.sub(r'\s(width|height)="[^"]*"', "", img_tag)
    return img_tag.replace("<img", f'<img width="{width_pt:.0f}"', 1)


def render_page_pdf(page_html: str) -> bytes:
    """A site report's HTML page (`bonefe.report.sections.page`, pictures as data URIs) as PDF bytes
    with the same content, through fpdf2's HTML renderer: its headings, paragraphs, lists, tables and
    figures. The <head> (title, <style>) is dropped: the PDF has its own style."""
    title = re.search(r"<title>(.*?)</title>", page_html, re.S)
    body = re.search(r"<body>(.*)</body>", page_html, re.S)
    body = body.group(1) if body else page_html
    body = re.sub(r"<(td|th)(?=[ >])", r'<\1 align="left"', body)  # fpdf2 justifies cells by default
    pdf = new_document()
    body = re.sub(r"<img\b[^>]*>", lambda m: _fit_width(m.group(0), pdf.epw * pdf.k), body)
    if title:
        pdf.set_title(html.unescape(title.group(1)))
    pdf.set_font("DejaVu", "", 9)
    pdf.write_html(body, font_family="DejaVu", tag_styles=PAGE_STYLES, table_line_separators=True)
    return bytes(pdf.output())
