//! Reproductions of the defects found in the security review, kept as tests: the `mixop` binary
//! end to end on `local` hosts (no lab needed).

mod common;

use common::Work;

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// As root sudo never asks for a password: the password must then go nowhere, neither to the
/// command's input nor to a script read from stdin (where it would run as shell code).
#[test]
fn sudo_password_never_reaches_the_command() {
    assert!(
        is_root(),
        "this test runs sudo as root (sudo does not ask root)"
    );
    let w = Work::new();
    let marker = w.out().join("pwned");
    w.write(
        "inventory.yml",
        &format!(
            "all:\n  hosts:\n    h1:\n      ansible_connection: local\n      ansible_become_password: \"pw;touch {}\"\n",
            marker.display()
        ),
    );
    let pb = w.write(
        "pb.yml",
        r#"- hosts: all
  gather_facts: false
  become: true
  tasks:
    - command: cat
      register: plain
    - command: cat
      args: {stdin: "input"}
      register: piped
    - command: /bin/sh -s
      args: {stdin: "echo script ran"}
      register: script
    - copy:
        dest: "@OUT@/result"
        content: "[{{ plain.stdout }}] [{{ piped.stdout }}] [{{ script.stdout }}] [{{ script.stderr }}]"
"#,
    );
    let r = w.mixop(&["run", pb.to_str().unwrap(), "-i", "inventory.yml"]);
    r.ok();
    assert!(!r.stdout.contains("pw;touch"), "{}", r.all());
    assert_eq!(w.read("result"), "[] [input] [script ran] []");
    assert!(!marker.exists(), "the sudo password ran as shell code");
}

/// Where sudo does ask, the password goes in answer to its prompt and the command's input
/// after it; a refused password is an error, not a hang. `sudo` here is a stand-in script on
/// PATH that behaves like sudo -S -p.
#[test]
fn sudo_password_answers_the_prompt() {
    use std::os::unix::fs::PermissionsExt;
    let w = Work::new();
    let bin = w.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fake = bin.join("sudo");
    std::fs::write(
        &fake,
        r#"#!/bin/sh
prompt=""
while [ $# -gt 0 ]; do
  case "$1" in
    -p|-u) [ "$1" = -p ] && prompt=$2; shift 2 ;;
    --) shift; break ;;
    *) shift ;;
  esac
done
tries=0
while :; do
  printf '%s' "$prompt" >&2
  IFS= read -r pw || { echo "sudo: no password was provided" >&2; exit 1; }
  [ "$pw" = "s3cret" ] && break
  tries=$((tries + 1))
  echo "Sorry, try again." >&2
  [ $tries -ge 3 ] && { echo "sudo: 3 incorrect password attempts" >&2; exit 1; }
done
exec "$@"
"#,
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = |password: &str| {
        w.write(
            "inventory.yml",
            &format!(
                "all:\n  hosts:\n    h1:\n      ansible_connection: local\n      ansible_become_password: \"{password}\"\n"
            ),
        );
        let pb = w.write(
            "pb.yml",
            r#"- hosts: all
  gather_facts: false
  become: true
  tasks:
    - command: cat
      args: {stdin: "input"}
      register: piped
    - copy: {dest: "@OUT@/result", content: "[{{ piped.stdout }}] [{{ piped.stderr }}]"}
"#,
        );
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
        let out = std::process::Command::new(common::mixop_bin())
            .args(["run", pb.to_str().unwrap(), "-i", "inventory.yml"])
            .current_dir(w.path())
            .env("PATH", path)
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        common::Run::from(out)
    };
    let r = run("s3cret");
    r.ok();
    assert_eq!(w.read("result"), "[input] []");
    let t = std::time::Instant::now();
    let r = run("wrong");
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stdout.contains("incorrect password"), "{}", r.all());
    assert!(!r.stdout.contains("input"), "{}", r.all());
    assert!(t.elapsed() < std::time::Duration::from_secs(20));
}

