//! Pictures: image grids (samples, reconstructions), loss curves and 2-D
//! scatter plots, all written as PNG through a temporary file and a rename.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::files::atomic_write;

fn encode_png(rgb: &[u8], w: u32, h: u32, path: &Path) -> Result<()> {
    atomic_write(path, &png_bytes(rgb, w, h, &path.display().to_string())?)
}

/// An RGB buffer as PNG bytes; `what` names the picture in errors.
fn png_bytes(rgb: &[u8], w: u32, h: u32, what: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    image::write_buffer_with_format(
        &mut std::io::Cursor::new(&mut out),
        rgb,
        w,
        h,
        image::ExtendedColorType::Rgb8,
        image::ImageFormat::Png,
    )
    .map_err(|e| Error::bad_file(what, format!("cannot encode PNG: {e}")))?;
    Ok(out)
}

/// Tiles `n` images of shape `[C, H, W]` (values in [0, 1], clamped) into a
/// grid with `cols` columns and 1-pixel gaps, each pixel drawn `scale` times.
pub fn image_grid(
    values: &[f32],
    n: usize,
    shape: &[usize],
    cols: usize,
    scale: usize,
    path: &Path,
) -> Result<()> {
    let png = image_grid_png(values, n, shape, cols, scale)?;
    atomic_write(path, &png)
}

/// The grid of [`image_grid`] as PNG bytes (the service's answers, TensorBoard's images).
pub fn image_grid_png(
    values: &[f32],
    n: usize,
    shape: &[usize],
    cols: usize,
    scale: usize,
) -> Result<Vec<u8>> {
    let (c, h, w) = match shape {
        [c, h, w] if *c == 1 || *c == 3 => (*c, *h, *w),
        [d] => (1, 1, *d),
        s => return Err(Error::Shape(format!("cannot draw examples of shape {s:?} as images"))),
    };
    if n == 0 || values.len() < n * c * h * w {
        return Err(Error::Shape(format!(
            "image grid: {} values for {n} images of {c}x{h}x{w}",
            values.len()
        )));
    }
    let cols = cols.clamp(1, n);
    let rows = n.div_ceil(cols);
    let (cw, ch) = ((w * scale + 1), (h * scale + 1));
    let (gw, gh) = (cols * cw + 1, rows * ch + 1);
    let mut buf = vec![96u8; gw * gh * 3];
    for k in 0..n {
        let (gx, gy) = ((k % cols) * cw + 1, (k / cols) * ch + 1);
        let img = &values[k * c * h * w..(k + 1) * c * h * w];
        for y in 0..h * scale {
            for x in 0..w * scale {
                let (sy, sx) = (y / scale, x / scale);
                let o = ((gy + y) * gw + gx + x) * 3;
                for ch_out in 0..3 {
                    let src = if c == 1 { 0 } else { ch_out };
                    let v = img[src * h * w + sy * w + sx].clamp(0.0, 1.0);
                    buf[o + ch_out] = (v * 255.0).round() as u8;
                }
            }
        }
    }
    png_bytes(&buf, gw as u32, gh as u32, "image grid")
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // DejaVu Sans (Bitstream Vera licence, see assets/): bundled so that
        // plots need no system font library.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            include_bytes!("../../assets/DejaVuSans.ttf"),
        );
    });
}

fn plot_err(path: &Path) -> impl Fn(String) -> Error + '_ {
    move |e| Error::bad_file(path, format!("cannot draw plot: {e}"))
}

