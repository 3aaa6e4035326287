"""The instance graph as an SVG picture, written by hand (no graphviz).

The picture reads top to bottom like the text form: the wasm module, an arrow for each import
(labelled with the import's name) down through the layers to the implementation, and the
implementation's mounts as storage drums along the bottom. Each instance is a rounded box
listing the resource types it exports as chips: solid for types it defines, dashed for types
it passes on from below. Text widths are estimated from character counts, generously, so
that text stays inside its box whichever common font the viewer picks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

from .graph import MODULE_IMPORT, Graph, InstanceNode, MountNode, TypeChip

SANS = "'DejaVu Sans', 'Segoe UI', Helvetica, Arial, sans-serif"
MONO = "'DejaVu Sans Mono', Menlo, Consolas, monospace"
PAD, GAP, MOUNT_GAP = 28, 64, 72
MODULE_H, CHIP_H, CHIP_GAP, LINE_H = 60, 24, 8, 18
INK, MUTED, EDGE = "#0f172a", "#475569", "#64748b"


@dataclass(frozen=True)
class Palette:
    fill: str
    stroke: str
    ink: str
    pill: str


LAYER = Palette("#eff6ff", "#60a5fa", "#1e3a8a", "#dbeafe")
IMPLEMENTATION = Palette("#ecfdf5", "#34d399", "#064e3b", "#d1fae5")
STORAGE = Palette("#fefce8", "#eab308", "#713f12", "#fef9c3")


def text_width(text: str, size: float, *, mono: bool = False, bold: bool = False) -> float:
    """An upper estimate of ``text``'s width in pixels at ``size``."""
    if mono:
        return len(text) * size * 0.62
    narrow, wide = set("ijlt.,:;|!'()[] "), set("mwMW@%")
    # DejaVu Sans, the widest common sans-serif, measures about 10% less than this.
    units = sum(0.37 if c in narrow else 1.0 if c in wide else 0.8 if c.isupper() else 0.67
                for c in text)
    return units * size * (1.12 if bold else 1.0)


def _text(x: float, y: float, text: str, size: float, *, fill: str = INK, mono: bool = False,
          bold: bool = False, anchor: str = "start", italic: bool = False) -> str:
    attrs = [f'x="{x:.1f}"', f'y="{y:.1f}"', f'font-size="{size}"', f"fill={quoteattr(fill)}",
             f"font-family={quoteattr(MONO if mono else SANS)}"]
    if bold:
        attrs.append('font-weight="bold"')
    if italic:
        attrs.append('font-style="italic"')
    if anchor != "start":
        attrs.append(f'text-anchor="{anchor}"')
    return f"<text {' '.join(attrs)}>{escape(text)}</text>"


def _rect(x: float, y: float, w: float, h: float, fill: str, stroke: str, *, r: float = 10,
          dashed: bool = False, shadow: bool = False) -> str:
    dash = ' stroke-dasharray="4 3"' if dashed else ""
    box = (f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="{r}" '
           f'fill="{fill}" stroke="{stroke}" stroke-width="1.5"{dash}/>')
    # A shifted, faint copy rather than an SVG filter: every renderer draws it the same.
    return (f'<rect x="{x:.1f}" y="{y + 2:.1f}" width="{w:.1f}" height="{h:.1f}" rx="{r}" '
            f'fill="{INK}" fill-opacity="0.08"/>' + box) if shadow else box


def _chip_label(chip: TypeChip) -> str:
    return chip.name if chip.from_instance is None else f"{chip.name} · from {chip.from_instance}"


def _chip_width(chip: TypeChip) -> float:
    return text_width(_chip_label(chip), 12, mono=True) + 20


def _instance_width(node: InstanceNode) -> float:
    head = text_width(node.name, 15, bold=True) + 14 + text_width(node.kind, 11) + 20
    chips = sum(_chip_width(c) for c in node.types) + CHIP_GAP * max(len(node.types) - 1, 0)
    lines = [text_width(node.summary, 12), *(text_width(s, 12, mono=True) for s in node.settings)]
    widest_chip = max((_chip_width(c) for c in node.types), default=0)
    return 32 + max(head, *lines, widest_chip, min(chips, 560))


def _rows(chips: tuple[TypeChip, ...], inner: float) -> list[list[TypeChip]]:
    rows: list[list[TypeChip]] = [[]]
    used = 0.0
    for chip in chips:
        w = _chip_width(chip)
        if rows[-1] and used + CHIP_GAP + w > inner:
            rows.append([])
            used = 0.0
        used += (CHIP_GAP if rows[-1] else 0) + w
        rows[-1].append(chip)
    return rows if rows[0] else []


