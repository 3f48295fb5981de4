//! The Windows file and environment modules (win_copy, win_template, win_file, win_get_url,
//! win_unarchive, win_wait_for, win_environment, win_path) run by the `mixop` binary against the
//! WinRM peer's simulated Windows host (`--mode sim`). Each test checks the host's state as
//! data — `host.json`, the simulated disk under `<state>/fs`, the requests in `scripts.jsonl`
//! and the peer's command records — after a run, a second run (nothing changed) and `--check`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use common::{Run, Session, Sim};
use serde_json::Value;

/// What these tests read and put on the simulated host beyond common's `Sim`.
trait Disk {
    fn read(&self, win: &str) -> Option<Vec<u8>>;
    fn text(&self, win: &str) -> String;
    fn write(&self, win: &str, data: &[u8]);
    fn uploads(&self) -> usize;
    fn machine_env(&self, name: &str) -> Option<String>;
}

impl Disk for Sim {
    fn read(&self, win: &str) -> Option<Vec<u8>> {
        std::fs::read(self.fs_path(win)).ok()
    }

    fn text(&self, win: &str) -> String {
        String::from_utf8(
            self.read(win)
                .unwrap_or_else(|| panic!("{win} missing on the host")),
        )
        .unwrap()
    }

    fn write(&self, win: &str, data: &[u8]) {
        let p = self.fs_path(win);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }

    /// File uploads (the connection's put script) the host received so far.
    fn uploads(&self) -> usize {
        self.records()
            .iter()
            .filter(|r| r["builtin"] == "sim_put")
            .count()
    }

    fn machine_env(&self, name: &str) -> Option<String> {
        let h = self.host();
        let env = h["environment"]["machine"].as_object().unwrap().clone();
        env.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_str().map(str::to_string))
    }
}

/// A run with `--output json`: its events, recap and per-task results.
struct Ran {
    run: Run,
    events: Vec<Value>,
}

impl Ran {
    fn all(&self) -> String {
        self.run.all()
    }
    fn ok(&self) -> &Ran {
        assert_eq!(self.run.code, 0, "mixop failed:\n{}", self.all());
        self
    }
    fn recap(&self, key: &str) -> u64 {
        self.events
            .iter()
            .rev()
            .find(|e| e["event"] == "recap")
            .and_then(|e| e["hosts"]["win1"][key].as_u64())
            .unwrap_or_else(|| panic!("no recap:\n{}", self.all()))
    }
    fn changed(&self) -> u64 {
        self.recap("changed")
    }
    /// The names of the tasks that reported a change.
    fn changed_tasks(&self) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| e["event"] == "host_result" && e["changed"] == true)
            .map(|e| e["task"].as_str().unwrap_or("").to_string())
            .collect()
    }
    /// The (last) result of the task named `task`.
    fn result(&self, task: &str) -> Value {
        self.events
            .iter()
            .rev()
            .find(|e| e["event"] == "host_result" && e["task"] == task)
            .map(|e| e["result"].clone())
            .unwrap_or_else(|| panic!("no result for {task}:\n{}", self.all()))
    }
}

/// `mixop run PB --output json EXTRA...` in the session.
fn run(s: &Session, pb: &str, extra: &[&str]) -> Ran {
    let mut args = vec!["--output", "json"];
    args.extend_from_slice(extra);
    let run = s.run_file(pb, &args);
    let events = run
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    Ran { run, events }
}

/// Odd characters every module must pass through exactly: quotes, `$`, a backtick, spaces,
/// non-ASCII (and, where a value may hold one, a newline).
const ODD: &str = "it's \"q\" $x `b` n\u{e9} \u{540d}";