/// Line plot of named series of (step, value); log-scaled x is not used so
/// that early steps stay readable next to late ones with similar values.
pub fn line_plot(
    title: &str,
    y_label: &str,
    series: &[(&str, Vec<(f64, f64)>)],
    path: &Path,
) -> Result<()> {
    register_font();
    let pts: Vec<&(f64, f64)> =
        series.iter().flat_map(|s| s.1.iter()).filter(|p| p.1.is_finite()).collect();
    if pts.is_empty() {
        return Err(Error::config(format!("{}: nothing to plot", path.display())));
    }
    let (x0, x1) = pts.iter().fold((f64::MAX, f64::MIN), |a, p| (a.0.min(p.0), a.1.max(p.0)));
    // Robust y range: ignore the first 2% of points of each series (the initial loss dwarfs the
    // rest).
    let tail: Vec<f64> = series
        .iter()
        .flat_map(|s| s.1.iter().skip(s.1.len() / 50).map(|p| p.1))
        .filter(|v| v.is_finite())
        .collect();
    let (mut y0, mut y1) = tail.iter().fold((f64::MAX, f64::MIN), |a, &v| (a.0.min(v), a.1.max(v)));
    if (y1 - y0).abs() < 1e-9 {
        y0 -= 1.0;
        y1 += 1.0;
    }
    let pad = 0.05 * (y1 - y0);
    let (w, h) = (800u32, 500u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let e = plot_err(path);
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|x| e(x.to_string()))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1.max(x0 + 1.0), (y0 - pad)..(y1 + pad))
            .map_err(|x| e(x.to_string()))?;
        chart
            .configure_mesh()
            .x_desc("step")
            .y_desc(y_label)
            .x_label_formatter(&|v| format!("{v:.0}"))
            .draw()
            .map_err(|x| e(x.to_string()))?;
        let colors = [BLUE, RED, GREEN, MAGENTA, CYAN, BLACK];
        for (i, (name, s)) in series.iter().enumerate() {
            let col = colors[i % colors.len()];
            let pts: Vec<(f64, f64)> = s.iter().copied().filter(|p| p.1.is_finite()).collect();
            let drawn = if pts.len() < 30 {
                chart.draw_series(LineSeries::new(pts.clone(), col.stroke_width(2)).point_size(3))
            } else {
                chart.draw_series(LineSeries::new(pts, col.stroke_width(1)))
            };
            drawn
                .map_err(|x| e(x.to_string()))?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], col));
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|x| e(x.to_string()))?;
        root.present().map_err(|x| e(x.to_string()))?;
    }
    encode_png(&buf, w, h, path)
}

/// Scatter plot of 2-D points: data (grey) and model samples (blue).
pub fn scatter_2d(title: &str, data: &[[f32; 2]], samples: &[[f32; 2]], path: &Path) -> Result<()> {
    let groups = [
        Group { points: data, colour: (170, 170, 170), label: None },
        Group { points: samples, colour: (0, 0, 255), label: None },
    ];
    scatter_groups(title, &groups, &[], path)
}

/// One colour of points in [`scatter_groups`], with an optional legend label.
pub struct Group<'a> {
    pub points: &'a [[f32; 2]],
    pub colour: (u8, u8, u8),
    pub label: Option<String>,
}

/// Ten distinguishable colours (labels 0-9, cycled beyond).
pub const PALETTE: [(u8, u8, u8); 10] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
];

/// Scatter plot of groups of 2-D points, each in its colour, and circles
/// (centre, radius) drawn over them (e.g. 3 sigma around the true modes).
pub fn scatter_groups(
    title: &str,
    groups: &[Group],
    circles: &[([f32; 2], f32)],
    path: &Path,
) -> Result<()> {
    register_font();
    let (mut lo, mut hi) = (f32::MAX, f32::MIN);
    for p in
        groups.iter().flat_map(|g| g.points.iter()).filter(|p| p[0].is_finite() && p[1].is_finite())
    {
        lo = lo.min(p[0]).min(p[1]);
        hi = hi.max(p[0]).max(p[1]);
    }
    for (c, r) in circles {
        lo = lo.min(c[0] - r).min(c[1] - r);
        hi = hi.max(c[0] + r).max(c[1] + r);
    }
    if lo > hi {
        return Err(Error::config(format!("{}: nothing to plot", path.display())));
    }
    let pad = 0.05 * (hi - lo).max(1e-3);
    let r = (lo - pad) as f64..(hi + pad) as f64;
    let (w, h) = (600u32, 600u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let e = plot_err(path);
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|x| e(x.to_string()))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(40)
            .build_cartesian_2d(r.clone(), r)
            .map_err(|x| e(x.to_string()))?;
        chart.configure_mesh().draw().map_err(|x| e(x.to_string()))?;
        let mut legend = false;
        for g in groups {
            let col = RGBColor(g.colour.0, g.colour.1, g.colour.2);
            let s = chart
                .draw_series(
                    g.points
                        .iter()
                        .map(|p| Circle::new((p[0] as f64, p[1] as f64), 2, col.filled())),
                )
                .map_err(|x| e(x.to_string()))?;
            if let Some(l) = &g.label {
                s.label(l.clone()).legend(move |(x, y)| Circle::new((x + 8, y), 4, col.filled()));
                legend = true;
            }
        }
        let red = RGBColor(220, 0, 0);
        let px_per_unit = (w as f64 - 60.0) / (r_span(lo, hi, pad));
        chart
            .draw_series(circles.iter().map(|(c, rad)| {
                Circle::new(
                    (c[0] as f64, c[1] as f64),
                    ((*rad as f64) * px_per_unit).max(2.0) as i32,
                    red.stroke_width(1),
                )
            }))
            .map_err(|x| e(x.to_string()))?;
        if legend {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|x| e(x.to_string()))?;
        }
        root.present().map_err(|x| e(x.to_string()))?;
    }
    encode_png(&buf, w, h, path)
}

