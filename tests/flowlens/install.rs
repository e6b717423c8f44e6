//! What a package installs beside the binary: shell completions (run in a real bash) and
//! manual pages.

use crate::support::*;

/// The words bash offers after `line` (the word being completed is the last one), with the
/// script `flowlens completions bash` prints loaded, called as bash calls it: with the
/// command, the current word and the one before.
fn bash_completes(script: &std::path::Path, line: &[&str]) -> Vec<String> {
    let words = line
        .iter()
        .map(|w| format!("'{w}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let program = format!(
        "source '{}'; COMP_WORDS=({words}); COMP_CWORD={}; COMP_LINE='{}'; \
         COMP_POINT=${{#COMP_LINE}}; _flowlens flowlens '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        script.display(),
        line.len() - 1,
        line.join(" "),
        line[line.len() - 1],
        line[line.len() - 2],
    );
    let out = std::process::Command::new("bash")
        .args(["--norc", "-c", &program])
        .output()
        .expect("bash runs");
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).lines().map(str::to_string).collect()
}

#[test]
fn bash_completes_commands_and_their_flags() {
    let dir = tempfile::tempdir().unwrap();
    let out = flowlens(&["completions", "bash"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let script = dir.path().join("flowlens.bash");
    std::fs::write(&script, &out.stdout).unwrap();

    assert_eq!(bash_completes(&script, &["flowlens", "de"]), ["detect"]);
    let flags = bash_completes(&script, &["flowlens", "detect", "--base"]);
    assert!(flags.contains(&"--baseline".to_string()), "{flags:?}");
    assert!(flags.contains(&"--baseline-days".to_string()), "{flags:?}");
    assert!(
        !bash_completes(&script, &["flowlens", "sql", "--"]).contains(&"--baseline".to_string()),
        "sql has no --baseline"
    );

    // The other shells' scripts name the commands too; an unknown shell is a usage error.
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let out = flowlens(&["completions", shell]);
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        assert!(stdout(&out).contains("baseline-days"), "{shell}");
    }
    let out = flowlens(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn manual_pages_cover_every_command() {
    let out = flowlens(&["man"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let page = stdout(&out);
    assert!(page.contains(".TH flowlens 1"), "{page}");
    assert!(page.contains("detect"), "{page}");

    let dir = tempfile::tempdir().unwrap();
    let pages = dir.path().join("man1");
    let out = flowlens(&["man", "--dir", pages.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    for command in [
        "sql", "query", "convert", "run", "baseline", "detect", "evaluate",
    ] {
        let page = std::fs::read_to_string(pages.join(format!("flowlens-{command}.1")))
            .unwrap_or_else(|e| panic!("flowlens-{command}.1: {e}"));
        assert!(
            page.contains(&format!(".TH flowlens-{command} 1")),
            "{page}"
        );
    }
    let detect = std::fs::read_to_string(pages.join("flowlens-detect.1")).unwrap();
    assert!(detect.contains("\\-\\-baseline\\-days"), "{detect}");
}
