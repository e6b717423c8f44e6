//! The report's charts, drawn by plotters as SVG text the page embeds. Each chart is wrapped
//! in a `<figure>` naming its series, so a reader (and the browser test) can tell what it
//! should show.

use plotters::coord::Shift;
use plotters::coord::types::{RangedCoordf64, RangedCoordi64};
use plotters::prelude::*;

use super::BandPoint;
use crate::error::{Error, Result};
use crate::time_range::format_time;

const WIDTH: u32 = 720;
const HEIGHT: u32 = 220;
const OBSERVED: RGBColor = RGBColor(31, 92, 170);
const MEDIAN: RGBColor = RGBColor(90, 90, 90);
const LARGEST: RGBColor = RGBColor(214, 120, 20);
const MARK: RGBColor = RGBColor(200, 30, 40);
const ACCEPTED: RGBColor = RGBColor(40, 140, 80);
const REJECTED: RGBColor = RGBColor(200, 40, 40);

fn chart_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::invalid(format!("report chart ({what})"), e.to_string())
}

/// "12-05 13h": hours on the x axis.
fn hour_label(hour: &i64) -> String {
    let text = format_time(*hour);
    // 2026-12-05T13:00:00Z
    match (text.get(5..10), text.get(11..13)) {
        (Some(day), Some(h)) => format!("{day} {h}h"),
        _ => text,
    }
}

fn count_label(value: &f64) -> String {
    let v = value.abs();
    match v {
        v if v >= 1e9 => format!("{:.1}G", value / 1e9),
        v if v >= 1e6 => format!("{:.1}M", value / 1e6),
        v if v >= 1e3 => format!("{:.1}k", value / 1e3),
        _ => format!("{value:.0}"),
    }
}

fn figure(series: &[&str], caption: &str, svg: &str) -> String {
    format!(
        "<figure class=\"chart\" data-series=\"{}\">{svg}<figcaption>{}</figcaption></figure>",
        series.join(" "),
        super::page::escape(caption)
    )
}

fn canvas<'a>(svg: &'a mut String) -> DrawingArea<SVGBackend<'a>, Shift> {
    SVGBackend::with_string(svg, (WIDTH, HEIGHT)).into_drawing_area()
}

/// A chart of hours against counts.
type HourChart<'a, 'b> =
    ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordi64, RangedCoordf64>>;

/// Draws hours `x0..x1` against `0..top` (with headroom) as SVG text: the frame and axes,
/// then what `series` draws (given the y axis's end), then the legend.
fn draw_hours(
    what: &str,
    (x0, x1): (i64, i64),
    top: f64,
    series: impl FnOnce(&mut HourChart<'_, '_>, f64) -> Result<()>,
) -> Result<String> {
    let y1 = if top > 0.0 { top * 1.1 } else { 1.0 };
    let mut svg = String::new();
    {
        let root = canvas(&mut svg);
        let e = |e| chart_error(what, e);
        root.fill(&WHITE).map_err(e)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(24)
            .y_label_area_size(52)
            .build_cartesian_2d(x0..x1, 0.0..y1)
            .map_err(e)?;
        chart
            .configure_mesh()
            .x_labels(6)
            .y_labels(5)
            .x_label_formatter(&hour_label)
            .y_label_formatter(&count_label)
            .light_line_style(WHITE)
            .draw()
            .map_err(e)?;
        series(&mut chart, y1)?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(MEDIAN.mix(0.4))
            .draw()
            .map_err(e)?;
        root.present().map_err(e)?;
    }
    Ok(svg)
}

/// A metric hour by hour against its baseline: the band of median ± 3 MAD, the median, the
/// largest value the baseline saw, and the finding's window marked.
pub(crate) fn baseline_chart(
    metric: &str,
    points: &[BandPoint],
    mark: (i64, i64),
) -> Result<String> {
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return Ok(String::new());
    };
    let (x0, x1) = (first.hour, last.hour + 3600);
    let top = points
        .iter()
        .flat_map(|p| {
            let band = p.band.unwrap_or_default();
            [p.value, band.median + 3.0 * band.mad, band.max]
        })
        .fold(0.0f64, f64::max);
    let svg = draw_hours(metric, (x0, x1), top, |chart, y1| {
        let e = |e| chart_error(metric, e);
        // The finding's window first, so the lines are drawn over it.
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(mark.0.max(x0), 0.0), (mark.1.min(x1), y1)],
                MARK.mix(0.15).filled(),
            )))
            .map_err(e)?
            .label("finding")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], MARK.mix(0.3).filled()));
        // The band and the baseline lines, one polygon and line per stretch of hours the
        // baseline knows (a new interface has none).
        for (n, stretch) in stretches(points).iter().enumerate() {
            let upper = stretch.iter().map(|p| {
                let b = p.band.unwrap_or_default();
                (p.hour, b.median + 3.0 * b.mad)
            });
            let lower = stretch.iter().rev().map(|p| {
                let b = p.band.unwrap_or_default();
                (p.hour, (b.median - 3.0 * b.mad).max(0.0))
            });
            let band = chart
                .draw_series(std::iter::once(Polygon::new(
                    upper.chain(lower).collect::<Vec<_>>(),
                    MEDIAN.mix(0.15).filled(),
                )))
                .map_err(e)?;
            let median = stretch
                .iter()
                .map(|p| (p.hour, p.band.unwrap_or_default().median));
            let largest = stretch
                .iter()
                .map(|p| (p.hour, p.band.unwrap_or_default().max));
            if n == 0 {
                band.label("median ± 3 MAD").legend(|(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 14, y + 5)], MEDIAN.mix(0.25).filled())
                });
                chart
                    .draw_series(LineSeries::new(median, MEDIAN.stroke_width(1)))
                    .map_err(e)?
                    .label("baseline median")
                    .legend(|(x, y)| PathElement::new([(x, y), (x + 14, y)], MEDIAN));
                chart
                    .draw_series(LineSeries::new(largest, LARGEST.stroke_width(1)))
                    .map_err(e)?
                    .label("baseline largest")
                    .legend(|(x, y)| PathElement::new([(x, y), (x + 14, y)], LARGEST));
            } else {
                chart
                    .draw_series(LineSeries::new(median, MEDIAN.stroke_width(1)))
                    .map_err(e)?;
                chart
                    .draw_series(LineSeries::new(largest, LARGEST.stroke_width(1)))
                    .map_err(e)?;
            }
        }
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p.hour, p.value)),
                OBSERVED.stroke_width(2),
            ))
            .map_err(e)?
            .label(metric)
            .legend(|(x, y)| PathElement::new([(x, y), (x + 14, y)], OBSERVED.stroke_width(2)));
        Ok(())
    })?;
    let has_band = points.iter().any(|p| p.band.is_some());
    let series: &[&str] = match has_band {
        true => &["observed", "median", "largest", "band", "finding"],
        false => &["observed", "finding"],
    };
    let caption = match has_band {
        true => format!(
            "{metric} per hour, {} to {}, against the baseline for the same hour and day type",
            format_time(x0),
            format_time(x1)
        ),
        false => format!(
            "{metric} per hour, {} to {} (no baseline for this interface yet)",
            format_time(x0),
            format_time(x1)
        ),
    };
    Ok(figure(series, &caption, &svg))
}

