//! Runs the Python-side suites under the same runner: the lab scripts, the WinRM peer checked
//! with pywinrm/pypsrp, and the Kubernetes API double checked with kubectl.

mod common;

fn pytest(file: &str) {
    let out = common::venv_python()
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", file])
        .current_dir(common::root())
        .output()
        .expect("run pytest");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "pytest {file} failed:\n{text}");
    assert!(
        text.contains(" passed"),
        "pytest {file} ran no test:\n{text}"
    );
}

#[test]
fn lab_scripts() {
    pytest("tests/python/test_lab.py");
}

#[test]
fn winrm_peer_with_reference_clients() {
    pytest("tests/python/test_winrm_peer.py");
}

#[test]
fn kube_double_with_kubectl() {
    pytest("tests/python/test_kube_double.py");
}

#[test]
fn simulated_windows_workers_join_the_api_double() {
    pytest("tests/python/test_winrm_sim_cluster.py");
}
