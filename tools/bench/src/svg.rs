//! Hand-written SVG charts (no plotting library): grouped horizontal bars.

use std::fmt::Write;

/// One series of bars: its name, colour and one value per category.
pub struct Series {
    pub name: String,
    pub colour: &'static str,
    pub values: Vec<f64>,
}

/// The smallest round number (1, 2, 2.5, 4, 5, 6, 8 times a power of ten) >= v.
fn nice_step(v: f64) -> f64 {
    if v.is_nan() || v <= 0.0 || v.is_infinite() {
        return 0.25;
    }
    let exp = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 4.0, 5.0, 6.0, 8.0, 10.0] {
        if m * exp >= v * (1.0 - 1e-9) {
            return m * exp;
        }
    }
    10.0 * exp
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
}

/// A grid label: at most ten decimals, no trailing zeros.
fn label(v: f64) -> String {
    let s = format!("{v:.10}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".into()
    } else {
        s.to_string()
    }
}

/// Bars per category, one per series; NaN values are drawn as "n/a".
/// `decimals`: of the value beside each bar. `marker` draws a dashed
/// vertical line there; `vmin` starts the axis above zero.
pub fn bars(
    title: &str,
    categories: &[String],
    series: &[Series],
    decimals: usize,
    marker: Option<f64>,
    vmin: f64,
) -> String {
    let (bar_h, gap, label_w, plot_w, top, right) = (14.0, 10.0, 170.0, 430.0, 56.0, 70.0);
    let n_series = series.len() as f64;
    let group_h = n_series * bar_h + gap;
    let height = top + categories.len() as f64 * group_h + 30.0;
    let width = label_w + plot_w + right;
    let finite: Vec<f64> = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .filter(|v| !v.is_nan())
        .chain(marker)
        .collect();
    let top_v = finite.iter().copied().fold(f64::NAN, f64::max);
    let top_v = if top_v.is_nan() { vmin + 1.0 } else { top_v };
    let step = nice_step((top_v - vmin) / 4.0);
    let vmax = vmin + 4.0 * step;
    let x = |v: f64| label_w + plot_w * (v.max(vmin) - vmin) / (vmax - vmin);
    // The vertical lines' ends.
    let (y0, y1) = (top - 4.0, height - 26.0);
    let mut o = String::new();
    let _ = writeln!(
        o,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(o, r#"<rect width="{width}" height="{height}" fill="white"/>"#);
    let (mid, title) = (width / 2.0, escape(title));
    let _ = writeln!(
        o,
        r#"<text x="{mid}" y="18" text-anchor="middle" font-size="13" font-weight="bold">{title}</text>"#
    );
    let mut lx = label_w;
    for s in series {
        let _ = writeln!(
            o,
            r#"<rect x="{lx}" y="28" width="12" height="12" fill="{}"/>"#,
            s.colour
        );
        let _ = writeln!(o, r#"<text x="{}" y="38">{}</text>"#, lx + 16.0, escape(&s.name));
        lx += 110.0;
    }
    for i in 0..5 {
        let v = vmin + (vmax - vmin) * f64::from(i) / 4.0;
        let (gx, ty, text) = (x(v), height - 12.0, label(v));
        let _ = writeln!(
            o,
            r##"<line x1="{gx:.1}" y1="{y0}" x2="{gx:.1}" y2="{y1}" stroke="#dee2e6"/>"##
        );
        let _ = writeln!(
            o,
            r##"<text x="{gx:.1}" y="{ty}" text-anchor="middle" fill="#495057">{text}</text>"##
        );
    }
    for (ci, cat) in categories.iter().enumerate() {
        let gy = top + ci as f64 * group_h;
        let (tx, ty, cat) = (label_w - 8.0, gy + n_series * bar_h / 2.0 + 4.0, escape(cat));
        let _ = writeln!(o, r#"<text x="{tx}" y="{ty:.1}" text-anchor="end">{cat}</text>"#);
        for (si, s) in series.iter().enumerate() {
            let v = s.values.get(ci).copied().unwrap_or(f64::NAN);
            let y = gy + si as f64 * bar_h;
            if v.is_nan() {
                let (tx, ty) = (label_w + 4.0, y + bar_h - 3.0);
                let _ = writeln!(o, r##"<text x="{tx}" y="{ty}" fill="#c92a2a">n/a</text>"##);
                continue;
            }
            let (w, h, colour) = ((x(v) - label_w).max(0.5), bar_h - 2.0, s.colour);
            let _ = writeln!(
                o,
                r#"<rect x="{label_w}" y="{y}" width="{w:.1}" height="{h}" fill="{colour}"/>"#
            );
            let (tx, ty) = (label_w + w + 4.0, y + bar_h - 4.0);
            let _ = writeln!(o, r#"<text x="{tx:.1}" y="{ty}">{v:.decimals$}</text>"#);
        }
    }
    if let Some(m) = marker {
        let mx = x(m);
        let _ = writeln!(
            o,
            r##"<line x1="{mx:.1}" y1="{y0}" x2="{mx:.1}" y2="{y1}" stroke="#c92a2a" stroke-dasharray="4 3"/>"##
        );
    }
    let _ = writeln!(
        o,
        r##"<line x1="{label_w}" y1="{y0}" x2="{label_w}" y2="{y1}" stroke="#495057"/>"##
    );
    o.push_str("</svg>\n");
    o
}
