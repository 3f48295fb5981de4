//! No half-done files: mixop SIGKILLed in the middle of a 200 MB `copy` leaves the destination
//! holding the old file or the whole new one, never a truncated one — on a local host, an SSH
//! host with SFTP and one without (the `cat` fallback). A leftover temporary file, named as such
//! beside the destination, is acceptable (the transfer it belonged to never finished); the test
//! names what it finds. Needs root (the lab).

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Lab, Work, wait_until};

const SIZE: usize = 200 * 1024 * 1024;
const OLD: &str = "old\n";

fn md5(path: &Path) -> String {
    let out = std::process::Command::new("md5sum")
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Starts the copy, waits until a temporary file beside the destination has grown past 1 MiB
/// (`in_progress`), then SIGKILLs mixop.
fn kill_mid_copy(
    w: &Work,
    host: &str,
    dest_dir: &str,
    in_progress: impl Fn() -> Result<(), String>,
) {
    let pb = w.write(
        &format!("{host}.yml"),
        &format!(
            "- hosts: {host}\n  gather_facts: false\n  tasks:\n    - copy: {{src: big.bin, dest: {dest_dir}/dest.bin}}\n"
        ),
    );
    let bg = w.spawn_mixop(&["run", pb.to_str().unwrap(), "-i", "inventory.yml"]);
    wait_until(Duration::from_secs(120), "a copy in progress", &in_progress);
    // Drop kills with SIGKILL: nothing of mixop runs after this.
    drop(bg);
}

/// The destination is the old file or the whole new one.
fn assert_old_or_whole(host: &str, content_md5: &str, size: usize, new_md5: &str) {
    let old_md5 = {
        let t = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(t.path(), OLD).unwrap();
        md5(t.path())
    };
    assert!(
        content_md5 == old_md5 || (size == SIZE && content_md5 == new_md5),
        "{host}: a half-done destination: {size} bytes"
    );
}

#[test]
fn sigkill_mid_copy_leaves_the_old_file_or_the_whole_new_one() {
    let lab = Lab::up(2, &["--no-sftp", "lab2"]);
    let w = Work::new();
    let big = w.path().join("big.bin");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
        let mut block = vec![0u8; 1024 * 1024];
        for i in 0..SIZE / block.len() {
            block
                .iter_mut()
                .enumerate()
                .for_each(|(j, b)| *b = (i * 31 + j * 7) as u8);
            f.write_all(&block).unwrap();
        }
    }
    let new_md5 = md5(&big);
    let key = lab.key();
    let kh = lab.known_hosts();
    w.write(
        "inventory.yml",
        &format!(
            "all:\n  vars: {{ansible_user: root, ansible_ssh_private_key_file: {}, mixop_known_hosts_file: {}}}\n  hosts:\n    local1: {{ansible_connection: local}}\n    lab1: {{ansible_host: {}}}\n    lab2: {{ansible_host: {}}}\n",
            key.display(),
            kh.display(),
            lab.addr("lab1"),
            lab.addr("lab2"),
        ),
    );
    let mut leftovers = Vec::new();

    // Local.
    let dir = w.out().join("half");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("dest.bin"), OLD).unwrap();
    kill_mid_copy(&w, "local1", dir.to_str().unwrap(), || {
        let growing = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name() != "dest.bin")
            .any(|e| e.metadata().is_ok_and(|m| m.len() > 1 << 20));
        growing
            .then_some(())
            .ok_or_else(|| "no temporary file yet".into())
    });
    let dest = dir.join("dest.bin");
    let size = std::fs::metadata(&dest).unwrap().len() as usize;
    assert_old_or_whole("local1", &md5(&dest), size, &new_md5);
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        if e.file_name() != "dest.bin" {
            leftovers.push(format!("local1: {}", e.file_name().to_string_lossy()));
        }
    }

    // SSH, with SFTP (lab1) and without (lab2).
    for host in ["lab1", "lab2"] {
        lab.exec(
            host,
            &format!(
                "mkdir -p /opt/half && printf '{}' > /opt/half/dest.bin",
                OLD.escape_default()
            ),
        );
        kill_mid_copy(&w, host, "/opt/half", || {
            let found = lab.exec(host, "find /opt/half -name '*.tmp' -size +1M");
            (!found.trim().is_empty())
                .then_some(())
                .ok_or_else(|| "no temporary file yet".into())
        });
        // The remote side ends on its own once the connection is gone (the `cat` fallback
        // sees the end of its input): wait for that before judging.
        wait_until(Duration::from_secs(30), "the remote writer ends", || {
            let left = common::procs_with("/opt/half/.dest.bin.mixop-");
            left.is_empty()
                .then_some(())
                .ok_or_else(|| format!("{left:?}"))
        });
        let out = lab.exec(
            host,
            "wc -c < /opt/half/dest.bin; md5sum /opt/half/dest.bin; ls -A /opt/half",
        );
        let mut lines = out.lines();
        let size: usize = lines.next().unwrap_or("0").trim().parse().unwrap();
        let sum = lines
            .next()
            .unwrap_or("")
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_string();
        assert_old_or_whole(host, &sum, size, &new_md5);
        for name in lines.filter(|n| *n != "dest.bin") {
            assert!(
                name.ends_with(".tmp") && name.contains(".mixop-"),
                "{host}: {name}"
            );
            leftovers.push(format!("{host}: {name}"));
        }
    }
    // What is left behind, for the report (run with --nocapture to see it).
    eprintln!("leftover temporary files: {leftovers:?}");
}
