//! `uri` and `git` on the lab: requests are made by the lab host (its curl) to an HTTP server
//! the test runs on the lab bridge, and compared with ansible-playbook's results on the same
//! host; git clones file:// repositories the test makes on the lab host.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Lab, Work, parse_recap};
use serde_json::Value;

// ---------------------------------------------------------------- HTTP server

/// A small HTTP server on the lab bridge. Records each request (method, path, headers, body).
/// Routes: `/json` (JSON with a cookie), `/echo` (says what it received), `/redir` (302 to
/// /json), `/file.txt`, `/private/*` (basic auth bob:s3cr3t-pw, else 401), anything else 404.
struct Http {
    addr: String,
    log: Arc<Mutex<Vec<Req>>>,
    stop: Arc<AtomicBool>,
}

#[derive(Clone, Debug)]
struct Req {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn respond(req: &Req) -> Vec<u8> {
    let auth_ok = req.header("authorization") == Some("Basic Ym9iOnMzY3IzdC1wdw==");
    let (status, ctype, extra, body): (&str, &str, String, String) =
        if req.path.starts_with("/private/") && !auth_ok {
            (
                "401 Unauthorized",
                "text/plain",
                "WWW-Authenticate: Basic realm=\"x\"\r\n".into(),
                "no".into(),
            )
        } else {
            match req.path.trim_start_matches("/private") {
                "/json" => (
                    "200 OK",
                    "application/json",
                    "Set-Cookie: sid=abc123; Path=/\r\nX-Thing: one\r\n".into(),
                    r#"{"a": 1, "list": [1, "two"]}"#.into(),
                ),
                "/echo" => (
                    "200 OK",
                    "text/plain; charset=utf-8",
                    String::new(),
                    format!(
                        "{} {} {}",
                        req.method,
                        req.header("content-type").unwrap_or("-"),
                        req.body
                    ),
                ),
                "/redir" => (
                    "302 Found",
                    "text/plain",
                    "Location: /json\r\n".into(),
                    String::new(),
                ),
                "/file.txt" => (
                    "200 OK",
                    "text/plain",
                    String::new(),
                    "file content\n".into(),
                ),
                _ => ("404 Not Found", "text/plain", String::new(), "nope".into()),
            }
        };
    format!(
        "HTTP/1.0 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{extra}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

impl Http {
    fn start(lab: &Lab) -> Http {
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
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let Ok((sock, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let _ = sock.set_nonblocking(false);
                let _ = sock.set_read_timeout(Some(Duration::from_secs(5)));
                let mut reader = BufReader::new(sock.try_clone().unwrap());
                let mut first = String::new();
                let _ = reader.read_line(&mut first);
                let mut headers = vec![];
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':') {
                        headers.push((k.trim().to_string(), v.trim().to_string()));
                    }
                }
                let mut words = first.split_whitespace();
                let mut req = Req {
                    method: words.next().unwrap_or("").to_string(),
                    path: words.next().unwrap_or("/").to_string(),
                    headers,
                    body: String::new(),
                };
                let len: usize = req
                    .header("content-length")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                let mut body = vec![0u8; len];
                let _ = reader.read_exact(&mut body);
                req.body = String::from_utf8_lossy(&body).into_owned();
                let mut sock = sock;
                let _ = sock.write_all(&respond(&req));
                l.lock().unwrap().push(req);
            }
        });
        Http { addr, log, stop }
    }
    fn requests(&self, path: &str) -> Vec<Req> {
        let log = self.log.lock().unwrap();
        log.iter().filter(|r| r.path == path).cloned().collect()
    }
}

