//! Generated documentation matches the code it is generated from.

mod common;

#[test]
fn windows_modules_reference_is_current() {
    let out = std::process::Command::new("python3")
        .arg(common::root().join("scripts/windows-modules-doc.py"))
        .arg("--check")
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
