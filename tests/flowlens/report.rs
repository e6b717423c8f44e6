//! The HTML report (`flowlens report`, `detect --report`), opened in headless Chromium as
//! a person opens it: from a file:// path, with no network. Chromium is Debian's package;
//! the test installs it when it is missing and fails if it cannot.

use std::sync::OnceLock;

use crate::support::*;

/// Debian's Chromium, installed on first use.
fn chromium() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let bin = PathBuf::from("/usr/bin/chromium");
        if !bin.exists() {
            let install = || {
                Command::new("apt-get")
                    .args(["install", "-y", "--no-install-recommends", "chromium"])
                    .env("DEBIAN_FRONTEND", "noninteractive")
                    .output()
            };
            let mut out = install().expect("apt-get runs");
            if !out.status.success() {
                // A fresh machine's package lists may be missing or stale.
                let update = Command::new("apt-get")
                    .arg("update")
                    .output()
                    .expect("apt-get runs");
                assert!(
                    update.status.success(),
                    "apt-get update failed:\n{}",
                    stderr(&update)
                );
                out = install().expect("apt-get runs");
            }
            assert!(
                out.status.success() && bin.exists(),
                "installing chromium failed:\n{}",
                stderr(&out)
            );
        }
        bin
    })
}

/// The page's DOM after its scripts ran, and what its console said.
fn open_in_chromium(page: &Path) -> (String, Vec<String>) {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(out.status.success(), "chromium failed: {}", stderr(&out));
    // Every console message (errors, uncaught exceptions) is logged as a CONSOLE line; the
    // report writes none.
    let console = stderr(&out)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    (stdout(&out), console)
}

/// Each `<figure class="chart" data-series="…">` and the SVG inside it.
fn charts(dom: &str) -> Vec<(Vec<String>, String)> {
    dom.split("<figure class=\"chart\" data-series=\"")
        .skip(1)
        .map(|part| {
            let (series, rest) = part.split_once('"').unwrap();
            let figure = rest.split("</figure>").next().unwrap();
            (
                series.split_whitespace().map(str::to_string).collect(),
                figure.to_string(),
            )
        })
        .collect()
}

#[test]
fn a_report_of_the_sample_logs_loads_in_chromium_with_every_chart_drawn() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    let findings = dir.path().join("findings.jsonl");
    let out = flowlens(&[
        "detect",
        "--source",
        &sample_logs(),
        "--out",
        findings.to_str().unwrap(),
        "--report",
        page.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let found = std::fs::read_to_string(&findings).unwrap().lines().count();
    assert!(found > 10, "the sample logs hold attacks: {found} findings");

    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: nothing is fetched when it opens.
    for outside in ["src=\"http", "href=\"http", "@import", "url(http"] {
        assert!(!html.contains(outside), "the page fetches {outside}");
    }
    let (dom, console) = open_in_chromium(&page);
    assert!(console.is_empty(), "console messages: {console:#?}");
    assert!(dom.contains("<h2 id=\"summary\">Summary</h2>"), "{dom}");

    // One row per finding, each with its chart; one traffic chart per interface section.
    let rows = dom.matches("<tr id=\"f-").count();
    assert_eq!(rows, found, "a row per finding");
    let charts = charts(&dom);
    let finding_charts = charts
        .iter()
        .filter(|(s, _)| s.contains(&"observed".into()))
        .count();
    let traffic_charts = charts
        .iter()
        .filter(|(s, _)| s.contains(&"accepted".into()))
        .count();
    assert_eq!(finding_charts, found, "a chart per finding");
    let sections = dom.matches("<h3 id=\"if-").count();
    assert!(sections >= 1);
    assert_eq!(traffic_charts, sections, "a traffic chart per interface");
    for (series, svg) in &charts {
        assert!(svg.contains("<svg"), "a chart without SVG: {series:?}");
        let lines = series
            .iter()
            .filter(|s| {
                matches!(
                    s.as_str(),
                    "observed" | "median" | "largest" | "accepted" | "rejected"
                )
            })
            .count();
        assert!(
            svg.matches("<polyline").count() >= lines,
            "{series:?}: fewer lines than series"
        );
        if series.contains(&"band".to_string()) {
            assert!(svg.contains("<polygon"), "{series:?}: no band drawn");
        }
        if series.contains(&"finding".to_string()) {
            assert!(
                svg.contains("<rect"),
                "{series:?}: the finding is not marked"
            );
        }
    }
    // Most findings are on interfaces with a baseline: their charts have the band.
    assert!(
        charts
            .iter()
            .filter(|(s, _)| s.contains(&"band".to_string()))
            .count()
            > found / 2
    );
    // The sortable tables got their handlers (the script ran to the end).
    assert!(
        dom.contains("<th class=\"sortable\">Severity</th>"),
        "{dom}"
    );
    assert!(dom.contains("<th class=\"num sortable\">Score</th>"));
}

#[test]
fn report_writes_the_page_without_findings_output() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("r.html");
    let out = flowlens(&[
        "report",
        "--source",
        &sample_logs(),
        "--out",
        page.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).is_empty(),
        "findings are not printed: {}",
        stdout(&out)
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("Incidents ("));
    assert!(stderr(&out).contains("report written to"));
}

#[test]
fn the_scheduled_task_writes_its_report_next_to_its_findings_on_s3() {
    let server = s3::Server::start();
    server.bucket("state");
    let out = server
        .command(&["run"])
        .env("FLOWLENS_SOURCE", sample_logs())
        .env("FLOWLENS_STATE", "s3://state/st")
        .env("FLOWLENS_FINDINGS", "s3://state/findings")
        .env("FLOWLENS_REPORT", "true")
        .env_remove("FLOWLENS_CONVERT")
        .env_remove("FLOWLENS_FAILPOINT")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let batch = summary(&out)["batch"].as_str().unwrap().to_string();
    let folder = server.bucket("state").join("findings");
    let findings = folder.join(format!("findings-{batch}.jsonl"));
    let page = folder.join(format!("report-{batch}.html"));
    assert!(findings.exists(), "{:?}", walk(&folder));
    assert!(
        page.exists(),
        "no report beside the findings: {:?}",
        walk(&folder)
    );
    let found = std::fs::read_to_string(&findings).unwrap().lines().count();
    let (dom, console) = open_in_chromium(&page);
    assert!(console.is_empty(), "console messages: {console:#?}");
    assert_eq!(dom.matches("<tr id=\"f-").count(), found);
}