fn r_span(lo: f32, hi: f32, pad: f32) -> f64 {
    ((hi + pad) - (lo - pad)) as f64
}

/// Anomaly detection at a glance: histograms of the normal and anomalous
/// scores with the threshold (left) and the ROC curve with the chance line (right).
pub fn detection_plot(
    title: &str,
    normal: &[f64],
    anomalous: &[f64],
    threshold: f64,
    roc: &[(f64, f64)],
    auroc: f64,
    path: &Path,
) -> Result<()> {
    register_font();
    let all: Vec<f64> = normal.iter().chain(anomalous).copied().filter(|v| v.is_finite()).collect();
    if all.is_empty() {
        return Err(Error::config(format!("{}: nothing to plot", path.display())));
    }
    // Range: 1st to 99th percentile of both sets (and the threshold), so one far outlier cannot
    // squash the rest.
    let mut sorted = all.clone();
    sorted.sort_by(f64::total_cmp);
    let q = |p: f64| sorted[((sorted.len() - 1) as f64 * p).round() as usize];
    let (mut lo, mut hi) = (q(0.01).min(threshold), q(0.99).max(threshold));
    if hi - lo < 1e-9 {
        lo -= 1.0;
        hi += 1.0;
    }
    let bins = 40usize;
    let width = (hi - lo) / bins as f64;
    let hist = |s: &[f64]| -> Vec<f64> {
        let mut h = vec![0f64; bins];
        for &v in s {
            let b = (((v - lo) / width).floor().max(0.0) as usize).min(bins - 1);
            h[b] += 1.0 / s.len().max(1) as f64;
        }
        h
    };
    let (hn, ha) = (hist(normal), hist(anomalous));
    let top = hn.iter().chain(&ha).fold(0f64, |a, &b| a.max(b)) * 1.1;
    let (w, h) = (1100u32, 450u32);
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let e = plot_err(path);
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|x| e(x.to_string()))?;
        let root = root.titled(title, ("sans-serif", 20)).map_err(|x| e(x.to_string()))?;
        let (left, right) = root.split_horizontally(650);
        let mut c = ChartBuilder::on(&left)
            .caption("score histograms (share of each set)", ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d(lo..hi, 0f64..top.max(1e-6))
            .map_err(|x| e(x.to_string()))?;
        c.configure_mesh()
            .x_desc("score (higher = more anomalous)")
            .y_desc("share")
            .draw()
            .map_err(|x| e(x.to_string()))?;
        for (hs, col, name) in [
            (&hn, RGBColor(31, 119, 180), "normal (test part)"),
            (&ha, RGBColor(214, 39, 40), "anomalies"),
        ] {
            c.draw_series(hs.iter().enumerate().map(|(i, &v)| {
                let x0 = lo + i as f64 * width;
                Rectangle::new([(x0, 0.0), (x0 + width, v)], col.mix(0.45).filled())
            }))
            .map_err(|x| e(x.to_string()))?
            .label(name)
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 15, y + 5)], col.mix(0.6).filled())
            });
        }
        c.draw_series(LineSeries::new(
            vec![(threshold, 0.0), (threshold, top)],
            BLACK.stroke_width(2),
        ))
        .map_err(|x| e(x.to_string()))?
        .label("threshold")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], BLACK.stroke_width(2)));
        c.configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|x| e(x.to_string()))?;
        let mut r = ChartBuilder::on(&right)
            .caption(format!("ROC (AUROC {auroc:.3})"), ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(45)
            .build_cartesian_2d(0f64..1f64, 0f64..1f64)
            .map_err(|x| e(x.to_string()))?;
        r.configure_mesh()
            .x_desc("false-positive rate")
            .y_desc("true-positive rate")
            .draw()
            .map_err(|x| e(x.to_string()))?;
        r.draw_series(LineSeries::new(
            vec![(0.0, 0.0), (1.0, 1.0)],
            RGBColor(160, 160, 160).stroke_width(1),
        ))
        .map_err(|x| e(x.to_string()))?;
        r.draw_series(LineSeries::new(roc.to_vec(), RGBColor(214, 39, 40).stroke_width(2)))
            .map_err(|x| e(x.to_string()))?;
        root.present().map_err(|x| e(x.to_string()))?;
    }
    encode_png(&buf, w, h, path)
}