impl Drop for Http {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

// ---------------------------------------------------------------- uri

fn uri_playbook(a: &str) -> String {
    format!(
        r#"
- hosts: lab1
  gather_facts: false
  tasks:
    - uri: {{url: "http://{a}/json"}}
      register: r1
    - uri:
        url: "http://{a}/echo"
        method: POST
        body_format: json
        body: {{name: "x y", n: [1, 2]}}
        return_content: true
      register: r2
    - uri: {{url: "http://{a}/echo", method: PUT, body_format: form-urlencoded, body: {{q: "a b&c", t: [x, y]}}, return_content: true, status_code: [200, 201]}}
      register: r3
    - uri: {{url: "http://{a}/redir", return_content: true}}
      register: r4
    - uri: {{url: "http://{a}/missing"}}
      register: r5
      ignore_errors: true
    - uri: {{url: "http://{a}/private/json", url_username: bob, url_password: s3cr3t-pw}}
      register: r6
    - uri: {{url: "http://{a}/file.txt", dest: /opt/got.txt}}
      register: r7
    - uri: {{url: "http://{a}/json", creates: /opt/got.txt}}
      register: r8
    - uri: {{url: "http://{a}/missing", status_code: 404, return_content: true}}
      register: r9
    - uri: {{url: "http://{a}/redir", method: POST, follow_redirects: none, status_code: 302, body: raw text}}
      register: r10
    - copy:
        dest: "{{{{ out_file }}}}"
        content: "{{{{ [r1, r2, r3, r4, r5, r6, r7, r8, r9, r10] | to_json }}}}"
      delegate_to: localhost
"#
    )
}

/// Keys whose values depend on the run, not on the module. (`failed: false` and
/// `exception` are added to registered results by ansible-playbook's executor, not the module.)
const VOLATILE: &[&str] = &[
    "elapsed",
    "invocation",
    "date",
    "server",
    "connection",
    "failed",
    "exception",
];

#[test]
fn uri_matches_ansible_on_the_lab_host() {
    let lab = Lab::up(1, &[]);
    let http = Http::start(&lab);
    let w = Work::new();
    let pb = w.write("pb.yml", &uri_playbook(&http.addr));
    let a_out = w.out().join("ansible.json");
    let m_out = w.out().join("mixop.json");
    let (a_code, a_text) = lab.ansible(
        &w,
        "pb.yml",
        &["-e", &format!("out_file={}", a_out.display())],
    );
    assert!(
        a_text.contains("PLAY RECAP"),
        "ansible did not run:\n{a_text}"
    );
    let a_reqs = http.log.lock().unwrap().len();
    lab.exec("lab1", "rm -f /opt/got.txt");
    let m = lab.run(
        &w,
        &pb,
        &["-vvv", "-e", &format!("out_file={}", m_out.display())],
    );
    let ctx = format!(
        "--- ansible (exit {a_code})\n{a_text}\n--- mixop\n{}",
        m.all()
    );
    assert_eq!(m.code, a_code, "{ctx}");
    assert_eq!(
        parse_recap(&m.stdout, "lab1"),
        parse_recap(&a_text, "lab1"),
        "{ctx}"
    );
    // The password never shows, even at -vvv.
    assert!(!m.all().contains("s3cr3t-pw"), "{}", m.all());

    let (a, mx) = (read_json(&a_out), read_json(&m_out));
    let mut diffs = vec![];
    for (i, (ar, mr)) in a
        .as_array()
        .unwrap()
        .iter()
        .zip(mx.as_array().unwrap())
        .enumerate()
    {
        let strip = |v: &Value| {
            let mut o = v.as_object().unwrap().clone();
            o.retain(|k, _| !VOLATILE.contains(&k.as_str()));
            o
        };
        if strip(mr) != strip(ar) {
            diffs.push(format!(
                "r{}:\n  ansible {}\n  mixop   {}",
                i + 1,
                Value::Object(strip(ar)),
                Value::Object(strip(mr))
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "results differ:\n{}\n{ctx}",
        diffs.join("\n")
    );
    assert_eq!(lab.exec("lab1", "cat /opt/got.txt"), "file content\n");

    // The server saw the same requests from both (same methods, bodies, content types).
    let log = http.log.lock().unwrap().clone();
    let (from_a, from_m) = log.split_at(a_reqs);
    let shape = |rs: &[Req]| {
        rs.iter()
            .map(|r| {
                format!(
                    "{} {} {} auth={} {}",
                    r.method,
                    r.path,
                    r.header("content-type").unwrap_or("-"),
                    r.header("authorization").is_some(),
                    r.body
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(shape(from_m), shape(from_a), "{ctx}");
    assert!(
        from_m.iter().all(|r| !r
            .headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("expect"))),
        "{from_m:?}"
    );
}

#[test]
fn uri_check_mode_skips_and_failures_say_why() {
    let lab = Lab::up(1, &[]);
    let http = Http::start(&lab);
    let w = Work::new();
    let a = &http.addr;
    let pb = w.write(
        "pb.yml",
        &format!(
            r#"
- hosts: lab1
  gather_facts: false
  tasks:
    - uri: {{url: "http://{a}/file.txt", dest: /opt/c.txt}}
"#
        ),
    );
    // Ansible's uri does not support check mode: skipped, nothing requested or written.
    let check = lab.run(&w, &pb, &["--check"]);
    check.ok();
    assert_eq!(check.recap("lab1").skipped, 1, "{}", check.all());
    assert!(http.requests("/file.txt").is_empty());
    assert_eq!(lab.exec("lab1", "ls /opt"), "");

    let bad = w.write(
        "bad.yml",
        &format!(
            r#"
- hosts: lab1
  gather_facts: false
  tasks:
    - uri: {{url: "http://{a}/nothing"}}
"#
        ),
    );
    lab.run(&w, &bad, &[])
        .exits(2)
        .says("Status code was 404 and not [200]: HTTP Error 404: Not Found");
    // Nothing listens on port 1 of the bridge: the request fails with status -1.
    let net = a.rsplit_once(':').unwrap().0;
    let refused = w.write(
        "refused.yml",
        &format!(
            "- hosts: lab1\n  gather_facts: false\n  tasks:\n    - uri: {{url: \"http://{net}:1/\"}}\n"
        ),
    );
    lab.run(&w, &refused, &[])
        .exits(2)
        .says("Status code was -1 and not [200]: Request failed:");
    // `check` validates arguments before any host is contacted.
    let typo = w.write(
        "typo.yml",
        "- hosts: lab1\n  gather_facts: false\n  tasks:\n    - uri: {url: http://x/, body_format: yaml}\n",
    );
    let c = w.mixop(&[
        "check",
        typo.to_str().unwrap(),
        "-i",
        lab.inventory.to_str().unwrap(),
    ]);
    assert_eq!(c.code, 3, "{}", c.all());
    assert!(c.all().contains("body_format"), "{}", c.all());
}

// ---------------------------------------------------------------- git

/// Git with fixed identities and dates, so both labs' repositories have the same commit ids.
const GIT_ENV: &str = "export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@x GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@x GIT_AUTHOR_DATE='2024-01-01T00:00:00Z' GIT_COMMITTER_DATE='2024-01-01T00:00:00Z' HOME=/root";

/// A lab host with /opt/src.git: `main` (2 commits, annotated tag v1 on the first) and `dev`.
fn git_lab() -> Lab {
    let lab = Lab::up(1, &[]);
    lab.exec(
        "lab1",
        &format!(
            "{GIT_ENV}; set -e; git init -q -b main /opt/seed && cd /opt/seed && echo one > f && git add f && git commit -qm one && git tag -a v1 -m v1 && echo two > f && git commit -qam two && git checkout -qb dev && echo dev > d && git add d && git commit -qm dev && git checkout -q main && git clone -q --bare /opt/seed /opt/src.git"
        ),
    );
    assert_eq!(
        lab.exec(
            "lab1",
            "git -C /opt/src.git branch --format='%(refname:short)'"
        ),
        "dev\nmain\n"
    );
    lab
}

fn git_push(lab: &Lab, text: &str) {
    lab.exec(
        "lab1",
        &format!("{GIT_ENV}; cd /opt/seed && echo {text} > f && git commit -qam {text} && git push -q /opt/src.git main"),
    );
}

fn git_state(lab: &Lab) -> String {
    lab.exec(
        "lab1",
        "for d in work tagged shallow bare.git; do printf '%s %s %s\\n' $d \"$(git -C /opt/$d rev-parse HEAD 2>&1)\" \"$(git -C /opt/$d rev-list --count HEAD 2>&1)\"; done; stat -c '%n %a' /opt/tagged/f /opt/work/f 2>&1; cat /opt/work/f 2>&1",
    )
}

const GIT_PB: &str = r#"
- hosts: lab1
  gather_facts: false
  tasks:
    - git: {repo: "file:///opt/src.git", dest: /opt/work}
      register: g1
    - git: {repo: "file:///opt/src.git", dest: /opt/tagged, version: v1, umask: "0077"}
      register: g2
    - git: {repo: "file:///opt/src.git", dest: /opt/shallow, depth: 1, version: dev}
      register: g3
    - ansible.builtin.git: {repo: "file:///opt/src.git", dest: /opt/bare.git, bare: true}
      register: g4
    - git: {repo: "file:///opt/src.git", dest: /opt/work, update: false}
      register: g5
    - copy:
        dest: "{{ out_file }}"
        content: "{{ [g1, g2, g3, g4, g5] | to_json }}"
      delegate_to: localhost
      check_mode: false
"#;

#[test]
fn git_matches_ansible_on_the_lab_host() {
    let (lab_a, lab_m) = (git_lab(), git_lab());
    let w = Work::new();
    w.write("pb.yml", GIT_PB);
    let mut round = 0;
    let mut compare = |extra: &[&str], expect_code: i32| -> String {
        round += 1;
        let a_out = w.out().join(format!("a{round}.json"));
        let m_out = w.out().join(format!("m{round}.json"));
        let mut a_args = vec!["-e".to_string(), format!("out_file={}", a_out.display())];
        a_args.extend(extra.iter().map(|s| s.to_string()));
        let a_refs: Vec<&str> = a_args.iter().map(String::as_str).collect();
        let (a_code, a_text) = lab_a.ansible(&w, "pb.yml", &a_refs);
        let m_e = format!("out_file={}", m_out.display());
        let mut m_args = vec![
            "run",
            "pb.yml",
            "-i",
            lab_m.inventory.to_str().unwrap(),
            "-e",
            &m_e,
        ];
        m_args.extend_from_slice(extra);
        let m = w.mixop(&m_args);
        let ctx = format!(
            "round {round} {extra:?}\n--- ansible (exit {a_code})\n{a_text}\n--- mixop\n{}",
            m.all()
        );
        assert!(a_text.contains("PLAY RECAP"), "{ctx}");
        assert_eq!((m.code, a_code), (expect_code, expect_code), "{ctx}");
        assert_eq!(
            parse_recap(&m.stdout, "lab1"),
            parse_recap(&a_text, "lab1"),
            "{ctx}"
        );
        assert_eq!(git_state(&lab_m), git_state(&lab_a), "{ctx}");
        if expect_code == 0 {
            let strip = |v: Value| {
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|r| {
                        let mut o = r.as_object().unwrap().clone();
                        o.retain(|k, _| !VOLATILE.contains(&k.as_str()));
                        Value::Object(o)
                    })
                    .collect::<Vec<_>>()
            };
            assert_eq!(strip(read_json(&m_out)), strip(read_json(&a_out)), "{ctx}");
        }
        m.all()
    };
    // Check mode on an empty host: everything would change, nothing is cloned.
    compare(&["--check"], 0);
    assert!(git_state(&lab_m).contains("work fatal"));
    compare(&[], 0);
    assert!(
        git_state(&lab_m).contains("/opt/tagged/f 600\n/opt/work/f 644\n"),
        "{}",
        git_state(&lab_m)
    );
    compare(&[], 0);
    // A new commit upstream: check mode reports it, the run fetches it.
    git_push(&lab_a, "three");
    git_push(&lab_m, "three");
    compare(&["--check"], 0);
    compare(&[], 0);
    assert!(
        git_state(&lab_m).ends_with("three\n"),
        "{}",
        git_state(&lab_m)
    );
    // Local modifications stop the update (force: false), in check mode too.
    for lab in [&lab_a, &lab_m] {
        git_push(lab, "four");
        lab.exec("lab1", "echo local > /opt/work/f");
    }
    for extra in [&["--check"][..], &[]] {
        let out = compare(extra, 2);
        assert!(
            out.contains("Local modifications exist in the destination: /opt/work (force=no)."),
            "{out}"
        );
    }
    assert!(
        git_state(&lab_m).ends_with("local\n"),
        "{}",
        git_state(&lab_m)
    );
}

// ---------------------------------------------------------------- service_facts

#[test]
fn service_facts_match_ansible_on_the_lab_host() {
    // No systemd in lab hosts: both read `service --status-all` (SysV scripts in the host's /etc).
    let lab = Lab::up(1, &[]);
    let w = Work::new();
    w.write(
        "pb.yml",
        r#"
- hosts: lab1
  gather_facts: false
  tasks:
    - service_facts:
    - copy:
        dest: "{{ out_file }}"
        content: "{{ ansible_facts.services | to_json }}"
      delegate_to: localhost
"#,
    );
    let a_out = w.out().join("a.json");
    let m_out = w.out().join("m.json");
    let (a_code, a_text) = lab.ansible(
        &w,
        "pb.yml",
        &["-e", &format!("out_file={}", a_out.display())],
    );
    let m_e = format!("out_file={}", m_out.display());
    let m = w.mixop(&[
        "run",
        "pb.yml",
        "-i",
        lab.inventory.to_str().unwrap(),
        "-e",
        &m_e,
    ]);
    let ctx = format!(
        "--- ansible (exit {a_code})\n{a_text}\n--- mixop\n{}",
        m.all()
    );
    assert_eq!((m.code, a_code), (0, 0), "{ctx}");
    let (a, mx) = (read_json(&a_out), read_json(&m_out));
    assert_eq!(mx, a, "{ctx}");
    assert_eq!(mx["ssh"]["source"], "sysv", "{ctx}");
}
