"""What the station's PDF documents share: the CJK font (embedded), the heading with the station's
name, unit code and filling licence, tables with a 合计 row, sections that keep their heading with
their table, signature lines with dates once at the end, and 第 N 页 / 共 M 页 on every page."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from ...textsafe import printable

# Where Debian's fonts-wqy-microhei (installed by scripts/system-deps.sh and systemd/install.sh)
# and fonts-noto-cjk's TrueType sibling put their files.
FONT_PATHS = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
)
FONT = "WenQuanYi"
TABLE_PT = 8.5
BODY_PT = 9.0
NO_LICENCE = "（未配置 station.filling_licence）"
SIGNERS = ("充装人员", "复核人员", "负责人")
MARGIN_MM = 14
SIDE_BY_SIDE_ROWS = 30  # longer tables go one under the other: a table beside another cannot split
FRAME_WIDTH = 595.27 - 2 * MARGIN_MM * 72 / 25.4  # A4 portrait, in points


class FontMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class Letterhead:
    """Who the document is from, as the regulator reads it at its top."""

    station: str
    unit_code: str
    licence: str | None

    @classmethod
    def of(cls, station: Any) -> Letterhead:
        """From the config's station section."""
        return cls(station.owner_unit, station.unit_code, station.filling_licence)


def register_font() -> None:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if FONT in pdfmetrics.getRegisteredFontNames():
        return
    for path in FONT_PATHS:
        if path.exists():
            pdfmetrics.registerFont(TTFont(FONT, str(path), subfontIndex=0))
            return
    raise FontMissing("no CJK font for the PDF: install fonts-wqy-microhei (sh scripts/system-deps.sh)")


def text(value: Any) -> str:
    # Table cells are drawn as plain strings (no markup); control characters are escaped.
    if isinstance(value, float):  # masses, as the scale shows them
        return f"{value:.2f}"
    return "" if value is None else printable(str(value))


class Styles:
    def __init__(self) -> None:
        from reportlab.lib.styles import ParagraphStyle

        self.title = ParagraphStyle("title", fontName=FONT, fontSize=15, leading=20, alignment=1)
        self.sub = ParagraphStyle("sub", fontName=FONT, fontSize=BODY_PT, leading=12, alignment=1)
        self.body = ParagraphStyle("body", fontName=FONT, fontSize=BODY_PT, leading=12)
        self.heading = ParagraphStyle("heading", fontName=FONT, fontSize=10, leading=13, spaceBefore=4, spaceAfter=2)
        self.small = ParagraphStyle("small", fontName=FONT, fontSize=7, leading=9)

    def para(self, words: str, style: str = "body") -> Any:
        from reportlab.platypus import Paragraph

        return Paragraph(escape(printable(words)), getattr(self, style))


def heading(styles: Styles, letterhead: Letterhead, title: str, period: str, warning: str | None) -> list[Any]:
    from reportlab.lib.units import mm
    from reportlab.platypus import Spacer

    story = [
        styles.para(f"{letterhead.station} {title}", "title"),
        styles.para(f"统一社会信用代码：{letterhead.unit_code}　　气瓶充装许可证编号：{letterhead.licence or NO_LICENCE}"
                    f"　　{period}", "sub"),
        Spacer(1, 2 * mm),
    ]
    if warning:  # produced with --allow-unverified: the page says so, not only a terminal
        story.append(styles.para(f"未经核验 UNVERIFIED：记录与日志不符（{warning}），见 edge verify。", "heading"))
    return story


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], total: Sequence[Any] | None = None) -> Any:
    """A ruled table, numbers right-aligned; `total` is its 合计 row, ruled off under a heavier line."""
    from reportlab.lib import colors
    from reportlab.platypus import Table, TableStyle

    body = [[text(v) for v in row] for row in rows] or [["无"] + [""] * (len(header) - 1)]
    data = [list(header)] + body + ([[text(v) for v in total]] if total is not None else [])
    style = [
        ("FONT", (0, 0), (-1, -1), FONT, TABLE_PT),
        ("LEADING", (0, 0), (-1, -1), TABLE_PT + 1.5),
        ("TOPPADDING", (0, 0), (-1, -1), 1.2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 1.8),
        ("GRID", (0, 0), (-1, -1), 0.5, colors.black),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8e8e8")),
        ("ALIGN", (1, 1), (-1, -1), "RIGHT"),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
    ]
    if total is not None:
        style += [("LINEABOVE", (0, -1), (-1, -1), 1.2, colors.black), ("BACKGROUND", (0, -1), (-1, -1), colors.HexColor("#f2f2f2"))]
    made = Table(data, hAlign="LEFT", repeatRows=1)
    made.setStyle(TableStyle(style))
    return made


def section(styles: Styles, title: str, flowable: Any) -> Any:
    """A heading kept on the page of its table's start (never stranded at a page's foot)."""
    from reportlab.platypus import KeepTogether

    return KeepTogether([styles.para(title, "heading"), flowable])


def side_by_side(*sections: tuple[str, Any], styles: Styles, width: float = FRAME_WIDTH) -> list[Any]:
    """(heading, table) sections next to each other in equal columns, tops aligned, kept whole;
    one under the other when a table is too long to stay whole on a page (it then runs on, its
    header repeated)."""
    from reportlab.platypus import Table, TableStyle

    if any(len(flowable._cellvalues) > SIDE_BY_SIDE_ROWS for _, flowable in sections):  # the table's rows, as given
        return [section(styles, title, flowable) for title, flowable in sections]
    made = Table([[[styles.para(title, "heading"), flowable] for title, flowable in sections]],
                 colWidths=[width / len(sections)] * len(sections), hAlign="LEFT")
    made.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 0),
                              ("RIGHTPADDING", (0, 0), (-1, -1), 6)]))
    return [made]


def signatures(styles: Styles, signers: Sequence[str] = SIGNERS) -> Any:
    """Each signer's line and the date they sign, once, at the document's end."""
    from reportlab.lib.units import mm
    from reportlab.platypus import KeepTogether, Spacer

    lines = [Spacer(1, 5 * mm)]
    lines += [styles.para(f"{who}（签字）：________________　　日期：______年____月____日") for who in signers]
    for line in lines[1:]:
        line.style = styles.body.clone("sign", leading=20)
    return KeepTogether(lines)


def build(path: Path, story: list[Any], title: str, letterhead: Letterhead, landscape: bool = False) -> None:
    """Lay the story out on A4 with 第 N 页 / 共 M 页 and the station's name at each page's foot."""
    from reportlab.lib.pagesizes import A4, landscape as turned
    from reportlab.lib.units import mm
    from reportlab.pdfgen.canvas import Canvas
    from reportlab.platypus import SimpleDocTemplate

    size = turned(A4) if landscape else A4

    class Numbered(Canvas):
        """Pages are kept until the end, so each can say how many there are."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:  # noqa: N802 (reportlab's name)
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            for state in self._pages:
                self.__dict__.update(state)
                self.setFont(FONT, 8)
                self.drawString(14 * mm, 8 * mm, printable(f"{letterhead.station}　{title}"))
                self.drawRightString(size[0] - 14 * mm, 8 * mm, f"第 {self._pageNumber} 页 / 共 {len(self._pages)} 页")
                super().showPage()
            super().save()

    doc = SimpleDocTemplate(str(path), pagesize=size, leftMargin=MARGIN_MM * mm, rightMargin=MARGIN_MM * mm, topMargin=12 * mm,
                            bottomMargin=15 * mm, title=f"{letterhead.station} {title}", author=letterhead.station)
    doc.build(story, canvasmaker=Numbered)
