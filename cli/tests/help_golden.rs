//! `--help` output compared with checked-in files. Regenerate with
//! `UPDATE_GOLDEN=1 cargo test -p cli --test help_golden` and review the diff like code.

mod common;

use std::path::Path;

fn check(name: &str, args: &[&str]) {
    let run = common::sourcectl(args).ok();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &run.stdout).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (regenerate with UPDATE_GOLDEN=1)", path.display()));
    assert_eq!(
        run.stdout, expected,
        "{name} changed (regenerate with UPDATE_GOLDEN=1 and review)"
    );
}

#[test]
fn help_texts_match_the_golden_files() {
    check("sourcectl.txt", &["--help"]);
    check("push-artifact.txt", &["push", "artifact", "--help"]);
    check("pull-artifact.txt", &["pull", "artifact", "--help"]);
    check("tag-artifact.txt", &["tag", "artifact", "--help"]);
    check("list-artifacts.txt", &["list", "artifacts", "--help"]);
    check("diff-artifact.txt", &["diff", "artifact", "--help"]);
    check("build-artifact.txt", &["build", "artifact", "--help"]);
}
