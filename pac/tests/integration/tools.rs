//! The tools for the owners of a corporate PAC, end to end through the `waypost-pac` binary
//! and its `pac-worker` processes: `test` (a case file), `diff` (two versions over one URL
//! list) and `--coverage`, on `ph-web/brz-proxy.pac` of the corpus (read in place). Each test
//! that needs the corpus skips when it is absent. `tools_stream` covers `eval --urls`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::corpus::corpus;

/// The pinning every run here uses: no DNS but these names, one fixed local address.
pub(crate) const PINNED: &[&str] = &[
    "--no-dns",
    "--resolve",
    "internal.example=10.20.30.40",
    "--resolve",
    "external.example=93.184.216.34",
    "--my-ip",
    "192.0.2.10",
];

/// URLs through every branch of brz-proxy.pac but the `.bgbl.at`/`.cna.at`/
/// `.schulen-online.at` one.
const AVOIDING_BGBL: &str = "# brz-proxy.pac without its DIRECT domains
http://elearning.bmf.gv.at/kurs
http://internal.example/
http://external.example/a

http://plain/
https://www.example.com/x
";

/// URLs of the `.bgbl.at`/`.cna.at`/`.schulen-online.at` branch.
const BGBL: &[&str] = &[
    "http://www.bgbl.at/",
    "https://x.cna.at/login",
    "http://portal.schulen-online.at/a?b",
];

pub(crate) fn brz() -> Option<PathBuf> {
    Some(corpus()?.join("upstream/ph-web/brz-proxy.pac"))
}

pub(crate) fn run(args: &[&str], stdin: Option<&str>) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_waypost-pac"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        std::io::Write::write_all(&mut input, text.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let context = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), context)
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// `args`, the pinning, and a pool of two workers.
fn with_pinning<'a>(args: &[&'a str]) -> Vec<&'a str> {
    args.iter()
        .chain(PINNED)
        .chain(&["--workers", "2"])
        .copied()
        .collect()
}

/// Line and column (from 1) of the first `needle` in `text`.
fn place(text: &str, needle: &str) -> (usize, usize) {
    position(text, text.find(needle).unwrap())
}

/// Line and column (from 1) of byte `at` (ASCII text).
fn position(text: &str, at: usize) -> (usize, usize) {
    let line = text[..at].matches('\n').count() + 1;
    let column = at - text[..at].rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

#[test]
fn a_case_file_with_a_deliberate_mismatch_exits_1_and_names_it() {
    let Some(pac) = brz() else { return };
    let pac = pac.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cases = write(
        dir.path(),
        "cases.txt",
        "# brz-proxy.pac\nhttp://www.bgbl.at/   DIRECT\nhttp://internal.example/\tDIRECT\nhttp://external.example/  DIRECT\n",
    );
    let junit = dir.path().join("report.xml");
    let junit = junit.to_str().unwrap();
    let (code, out) = run(
        &with_pinning(&["test", &cases, "--pac", pac, "--junit", junit]),
        None,
    );
    assert_eq!(code, 1, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        format!("FAIL {cases}:4: http://external.example/"),
        "{out}"
    );
    assert_eq!(lines[1], "  expected: DIRECT", "{out}");
    assert!(lines[2].starts_with("  actual:   PROXY 172.30.9."), "{out}");
    assert!(
        lines[3].starts_with(&format!("{cases}: 3 cases, 2 passed, 1 failed")),
        "{out}"
    );
    assert_eq!(lines.len(), 4, "only the mismatch is listed: {out}");
    let xml = std::fs::read_to_string(junit).unwrap();
    assert!(
        xml.contains("tests=\"3\" failures=\"1\" errors=\"0\""),
        "{xml}"
    );
    assert!(
        xml.contains("name=\"http://external.example/ (line 4)\""),
        "{xml}"
    );
    assert!(
        xml.contains("<failure message=\"expected &quot;DIRECT&quot;, got &quot;PROXY 172.30.9."),
        "{xml}"
    );

    // the same cases, the mismatch fixed: exit 0
    let actual = lines[2].trim_start_matches("  actual:   ");
    let fixed = write(
        dir.path(),
        "fixed.txt",
        &format!("http://www.bgbl.at/ DIRECT\nhttp://external.example/ {actual}\n"),
    );
    let (code, out) = run(&with_pinning(&["test", &fixed, "--pac", pac]), None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("2 cases, 2 passed, 0 failed"), "{out}");
}

#[test]
fn a_bad_case_file_names_every_bad_line_and_runs_nothing() {
    let Some(pac) = brz() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cases = write(
        dir.path(),
        "cases.txt",
        "http://a.example/ DIRECT\nhttp://lonely.example/\nno-host-here DIRECT\n",
    );
    let (code, out) = run(&["test", &cases, "--pac", pac.to_str().unwrap()], None);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            format!("error: {cases}:2: expected URL then answer"),
            format!("error: {cases}:3: cannot find a host in \"no-host-here\""),
        ],
        "{out}"
    );
}