def _instance(node: InstanceNode, x: float, y: float, w: float) -> tuple[list[str], float]:
    colors = IMPLEMENTATION if node.implementation else LAYER
    rows = _rows(node.types, w - 32)
    body = 58 + (len(rows) * (CHIP_H + CHIP_GAP) if rows else LINE_H + 4)
    h = body + len(node.settings) * LINE_H + 12
    out = [_rect(x, y, w, h, colors.fill, colors.stroke, r=12, shadow=True),
           _text(x + 16, y + 26, node.name, 15, fill=colors.ink, bold=True)]
    pill_x = x + 16 + text_width(node.name, 15, bold=True) + 14
    pill_w = text_width(node.kind, 11) + 16
    out += [_rect(pill_x, y + 12, pill_w, 20, colors.pill, colors.stroke, r=10),
            _text(pill_x + pill_w / 2, y + 26, node.kind, 11, fill=colors.ink, anchor="middle"),
            _text(x + 16, y + 48, node.summary, 12, fill=MUTED)]
    cy = y + 58
    if not rows:
        out.append(_text(x + 16, cy + 14, "no resource types in the world: the host's own fds",
                         12, fill=MUTED, italic=True))
        cy += LINE_H + 4
    for row in rows:
        cx = x + 16
        for chip in row:
            cw = _chip_width(chip)
            own = chip.from_instance is None
            out += [_rect(cx, cy, cw, CHIP_H, "#ffffff" if own else colors.fill,
                          colors.stroke if own else "#94a3b8", r=12, dashed=not own),
                    _text(cx + 10, cy + 16, _chip_label(chip), 12, mono=True,
                          fill=colors.ink if own else MUTED)]
            cx += cw + CHIP_GAP
        cy += CHIP_H + CHIP_GAP
    for setting in node.settings:
        out.append(_text(x + 16, cy + 13, setting, 12, mono=True, fill=colors.ink))
        cy += LINE_H
    return out, h


def _arrow(x: float, y1: float, y2: float, label: str) -> list[str]:
    lw = text_width(label, 12, mono=True) + 12
    mid = (y1 + y2) / 2
    return [f'<line x1="{x:.1f}" y1="{y1:.1f}" x2="{x:.1f}" y2="{y2 - 1:.1f}" stroke="{EDGE}" '
            'stroke-width="2" marker-end="url(#arrow)"/>',
            _rect(x + 10, mid - 11, lw, 22, "#ffffff", "#cbd5e1", r=11),
            _text(x + 16, mid + 4, label, 12, mono=True, fill=INK)]


def _module_width(graph: Graph) -> float:
    if graph.module is None:
        return 0
    lines = graph.module.args_lines() or ["(no arguments)"]
    return 16 + 36 + 14 + max(text_width(graph.module.name, 15, bold=True),
                              *(text_width(line, 12, mono=True) for line in lines)) + 20


def _module(graph: Graph, x: float, y: float, w: float) -> tuple[list[str], float]:
    assert graph.module is not None
    lines = graph.module.args_lines() or ["(no arguments)"]
    h = MODULE_H + (len(lines) - 1) * 16
    badge = [_rect(x + 14, y + 12, 36, 36, "#654ff0", "#654ff0", r=4),
             f'<circle cx="{x + 32:.1f}" cy="{y + 12:.1f}" r="6" fill="#1e293b"/>',
             _text(x + 32, y + 42, "WA", 13, fill="#ffffff", bold=True, anchor="middle")]
    out = [_rect(x, y, w, h, "#1e293b", "#0f172a", r=6, shadow=True), *badge,
           _text(x + 64, y + 27, graph.module.name, 15, fill="#ffffff", bold=True)]
    out += [_text(x + 64, y + 46 + 16 * i, line, 12, fill="#cbd5e1", mono=True)
            for i, line in enumerate(lines)]
    return out, h


def _mount_width(mount: MountNode) -> float:
    tag = text_width(mount.storage, 11) + (text_width("read-only", 11) + 24
                                            if mount.read_only else 0)
    return max(text_width(mount.guest, 14, mono=True, bold=True),
               text_width(mount.source, 12, mono=True), tag, 110) + 32