/// Runs of consecutive points that have a band.
fn stretches(points: &[BandPoint]) -> Vec<&[BandPoint]> {
    points
        .split(|p| p.band.is_none())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Accepted and rejected records per hour.
pub(crate) fn traffic_chart(interface: &str, hours: &[(i64, f64, f64)]) -> Result<String> {
    let (Some(first), Some(last)) = (hours.first(), hours.last()) else {
        return Ok(String::new());
    };
    let (x0, x1) = (first.0, last.0 + 3600);
    let top = hours.iter().map(|h| h.1.max(h.2)).fold(0.0f64, f64::max);
    let svg = draw_hours(interface, (x0, x1), top, |chart, _| {
        let e = |e| chart_error(interface, e);
        chart
            .draw_series(LineSeries::new(
                hours.iter().map(|h| (h.0, h.1)),
                ACCEPTED.stroke_width(2),
            ))
            .map_err(e)?
            .label("accepted flows")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 14, y)], ACCEPTED.stroke_width(2)));
        chart
            .draw_series(LineSeries::new(
                hours.iter().map(|h| (h.0, h.2)),
                REJECTED.stroke_width(2),
            ))
            .map_err(e)?
            .label("rejected flows")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 14, y)], REJECTED.stroke_width(2)));
        Ok(())
    })?;
    Ok(figure(
        &["accepted", "rejected"],
        &format!(
            "flow records per hour, {} to {}",
            format_time(x0),
            format_time(x1)
        ),
        &svg,
    ))
}

#[cfg(test)]
mod tests {
    use super::super::Band;
    use super::*;

    fn points() -> Vec<BandPoint> {
        (0..48)
            .map(|h| BandPoint {
                hour: 1_764_892_800 + h * 3600,
                value: if h == 40 {
                    900.0
                } else {
                    100.0 + (h % 5) as f64
                },
                band: (h >= 4).then_some(Band {
                    median: 100.0,
                    mad: 3.0,
                    max: 130.0,
                }),
            })
            .collect()
    }

    #[test]
    fn a_baseline_chart_draws_each_series() {
        let svg = baseline_chart(
            "bytes",
            &points(),
            (1_764_892_800 + 40 * 3600, 1_764_892_800 + 41 * 3600),
        )
        .unwrap();
        assert!(svg.starts_with(
            "<figure class=\"chart\" data-series=\"observed median largest band finding\">"
        ));
        // Observed, median and largest lines, the legend's line samples, the band polygon.
        assert!(svg.matches("<polyline").count() >= 3, "{svg}");
        assert!(svg.contains("<polygon"), "{svg}");
        assert!(svg.contains("baseline median") && svg.contains("finding"));
    }

    #[test]
    fn an_interface_without_baseline_has_no_band() {
        let mut points = points();
        for p in &mut points {
            p.band = None;
        }
        let svg = baseline_chart("flows", &points, (0, 1)).unwrap();
        assert!(svg.contains("data-series=\"observed finding\""));
        assert!(!svg.contains("<polygon"));
        assert_eq!(baseline_chart("flows", &[], (0, 1)).unwrap(), "");
    }

    #[test]
    fn a_traffic_chart_has_accepted_and_rejected() {
        let hours: Vec<_> = (0..24)
            .map(|h| (1_764_892_800 + h * 3600, 50.0, (h % 3) as f64))
            .collect();
        let svg = traffic_chart("eni-1", &hours).unwrap();
        assert!(svg.contains("accepted flows") && svg.contains("rejected flows"));
        assert!(svg.matches("<polyline").count() >= 2);
    }
}