/// `wait_for`'s host was pasted into a `bash -c` script.
#[test]
fn wait_for_host_is_not_shell_code() {
    let w = Work::new();
    w.local_inventory(1);
    let marker = w.out().join("y");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let pb = w.write(
        "pb.yml",
        &format!(
            r#"- hosts: all
  gather_facts: false
  tasks:
    - wait_for: {{host: "127.0.0.1", port: {port}, timeout: 5}}
    - wait_for:
        host: "127.0.0.1/1; touch {}; exit 0; #"
        port: 1
        timeout: 1
"#,
            marker.display()
        ),
    );
    let r = w.mixop(&["run", pb.to_str().unwrap(), "-i", "inventory.yml"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stdout.contains("is not a host name"), "{}", r.all());
    assert_eq!(r.recap("h1").ok, 1, "{}", r.all());
    assert!(!marker.exists(), "the host ran as shell code");
}

/// `no_log` loop items are secrets too: not in the human output, the JSON events or the log.
/// A failed `no_log` task says why its output is hidden, with its module and rc.
#[test]
fn no_log_hides_loop_items_everywhere() {
    let w = Work::new();
    w.local_inventory(1);
    let pb = w.write(
        "pb.yml",
        r#"- hosts: all
  gather_facts: false
  tasks:
    - command: "false {{ item }}"
      loop: [TOPSECRET-123]
      no_log: true
      ignore_errors: true
    - command: "echo {{ item }}"
      loop: [TOPSECRET-456]
      loop_control: {label: "label-{{ item }}"}
      no_log: true
    - shell: "echo TOPSECRET-789; exit 3"
      no_log: true
"#,
    );
    let pb = pb.to_str().unwrap();
    for verbose in [&[][..], &["-v"][..]] {
        let mut args = vec!["run", pb, "-i", "inventory.yml", "--log", "run.log"];
        args.extend_from_slice(verbose);
        let r = w.mixop(&args);
        assert_eq!(r.code, 2, "{}", r.all());
        assert!(!r.all().contains("TOPSECRET"), "{}", r.all());
        assert!(r.stdout.contains("(item=None)"), "{}", r.all());
        assert!(
            r.stdout.contains("'no_log: true' was specified")
                && r.stdout.contains("module=shell, rc=3"),
            "{}",
            r.all()
        );
        let log = std::fs::read_to_string(w.path().join("run.log")).unwrap();
        assert!(log.contains("host_result"), "{log}");
        assert!(!log.contains("TOPSECRET"), "{log}");
    }
    let r = w.mixop(&["run", pb, "-i", "inventory.yml", "--output", "json"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(!r.all().contains("TOPSECRET"), "{}", r.all());
    let items: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e.get("item").is_some())
        .collect();
    assert_eq!(items.len(), 2, "{}", r.stdout);
    assert!(items.iter().all(|e| e["item"].is_null()), "{}", r.stdout);
}

/// Runs mixop with a given umask and working directory.
fn mixop_with(w: &Work, umask: &str, cwd: &std::path::Path, args: &[&str]) -> common::Run {
    let out = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
        .arg(common::mixop_bin())
        .args(args)
        .current_dir(cwd)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let _ = w;
    common::Run::from(out)
}

fn mode_of(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// Fetched files were written 0644 whatever the source's mode and the umask; the `--log` file
/// was 0644 and followed symbolic links.
#[test]
fn fetched_files_and_the_log_are_not_world_readable() {
    use std::os::unix::fs::PermissionsExt;
    let w = Work::new();
    w.local_inventory(1);
    let src = w.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    // Small files come back inline with the probe, large ones through the transport.
    for (name, size, mode) in [
        ("small-private", 10, 0o600),
        ("small-shared", 10, 0o644),
        ("big-private", 200_000, 0o600),
        ("big-shared", 200_000, 0o644),
    ] {
        let p = src.join(name);
        std::fs::write(&p, vec![b'k'; size]).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let pb = w.write(
        "pb.yml",
        &format!(
            r#"- hosts: all
  gather_facts: false
  tasks:
    - fetch: {{src: "{src}/{{{{ item }}}}", dest: "fetched/", flat: true}}
      loop: [small-private, small-shared, big-private, big-shared]
"#,
            src = src.display()
        ),
    );
    let pb = pb.to_str().unwrap();
    let r = mixop_with(
        &w,
        "027",
        w.path(),
        &["run", pb, "-i", "inventory.yml", "--log", "run.log"],
    );
    r.ok();
    let f = w.path().join("fetched");
    assert_eq!(mode_of(&f.join("small-private")), 0o600);
    assert_eq!(mode_of(&f.join("big-private")), 0o600);
    assert_eq!(mode_of(&f.join("small-shared")), 0o640);
    assert_eq!(mode_of(&f.join("big-shared")), 0o640);
    assert_eq!(mode_of(&w.path().join("run.log")), 0o600);
    // No temporary leftovers beside the fetched files.
    assert_eq!(std::fs::read_dir(&f).unwrap().count(), 4);

    // A symbolic link where the log goes is refused, not followed.
    let victim = w.path().join("victim");
    std::fs::write(&victim, "untouched").unwrap();
    std::os::unix::fs::symlink(&victim, w.path().join("link.log")).unwrap();
    let r = mixop_with(
        &w,
        "022",
        w.path(),
        &["run", pb, "-i", "inventory.yml", "--log", "link.log"],
    );
    assert_ne!(r.code, 0, "{}", r.all());
    assert!(r.stderr.contains("symbolic link"), "{}", r.all());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
}

/// fetch built the local path from the path the target reported and checked it against
/// `dest`, not `dest/<host>`: `src: ../otherhost/kubeconfig` overwrote another host's file.
#[test]
fn fetch_stays_in_the_hosts_own_directory() {
    let w = Work::new();
    w.write(
        "inventory.yml",
        "all:\n  hosts:\n    h1:\n      ansible_connection: local\n",
    );
    // The target's working directory is run/, so `../h2/kubeconfig` is this file on it.
    std::fs::create_dir_all(w.path().join("run")).unwrap();
    w.write("h2/kubeconfig", "from h1: evil\n");
    w.write("out/h2/kubeconfig", "h2's own\n");
    let pb = w.write(
        "pb.yml",
        r#"- hosts: all
  gather_facts: false
  tasks:
    - fetch: {src: "../h2/kubeconfig", dest: "out"}
"#,
    );
    let inv = w.path().join("inventory.yml");
    let r = mixop_with(
        &w,
        "022",
        &w.path().join("run"),
        &["run", pb.to_str().unwrap(), "-i", inv.to_str().unwrap()],
    );
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(r.stdout.contains("directory traversal"), "{}", r.all());
    assert_eq!(w.read("h2/kubeconfig"), "h2's own\n");
}

/// Huge durations used to panic (exit 101 with a backtrace). They are input errors now: at load
/// time (exit 3, file:line) when the playbook says them, else a failure of the task or host.
#[test]
fn huge_durations_are_input_errors_not_panics() {
    let w = Work::new();
    w.local_inventory(1);
    let load_time = [
        "    - command: 'true'\n      register: r\n      until: r.rc == 1\n      retries: 1\n      delay: 1e30\n",
        "    - debug: {msg: x}\n      loop: [1, 2]\n      loop_control: {pause: 1e30}\n",
        "    - command: 'true'\n      timeout: 100000000000\n",
    ];
    for task in load_time {
        let pb = w.write(
            "pb.yml",
            &format!("- hosts: all\n  gather_facts: false\n  tasks:\n{task}"),
        );
        let r = w.mixop(&["run", pb.to_str().unwrap(), "-i", "inventory.yml"]);
        assert_eq!(r.code, 3, "{task}\n{}", r.all());
        assert!(r.stderr.contains("pb.yml:"), "{}", r.all());
        assert!(r.stderr.contains("number of seconds"), "{}", r.all());
        assert!(!r.stderr.contains("panicked"), "{}", r.all());
    }
    let run_time = [
        "    - pause: {seconds: 1e30}\n",
        "    - pause: {minutes: 1e30}\n",
        "    - command: 'true'\n      register: r\n      until: r.rc == 1\n      retries: 1\n      delay: \"{{ 10 ** 30 }}\"\n",
        "    - wait_for: {path: /nonexistent, timeout: \"{{ 10 ** 12 }}\"}\n",
    ];
    for task in run_time {
        let pb = w.write(
            "pb.yml",
            &format!("- hosts: all\n  gather_facts: false\n  tasks:\n{task}"),
        );
        let r = w.mixop(&["run", pb.to_str().unwrap(), "-i", "inventory.yml"]);
        assert!(!r.stderr.contains("panicked"), "{}", r.all());
        assert_eq!(r.code, 2, "{task}\n{}", r.all());
        assert!(r.stdout.contains("number of seconds"), "{}", r.all());
    }
    // Connection settings: an input error at the start of the run, before any connection.
    w.write(
        "ssh.yml",
        "all:\n  hosts:\n    s1: {ansible_host: 127.0.0.1, ansible_timeout: 1e30}\n",
    );
    let pb = w.write(
        "pb.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - command: 'true'\n",
    );
    let r = w.mixop(&["run", pb.to_str().unwrap(), "-i", "ssh.yml"]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.stderr
            .contains("`ansible_timeout` must be a number of seconds"),
        "{}",
        r.all()
    );
    let r = w.mixop(&[
        "exec",
        "-i",
        "ssh.yml",
        "all",
        "--command-timeout",
        "99999999999",
        "--",
        "true",
    ]);
    assert_eq!(r.code, 5, "bad usage: {}", r.all());
    assert!(r.stderr.contains("number of seconds"), "{}", r.all());
}

/// Output is capped per stream on every transport (WinRM already was): a command that writes
/// without end fails with a clear message and is stopped, instead of filling the controller's
/// memory.
#[test]
fn endless_output_fails_the_command_and_stops_it() {
    let w = Work::new();
    w.local_inventory(1);
    let pid = w.out().join("pid");
    let pb = w.write(
        "pb.yml",
        &format!(
            "- hosts: all\n  gather_facts: false\n  tasks:\n    - shell: 'echo $$ > {}; exec cat /dev/zero'\n",
            pid.display()
        ),
    );
    let t = std::time::Instant::now();
    let r = w.mixop(&["run", pb.to_str().unwrap(), "-i", "inventory.yml"]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.stdout
            .contains("more than 64 MiB of output on one stream; it was stopped"),
        "{}",
        r.all()
    );
    assert!(t.elapsed() < std::time::Duration::from_secs(60));
    let pid = std::fs::read_to_string(&pid).unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
    let state = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .next();
    assert!(
        matches!(state, None | Some("Z") | Some("X")),
        "the command still runs: {stat}"
    );
}

/// A directory of every tool in PATH but curl and wget, plus `extra` scripts.
fn tool_dir(w: &Work, name: &str, extra: &[(&str, String)]) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = w.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (n, text) in extra {
        let p = dir.join(n);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for src in ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"] {
        let Ok(rd) = std::fs::read_dir(src) else {
            continue;
        };
        for e in rd.flatten() {
            let n = e.file_name();
            if n == "curl" || n == "wget" || dir.join(&n).exists() {
                continue;
            }
            let _ = std::os::unix::fs::symlink(e.path(), dir.join(&n));
        }
    }
    dir
}

/// get_url through wget put the URL, with any `user:pass@`, on wget's command line (visible to
/// every user in /proc). `wget` here is a wrapper that records its arguments.
#[test]
fn get_url_keeps_url_credentials_off_wget_command_line() {
    use std::io::{Read, Write};
    let w = Work::new();
    w.local_inventory(1);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let mut requests = Vec::new();
        for _ in 0..1 {
            let Ok((mut s, _)) = listener.accept() else {
                break;
            };
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            requests.push(String::from_utf8_lossy(&req).into_owned());
            let body = b"downloaded\n";
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(body);
        }
        requests
    });
    let argv_log = w.path().join("wget-argv");
    let real_wget = ["/usr/bin/wget", "/bin/wget", "/usr/local/bin/wget"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("wget is installed (scripts/setup.sh)");
    let tools = tool_dir(
        &w,
        "tools",
        &[(
            "wget",
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$@\" >> '{}'\nexec {real_wget} \"$@\"\n",
                argv_log.display()
            ),
        )],
    );
    let pb = w.write(
        "pb.yml",
        &format!(
            r#"- hosts: all
  gather_facts: false
  tasks:
    - get_url:
        url: "http://alice:Top-Secret-9@127.0.0.1:{port}/file.txt"
        dest: "@OUT@/file.txt"
        mode: "0600"
      environment: {{PATH: "{}"}}
"#,
            tools.display()
        ),
    );
    let r = w.mixop(&["run", pb.to_str().unwrap(), "-i", "inventory.yml"]);
    r.ok();
    assert_eq!(w.read("file.txt"), "downloaded\n");
    let argv = std::fs::read_to_string(&argv_log).expect("the wget wrapper ran");
    assert!(!argv.contains("Top-Secret-9"), "{argv}");
    assert!(
        !argv.contains("127.0.0.1"),
        "the URL is not an argument: {argv}"
    );
    assert!(!r.all().contains("Top-Secret-9"), "{}", r.all());
    let requests = server.join().unwrap();
    assert!(requests[0].starts_with("GET /file.txt "), "{requests:?}");
}

/// A `mode: "0600"` file was 0644 for a moment in its destination directory: the install
/// script set the default mode, then the asked-for one. `chmod` here records the mode of the
/// file after every call.
#[test]
fn asked_for_modes_apply_before_the_file_is_in_place() {
    let w = Work::new();
    w.local_inventory(1);
    let log = w.path().join("modes");
    let real_chmod = ["/usr/bin/chmod", "/bin/chmod"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap();
    let tools = tool_dir(
        &w,
        "tools",
        &[(
            "chmod",
            format!(
                "#!/bin/sh\n{real_chmod} \"$@\"; rc=$?\nfor last; do :; done\nstat -c '%a %n' -- \"$last\" >> '{}'\nexit $rc\n",
                log.display()
            ),
        )],
    );
    std::fs::write(w.out().join("old"), "old\n").unwrap();
    let pb = w.write(
        "pb.yml",
        &format!(
            r#"- hosts: all
  gather_facts: false
  tasks:
    - copy: {{content: "secret\n", dest: "@OUT@/new", mode: "0600"}}
      environment: {{PATH: "{t}"}}
    - copy: {{content: "secret\n", dest: "@OUT@/old", mode: "0600"}}
      environment: {{PATH: "{t}"}}
"#,
            t = tools.display()
        ),
    );
    let r = w.mixop(&["run", pb.to_str().unwrap(), "-i", "inventory.yml"]);
    r.ok();
    assert_eq!(r.recap("h1").changed, 2, "{}", r.all());
    let modes = std::fs::read_to_string(&log).expect("the chmod wrapper ran");
    assert!(modes.lines().count() >= 2, "{modes}");
    assert!(modes.lines().all(|l| l.starts_with("600 ")), "{modes}");
    assert_eq!(mode_of(&w.out().join("new")), 0o600);
    assert_eq!(mode_of(&w.out().join("old")), 0o600);
}