def _mount(mount: MountNode, x: float, y: float, w: float) -> list[str]:
    h, ry = 88, 9
    c = STORAGE
    drum = (f'<path d="M {x:.1f} {y + ry:.1f} a {w / 2:.1f} {ry} 0 0 1 {w:.1f} 0 '
            f'v {h - 2 * ry} a {w / 2:.1f} {ry} 0 0 1 {-w:.1f} 0 z" fill="{c.fill}" '
            f'stroke="{c.stroke}" stroke-width="1.5"/>'
            f'<path d="M {x:.1f} {y + ry:.1f} a {w / 2:.1f} {ry} 0 0 0 {w:.1f} 0" '
            f'fill="none" stroke="{c.stroke}" stroke-width="1.5"/>')
    out = [drum, _text(x + w / 2, y + 40, mount.guest, 14, mono=True, bold=True, fill=c.ink,
                       anchor="middle"),
           _text(x + w / 2, y + 58, mount.source, 12, mono=True, fill=c.ink, anchor="middle")]
    tag_w = text_width(mount.storage, 11)
    ro_w = text_width("read-only", 11) + 12 if mount.read_only else 0
    tx = x + (w - tag_w - (ro_w + 8 if ro_w else 0)) / 2
    out.append(_text(tx, y + 76, mount.storage, 11, fill=MUTED))
    if ro_w:
        rx = tx + tag_w + 8
        out += [_rect(rx, y + 64, ro_w, 16, "#fee2e2", "#fca5a5", r=8),
                _text(rx + ro_w / 2, y + 76, "read-only", 11, fill="#991b1b", anchor="middle")]
    return out


def _legend(graph: Graph, x: float, y: float) -> list[str]:
    own = TypeChip("type")
    out = [_rect(x, y, _chip_width(own), CHIP_H, "#ffffff", LAYER.stroke, r=12),
           _text(x + 10, y + 16, "type", 12, mono=True, fill=LAYER.ink),
           _text(x + _chip_width(own) + 8, y + 16, "a resource type the instance defines", 12,
                 fill=MUTED)]
    if any(c.from_instance for n in graph.instances for c in n.types):
        lx = x + _chip_width(own) + 8 + text_width("a resource type the instance defines", 12)
        lx += 20
        out += [_rect(lx, y, _chip_width(own), CHIP_H, "#ffffff", "#94a3b8", r=12, dashed=True),
                _text(lx + 10, y + 16, "type", 12, mono=True, fill=MUTED),
                _text(lx + _chip_width(own) + 8, y + 16, "passed on from below", 12,
                      fill=MUTED)]
    return out


def render_svg(graph: Graph) -> str:
    """The graph as a standalone SVG document."""
    title = f"world {graph.title} · {graph.semantics}"
    stack_w = max(_module_width(graph), *(_instance_width(n) for n in graph.instances), 360)
    mount_ws = [_mount_width(m) for m in graph.mounts]
    row_w = sum(mount_ws) + 24 * max(len(mount_ws) - 1, 0)
    width = max(stack_w, row_w, text_width(title, 13), 620) + 2 * PAD
    cx, x = width / 2, (width - stack_w) / 2
    out = [_text(PAD, PAD + 10, title, 13, fill=MUTED)]
    y = PAD + 32.0
    if graph.module is not None:
        drawn, h = _module(graph, x, y, stack_w)
        out += drawn
        out += _arrow(cx, y + h, y + h + GAP, MODULE_IMPORT)
        y += h + GAP
    for i, node in enumerate(graph.instances):
        drawn, h = _instance(node, x, y, stack_w)
        out += drawn
        y += h
        if i < len(graph.instances) - 1:
            out += _arrow(cx, y, y + GAP, " ".join(name for name, _ in node.imports))
            y += GAP
    out += list(_mounts(graph.mounts, mount_ws, cx, y, row_w))
    y += (MOUNT_GAP + 88 if graph.mounts else 0) + 28
    out += _legend(graph, PAD, y)
    height = y + CHIP_H + PAD
    return "\n".join([
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}">',
        f"<title>{escape(title)}</title>",
        "<defs>",
        '<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        f'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" '
        f'fill="{EDGE}"/></marker>',
        "</defs>",
        f'<rect width="{width:.0f}" height="{height:.0f}" fill="#f8fafc"/>',
        *out,
        "</svg>",
        "",
    ])


def _mounts(mounts: tuple[MountNode, ...], widths: list[float], cx: float, top: float,
            row_w: float) -> Iterator[str]:
    x = cx - row_w / 2
    y = top + MOUNT_GAP
    for i, (mount, w) in enumerate(zip(mounts, widths, strict=True)):
        # Fan the edges out along the implementation's bottom edge, toward each drum.
        sx = cx + (i - (len(mounts) - 1) / 2) * min(40, 200 / max(len(mounts), 1))
        mx = x + w / 2
        yield (f'<path d="M {sx:.1f} {top:.1f} C {sx:.1f} {top + 36:.1f} {mx:.1f} '
               f'{y - 36:.1f} {mx:.1f} {y - 1:.1f}" fill="none" stroke="{EDGE}" '
               'stroke-width="1.5" marker-end="url(#arrow)"/>')
        yield from _mount(mount, x, y, w)
        x += w + 24