#[test]
fn win_copy_and_win_template_are_idempotent_by_hash() {
    let s = Session::win_sim(&[], None);
    let sim = s.sim();
    s.write("files/app.conf", "listen=8080\n");
    s.write("files/site/index.html", "<h1>hello</h1>\n");
    s.write("files/site/css/site.css", "body{}\n");
    s.write(
        "templates/app.ini.j2",
        "who={{ who }}\nport={{ 8000 + 80 }}\n",
    );
    s.write(
        "pb.yml",
        r#"- hosts: windows
  gather_facts: false
  vars:
    who: "it's \"q\" $x `b` né 名"
  tasks:
    - name: app dir
      win_file: {path: 'C:\app', state: directory}
    - name: single
      win_copy: {src: app.conf, dest: 'C:\app\'}
    - name: no parent
      win_copy:
        content: "line 1\nit's \"q\" $x `b` né 名\n"
        dest: 'C:\app\odd dir\it''s $x `b` né 名.txt'
      ignore_errors: true
    - name: odd dir
      win_file: {path: 'C:\app\odd dir', state: directory}
    - name: odd content
      win_copy:
        content: "line 1\nit's \"q\" $x `b` né 名\n"
        dest: 'C:\app\odd dir\it''s $x `b` né 名.txt'
    - name: template
      win_template: {src: app.ini.j2, dest: 'C:\app\app.ini'}
    - name: tree
      win_copy: {src: site, dest: 'C:\www'}
    - name: tree contents
      win_copy: {src: site/, dest: 'C:\www2\'}
    - name: on the host
      win_copy: {src: 'C:\app\app.conf', dest: 'C:\backup\', remote_src: true}
"#,
    );
    let odd_file = "C:\\app\\odd dir\\it's $x `b` n\u{e9} \u{540d}.txt".to_string();
    let r = run(&s, "pb.yml", &[]);
    r.ok();
    assert_eq!(r.changed(), 8, "{}", r.all());
    assert_eq!(r.recap("ignored"), 1, "{}", r.all());
    let single = r.result("single");
    assert_eq!(single["dest"], "C:\\app\\app.conf");
    assert_eq!(single["operation"], "file_copy");
    assert_eq!(single["original_basename"], "app.conf");
    assert_eq!(single["checksum"], sha1_hex(b"listen=8080\n"));
    assert_eq!(single["size"], 12);
    assert!(
        r.result("no parent")["msg"]
            .as_str()
            .unwrap()
            .contains("Destination directory 'C:\\app\\odd dir' does not exist"),
        "{}",
        r.all()
    );
    assert_eq!(r.result("tree")["dest"], "C:\\www\\site");
    assert_eq!(r.result("tree")["operation"], "folder_copy");

    assert_eq!(sim.text("C:\\app\\app.conf"), "listen=8080\n");
    assert_eq!(sim.text(&odd_file), format!("line 1\n{ODD}\n"));
    // win_template renders on the controller and writes Windows line endings.
    assert_eq!(
        sim.text("C:\\app\\app.ini"),
        format!("who={ODD}\r\nport=8080\r\n")
    );
    // `site` copies the directory itself, `site/` its contents.
    assert_eq!(sim.text("C:\\www\\site\\css\\site.css"), "body{}\n");
    assert_eq!(sim.text("C:\\www2\\index.html"), "<h1>hello</h1>\n");
    assert!(sim.read("C:\\www2\\site\\index.html").is_none());
    // remote_src copies on the host: no upload for it.
    assert_eq!(sim.text("C:\\backup\\app.conf"), "listen=8080\n");
    // app.conf, the odd file, app.ini and the 2 + 2 site files.
    assert_eq!(sim.uploads(), 7);

    // The odd destination reached the host exactly, as data.
    let probes = sim.requests("win_copy", "probe");
    assert!(
        probes
            .iter()
            .any(|p| p["args"]["dest"] == odd_file.as_str()),
        "{probes:?}"
    );

    // Second run: nothing changes, nothing is sent again.
    let r = run(&s, "pb.yml", &[]);
    r.ok();
    assert_eq!(r.changed(), 0, "{}", r.all());
    assert_eq!(sim.uploads(), 7, "an unchanged file was uploaded again");

    // One file of the tree changes: only it is uploaded (once per tree copy).
    s.write("files/site/index.html", "<h1>changed</h1>\n");
    let r = run(&s, "pb.yml", &[]);
    r.ok();
    assert_eq!(
        r.changed_tasks(),
        vec!["tree", "tree contents"],
        "{}",
        r.all()
    );
    assert_eq!(sim.uploads(), 9);
    assert_eq!(sim.text("C:\\www\\site\\index.html"), "<h1>changed</h1>\n");

    // --check --diff: reports the change with its diff, changes and sends nothing.
    s.write("files/app.conf", "listen=9090\n");
    let files_before = sim.host()["files"].clone();
    let r = run(&s, "pb.yml", &["--check", "--diff"]);
    r.ok();
    assert_eq!(r.changed_tasks(), vec!["single"], "{}", r.all());
    let diff = &r.result("single")["diff"];
    assert_eq!(diff["before"], "listen=8080\n", "{diff}");
    assert_eq!(diff["after"], "listen=9090\n", "{diff}");
    assert_eq!(sim.uploads(), 9);
    assert_eq!(sim.text("C:\\app\\app.conf"), "listen=8080\n");
    assert_eq!(sim.host()["files"], files_before);
}

fn sha1_hex(data: &[u8]) -> String {
    use sha1::Digest;
    hex::encode(sha1::Sha1::digest(data))
}

#[test]
fn win_copy_force_backup_and_remote_trees() {
    let s = Session::win_sim(&[], None);
    let sim = s.sim();
    sim.write("C:\\data\\keep.txt", b"host version\n");
    sim.write("C:\\data\\tree\\a.txt", b"a\n");
    sim.write("C:\\data\\tree\\sub\\b.txt", b"b\n");
    s.write("files/keep.txt", "controller version\n");
    s.write(
        "pb.yml",
        r#"- hosts: windows
  gather_facts: false
  tasks:
    - name: keep
      win_copy: {src: keep.txt, dest: 'C:\data\keep.txt', force: false}
    - name: first
      win_copy: {src: keep.txt, dest: 'C:\data\replaced.txt'}
    - name: replace
      win_copy: {content: "new\n", dest: 'C:\data\replaced.txt', backup: true}
    - name: mirror
      win_copy: {src: 'C:\data\tree', dest: 'C:\mirror', remote_src: true}
"#,
    );
    let r = run(&s, "pb.yml", &[]);
    r.ok();
    assert_eq!(
        r.changed_tasks(),
        vec!["first", "replace", "mirror"],
        "{}",
        r.all()
    );
    assert_eq!(
        sim.text("C:\\data\\keep.txt"),
        "host version\n",
        "force: false"
    );
    assert_eq!(sim.text("C:\\data\\replaced.txt"), "new\n");
    let backup = r.result("replace")["backup_file"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        backup.starts_with("C:\\data\\replaced.txt.") && backup.ends_with(".bak"),
        "{backup}"
    );
    assert_eq!(sim.text(&backup), "controller version\n");
    assert_eq!(sim.text("C:\\mirror\\tree\\sub\\b.txt"), "b\n");
    assert_eq!(r.result("mirror")["dest"], "C:\\mirror\\tree");

    // Second run: "first" puts the controller version back, "replace" then makes a new backup
    // of it: the two tasks fight, as they would under Ansible. The mirror is unchanged.
    let r = run(&s, "pb.yml", &[]);
    r.ok();
    assert!(
        !r.changed_tasks().contains(&"mirror".to_string()),
        "{}",
        r.all()
    );
    assert!(
        !r.changed_tasks().contains(&"keep".to_string()),
        "{}",
        r.all()
    );

    // A changed file under the remote tree is copied again, the rest is not.
    sim.write("C:\\data\\tree\\sub\\b.txt", b"b2\n");
    let r = run(&s, "pb.yml", &[]);
    r.ok();
    assert_eq!(sim.text("C:\\mirror\\tree\\sub\\b.txt"), "b2\n");
    let applies = sim.requests("win_copy", "apply");
    let last = applies.last().unwrap();
    assert_eq!(
        last["plan"]["copies"],
        serde_json::json!([{"from": "C:\\data\\tree\\sub\\b.txt", "to": "C:\\mirror\\tree\\sub\\b.txt"}])
    );
}

#[test]
fn win_file_states_check_mode_and_errors() {
    let s = Session::win_sim(&[], None);
    let sim = s.sim();
    let odd_dir = format!("C:\\odd\\{}", ODD.replace('"', ""));
    s.write(
        "pb.yml",
        &format!(
            r#"- hosts: windows
  gather_facts: false
  tasks:
    - win_file: {{path: '{d}\deep', state: directory}}
    - win_file: {{path: '{d}\deep\f.txt', state: touch}}
    - win_file: {{path: 'C:\gone', state: absent}}
    - name: nofile
      win_file: {{path: 'C:\odd\x', state: file}}
      ignore_errors: true
"#,
            d = odd_dir.replace('\'', "''")
        ),
    );
    let r = run(&s, "pb.yml", &["--check"]);
    r.ok();
    assert!(sim.read(&format!("{odd_dir}\\deep\\f.txt")).is_none());
    assert!(!sim.fs_path(&odd_dir).exists(), "check mode created it");
    let r = run(&s, "pb.yml", &[]);
    r.ok();
    assert_eq!(r.changed(), 2, "{}", r.all());
    assert_eq!(
        r.result("nofile")["msg"],
        "path C:\\odd\\x will not be created",
        "{}",
        r.all()
    );
    assert_eq!(sim.read(&format!("{odd_dir}\\deep\\f.txt")), Some(vec![]));
    // The path arrived exactly.
    let probes = sim.requests("win_file", "probe");
    assert_eq!(probes[0]["args"]["path"], format!("{odd_dir}\\deep"));
    // Second run: the directory is there; touch is always a change (as Ansible).
    let r = run(&s, "pb.yml", &[]);
    assert_eq!(r.changed(), 1, "{}", r.all());
    // Removing the tree.
    s.write(
        "rm.yml",
        r#"- hosts: windows
  gather_facts: false
  tasks:
    - win_file: {path: 'C:\odd', state: absent}
"#,
    );
    let r = run(&s, "rm.yml", &[]);
    assert_eq!(r.changed(), 1, "{}", r.all());
    assert!(!sim.fs_path("C:\\odd").exists());
    let r = run(&s, "rm.yml", &[]);
    assert_eq!(r.changed(), 0, "{}", r.all());
}

#[test]
fn win_environment_and_win_path_set_machine_state() {
    let s = Session::win_sim(&[], None);
    let sim = s.sim();
    let original_path = sim.machine_env("Path").unwrap();
    s.write(
        "pb.yml",
        r#"- hosts: windows
  gather_facts: false
  tasks:
    - name: env
      win_environment:
        name: MIXOP_ODD
        value: "it's \"q\" $x `b` né 名\nline2 %PATH%"
        level: machine
    - win_environment: {name: TO_REMOVE, state: absent, level: machine}
    - win_path:
        elements: ['c:\windows\system32\', 'C:\k3s\bin', '%ProgramFiles%\containerd']
    - win_path:
        name: MIXOP_LIST
        elements: ['C:\b', 'C:\a']
"#,
    );
    // --check first: nothing changes on the host.
    let r = run(&s, "pb.yml", &["--check"]);
    r.ok();
    // TO_REMOVE does not exist: nothing to do for it.
    assert_eq!(r.changed(), 3, "{}", r.all());
    assert_eq!(sim.machine_env("MIXOP_ODD"), None);
    assert_eq!(sim.machine_env("Path").unwrap(), original_path);

    let r = run(&s, "pb.yml", &[]);
    r.ok();
    assert_eq!(r.changed(), 3, "{}", r.all());
    let want = format!("{ODD}\nline2 %PATH%");
    assert_eq!(sim.machine_env("MIXOP_ODD").as_deref(), Some(want.as_str()));
    let env = r.result("env");
    assert_eq!(env["before_value"], Value::Null);
    assert_eq!(env["value"], want.as_str());
    // The value travelled as data: exactly what the plan carried.
    let applies = sim.requests("win_environment", "apply");
    assert_eq!(applies[0]["plan"]["set"][0]["value"], want.as_str());
    // PATH: appended once each, existing system32 (other case, trailing \) not duplicated,
    // %ProgramFiles% kept unexpanded.
    assert_eq!(
        sim.machine_env("Path").unwrap(),
        format!("{original_path};C:\\k3s\\bin;%ProgramFiles%\\containerd")
    );
    assert_eq!(
        sim.machine_env("MIXOP_LIST").as_deref(),
        Some("C:\\b;C:\\a")
    );

    let r = run(&s, "pb.yml", &[]);
    r.ok();
    assert_eq!(r.changed(), 0, "{}", r.all());

    // Removing: the variable, and an element.
    s.write(
        "rm.yml",
        r#"- hosts: windows
  gather_facts: false
  tasks:
    - win_environment: {name: MIXOP_ODD, state: absent, level: machine}
    - win_path: {elements: ['C:\K3S\BIN\'], state: absent}
"#,
    );
    let r = run(&s, "rm.yml", &["--diff"]);
    r.ok();
    assert_eq!(r.changed(), 2, "{}", r.all());
    assert_eq!(sim.machine_env("MIXOP_ODD"), None);
    assert_eq!(
        sim.machine_env("Path").unwrap(),
        format!("{original_path};%ProgramFiles%\\containerd")
    );
    let d = r.result("win_path")["diff"].clone();
    assert!(
        d["before"].as_str().unwrap().contains("C:\\k3s\\bin\n"),
        "{d}"
    );
    assert!(!d["after"].as_str().unwrap().contains("k3s"), "{d}");
}

/// (path, request header lines) of every request, in order.
type Hits = Arc<Mutex<Vec<(String, Vec<String>)>>>;

/// A tiny HTTP/1.1 server on loopback: `/tool.bin` (changeable), `/secret.bin` behind Basic
/// auth (a 401 challenge first). Counts the GETs per path and keeps the request headers seen.
struct Http {
    port: u16,
    body: Arc<Mutex<Vec<u8>>>,
    hits: Hits,
}

impl Http {
    fn start(user: &str, password: &str) -> Http {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let body = Arc::new(Mutex::new(b"tool v1\n".to_vec()));
        let hits: Hits = Arc::default();
        let expect = format!(
            "Basic {}",
            base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                format!("{user}:{password}")
            )
        );
        let (b, h) = (body.clone(), hits.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let mut reader = BufReader::new(s.try_clone().unwrap());
                let mut read_line = || {
                    let mut buf = Vec::new();
                    match reader.read_until(b'\n', &mut buf) {
                        Ok(0) | Err(_) => None,
                        Ok(_) => Some(String::from_utf8_lossy(&buf).trim().to_string()),
                    }
                };
                let Some(line) = read_line() else { continue };
                let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                let mut headers = Vec::new();
                while let Some(l) = read_line() {
                    if l.is_empty() {
                        break;
                    }
                    headers.push(l);
                }
                h.lock().unwrap().push((path.clone(), headers.clone()));
                let authorized = headers
                    .iter()
                    .any(|x| x.eq_ignore_ascii_case(&format!("authorization: {expect}")));
                let (status, data): (&str, Vec<u8>) = match path.as_str() {
                    "/tool.bin" => ("200 OK", b.lock().unwrap().clone()),
                    "/secret.bin" if authorized => ("200 OK", b"secret\n".to_vec()),
                    "/secret.bin" => ("401 Unauthorized", vec![]),
                    _ => ("404 Not Found", b"no".to_vec()),
                };
                let mut resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
                    data.len()
                );
                if status.starts_with("401") {
                    resp.push_str("WWW-Authenticate: Basic realm=\"mixop\"\r\n");
                }
                resp.push_str("\r\n");
                let _ = s.write_all(resp.as_bytes());
                let _ = s.write_all(&data);
                let mut rest = Vec::new();
                let _ = s.set_read_timeout(Some(std::time::Duration::from_millis(5)));
                let _ = s.read_to_end(&mut rest);
            }
        });
        Http { port, body, hits }
    }

    fn gets(&self, path: &str) -> usize {
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .count()
    }
}

#[test]
fn win_get_url_downloads_from_a_loopback_server() {
    let s = Session::win_sim(&[], None);
    let sim = s.sim();
    let password = "pa:ss it's \"q\" $x `b` é名";
    let http = Http::start("dl-user", password);
    sim.write("C:\\dl\\.keep", b"");
    let sum1 = sha1_hex(b"tool v1\n");
    s.write(
        "pb.yml",
        &format!(
            r#"- hosts: windows
  gather_facts: false
  vars:
    pw: "pa:ss it's \"q\" $x `b` é名"
  tasks:
    - name: plain
      win_get_url:
        url: "http://127.0.0.1:{port}/tool.bin"
        dest: 'C:\dl\'
        headers: {{X-Odd: "it's \"q\" $x `b`"}}
    - name: pinned
      win_get_url:
        url: "http://127.0.0.1:{port}/tool.bin"
        dest: 'C:\dl\pinned.bin'
        checksum: "{sum1}"
    - name: once
      win_get_url:
        url: "http://127.0.0.1:{port}/tool.bin"
        dest: 'C:\dl\once.bin'
        force: false
    - name: secret
      win_get_url:
        url: "http://127.0.0.1:{port}/secret.bin"
        dest: 'C:\dl\secret.bin'
        url_username: dl-user
        url_password: "{{{{ pw }}}}"
"#,
            port = http.port
        ),
    );
    let log = s.work.path().join("mixop.log");
    let r = run(&s, "pb.yml", &["-vvv", "--log", log.to_str().unwrap()]);
    r.ok();
    assert_eq!(r.changed(), 4, "{}", r.all());
    assert_eq!(sim.text("C:\\dl\\tool.bin"), "tool v1\n");
    assert_eq!(sim.text("C:\\dl\\pinned.bin"), "tool v1\n");
    assert_eq!(sim.text("C:\\dl\\secret.bin"), "secret\n");
    let plain = r.result("plain");
    assert_eq!(plain["dest"], "C:\\dl\\tool.bin");
    assert_eq!(plain["status_code"], 200);
    assert_eq!(plain["checksum_dest"], sum1.as_str());
    // The header arrived exactly.
    let hits = http.hits.lock().unwrap().clone();
    assert!(
        hits.iter()
            .any(|(_, h)| h.iter().any(|x| x == "X-Odd: it's \"q\" $x `b`")),
        "{hits:?}"
    );
    // The password went to the server, and never shows in mixop's output or log.
    assert_eq!(
        http.gets("/secret.bin"),
        2,
        "a 401 challenge, then the authenticated GET"
    );
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!logged.is_empty());
    for text in [&r.run.stdout, &r.run.stderr, &logged] {
        assert!(!text.contains("pa:ss"), "password leaked:\n{text}");
    }
    let tool = http.gets("/tool.bin");

    // Second run: pinned.bin matches its checksum and `force: false` keeps once.bin, so no
    // request for them; plain (force: yes, no checksum) is fetched and compared: no change.
    let r = run(&s, "pb.yml", &[]);
    r.ok();
    assert_eq!(r.changed(), 0, "{}", r.all());
    assert_eq!(
        r.result("pinned")["msg"],
        "file already exists and matches the checksum"
    );
    assert_eq!(
        http.gets("/tool.bin"),
        tool + 1,
        "only the force: yes task downloads"
    );

    // The server's file changes: --check downloads to compare, reports it, changes nothing.
    *http.body.lock().unwrap() = b"tool v2\n".to_vec();
    let r = run(&s, "pb.yml", &["--check"]);
    r.ok();
    assert_eq!(r.changed_tasks(), vec!["plain"], "{}", r.all());
    assert_eq!(r.result("plain")["checksum_src"], sha1_hex(b"tool v2\n"));
    assert_eq!(sim.text("C:\\dl\\tool.bin"), "tool v1\n");
    // A real run replaces it; pinned.bin still matches its checksum and is not fetched.
    let r = run(&s, "pb.yml", &[]);
    r.ok();
    assert_eq!(r.changed_tasks(), vec!["plain"], "{}", r.all());
    assert_eq!(sim.text("C:\\dl\\tool.bin"), "tool v2\n");
    assert_eq!(sim.text("C:\\dl\\pinned.bin"), "tool v1\n");

    // A wrong checksum fails and leaves no file behind.
    s.write(
        "bad.yml",
        &format!(
            r#"- hosts: windows
  gather_facts: false
  tasks:
    - name: bad
      win_get_url: {{url: "http://127.0.0.1:{}/tool.bin", dest: 'C:\dl\bad.bin', checksum: "0000"}}
"#,
            http.port
        ),
    );
    let r = run(&s, "bad.yml", &[]);
    assert_eq!(r.run.code, 2, "{}", r.all());
    let msg = r.result("bad")["msg"].as_str().unwrap_or("").to_string();
    assert!(msg.contains("did not match '0000'"), "{}", r.all());
    assert!(sim.read("C:\\dl\\bad.bin").is_none());
    let leftovers: Vec<_> = std::fs::read_dir(sim.fs_path("C:\\dl"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("mixop"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn win_unarchive_zip_and_tgz_idempotently() {
    let s = Session::win_sim(&[], None);
    let sim = s.sim();
    // Archives made here, put on the host with win_copy.
    std::fs::create_dir_all(s.work.path().join("files")).unwrap();
    let zip = s.work.path().join("files/pkg.zip");
    let ok = common::venv_python()
        .args([
            "-c",
            "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1], 'w')\nz.writestr('bin/', '')\nz.writestr('bin/k3s.exe', 'MZ binary')\nz.writestr('README é.txt', 'read me')\nz.close()",
            zip.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(ok.success());
    let src = s.work.path().join("tarsrc");
    std::fs::create_dir_all(src.join("cni/bin")).unwrap();
    std::fs::write(src.join("cni/bin/flannel.exe"), "flannel").unwrap();
    std::fs::write(src.join("cni/net.conf"), "{}").unwrap();
    let ok = std::process::Command::new("tar")
        .args([
            "czf",
            s.work.path().join("files/cni.tgz").to_str().unwrap(),
            "-C",
        ])
        .arg(&src)
        .arg("cni")
        .status()
        .unwrap();
    assert!(ok.success());
    s.write(
        "stage.yml",
        r#"- hosts: windows
  gather_facts: false
  tasks:
    - win_copy: {src: pkg.zip, dest: 'C:\dl\'}
    - win_copy: {src: cni.tgz, dest: 'C:\dl\'}
"#,
    );
    run(&s, "stage.yml", &[]).ok();
    s.write(
        "pb.yml",
        r#"- hosts: windows
  gather_facts: false
  tasks:
    - name: zip
      win_unarchive: {src: 'C:\dl\pkg.zip', dest: 'C:\opt\k3s'}
    - name: tgz
      win_unarchive: {path: 'C:\dl\cni.tgz', destination: 'C:\opt'}
    - name: creates
      win_unarchive: {src: 'C:\dl\pkg.zip', dest: 'C:\skipped', creates: 'C:\opt\k3s\bin'}
"#,
    );
    let r = run(&s, "pb.yml", &["--check"]);
    r.ok();
    assert_eq!(
        r.changed_tasks(),
        vec!["zip", "tgz", "creates"],
        "{}",
        r.all()
    );
    assert!(!sim.fs_path("C:\\opt").exists());
    let r = run(&s, "pb.yml", &[]);
    r.ok();
    // `creates` is checked before the task runs: k3s\bin exists once zip has run.
    assert_eq!(r.changed_tasks(), vec!["zip", "tgz"], "{}", r.all());
    assert_eq!(sim.text("C:\\opt\\k3s\\bin\\k3s.exe"), "MZ binary");
    assert_eq!(sim.text("C:\\opt\\k3s\\README \u{e9}.txt"), "read me");
    assert_eq!(sim.text("C:\\opt\\cni\\bin\\flannel.exe"), "flannel");
    assert!(!sim.fs_path("C:\\skipped").exists());
    let z = r.result("zip");
    assert_eq!(z["extracted"], true);
    assert_eq!(z["files"].as_array().unwrap().len(), 3);
    assert_eq!(r.result("creates")["skipped"], true);

    let r = run(&s, "pb.yml", &[]);
    r.ok();
    assert_eq!(r.changed(), 0, "{}", r.all());

    // A file under dest changed size: extracted again.
    sim.write("C:\\opt\\cni\\bin\\flannel.exe", b"tampered!!");
    let r = run(&s, "pb.yml", &[]);
    r.ok();
    assert_eq!(r.changed_tasks(), vec!["tgz"], "{}", r.all());
    assert_eq!(sim.text("C:\\opt\\cni\\bin\\flannel.exe"), "flannel");

    // delete_archive: removed after extraction, and the next run has nothing to do.
    s.write(
        "rm.yml",
        r#"- hosts: windows
  gather_facts: false
  tasks:
    - win_unarchive: {src: 'C:\dl\pkg.zip', dest: 'C:\opt\again', rm: true}
"#,
    );
    let r = run(&s, "rm.yml", &[]);
    assert_eq!(r.changed(), 1, "{}", r.all());
    assert!(sim.read("C:\\dl\\pkg.zip").is_none());
    assert_eq!(sim.text("C:\\opt\\again\\bin\\k3s.exe"), "MZ binary");
    let r = run(&s, "rm.yml", &[]);
    assert_eq!(r.changed(), 0, "{}", r.all());
}

#[test]
fn win_wait_for_ports_and_files() {
    let s = Session::win_sim(&[], None);
    let sim = s.sim();
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let open_port = open.local_addr().unwrap().port();
    let closed_port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    // The file appears after a while.
    let ready = sim.fs_path("C:\\app\\ready.txt");
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        std::fs::create_dir_all(ready.parent().unwrap()).unwrap();
        std::fs::write(&ready, "status: READY $x `b`\n").unwrap();
    });
    s.write(
        "pb.yml",
        &format!(
            r#"- hosts: windows
  gather_facts: false
  tasks:
    - win_wait_for: {{port: {open_port}, timeout: 5}}
    - win_wait_for: {{port: {closed_port}, state: stopped, timeout: 5}}
    - name: file
      win_wait_for: {{path: 'C:\app\ready.txt', regex: 'ready \$x', timeout: 20, sleep: 1}}
    - win_wait_for: {{path: 'C:\app\nope.txt', state: absent, timeout: 2}}
    - name: late
      win_wait_for: {{port: {closed_port}, timeout: 2, sleep: 1}}
      ignore_errors: true
"#
        ),
    );
    let r = run(&s, "pb.yml", &[]);
    r.ok();
    assert_eq!(r.changed(), 0, "{}", r.all());
    assert_eq!(r.recap("ignored"), 1, "{}", r.all());
    let f = r.result("file");
    assert!(f["wait_attempts"].as_u64().unwrap() >= 2, "{f}");
    let late = r.result("late");
    assert_eq!(
        late["msg"],
        format!("timeout while waiting for 127.0.0.1:{closed_port} to start listening")
    );
    assert!(late["elapsed"].as_f64().unwrap() >= 2.0, "{late}");
    let probes = sim.requests("win_wait_for", "probe");
    assert!(
        probes
            .iter()
            .any(|p| p["args"]["search_regex"] == "ready \\$x")
    );
    drop(open);
}

#[test]
fn check_validates_local_sources_of_win_copy_and_win_template() {
    let s = Session::empty().inventory(
        r#"all:
  hosts:
    win1: {ansible_connection: winrm}
"#,
    );
    s.write("files/here.txt", "x");
    s.write(
        "pb.yml",
        r#"- hosts: all
  tasks:
    - win_copy: {src: here.txt, dest: 'C:\x'}
    - win_copy: {src: 'C:\on\the\host.txt', dest: 'C:\x', remote_src: true}
    - win_template: {src: nope.j2, dest: 'C:\x'}
"#,
    );
    let r = s.check();
    assert_ne!(r.code, 0, "{}", r.all());
    assert!(
        r.all().contains("win_template source `nope.j2` not found"),
        "{}",
        r.all()
    );
    assert!(!r.all().contains("here.txt"), "{}", r.all());
    s.write(
        "pb2.yml",
        r#"- hosts: all
  tasks:
    - win_copy: {src: missing.bin, dest: 'C:\x'}
"#,
    );
    let r = s.check_file("pb2.yml", &[]);
    assert!(
        r.all().contains("win_copy source `missing.bin` not found"),
        "{}",
        r.all()
    );
}
