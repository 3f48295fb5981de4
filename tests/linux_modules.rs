//! Linux system modules over SSH on the lab: systemd_service/service (against a fake
//! `systemctl`, since no systemd runs in lab hosts), get_url (from an HTTP server the test runs
//! on the lab bridge), unarchive, and reboot (with a fake `shutdown` and a watcher that
//! "reboots" the host from outside). Each test brings up its own lab.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Lab, Session, Work, root};

fn install(lab: &Lab, host: &str, fixture: &str, name: &str) {
    let dst = lab.host_dir(host, "usr-local-bin").join(name);
    std::fs::copy(root().join("tests/fixtures").join(fixture), &dst).unwrap();
}

// ---------------------------------------------------------------- systemd_service / service

const UNIT: &str = "[Unit]\nDescription=Demo app\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n";

fn systemd_lab() -> Session {
    let s = Session::lab(1);
    let lab = s.the_lab();
    install(lab, "lab1", "fake-systemctl", "systemctl");
    lab.exec(
        "lab1",
        &format!(
            "mkdir -p /etc/systemd/system && printf '{}' > /etc/systemd/system/demo.service && mkdir -p /run/systemd/system && printf '[Unit]\\nDescription=Web\\n[Service]\\nExecStart=/bin/true\\n[Install]\\nWantedBy=multi-user.target\\n' > /run/systemd/system/web.service",
            UNIT.replace('\n', "\\n")
        ),
    );
    assert_eq!(
        lab.exec("lab1", "command -v systemctl"),
        "/usr/local/bin/systemctl\n"
    );
    s
}

fn fake_log(lab: &Lab) -> String {
    lab.exec("lab1", "cat /run/fake-systemd/log 2>/dev/null")
}

#[test]
fn systemd_service_starts_enables_and_is_idempotent() {
    let s = systemd_lab();
    let lab = s.the_lab();
    let pb = s.write(
        "pb.yml",
        r#"
- hosts: lab1
  gather_facts: false
  tasks:
    - systemd_service: {name: demo, state: started, enabled: true, daemon_reload: true}
      register: r
    - copy: {dest: "@OUT@/r.json", content: "{{ r | to_json }}"}
      delegate_to: localhost
    - ansible.builtin.service: {name: web.service, state: stopped, enabled: false}
    - systemd: {name: web, masked: true}
"#,
    );
    let first = s.run_file(&pb, &[]);
    first.ok();
    assert_eq!(first.recap("lab1").changed, 3, "{}", first.all());
    assert_eq!(
        fake_log(lab),
        "daemon-reload\nenable demo.service\nstart demo.service\nmask web.service\n"
    );
    let r: serde_json::Value = serde_json::from_str(&s.out("r.json")).unwrap();
    assert_eq!(r["name"], "demo");
    assert_eq!(r["state"], "started");
    assert_eq!(r["enabled"], true);
    assert_eq!(r["changed"], true);
    // `status` is the state read before acting, as in Ansible.
    assert_eq!(r["status"]["ActiveState"], "inactive");
    assert_eq!(r["status"]["LoadState"], "loaded");
    assert_eq!(r["status"]["Description"], "Demo app");
    assert_eq!(
        lab.exec(
            "lab1",
            "systemctl is-active demo; systemctl is-enabled demo; systemctl is-enabled web"
        ),
        "active\nenabled\nmasked\n"
    );

    let second = s.run_file(&pb, &[]);
    second.ok();
    // Only the controller-side copy of the (now different) registered result changes.
    assert_eq!(second.recap("lab1").changed, 1, "{}", second.all());
    assert!(
        !second.stdout.contains("changed: [lab1]\n"),
        "{}",
        second.all()
    );
    // daemon_reload runs every time (not counted as a change, like Ansible); nothing else.
    assert_eq!(
        fake_log(lab),
        "daemon-reload\nenable demo.service\nstart demo.service\nmask web.service\ndaemon-reload\n"
    );
    let r: serde_json::Value = serde_json::from_str(&s.out("r.json")).unwrap();
    assert_eq!(r["status"]["ActiveState"], "active");
    assert_eq!(r["status"]["UnitFileState"], "enabled");
}

