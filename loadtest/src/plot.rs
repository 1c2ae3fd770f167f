//! An SVG plot of a run, written by hand (no plotting dependency): throughput (requests and
//! sessions per second) above, p50 and p99 request latency below, the warm-up shaded.

use std::fmt::Write as _;

use crate::stats::Second;

const WIDTH: f64 = 960.0;
const PANEL: f64 = 220.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const GAP: f64 = 50.0;

/// The plot of `timeline`.
pub fn svg(timeline: &[Second], warmup_s: f64, title: &str) -> String {
    let height = TOP + 2.0 * PANEL + GAP + 40.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(out, r#"<text x="{LEFT}" y="22" font-size="15">{}</text>"#, escape(title));
    let seconds = timeline.len().max(1) as f64;
    let requests: Vec<f64> = timeline.iter().map(|s| s.requests as f64).collect();
    let sessions: Vec<f64> = timeline.iter().map(|s| s.sessions as f64).collect();
    let p50: Vec<f64> = timeline.iter().map(|s| s.p50_ms).collect();
    let p99: Vec<f64> = timeline.iter().map(|s| s.p99_ms).collect();
    panel(
        &mut out,
        TOP,
        seconds,
        warmup_s,
        "per second",
        &[("requests", "#1f77b4", &requests), ("sessions", "#2ca02c", &sessions)],
    );
    panel(
        &mut out,
        TOP + PANEL + GAP,
        seconds,
        warmup_s,
        "latency, ms",
        &[("p50", "#ff7f0e", &p50), ("p99", "#d62728", &p99)],
    );
    let _ = writeln!(
        out,
        r#"<text x="{}" y="{}" text-anchor="middle">seconds since start</text>"#,
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
        height - 8.0
    );
    out.push_str("</svg>\n");
    out
}

fn panel(out: &mut String, top: f64, seconds: f64, warmup_s: f64, label: &str, series: &[(&str, &str, &[f64])]) {
    let plot_w = WIDTH - LEFT - RIGHT;
    let max = series.iter().flat_map(|(_, _, v)| v.iter().copied()).fold(0.0, f64::max);
    let y_max = nice_ceiling(max);
    let x = |t: f64| LEFT + plot_w * t / seconds;
    let y = |v: f64| top + PANEL - PANEL * (v / y_max).min(1.0);
    if warmup_s > 0.0 {
        let _ = writeln!(
            out,
            r##"<rect x="{LEFT}" y="{top}" width="{:.1}" height="{PANEL}" fill="#eeeeee"/><text x="{:.1}" y="{:.1}" fill="#888">warm-up</text>"##,
            x(warmup_s.min(seconds)) - LEFT,
            LEFT + 4.0,
            top + 14.0
        );
    }
    let _ =
        writeln!(out, r#"<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{PANEL}" fill="none" stroke="black"/>"#);
    for i in 0..=4 {
        let v = y_max * f64::from(i) / 4.0;
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#dddddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            y(v) + 4.0,
            short(v),
            y = y(v)
        );
    }
    let step = nice_ceiling(seconds / 8.0).max(1.0);
    let mut t = 0.0;
    while t <= seconds {
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            x(t),
            top + PANEL + 16.0,
            short(t)
        );
        t += step;
    }
    let _ = writeln!(
        out,
        r#"<text x="16" y="{:.1}" transform="rotate(-90 16 {:.1})" text-anchor="middle">{}</text>"#,
        top + PANEL / 2.0,
        top + PANEL / 2.0,
        escape(label)
    );
    for (i, (name, colour, values)) in series.iter().enumerate() {
        let points: Vec<String> =
            values.iter().enumerate().map(|(t, v)| format!("{:.1},{:.1}", x(t as f64 + 0.5), y(*v))).collect();
        let _ = writeln!(
            out,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#,
            points.join(" ")
        );
        let lx = LEFT + plot_w - 160.0 + 80.0 * i as f64;
        let _ = writeln!(
            out,
            r#"<line x1="{lx}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="{colour}" stroke-width="2"/><text x="{}" y="{:.1}">{}</text>"#,
            lx + 18.0,
            top - 6.0,
            top - 6.0,
            lx + 22.0,
            top - 2.0,
            escape(name)
        );
    }
}

/// The smallest 1, 2 or 5 × 10^k at or above `x` (1 for nothing).
fn nice_ceiling(x: f64) -> f64 {
    if x <= 0.0 || !x.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(x.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * magnitude >= x {
            return m * magnitude;
        }
    }
    10.0 * magnitude
}

fn short(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_ceilings() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(3.0), 5.0);
        assert_eq!(nice_ceiling(120.0), 200.0);
        assert_eq!(nice_ceiling(1000.0), 1000.0);
    }

    #[test]
    fn plot_is_an_svg_with_both_panels() {
        let timeline: Vec<Second> = (0..30)
            .map(|t| Second {
                t,
                sessions: 10,
                requests: 50 + t,
                mismatches: 0,
                p50_ms: 2.0,
                p99_ms: 9.5,
                server_rss_kib: None,
            })
            .collect();
        let svg = svg(&timeline, 5.0, "a <run>");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 4);
        assert!(svg.contains("a &lt;run&gt;") && svg.contains("warm-up"));
    }
}
