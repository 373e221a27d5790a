//! SVG plots (plotters' SVG backend, no fonts needed), returned as strings for inlining.

use plotters::prelude::*;

/// Colours of the series, in order; the reference is drawn in black.
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// One named series of (x, y) points.
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

fn range(series: &[Series], pick: impl Fn(&(f64, f64)) -> f64) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for s in series {
        for p in &s.points {
            let v = pick(p);
            if v.is_finite() {
                lo = lo.min(v);
                hi = hi.max(v);
            }
        }
    }
    if lo.partial_cmp(&hi) != Some(std::cmp::Ordering::Less) {
        (lo - 1.0, hi + 1.0)
    } else {
        let pad = 0.05 * (hi - lo);
        (lo - pad, hi + pad)
    }
}

/// Series of at most this many points get a marker at each: a lag or a level stands out; a
/// daily series would be a smear of circles (and most of the SVG's size).
const MARKED_POINTS: usize = 60;

/// A line chart of several series; the first is the reference (black), `diagonal` adds y = x.
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    log_y: bool,
    diagonal: bool,
) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (560, 360)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let (x0, x1) = range(series, |p| p.0);
        let transform = |y: f64| if log_y { y.max(1e-300).log10() } else { y };
        let transformed: Vec<Series> = series
            .iter()
            .map(|s| Series {
                name: s.name.clone(),
                points: s.points.iter().map(|p| (p.0, transform(p.1))).collect(),
            })
            .collect();
        let (y0, y1) = if diagonal {
            (x0, x1)
        } else {
            range(&transformed, |p| p.1)
        };
        let mut chart = match ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(56)
            .build_cartesian_2d(x0..x1, y0..y1)
        {
            Ok(c) => c,
            Err(_) => return String::new(),
        };
        let y_desc = if log_y {
            format!("log10 {y_label}")
        } else {
            y_label.to_string()
        };
        let _ = chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_desc)
            .light_line_style(WHITE.mix(0.0))
            .draw();
        if diagonal {
            let _ = chart.draw_series(LineSeries::new(vec![(x0, x0), (x1, x1)], BLACK.mix(0.3)));
        }
        for (i, s) in transformed.iter().enumerate() {
            let color = if i == 0 {
                BLACK
            } else {
                PALETTE[(i - 1) % PALETTE.len()]
            };
            let style = color.stroke_width(if i == 0 { 3 } else { 2 });
            if let Ok(drawn) = chart.draw_series(LineSeries::new(s.points.clone(), style)) {
                drawn.label(s.name.clone()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            }
            if s.points.len() <= MARKED_POINTS {
                let _ =
                    chart.draw_series(s.points.iter().map(|p| Circle::new(*p, 2, color.filled())));
            }
        }
        let _ = chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .position(if diagonal {
                SeriesLabelPosition::LowerRight
            } else {
                SeriesLabelPosition::UpperRight
            })
            .draw();
        let _ = root.present();
    }
    svg
}

/// A correlation heat map (values in [-1, 1], blue negative, red positive).
pub fn heatmap(title: &str, matrix: &[f64], n: usize) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (300, 320)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let mut chart = match ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 14))
            .margin(8)
            .build_cartesian_2d(0..n as i32, 0..n as i32)
        {
            Ok(c) => c,
            Err(_) => return String::new(),
        };
        let cells = (0..n)
            .flat_map(|i| (0..n).map(move |j| (i, j)))
            .map(|(i, j)| {
                let v = matrix[i * n + j].clamp(-1.0, 1.0);
                let c = if v >= 0.0 {
                    RGBColor(255, (255.0 * (1.0 - v)) as u8, (255.0 * (1.0 - v)) as u8)
                } else {
                    RGBColor((255.0 * (1.0 + v)) as u8, (255.0 * (1.0 + v)) as u8, 255)
                };
                Rectangle::new(
                    [
                        (j as i32, (n - 1 - i) as i32),
                        (j as i32 + 1, (n - i) as i32),
                    ],
                    c.filled(),
                )
            });
        let _ = chart.draw_series(cells);
        let _ = root.present();
    }
    svg
}
