//! A horizontal bar chart as a standalone SVG file, for the README: each benchmark writes
//! its headline figures to `docs/benchmarks/<name>.svg` next to the table it prints.

use std::fmt::Write as _;
use std::path::PathBuf;

/// One bar: its label and value; `ours` bars are drawn in kvrun's colour.
pub struct Bar {
    /// What was measured.
    pub label: String,
    /// The figure, in the chart's unit.
    pub value: f64,
    /// Whether this is kvrun (else a comparison: a native client, an SDK, a minimal server).
    pub ours: bool,
}

impl Bar {
    /// A kvrun bar.
    pub fn ours(label: impl Into<String>, value: f64) -> Bar {
        Bar {
            label: label.into(),
            value,
            ours: true,
        }
    }

    /// A comparison bar.
    pub fn other(label: impl Into<String>, value: f64) -> Bar {
        Bar {
            label: label.into(),
            value,
            ours: false,
        }
    }
}

/// A titled chart of bars in one unit.
pub struct Chart {
    /// The title line.
    pub title: String,
    /// The unit after each value (`µs`, `ms`, `req/s`, …).
    pub unit: &'static str,
    /// A line under the chart (what lower or higher means, the machine).
    pub note: String,
    /// The bars, top to bottom.
    pub bars: Vec<Bar>,
}

const WIDTH: f64 = 760.0;
const LABEL: f64 = 330.0;
const ROW: f64 = 26.0;
const TOP: f64 = 44.0;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Chart {
    /// The SVG document.
    pub fn svg(&self) -> String {
        let max = self
            .bars
            .iter()
            .map(|b| b.value)
            .fold(0.0, f64::max)
            .max(1e-9);
        let height = TOP + ROW * self.bars.len() as f64 + 36.0;
        let span = WIDTH - LABEL - 110.0;
        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="Helvetica, Arial, sans-serif" font-size="13">"#
        );
        let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            svg,
            r#"<text x="12" y="24" font-size="15" font-weight="bold">{}</text>"#,
            escape(&self.title)
        );
        for (i, bar) in self.bars.iter().enumerate() {
            let y = TOP + ROW * i as f64;
            let length = (bar.value / max * span).max(1.0);
            let colour = if bar.ours { "#2b6cb0" } else { "#a0aec0" };
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
                LABEL - 8.0,
                y + 15.0,
                escape(&bar.label)
            );
            let _ = writeln!(
                svg,
                r#"<rect x="{LABEL}" y="{}" width="{length:.1}" height="18" fill="{colour}"/>"#,
                y + 2.0
            );
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{}">{} {}</text>"#,
                LABEL + length + 6.0,
                y + 15.0,
                format_value(bar.value),
                self.unit
            );
        }
        let _ = writeln!(
            svg,
            r##"<text x="12" y="{}" font-size="11" fill="#4a5568">{}</text>"##,
            height - 12.0,
            escape(&self.note)
        );
        svg.push_str("</svg>\n");
        svg
    }

    /// Writes the chart to `docs/benchmarks/<name>.svg` in the repository and says where.
    pub fn write(&self, name: &str) {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let dir = root.join("docs/benchmarks");
        let path = dir.join(format!("{name}.svg"));
        match std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&path, self.svg())) {
            Ok(()) => println!("chart: docs/benchmarks/{name}.svg"),
            Err(e) => eprintln!("could not write the chart {}: {e}", path.display()),
        }
    }
}

fn format_value(value: f64) -> String {
    if value >= 100.0 {
        format!("{value:.0}")
    } else if value >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}