#[test]
fn systemd_restart_check_mode_and_errors() {
    let s = systemd_lab();
    let lab = s.the_lab();
    let pb = s.write(
        "pb.yml",
        r#"
- hosts: lab1
  gather_facts: false
  tasks:
    - systemd_service: {name: demo, state: restarted, enabled: true}
"#,
    );
    // Check mode: reported as changed, nothing done.
    let check = s.run_file(&pb, &["--check"]);
    check.ok();
    assert_eq!(check.recap("lab1").changed, 1, "{}", check.all());
    assert_eq!(fake_log(lab), "");
    assert_eq!(lab.exec("lab1", "systemctl is-active demo"), "inactive\n");
    // restarted: a stopped unit is started, a running one restarted — changed every time.
    s.run_file(&pb, &[]).ok();
    let again = s.run_file(&pb, &[]);
    again.ok();
    assert_eq!(again.recap("lab1").changed, 1);
    assert_eq!(
        fake_log(lab),
        "enable demo.service\nstart demo.service\nrestart demo.service\n"
    );

    let bad = s.write(
        "bad.yml",
        r#"
- hosts: lab1
  gather_facts: false
  tasks:
    - systemd_service: {name: nosuch, state: started}
"#,
    );
    let out = s.run_file(&bad, &[]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stdout
            .contains("Could not find the requested service nosuch: host"),
        "{}",
        out.all()
    );
    // A masked unit cannot start: systemctl's own message comes through.
    lab.exec("lab1", "systemctl mask web");
    let masked = s.write(
        "masked.yml",
        r#"- hosts: lab1
  gather_facts: false
  tasks:
    - service: {name: web, state: started}
"#,
    );
    let out = s.run_file(&masked, &[]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stdout.contains(
            "Unable to start service web: Failed to start web.service: Unit web.service is masked."
        ),
        "{}",
        out.all()
    );
}

// ---------------------------------------------------------------- HTTP server for get_url

/// A tiny HTTP/1.0 file server bound to the lab bridge address only. `/private/*` needs basic
/// auth `bob:s3cr3t-pw`. Counts GET requests per path.
struct Http {
    addr: String,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    stop: Arc<AtomicBool>,
    auth_seen: Arc<AtomicUsize>,
}

