//! Every input the fuzzers (scripts/fuzz.sh) ever crashed or hung mixop with, kept in
//! fuzz/regressions/<target>/, replayed through the same entry points (mixop::fuzzing) on every
//! test run; plus the seed corpora, so a regression in what once passed shows up here too.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut n = 0;
    for dir in ["regressions", "corpus"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            if path.file_name().is_some_and(|f| f == ".gitkeep") {
                continue;
            }
            let data = std::fs::read(&path).unwrap();
            let t0 = std::time::Instant::now();
            run(&data);
            // libFuzzer's default is 1200 s; a kept slow input must stay fast.
            assert!(
                t0.elapsed().as_secs() < 5,
                "{} took {:?}",
                path.display(),
                t0.elapsed()
            );
            n += 1;
        }
    }
    assert!(n > 0, "no inputs kept for {target}");
}

#[test]
fn playbook() {
    replay("playbook", mixop::fuzzing::playbook);
}
#[test]
fn inventory() {
    replay("inventory", mixop::fuzzing::inventory);
}
#[test]
fn template() {
    replay("template", mixop::fuzzing::template);
}
#[test]
fn winrm_soap() {
    replay("winrm_soap", mixop::fuzzing::winrm_soap);
}
#[test]
fn winrm_frames() {
    replay("winrm_frames", mixop::fuzzing::winrm_frames);
}
#[test]
fn ntlm() {
    replay("ntlm", mixop::fuzzing::ntlm);
}
#[test]
fn known_hosts() {
    replay("known_hosts", mixop::fuzzing::known_hosts);
}
#[test]
fn module_frames() {
    replay("module_frames", mixop::fuzzing::module_frames);
}