#[test]
fn a_script_that_does_not_load_makes_test_and_diff_exit_2() {
    let Some(root) = corpus() else { return };
    let broken = root.join("upstream/chromium/missing_close_brace.js");
    let broken = broken.to_str().unwrap();
    let good = root.join("upstream/ph-web/brz-proxy.pac");
    let dir = tempfile::tempdir().unwrap();
    let cases = write(dir.path(), "cases.txt", "http://a.example/ DIRECT\n");
    let junit = dir.path().join("report.xml");
    let (code, out) = run(
        &[
            "test",
            &cases,
            "--pac",
            broken,
            "--junit",
            junit.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(code, 2, "{out}");
    assert!(
        out.starts_with(&format!(
            "error: {broken}: the PAC script failed to load at "
        )),
        "{out}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("tests=\"1\" failures=\"0\" errors=\"1\""),
        "{xml}"
    );
    // with --coverage the error is the original script's, not the instrumented one's
    let (code, again) = run(&["test", &cases, "--pac", broken, "--coverage"], None);
    assert_eq!((code, again.lines().next()), (2, out.lines().next()));

    let urls = write(dir.path(), "urls.txt", "http://a.example/\n");
    let (code, out) = run(
        &["diff", good.to_str().unwrap(), broken, "--urls", &urls],
        None,
    );
    assert_eq!(code, 2, "{out}");
    assert!(out.starts_with(&format!("error: {broken}: ")), "{out}");
}

#[test]
fn a_diff_of_a_script_against_itself_is_empty() {
    let Some(pac) = brz() else { return };
    let pac = pac.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let list = format!("{AVOIDING_BGBL}{}\n", BGBL.join("\n"));
    let urls = write(dir.path(), "urls.txt", &list);
    let (code, out) = run(&with_pinning(&["diff", pac, pac, "--urls", &urls]), None);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out,
        format!("{urls}: 8 URLs: 8 same, 0 changed, 0 with errors (old 0, new 0)\n")
    );
}