impl Http {
    fn start(lab: &Lab, files: HashMap<String, Vec<u8>>) -> Http {
        let env = std::fs::read_to_string(lab.state.path().join("lab.env")).unwrap();
        let net = env
            .lines()
            .find_map(|l| l.strip_prefix("LAB_NET="))
            .unwrap()
            .trim()
            .to_string();
        let listener = TcpListener::bind(format!("{net}.1:0")).unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let auth_seen = Arc::new(AtomicUsize::new(0));
        let (h, s, a) = (hits.clone(), stop.clone(), auth_seen.clone());
        let files = Arc::new(files);
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((mut sock, _)) => {
                        let _ = sock.set_nonblocking(false);
                        let _ = sock.set_read_timeout(Some(Duration::from_secs(5)));
                        let mut reader = BufReader::new(sock.try_clone().unwrap());
                        let mut first = String::new();
                        let _ = reader.read_line(&mut first);
                        let mut auth = false;
                        loop {
                            let mut line = String::new();
                            if reader.read_line(&mut line).unwrap_or(0) == 0
                                || line.trim().is_empty()
                            {
                                break;
                            }
                            // base64("bob:s3cr3t-pw")
                            if line.to_ascii_lowercase().starts_with("authorization:")
                                && line.trim_end().ends_with(" Basic Ym9iOnMzY3IzdC1wdw==")
                            {
                                auth = true;
                                a.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        let path = first.split_whitespace().nth(1).unwrap_or("/").to_string();
                        *h.lock().unwrap().entry(path.clone()).or_insert(0) += 1;
                        let resp: Vec<u8> = if path.starts_with("/private/") && !auth {
                            b"HTTP/1.0 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"x\"\r\nContent-Length: 0\r\n\r\n".to_vec()
                        } else {
                            match files.get(path.trim_start_matches("/private")) {
                                Some(body) => {
                                    let mut r = format!(
                                        "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n",
                                        body.len()
                                    )
                                    .into_bytes();
                                    r.extend_from_slice(body);
                                    r
                                }
                                None => {
                                    b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec()
                                }
                            }
                        };
                        let _ = sock.write_all(&resp);
                        let _ = reader.read(&mut [0u8; 0]);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Http {
            addr,
            hits,
            stop,
            auth_seen,
        }
    }
    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

impl Drop for Http {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

#[test]
fn get_url_downloads_on_the_target_verifies_and_is_idempotent() {
    let s = Session::lab(1);
    let lab = s.the_lab();
    let body: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    let sum = sha256_hex(&body);
    let mut files = HashMap::new();
    files.insert("/app.bin".to_string(), body.clone());
    files.insert("/other.bin".to_string(), b"other\n".to_vec());
    files.insert(
        "/SHA256SUMS".to_string(),
        format!("{}  other.bin\n{sum}  app.bin\n", sha256_hex(b"other\n")).into_bytes(),
    );
    let http = Http::start(lab, files);
    let a = &http.addr;
    let pb = s.write(
        "pb.yml",
        &format!(
            r#"
- hosts: lab1
  gather_facts: false
  tasks:
    - file: {{path: /opt/dl, state: directory}}
    - get_url: {{url: "http://{a}/app.bin", dest: /opt/dl/app.bin, checksum: "sha256:{sum}", mode: "0640"}}
      register: g
    - get_url: {{url: "http://{a}/other.bin", dest: /opt/dl/, checksum: "sha256:http://{a}/SHA256SUMS"}}
    - get_url: {{url: "http://{a}/private/other.bin", dest: /opt/dl/secret.bin, url_username: bob, url_password: s3cr3t-pw}}
    - get_url: {{url: "http://{a}/other.bin", dest: /opt/dl/plain.bin}}
    - copy: {{dest: "@OUT@/g.json", content: "{{{{ g | to_json }}}}"}}
      delegate_to: localhost
"#
        ),
    );
    std::fs::create_dir(lab.host_dir("lab1", "opt").join("dl")).unwrap();
    // Check mode first: nothing is downloaded or written.
    let check = s.run_file(&pb, &["--check"]);
    check.ok();
    assert_eq!(http.hits("/app.bin"), 0);
    assert_eq!(
        lab.exec("lab1", "ls -A /opt/dl 2>&1 | wc -l"),
        "0\n",
        "{}",
        check.all()
    );

    let first = s.run_file(&pb, &["-vvv"]);
    first.ok();
    assert_eq!(first.recap("lab1").changed, 5, "{}", first.all());
    assert_eq!(
        lab.exec("lab1", "sha256sum < /opt/dl/app.bin | cut -d' ' -f1"),
        format!("{sum}\n")
    );
    assert_eq!(lab.exec("lab1", "stat -c %a /opt/dl/app.bin"), "640\n");
    assert_eq!(
        lab.exec(
            "lab1",
            "cat /opt/dl/other.bin /opt/dl/secret.bin /opt/dl/plain.bin"
        ),
        "other\nother\nother\n"
    );
    assert!(http.auth_seen.load(Ordering::SeqCst) >= 1);
    // The password never shows, even at -vvv.
    assert!(!first.all().contains("s3cr3t-pw"), "{}", first.all());
    // No temporary files left beside the downloads.
    assert_eq!(
        lab.exec("lab1", "ls -A /opt/dl"),
        "app.bin\nother.bin\nplain.bin\nsecret.bin\n"
    );
    let g: serde_json::Value = serde_json::from_str(&s.out("g.json")).unwrap();
    assert_eq!(g["dest"], "/opt/dl/app.bin");
    assert_eq!(g["status_code"], 200);
    assert_eq!(g["size"], 50_000);
    assert_eq!(g["mode"], "0640");
    use sha1::Digest;
    assert_eq!(g["checksum_src"], hex::encode(sha1::Sha1::digest(&body)));

    // Second run: the checksum matches, so app.bin is not downloaded again; the files without
    // a checksum are left alone (force: false); the directory dest is compared by content.
    let hits_before = http.hits("/app.bin");
    let second = s.run_file(&pb, &[]);
    second.ok();
    assert_eq!(
        second.recap("lab1").changed,
        1,
        "only the copy of the result: {}",
        second.all()
    );
    assert_eq!(http.hits("/app.bin"), hits_before);
    // curl sends the credentials with the first request; the second run asks nothing.
    assert_eq!(http.hits("/private/other.bin"), 1);
}

#[test]
fn get_url_failures_leave_no_file() {
    let s = Session::lab(1);
    let lab = s.the_lab();
    let mut files = HashMap::new();
    files.insert("/app.bin".to_string(), b"payload".to_vec());
    files.insert("/SUMS".to_string(), b"abcd  unrelated.bin\n".to_vec());
    let http = Http::start(lab, files);
    let a = &http.addr;
    let case = |name: &str, task: String, want: &str| {
        let pb = s.write(
            &format!("{name}.yml"),
            &format!(
                r#"- hosts: lab1
  gather_facts: false
  tasks:
    - file: {{path: /opt/dl, state: directory}}
    - {task}
"#
            ),
        );
        let out = s.run_file(&pb, &[]);
        assert_eq!(out.code, 2, "{name}: {}", out.all());
        assert!(
            out.stdout.contains(want),
            "{name}: want {want:?}\n{}",
            out.all()
        );
        assert_eq!(lab.exec("lab1", "ls -A /opt/dl"), "", "{name}: files left");
    };
    case(
        "mismatch",
        format!(
            "get_url: {{url: \"http://{a}/app.bin\", dest: /opt/dl/app.bin, checksum: \"sha256:{}\"}}",
            "0".repeat(64)
        ),
        &format!(
            "did not match {}; it was {}",
            "0".repeat(64),
            sha256_hex(b"payload")
        ),
    );
    case(
        "notfound",
        format!("get_url: {{url: \"http://{a}/missing\", dest: /opt/dl/x}}"),
        "Request failed",
    );
    case(
        "nosum",
        format!(
            "get_url: {{url: \"http://{a}/app.bin\", dest: /opt/dl/x, checksum: \"sha256:http://{a}/SUMS\"}}"
        ),
        "Unable to find a checksum for file 'app.bin'",
    );
    case(
        "badformat",
        format!(
            "get_url: {{url: \"http://{a}/app.bin\", dest: /opt/dl/x, checksum: \"sha256:zz\"}}"
        ),
        "The checksum format is invalid",
    );
    case(
        "nodir",
        format!("get_url: {{url: \"http://{a}/app.bin\", dest: /opt/nodir/x}}"),
        "Destination /opt/nodir does not exist",
    );
}

// ---------------------------------------------------------------- unarchive

fn make_archives(w: &Work) {
    let src = w.path().join("tree");
    std::fs::create_dir_all(src.join("app/sub")).unwrap();
    std::fs::write(src.join("app/a.txt"), "alpha\n").unwrap();
    std::fs::write(src.join("app/sub/b b.txt"), "x".repeat(3000)).unwrap();
    std::os::unix::fs::symlink("a.txt", src.join("app/link")).unwrap();
    std::fs::create_dir_all(w.path().join("files")).unwrap();
    for (name, flags) in [
        ("app.tar.gz", "czf"),
        ("app.tar.xz", "cJf"),
        ("app.tar", "cf"),
    ] {
        let st = std::process::Command::new("tar")
            .arg(flags)
            .arg(w.path().join("files").join(name))
            .arg("-C")
            .arg(&src)
            .arg("app")
            .status()
            .unwrap();
        assert!(st.success());
    }
    let st = std::process::Command::new("zip")
        .args([
            "-qry",
            w.path().join("files/app.zip").to_str().unwrap(),
            "app",
        ])
        .current_dir(&src)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::write(w.path().join("files/bad.tgz"), "this is not an archive\n").unwrap();
}

#[test]
fn unarchive_extracts_each_format_once() {
    let s = Session::lab(1);
    let lab = s.the_lab();
    let w = &s.work;
    make_archives(w);
    let pb = s.write(
        "pb.yml",
        r#"
- hosts: lab1
  gather_facts: false
  tasks:
    - file: {path: "/opt/{{ item }}", state: directory}
      loop: [tgz, txz, tar, zip, strip, remote]
    - unarchive: {src: app.tar.gz, dest: /opt/tgz, list_files: true}
      register: u
    - unarchive: {src: app.tar.xz, dest: /opt/txz, mode: "0600"}
    - unarchive: {src: app.tar, dest: /opt/tar}
    - unarchive: {src: app.zip, dest: /opt/zip}
    - unarchive: {src: app.tar.gz, dest: /opt/strip, extra_opts: [--strip-components=1]}
    - unarchive: {src: /opt/dl.tgz, dest: /opt/remote, remote_src: true, creates: /opt/remote/app/a.txt}
    - copy: {dest: "@OUT@/u.json", content: "{{ u | to_json }}"}
      delegate_to: localhost
"#,
    );
    // The directories and an archive already on the host (its /opt, seen from the controller).
    let opt = lab.host_dir("lab1", "opt");
    for d in ["tgz", "txz", "tar", "zip", "strip", "remote"] {
        std::fs::create_dir(opt.join(d)).unwrap();
    }
    std::fs::copy(w.path().join("files/app.tar.gz"), opt.join("dl.tgz")).unwrap();
    let check = s.run_file(&pb, &["--check"]);
    check.ok();
    assert_eq!(check.recap("lab1").changed, 7, "{}", check.all());
    assert_eq!(
        lab.exec("lab1", "find /opt -mindepth 2"),
        "",
        "check mode extracted nothing: {}",
        check.all()
    );

    let first = s.run_file(&pb, &[]);
    first.ok();
    assert_eq!(first.recap("lab1").changed, 7, "{}", first.all());
    for d in ["tgz", "txz", "tar", "zip", "remote"] {
        assert_eq!(
            lab.exec(
                "lab1",
                &format!("cd /opt/{d}/app && cat a.txt && wc -c < 'sub/b b.txt' && readlink link")
            ),
            "alpha\n3000\na.txt\n",
            "{d}"
        );
    }
    assert_eq!(lab.exec("lab1", "cat /opt/strip/a.txt"), "alpha\n");
    assert_eq!(lab.exec("lab1", "stat -c %a /opt/txz/app/a.txt"), "600\n");
    // No uploaded archive is left in the target's /tmp.
    assert_eq!(lab.exec("lab1", "ls -A /tmp | grep -c mixop"), "0\n");
    let u: serde_json::Value = serde_json::from_str(&s.out("u.json")).unwrap();
    assert_eq!(u["handler"], "TgzArchive");
    let mut files: Vec<String> = u["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "app/",
            "app/a.txt",
            "app/link",
            "app/sub/",
            "app/sub/b b.txt"
        ]
    );

    let second = s.run_file(&pb, &[]);
    second.ok();
    assert_eq!(
        second.recap("lab1").changed,
        1,
        "only the copy of the result: {}",
        second.all()
    );

    // A file that changed size is noticed and restored.
    lab.exec("lab1", "echo changed > /opt/zip/app/a.txt");
    let third = s.run_file(&pb, &[]);
    assert_eq!(third.recap("lab1").changed, 1, "{}", third.all());
    assert_eq!(lab.exec("lab1", "cat /opt/zip/app/a.txt"), "alpha\n");
}

#[test]
fn unarchive_errors_are_clear() {
    let s = Session::lab(1);
    let lab = s.the_lab();
    let w = &s.work;
    make_archives(w);
    let case = |name: &str, task: &str, want: &str| {
        let pb = s.write(
            &format!("{name}.yml"),
            &format!(
                r#"- hosts: lab1
  gather_facts: false
  tasks:
    - file: {{path: /opt/d, state: directory}}
    - {task}
"#
            ),
        );
        let out = s.run_file(&pb, &[]);
        assert_eq!(out.code, 2, "{name}: {}", out.all());
        assert!(
            out.stdout.contains(want),
            "{name}: want {want:?}\n{}",
            out.all()
        );
    };
    case(
        "bad",
        "unarchive: {src: bad.tgz, dest: /opt/d}",
        "cannot read bad.tgz as a tar archive",
    );
    case(
        "nodest",
        "unarchive: {src: app.tar, dest: /opt/none}",
        "Destination '/opt/none' is not a directory",
    );
    case(
        "nosrc",
        "unarchive: {src: /opt/no.tgz, dest: /opt/d, remote_src: true}",
        "Source '/opt/no.tgz' does not exist",
    );
    case(
        "nolocal",
        "unarchive: {src: nothere.tgz, dest: /opt/d}",
        "could not find `nothere.tgz`",
    );
    assert_eq!(
        lab.exec("lab1", "ls -A /opt/d; ls -A /tmp | grep -c mixop"),
        "0\n"
    );
}

// ---------------------------------------------------------------- reboot

/// Performs a fake reboot of `host` whenever its fake `shutdown` asks: sessions killed, sshd
/// down for `down`, a new boot id, sshd up, and the system "ready" `ready_after` later.
fn reboot_watcher(lab: &Lab, host: &str, down: Duration, ready_after: Duration) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let run_dir = lab.host_dir(host, "run");
    let state = lab.state.path().to_path_buf();
    let host = host.to_string();
    std::fs::write(run_dir.join("ready"), "").unwrap();
    std::thread::spawn(move || {
        let ctl = |args: &[&str]| {
            let st = std::process::Command::new("bash")
                .arg(root().join("tests/lab/ctl.sh"))
                .arg("--state")
                .arg(&state)
                .args(args)
                .status()
                .unwrap();
            assert!(st.success(), "ctl.sh {args:?}");
        };
        while !s.load(Ordering::SeqCst) {
            if std::fs::remove_file(run_dir.join("fake-reboot-request")).is_ok() {
                let _ = std::fs::remove_file(run_dir.join("ready"));
                ctl(&["stop", &host, "--kill-sessions"]);
                std::fs::write(
                    run_dir.join("mixop-boot-id"),
                    format!("{:?}\n", Instant::now()),
                )
                .unwrap();
                std::thread::sleep(down);
                ctl(&["start", &host]);
                std::thread::sleep(ready_after);
                std::fs::write(run_dir.join("ready"), "").unwrap();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    stop
}

const BOOT_ID: &str = "cat /run/mixop-boot-id 2>/dev/null || cat /proc/sys/kernel/random/boot_id";

#[test]
fn reboot_waits_for_a_new_boot_and_a_ready_system() {
    let s = Session::lab(2);
    let lab = s.the_lab();
    install(lab, "lab1", "fake-shutdown", "shutdown");
    install(lab, "lab2", "fake-shutdown", "shutdown");
    // lab1 is down for 3 s and not ready until 2 s after sshd is back; lab2 "reboots" faster
    // than the first poll.
    let s1 = reboot_watcher(lab, "lab1", Duration::from_secs(3), Duration::from_secs(2));
    let s2 = reboot_watcher(lab, "lab2", Duration::ZERO, Duration::ZERO);
    let pb = s.write(
        "pb.yml",
        &format!(
            r#"
- hosts: lab
  gather_facts: false
  tasks:
    - reboot: {{boot_time_command: "{BOOT_ID}", test_command: "test -e /run/ready", reboot_timeout: 60, connect_timeout: 5, msg: "kernel update"}}
      register: rb
    - command: cat /run/mixop-boot-id
      register: id
    - copy: {{dest: "@OUT@/{{{{ inventory_hostname }}}}.json", content: "{{{{ rb | to_json }}}}"}}
      delegate_to: localhost
"#
        ),
    );
    let t0 = Instant::now();
    let out = s.run_file(&pb, &[]);
    let took = t0.elapsed();
    s1.store(true, Ordering::SeqCst);
    s2.store(true, Ordering::SeqCst);
    out.ok();
    for h in ["lab1", "lab2"] {
        assert_eq!(out.recap(h).changed, 3, "{}", out.all());
        let rb: serde_json::Value = serde_json::from_str(&s.out(&format!("{h}.json"))).unwrap();
        assert_eq!(rb["rebooted"], true);
        assert!(rb["elapsed"].as_u64().is_some());
        assert_eq!(
            lab.exec(h, "cat /run/fake-shutdown.log"),
            "-r 0 kernel update\n"
        );
    }
    let rb1: serde_json::Value = serde_json::from_str(&s.out("lab1.json")).unwrap();
    assert!(rb1["elapsed"].as_u64().unwrap() >= 5, "{rb1}");
    assert!(took < Duration::from_secs(40), "{took:?}");
}

#[test]
fn reboot_times_out_when_the_boot_id_never_changes() {
    let s = Session::lab(1);
    let lab = s.the_lab();
    // shutdown "succeeds" but nothing reboots the host.
    install(lab, "lab1", "fake-shutdown", "shutdown");
    let pb = s.write(
        "pb.yml",
        &format!(
            r#"- hosts: lab1
  gather_facts: false
  tasks:
    - reboot: {{boot_time_command: "{BOOT_ID}", reboot_timeout: 3}}
"#
        ),
    );
    let t0 = Instant::now();
    let out = s.run_file(&pb, &[]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(
        out.stdout
            .contains("Timed out waiting for the host to reboot (timeout=3): boot id unchanged"),
        "{}",
        out.all()
    );
    assert!(t0.elapsed() < Duration::from_secs(20));
    // Check mode reboots nothing.
    let check = s.run_file(&pb, &["--check"]);
    check.ok();
    assert_eq!(lab.exec("lab1", "wc -l < /run/fake-shutdown.log"), "1\n");
}

/// A PATH for the task that has every tool of /usr/bin and /bin except `hide` (symlinks in the
/// host's private /opt), so the wget fallback and the "no downloader" error can be exercised.
fn path_without(lab: &Lab, name: &str, hide: &[&str]) -> String {
    let dir = lab.host_dir("lab1", "opt").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for src in ["/usr/bin", "/usr/sbin", "/bin", "/sbin"] {
        let Ok(rd) = std::fs::read_dir(src) else {
            continue;
        };
        for e in rd.flatten() {
            let n = e.file_name();
            if hide.iter().any(|h| n == *h) || dir.join(&n).exists() {
                continue;
            }
            let _ = std::os::unix::fs::symlink(e.path(), dir.join(&n));
        }
    }
    format!("/opt/{name}")
}

#[test]
fn get_url_falls_back_to_wget_and_says_when_there_is_no_downloader() {
    let s = Session::lab(1);
    let lab = s.the_lab();
    let mut files = HashMap::new();
    files.insert("/app.bin".to_string(), b"payload via wget\n".to_vec());
    let http = Http::start(lab, files);
    let wget_only = path_without(lab, "nocurl", &["curl"]);
    let neither = path_without(lab, "nodl", &["curl", "wget"]);
    std::fs::create_dir(lab.host_dir("lab1", "opt").join("dl")).unwrap();
    let a = &http.addr;
    let pb = s.write(
        "pb.yml",
        &format!(
            r#"
- hosts: lab1
  gather_facts: false
  tasks:
    - get_url: {{url: "http://{a}/private/app.bin", dest: /opt/dl/app.bin, url_username: bob, url_password: s3cr3t-pw, checksum: "sha256:{sum}"}}
      environment: {{PATH: "{wget_only}"}}
      register: g
    - copy: {{dest: "@OUT@/g.json", content: "{{{{ g | to_json }}}}"}}
      delegate_to: localhost
    - get_url: {{url: "http://{a}/app.bin", dest: /opt/dl/other.bin}}
      environment: {{PATH: "{neither}"}}
"#,
            sum = sha256_hex(b"payload via wget\n")
        ),
    );
    let out = s.run_file(&pb, &[]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert_eq!(
        lab.exec("lab1", "cat /opt/dl/app.bin"),
        "payload via wget\n"
    );
    let g: serde_json::Value = serde_json::from_str(&s.out("g.json")).unwrap();
    assert_eq!(g["status_code"], 200, "{g}");
    assert!(http.auth_seen.load(Ordering::SeqCst) >= 1);
    assert!(
        out.stdout
            .contains("needs curl or wget there; neither was found in PATH"),
        "{}",
        out.all()
    );
    assert!(!out.all().contains("s3cr3t-pw"));
    assert_eq!(lab.exec("lab1", "ls -A /opt/dl"), "app.bin\n");
}
