//! Draws the charts of `BENCHMARKS.md` as SVG, from measurements made beforehand:
//!
//! * `fleet <csv> <svg>` — refreshes per second over time, with and without the cache's
//!   jitter, from the CSV that `cargo run --release --example fleet -- --csv <csv>` writes;
//! * `scaling <criterion dir> <svg>` — the hot path's time per call per thread against the
//!   number of threads, with the two baselines, from the criterion results that
//!   `cargo bench --bench scaling -- threads` leaves in `<target dir>/criterion`.
//!
//! It is a package of its own so that only this command compiles `plotters` (with its SVG
//! backend alone).

use std::error::Error;
use std::path::Path;

use plotters::prelude::*;

type Result<T> = std::result::Result<T, Box<dyn Error>>;

const USAGE: &str = "usage: entra-mi-charts fleet <csv> <svg>\n       entra-mi-charts scaling <criterion dir> <svg>";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let done = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["fleet", csv, svg] => fleet(Path::new(csv), Path::new(svg)),
        ["scaling", dir, svg] => scaling(Path::new(dir), Path::new(svg)),
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = done {
        eprintln!("entra-mi-charts: {e}");
        std::process::exit(1);
    }
}

/// One row of the fleet CSV: seconds since the replicas started, refreshes in that second
/// without jitter and with it.
struct FleetRow {
    second: i64,
    without: u64,
    with: u64,
}

fn read_fleet(csv: &Path) -> Result<Vec<FleetRow>> {
    let text =
        std::fs::read_to_string(csv).map_err(|e| format!("cannot read {}: {e}", csv.display()))?;
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate().skip(1) {
        let bad = || {
            format!(
                "{} line {}: expected second,without,with",
                csv.display(),
                n + 1
            )
        };
        let fields: Vec<&str> = line.split(',').collect();
        let [second, without, with] = fields.as_slice() else {
            return Err(bad().into());
        };
        rows.push(FleetRow {
            second: second.trim().parse().map_err(|_| bad())?,
            without: without.trim().parse().map_err(|_| bad())?,
            with: with.trim().parse().map_err(|_| bad())?,
        });
    }
    if rows.is_empty() {
        return Err(format!("{} holds no rows", csv.display()).into());
    }
    Ok(rows)
}

fn hms(seconds: i64) -> String {
    format!(
        "{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds % 3600 / 60,
        seconds % 60
    )
}

/// Two panels, one above the other on the same time axis: without jitter every replica
/// refreshes in one second; with it the refreshes spread over five minutes. Each panel has
/// its own scale, since the peaks differ by two orders of magnitude.
fn fleet(csv: &Path, svg: &Path) -> Result<()> {
    let rows = read_fleet(csv)?;
    let total: u64 = rows.iter().map(|r| r.without).sum();
    let (first, last) = (rows[0].second, rows[rows.len() - 1].second + 1);
    let root = SVGBackend::new(svg, (960, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        &format!("{total} replicas started together, 24 h tokens: refreshes per second"),
        ("sans-serif", 22),
    )?;
    let (top, bottom) = root.split_vertically(300);
    let panels = [
        (
            top,
            "without jitter",
            RED,
            rows.iter()
                .map(|r| (r.second, r.without))
                .collect::<Vec<_>>(),
        ),
        (
            bottom,
            "with the cache's early jitter (up to 5 min)",
            BLUE,
            rows.iter().map(|r| (r.second, r.with)).collect(),
        ),
    ];
    for (area, name, color, points) in panels {
        let peak = points.iter().map(|p| p.1).max().unwrap_or(0);
        let mut chart = ChartBuilder::on(&area)
            .caption(
                format!("{name}: peak {peak} per second"),
                ("sans-serif", 17),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(first..last, 0u64..(peak + peak / 10).max(1))?;
        chart
            .configure_mesh()
            .x_labels(8)
            .x_label_formatter(&|s| hms(*s))
            .x_desc("time since the replicas started (h:mm:ss)")
            .y_desc("refreshes per second")
            .draw()?;
        chart.draw_series(LineSeries::new(points, color.stroke_width(2)))?;
    }
    root.present()?;
    println!("wrote {}", svg.display());
    Ok(())
}

/// The thread counts the scaling bench measures.
const THREADS: [u32; 4] = [1, 2, 4, 8];

/// The mean time in nanoseconds criterion recorded for `threads/<id>/<n>` under `dir`.
fn mean_ns(dir: &Path, id: &str, n: u32) -> Result<f64> {
    let path = dir
        .join("threads")
        .join(id)
        .join(n.to_string())
        .join("new")
        .join("estimates.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "cannot read {} ({e}); run `cargo bench --bench scaling -- threads` first",
            path.display()
        )
    })?;
    let v: serde_json::Value = serde_json::from_str(&text)?;
    v["mean"]["point_estimate"]
        .as_f64()
        .ok_or_else(|| format!("{} has no mean estimate", path.display()).into())
}

/// Time per call per thread on a logarithmic scale, for the cache hit and its two baselines.
fn scaling(dir: &Path, svg: &Path) -> Result<()> {
    let series = [
        ("TokenHandle::cached_header()", "handle_cached_header", BLUE),
        (
            "floor: clone a prebuilt HeaderValue",
            "floor_clone_headervalue",
            BLACK,
        ),
        (
            "common design: RwLock<HashMap> + format!",
            "common_rwlock_hashmap_format",
            RED,
        ),
    ];
    let mut measured = Vec::new();
    for (label, id, color) in series {
        let points = THREADS
            .iter()
            .enumerate()
            .map(|(i, &n)| Ok((i as i32, mean_ns(dir, id, n)?)))
            .collect::<Result<Vec<_>>>()?;
        measured.push((label, color, points));
    }
    let values = measured.iter().flat_map(|(_, _, p)| p.iter().map(|q| q.1));
    let (low, high) = values.fold((f64::MAX, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let root = SVGBackend::new(svg, (960, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Cache hit, all threads on one audience: time per call per thread (2 cores)",
            ("sans-serif", 20),
        )
        .margin(16)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(-0.2f64..3.2f64, ((low / 2.0)..(high * 2.0)).log_scale())?;
    chart
        .configure_mesh()
        .x_labels(4)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (i - x).abs() < 1e-6 && (0.0..=3.0).contains(&i) {
                THREADS[i as usize].to_string()
            } else {
                String::new()
            }
        })
        .y_label_formatter(&|y| format!("{y:.0}"))
        .x_desc("threads")
        .y_desc("ns per call per thread (log scale)")
        .draw()?;
    for (label, color, points) in measured {
        let points: Vec<(f64, f64)> = points.into_iter().map(|(i, t)| (f64::from(i), t)).collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 4, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    println!("wrote {}", svg.display());
    Ok(())
}