#[test]
fn a_diff_against_a_copy_with_one_changed_branch_lists_exactly_the_urls_of_that_branch() {
    let Some(pac) = brz() else { return };
    let text = std::fs::read_to_string(&pac).unwrap();
    // the first `return "DIRECT";` is the .bgbl.at / .cna.at / .schulen-online.at branch
    let changed = text.replacen(
        "return \"DIRECT\";",
        "return \"PROXY edge.corp.example:3128\";",
        1,
    );
    assert_ne!(changed, text);
    let dir = tempfile::tempdir().unwrap();
    let new = write(dir.path(), "new.pac", &changed);
    // the branch's URLs interleaved with the others
    let mut list = String::new();
    for (i, line) in AVOIDING_BGBL.lines().enumerate() {
        list.push_str(line);
        list.push('\n');
        if let Some(url) = BGBL.get(i / 2) {
            if i % 2 == 1 {
                list.push_str(url);
                list.push('\n');
            }
        }
    }
    let urls = write(dir.path(), "urls.txt", &list);
    let (code, out) = run(
        &with_pinning(&["diff", pac.to_str().unwrap(), &new, "--urls", &urls]),
        None,
    );
    assert_eq!(code, 1, "{out}");
    let expected: Vec<String> = BGBL
        .iter()
        .map(|u| format!("{u}: DIRECT -> PROXY edge.corp.example:3128"))
        .chain([format!(
            "{urls}: 8 URLs: 5 same, 3 changed, 0 with errors (old 0, new 0)"
        )])
        .collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), expected, "{list}");

    let (code, json) = run(
        &with_pinning(&[
            "diff",
            pac.to_str().unwrap(),
            &new,
            "--urls",
            &urls,
            "--json",
        ]),
        None,
    );
    assert_eq!(code, 1, "{json}");
    let lines: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4, "{json}");
    assert_eq!(lines[0]["url"], BGBL[0]);
    assert_eq!(lines[0]["old"]["result"], "DIRECT");
    assert_eq!(
        lines[0]["new"]["proxies"],
        serde_json::json!(["PROXY edge.corp.example:3128"])
    );
    assert_eq!(lines[3]["summary"]["changed"], 3);
    assert_eq!(lines[3]["summary"]["same"], 5);
}

#[test]
fn coverage_of_a_url_list_that_avoids_one_branch_names_that_branchs_line() {
    let Some(pac) = brz() else { return };
    let text = std::fs::read_to_string(&pac).unwrap();
    let pac = pac.to_str().unwrap();
    let (code, out) = run(
        &with_pinning(&["eval", "--pac", pac, "--urls", "-", "--coverage"]),
        Some(AVOIDING_BGBL),
    );
    assert_eq!(code, 0, "{out}");
    let (if_line, if_column) = place(&text, "if (dnsDomainIs(host,\".bgbl.at\")");
    let (line, column) = place(&text, "return \"DIRECT\";");
    assert!(
        out.contains(&format!(
            "\n{pac}:{line}:{column}: return never reached | return \"DIRECT\";\n"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "\n{pac}:{if_line}:{if_column}: if true never, false 4 |"
        )),
        "{out}"
    );
    // the other DIRECT (an internal address) was reached, once
    let first = text.find("return \"DIRECT\";").unwrap();
    let second = first + 1 + text[first + 1..].find("return \"DIRECT\";").unwrap();
    let (line2, column2) = position(&text, second);
    assert!(
        out.contains(&format!(
            "\n{pac}:{line2}:{column2}: return reached 1 | return \"DIRECT\";\n"
        )),
        "{out}"
    );
    // the URL list reaches the branch: it is no longer named as never reached
    let all = format!("{AVOIDING_BGBL}{}\n", BGBL[0]);
    let (_, out) = run(
        &with_pinning(&["eval", "--pac", pac, "--urls", "-", "--coverage"]),
        Some(&all),
    );
    assert!(
        out.contains(&format!("\n{pac}:{line}:{column}: return reached 1 |")),
        "{out}"
    );
}

#[test]
fn test_and_diff_report_coverage_too() {
    let Some(pac) = brz() else { return };
    let pac = pac.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cases = write(dir.path(), "cases.txt", "http://www.bgbl.at/ DIRECT\n");
    let (code, out) = run(
        &with_pinning(&["test", &cases, "--pac", pac, "--coverage"]),
        None,
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!(
            "\ncoverage of {pac} over 1 answers: 1 of 46 returns reached"
        )),
        "{out}"
    );
    let urls = write(dir.path(), "urls.txt", AVOIDING_BGBL);
    let (code, out) = run(
        &with_pinning(&["diff", pac, pac, "--urls", &urls, "--coverage", "--json"]),
        None,
    );
    assert_eq!(code, 0, "{out}");
    let reports: Vec<serde_json::Value> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("coverage").is_some())
        .collect();
    assert_eq!(reports.len(), 2, "old and new: {out}");
    assert_eq!(reports[0]["coverage"]["answers"], 5, "{out}");
    assert!(reports[0]["coverage"]["probes"].as_array().unwrap().len() > 40);
}
