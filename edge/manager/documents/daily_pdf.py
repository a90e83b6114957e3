"""The daily report (`edge report daily --pdf`) as one A4 page: the day's fills by lane and by
operator, rejected scans by reason, over- and underfills, aborts by cause, the upload backlog,
and signature lines. Set in the CJK font the install step brings (fonts-wqy-microhei), embedded."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from ...textsafe import printable
from ..ledger import reason_text

# Where Debian's fonts-wqy-microhei (installed by scripts/system-deps.sh and systemd/install.sh)
# and fonts-noto-cjk's TrueType sibling put their files.
FONT_PATHS = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"),
)
FONT = "WenQuanYi"
LISTED = 12  # over/underfills listed by name; more are counted


class FontMissing(RuntimeError):
    pass


def _font() -> None:
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    if FONT in pdfmetrics.getRegisteredFontNames():
        return
    for path in FONT_PATHS:
        if path.exists():
            pdfmetrics.registerFont(TTFont(FONT, str(path), subfontIndex=0))
            return
    raise FontMissing("no CJK font for the PDF: install fonts-wqy-microhei (sh scripts/system-deps.sh)")


def write_daily_pdf(report: dict[str, Any], path: Path, station: str, unit_code: str) -> None:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

    _font()
    title = ParagraphStyle("title", fontName=FONT, fontSize=16, leading=22, alignment=1)
    body = ParagraphStyle("body", fontName=FONT, fontSize=9.5, leading=13)
    heading = ParagraphStyle("heading", fontName=FONT, fontSize=11, leading=15, spaceBefore=5, spaceAfter=2)
    grid = TableStyle([
        ("FONT", (0, 0), (-1, -1), FONT, 9),
        ("GRID", (0, 0), (-1, -1), 0.5, colors.black),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8e8e8")),
        ("ALIGN", (1, 1), (-1, -1), "RIGHT"),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
    ])

    def table(header: list[str], rows: list[list[Any]]) -> Table:
        data = [header] + ([[_text(v) for v in row] for row in rows] or [["无"] + [""] * (len(header) - 1)])
        made = Table(data, hAlign="LEFT", repeatRows=1)
        made.setStyle(grid)
        return made

    upload = report["upload"]
    story: list[Any] = [
        Paragraph(f"{station} 充装日报", title),
        Paragraph(f"统一社会信用代码：{unit_code}　　日期：{report['date']}", ParagraphStyle("sub", parent=body, alignment=1)),
        Spacer(1, 4 * mm),
    ]
    if report.get("unverified"):  # produced with --allow-unverified: the page says so, not only a terminal
        story.append(Paragraph(escape(f"未经核验 UNVERIFIED：记录与日志不符（{report['unverified']}），见 edge verify。"), heading))
    story += [
        Paragraph(f"当日充装 {report['fills']} 瓶，合格完成的实际充装量合计 {report['net_kg']:.2f} kg；"
                  f"已授权未开始 {report['authorised_not_started']} 次。", body),
        Paragraph("按工位", heading),
        table(["工位", "充装(瓶)", "完成(瓶)", "实际充装量(kg)"],
              [[r["lane"], r["fills"], r["complete"], f"{r['net_kg']:.2f}"] for r in report["by_lane"]]),
        Paragraph("按充装人员", heading),
        table(["充装人员", "充装(瓶)", "完成(瓶)", "实际充装量(kg)"],
              [[r["operator"], r["fills"], r["complete"], f"{r['net_kg']:.2f}"] for r in report["by_operator"]]),
        Paragraph("拒绝充装的扫码（按原因）", heading),
        table(["原因", "次数"], [[reason_text(k), v] for k, v in report["rejections"].items()]),
    ]
    for key, label in (("overfills", "超装"), ("underfills", "欠装")):
        rows = report[key]
        story += [Paragraph(f"{label} {len(rows)} 瓶" + (f"（列出前 {LISTED} 瓶）" if len(rows) > LISTED else ""), heading),
                  table(["工位", "气瓶档案ID", "规定充装量(kg)", "实际充装量(kg)", "充装人员"],
                        [[r["lane"], r["cylinder_id"], f"{r['target_net_kg']:.2f}", f"{r['net_kg']:.2f}", r["operator"]]
                         for r in rows[:LISTED]])]
    story += [
        Paragraph("中止（按原因）", heading),
        table(["原因", "次数"], [[reason_text(k), v] for k, v in report["aborts"].items()]),
        Paragraph("发货（按车辆）", heading),
        table(["车牌", "送气工", "气瓶(只)"], [[r["plate"], r["courier"], r["cylinders"]] for r in report.get("dispatches", [])]),
        Paragraph(f"上传：待上传 {upload['pending']} 条，最早已等待 {(upload['oldest_pending_age_s'] or 0) / 3600:.1f} 小时；"
                  f"被拒收 {upload['dead']} 条。", body),
    ]
    if report.get("chain_head"):  # the journal's head when printed: a signed copy witnesses the history
        head = report["chain_head"]
        story.append(Paragraph(f"日志链头：第 {head['entry']} 条 sha256 {head['hash']}", ParagraphStyle("head", parent=body, fontSize=7)))

    def footer(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        canvas.setFont(FONT, 10)
        canvas.drawString(doc.leftMargin, 14 * mm, "充装人员：____________　　复核人员：____________　　负责人：____________")
        canvas.drawRightString(A4[0] - doc.rightMargin, 8 * mm, f"第 {canvas.getPageNumber()} 页")
        canvas.restoreState()

    doc = SimpleDocTemplate(str(path), pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm, topMargin=15 * mm,
                            bottomMargin=25 * mm, title=f"{station} 充装日报 {report['date']}")
    doc.build(story, onFirstPage=footer, onLaterPages=footer)


def _text(value: Any) -> str:
    # Table cells are drawn as plain strings (no markup); control characters are escaped.
    return "" if value is None else printable(str(value))
