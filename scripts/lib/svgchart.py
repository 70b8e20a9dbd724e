"""Hand-written SVG charts (no plotting library): grouped horizontal bars."""

import html
import math


def _nice_step(v):
    """The smallest round number (1, 2, 2.5, 4, 5, 6, 8 times a power of ten) >= v."""
    if not v or v != v or v <= 0:
        return 0.25
    exp = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 4, 5, 6, 8, 10):
        if m * exp >= v * (1 - 1e-9):
            return m * exp
    return 10 * exp


def write_bars(path, title, categories, series, value_fmt="{:.2f}", marker=None, vmin=0.0):
    """categories: labels; series: [(name, colour, [value per category])].
    NaN values are drawn as "n/a". `marker` draws a dashed vertical line there;
    `vmin` starts the axis above zero (the axis labels say so)."""
    bar_h, gap, label_w, plot_w, top, right = 14, 10, 170, 430, 56, 70
    n_series = len(series)
    group_h = n_series * bar_h + gap
    height = top + len(categories) * group_h + 30
    width = label_w + plot_w + right
    finite = [v for _, _, vals in series for v in vals if v == v]
    top_v = max(finite + ([marker] if marker else [])) if finite else vmin + 1
    step = _nice_step((top_v - vmin) / 4)
    vmax = vmin + 4 * step
    x = lambda v: label_w + plot_w * (max(v, vmin) - vmin) / (vmax - vmin)  # noqa: E731
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="13" font-weight="bold">'
        f"{html.escape(title)}</text>",
    ]
    # legend
    lx = label_w
    for name, colour, _ in series:
        out.append(f'<rect x="{lx}" y="28" width="12" height="12" fill="{colour}"/>')
        out.append(f'<text x="{lx + 16}" y="38">{html.escape(name)}</text>')
        lx += 110
    # grid
    for i in range(5):
        v = vmin + (vmax - vmin) * i / 4
        gx = x(v)
        out.append(
            f'<line x1="{gx:.1f}" y1="{top - 4}" x2="{gx:.1f}" y2="{height - 26}" stroke="#dee2e6"/>'
        )
        out.append(
            f'<text x="{gx:.1f}" y="{height - 12}" text-anchor="middle" fill="#495057">'
            f"{round(v, 10):g}</text>"
        )
    for ci, cat in enumerate(categories):
        gy = top + ci * group_h
        out.append(
            f'<text x="{label_w - 8}" y="{gy + n_series * bar_h / 2 + 4:.1f}" text-anchor="end">'
            f"{html.escape(cat)}</text>"
        )
        for si, (_, colour, vals) in enumerate(series):
            v = vals[ci]
            y = gy + si * bar_h
            if v != v:
                out.append(f'<text x="{label_w + 4}" y="{y + bar_h - 3}" fill="#c92a2a">n/a</text>')
                continue
            w = max(x(v) - label_w, 0.5)
            out.append(
                f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h - 2}" fill="{colour}"/>'
            )
            out.append(f'<text x="{label_w + w + 4:.1f}" y="{y + bar_h - 4}">{value_fmt.format(v)}</text>')
    if marker is not None:
        mx = x(marker)
        out.append(
            f'<line x1="{mx:.1f}" y1="{top - 4}" x2="{mx:.1f}" y2="{height - 26}" stroke="#c92a2a" '
            f'stroke-dasharray="4 3"/>'
        )
    out.append(
        f'<line x1="{label_w}" y1="{top - 4}" x2="{label_w}" y2="{height - 26}" stroke="#495057"/>'
    )
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")
