//! Server-rendered SVG charts: no script, no external assets, readable by screen readers (each
//! chart is a `role="img"` with a label that states its figures, and the numbers are printed
//! beside the bars).

use maud::{Markup, html};

/// A stable colour per series, from a palette readable on white and by most colour-blind people
/// (Okabe–Ito). `console.css` repeats it for the legend's `.swatch.c<n>` keys.
const PALETTE: [&str; 8] = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#666666"];

pub fn colour(index: usize) -> &'static str {
    PALETTE[index % PALETTE.len()]
}

/// Counts per bucket (columns) per series (stacked), with the bucket labels under the axis.
pub struct Stacked<'a> {
    pub label: &'a str,
    pub buckets: &'a [String],
    /// (series name, count per bucket); every vector as long as `buckets`.
    pub series: &'a [(String, Vec<u64>)],
}

/// A stacked column chart.
pub fn stacked_columns(chart: &Stacked<'_>) -> Markup {
    const WIDTH: f64 = 720.0;
    const HEIGHT: f64 = 220.0;
    const LEFT: f64 = 40.0;
    const BOTTOM: f64 = 24.0;
    let columns = chart.buckets.len().max(1);
    let totals: Vec<u64> = (0..chart.buckets.len())
        .map(|b| chart.series.iter().map(|(_, counts)| counts.get(b).copied().unwrap_or(0)).sum())
        .collect();
    let max = totals.iter().copied().max().unwrap_or(0).max(1);
    let plot = HEIGHT - BOTTOM - 8.0;
    let step = (WIDTH - LEFT) / columns as f64;
    let bar = (step * 0.8).max(1.0);
    let total: u64 = totals.iter().sum();
    let summary = format!(
        "{}: {total} in all; {}",
        chart.label,
        chart
            .series
            .iter()
            .map(|(name, counts)| format!("{name} {}", counts.iter().sum::<u64>()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    html! {
        figure.chart {
            svg viewBox=(format!("0 0 {WIDTH} {HEIGHT}")) role="img" aria-label=(summary) preserveAspectRatio="xMidYMid meet" {
                line x1=(LEFT) y1=(HEIGHT - BOTTOM) x2=(WIDTH) y2=(HEIGHT - BOTTOM) stroke="#999" {}
                text x=(LEFT - 4.0) y=(HEIGHT - BOTTOM - plot + 4.0) text-anchor="end" font-size="10" { (max) }
                text x=(LEFT - 4.0) y=(HEIGHT - BOTTOM) text-anchor="end" font-size="10" { "0" }
                @for (b, bucket) in chart.buckets.iter().enumerate() {
                    @let x = LEFT + b as f64 * step + (step - bar) / 2.0;
                    @let mut y = HEIGHT - BOTTOM;
                    @for (s, (name, counts)) in chart.series.iter().enumerate() {
                        @let count = counts.get(b).copied().unwrap_or(0);
                        @if count > 0 {
                            @let h = plot * count as f64 / max as f64;
                            @let top = { y -= h; y };
                            rect x=(fmt(x)) y=(fmt(top)) width=(fmt(bar)) height=(fmt(h)) fill=(colour(s)) {
                                title { (bucket) ": " (name) " " (count) }
                            }
                        }
                    }
                    // Every few labels, so they do not overlap.
                    @if b % label_every(columns, bucket.len()) == 0 {
                        text x=(fmt(x + bar / 2.0)) y=(HEIGHT - 8.0) text-anchor="middle" font-size="10" { (bucket) }
                    }
                }
            }
            figcaption {
                (chart.label)
                ul.legend {
                    @for (s, (name, counts)) in chart.series.iter().enumerate() {
                        li { span class=(swatch(s)) {} (name) " (" (counts.iter().sum::<u64>()) ")" }
                    }
                }
            }
        }
    }
}

/// The legend's colour key: a class, since the console's CSP allows no inline styles.
fn swatch(index: usize) -> String {
    format!("swatch c{}", index % PALETTE.len())
}

/// Every how many columns a label fits: about 6 px per character at font size 10, with room.
fn label_every(columns: usize, label_chars: usize) -> usize {
    let step = 680.0 / columns.max(1) as f64;
    ((label_chars as f64 * 6.0 + 8.0) / step).ceil().max(1.0) as usize
}

fn fmt(value: f64) -> String {
    format!("{value:.1}")
}

/// One row of a bar chart: a label, bars (one per measure), and the figures printed.
pub struct Row {
    pub label: String,
    /// (value in 0..=max, text printed after the bar)
    pub bars: Vec<(f64, String)>,
}

/// Horizontal bars, one group per row, one bar per measure (named in `measures`).
pub fn bars(label: &str, measures: &[&str], rows: &[Row], max: f64) -> Markup {
    bars_with_limits(label, measures, rows, max, &[])
}

/// [`bars`], with a limit drawn across each row's bar of a measure: `(measure index, value,
/// text)`, a dashed line where the value falls.
pub fn bars_with_limits(
    label: &str,
    measures: &[&str],
    rows: &[Row],
    max: f64,
    limits: &[(usize, f64, String)],
) -> Markup {
    const WIDTH: f64 = 720.0;
    const LABEL: f64 = 190.0;
    const BAR: f64 = 14.0;
    let per_row = BAR * measures.len() as f64 + 10.0;
    let height = (per_row * rows.len() as f64).max(per_row) + 4.0;
    let max = if max > 0.0 { max } else { 1.0 };
    let span = WIDTH - LABEL - 150.0;
    let limits_text: Vec<String> = limits
        .iter()
        .map(|(m, _, text)| format!("{} threshold {text}", measures.get(*m).copied().unwrap_or("")))
        .collect();
    let summary = format!(
        "{label}{}: {}",
        if limits_text.is_empty() { String::new() } else { format!(" ({})", limits_text.join(", ")) },
        rows.iter()
            .map(|row| format!(
                "{} {}",
                row.label,
                row.bars
                    .iter()
                    .zip(measures)
                    .map(|((_, text), measure)| format!("{measure} {text}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
            .collect::<Vec<_>>()
            .join("; ")
    );
    html! {
        figure.chart {
            svg viewBox=(format!("0 0 {WIDTH} {}", fmt(height))) role="img" aria-label=(summary) {
                @for (r, row) in rows.iter().enumerate() {
                    @let top = 4.0 + r as f64 * per_row;
                    text x=(LABEL - 8.0) y=(fmt(top + BAR)) text-anchor="end" font-size="12" { (row.label) }
                    @for (m, (value, text)) in row.bars.iter().enumerate() {
                        @let y = top + m as f64 * BAR;
                        @let w = (span * value.clamp(0.0, max) / max).max(1.0);
                        rect x=(LABEL) y=(fmt(y)) width=(fmt(w)) height=(fmt(BAR - 3.0)) fill=(colour(m)) {
                            title { (row.label) ", " (measures.get(m).copied().unwrap_or("")) ": " (text) }
                        }
                        text x=(fmt(LABEL + w + 6.0)) y=(fmt(y + BAR - 4.0)) font-size="11" { (text) }
                        @for (_, limit, limit_text) in limits.iter().filter(|(lm, _, _)| *lm == m) {
                            @let x = LABEL + span * limit.clamp(0.0, max) / max;
                            line.limit x1=(fmt(x)) y1=(fmt(y - 1.0)) x2=(fmt(x)) y2=(fmt(y + BAR - 2.0)) stroke="#b00020" stroke-width="2" stroke-dasharray="3 2" {
                                title { (measures.get(m).copied().unwrap_or("")) " threshold " (limit_text) }
                            }
                        }
                    }
                }
            }
            figcaption {
                (label)
                @if !limits.is_empty() { ". Dashed red lines: the thresholds." }
                @if measures.len() > 1 {
                    ul.legend {
                        @for (m, measure) in measures.iter().enumerate() {
                            li { span class=(swatch(m)) {} (measure) }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stacked_columns_scale_to_the_tallest_column_and_label_every_series() {
        let buckets = vec!["10:00".to_owned(), "11:00".to_owned()];
        let series = vec![("email.delivered".to_owned(), vec![3, 1]), ("email.bounced".to_owned(), vec![1, 0])];
        let svg =
            stacked_columns(&Stacked { label: "Events per hour", buckets: &buckets, series: &series }).into_string();
        // The tallest column (4) fills the plot: 188 px, split 3:1.
        assert!(svg.contains(r#"height="141.0""#), "{svg}");
        assert!(svg.contains(r#"height="47.0""#), "{svg}");
        assert!(svg.contains("Events per hour: 5 in all; email.delivered 4, email.bounced 1"), "{svg}");
        assert!(svg.contains("10:00: email.bounced 1"), "{svg}");
    }

    #[test]
    fn labels_and_names_are_escaped() {
        let rows = vec![Row { label: "<script>".into(), bars: vec![(0.5, "50%".into())] }];
        let svg = bars("Rates", &["bounce"], &rows, 1.0).into_string();
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("&lt;script&gt;"));
    }
}
