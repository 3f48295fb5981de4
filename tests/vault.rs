//! Ansible Vault end to end: files and values encrypted by `ansible-vault` itself (from the test
//! virtualenv, at test time), read by `mixop check`/`run` on `local` hosts and compared with
//! ansible-playbook's run on the same files; wrong and missing passwords, altered files, the
//! password sources, and that no decrypted value is ever printed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Work, parse_recap, venv};

const GROUP_SECRET: &str = "grp-s3cret-7731";
const HOST_SECRET: &str = "host-s3cret-1984";
const FILE_SECRET: &str = "file-s3cret-2718";
const PLAY_SECRET: &str = "play-s3cret-1618";
const TOKEN: &str = "tok-s3cret-4242";
const CONF_LINE: &str = "conf-s3cret-line-1414";
const ALL_SECRETS: [&str; 6] = [
    GROUP_SECRET,
    HOST_SECRET,
    FILE_SECRET,
    PLAY_SECRET,
    TOKEN,
    CONF_LINE,
];

/// Runs a tool of the virtualenv with Ansible kept inside the workspace.
fn ansible(w: &Work, tool: &str) -> Command {
    let home = w.path().join("ansible-home");
    let mut c = Command::new(venv().join("bin").join(tool));
    c.current_dir(w.path())
        .env("ANSIBLE_HOME", &home)
        .env("ANSIBLE_LOCAL_TEMP", home.join("tmp"))
        .env("ANSIBLE_REMOTE_TEMP", home.join("rtmp"))
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
        .env("ANSIBLE_DEPRECATION_WARNINGS", "0")
        .env("ANSIBLE_LOCALHOST_WARNING", "0")
        .env_remove("ANSIBLE_VAULT_PASSWORD_FILE");
    c
}

/// The password files: `pw` (label `default`) and `prodpw` (label `prod`).
fn passwords(w: &Work) {
    w.write("pw", "hunter2\n");
    w.write("prodpw", "correct horse battery\n");
}

/// `ansible-vault`'s way of naming a password: `prod` → format 1.2 with a vault id.
fn id_args(id: &str) -> Vec<String> {
    match id {
        "prod" => vec!["--vault-id".into(), "prod@prodpw".into()],
        _ => vec!["--vault-password-file".into(), "pw".into()],
    }
}

/// Encrypts workspace files in place with `ansible-vault encrypt`.
fn encrypt_files(w: &Work, id: &str, rels: &[&str]) {
    let out = ansible(w, "ansible-vault")
        .arg("encrypt")
        .args(id_args(id))
        .args(rels)
        .output()
        .expect("run ansible-vault");
    assert!(
        out.status.success(),
        "ansible-vault encrypt: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for r in rels {
        let text = std::fs::read_to_string(w.path().join(r)).unwrap();
        let header = if id == "prod" {
            "$ANSIBLE_VAULT;1.2;AES256;prod\n"
        } else {
            "$ANSIBLE_VAULT;1.1;AES256\n"
        };
        assert!(text.starts_with(header), "{r}: {text}");
    }
}

/// `ansible-vault encrypt_string`: a `!vault |` block, its lines indented by `indent`.
fn encrypt_string(w: &Work, id: &str, value: &str, indent: usize) -> String {
    let out = ansible(w, "ansible-vault")
        .arg("encrypt_string")
        .args(id_args(id))
        .arg(value)
        .output()
        .expect("run ansible-vault");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    assert_eq!(lines.next(), Some("!vault |"), "{text}");
    let pad = " ".repeat(indent);
    let body: Vec<String> = lines.map(|l| format!("{pad}{l}")).collect();
    format!("!vault |\n{}", body.join("\n"))
}

/// A workspace with a secret in every place Ansible decrypts: a whole-file group_vars file
/// (1.1), an inline host variable in the inventory (1.2, `prod`), a whole-file vars file (1.2),
/// an inline play variable (1.1), a `lookup('file')` file, a `copy` source and a `template`
/// source. Both tools run here, each writing under the `out` directory it is given.
fn scene() -> Work {
    let w = Work::new();
    passwords(&w);
    let python = venv().join("bin/python");
    let host_secret = encrypt_string(&w, "prod", HOST_SECRET, 10);
    let mut inv = String::from("all:\n  hosts:\n");
    for h in ["h1", "h2"] {
        inv.push_str(&format!(
            "    {h}:\n      ansible_connection: local\n      ansible_python_interpreter: {}\n      host_secret: {host_secret}\n",
            python.display()
        ));
    }
    w.write("inventory.yml", &inv);
    w.write(
        "group_vars/all.yml",
        &format!("group_secret: {GROUP_SECRET}\nvault_port: 8443\n"),
    );
    w.write("vault-vars.yml", &format!("file_secret: {FILE_SECRET}\n"));
    w.write("files/token.txt", &format!("{TOKEN}\n"));
    w.write("files/secret.conf", &format!("[auth]\n{CONF_LINE}\n"));
    w.write("files/confdir/inner.txt", &format!("inner {TOKEN}\n"));
    w.write("files/confdir/plain.txt", "not encrypted\n");
    w.write(
        "templates/motd.j2",
        "host {{ inventory_hostname }} uses {{ file_secret }}\n",
    );
    encrypt_files(
        &w,
        "default",
        &[
            "group_vars/all.yml",
            "files/token.txt",
            "files/secret.conf",
            "files/confdir/inner.txt",
            "templates/motd.j2",
        ],
    );
    encrypt_files(&w, "prod", &["vault-vars.yml"]);
    let play_secret = encrypt_string(&w, "default", PLAY_SECRET, 8);
    w.write(
        "pb.yml",
        &format!(
            r#"- hosts: all
  gather_facts: false
  vars:
    play_secret: {play_secret}
  vars_files:
    - vault-vars.yml
  tasks:
    - name: values from every place
      copy:
        dest: "{{{{ out }}}}/{{{{ inventory_hostname }}}}-values.txt"
        content: "{{{{ play_secret }}}}|{{{{ file_secret }}}}|{{{{ group_secret }}}}|{{{{ host_secret }}}}|{{{{ lookup('file', 'token.txt') }}}}|{{{{ vault_port + 1 }}}}\n"
    - name: an encrypted copy source
      copy:
        src: secret.conf
        dest: "{{{{ out }}}}/{{{{ inventory_hostname }}}}-secret.conf"
    - name: a directory holding an encrypted file
      copy:
        src: confdir/
        dest: "{{{{ out }}}}/{{{{ inventory_hostname }}}}-dir/"
    - name: an encrypted template
      template:
        src: motd.j2
        dest: "{{{{ out }}}}/{{{{ inventory_hostname }}}}-motd"
"#
        ),
    );
    w
}

const BOTH_PASSWORDS: [&str; 4] = ["--vault-password-file", "pw", "--vault-id", "prod@prodpw"];

/// Every file under `dir` (relative path, content), sorted.
fn tree(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().display().to_string();
                out.push((rel, std::fs::read_to_string(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

fn out_dir(w: &Work, name: &str) -> PathBuf {
    let d = w.path().join(name);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn decrypts_everything_ansible_does_with_the_same_result() {
    let w = scene();
    let a_out = out_dir(&w, "out-ansible");
    let a = ansible(&w, "ansible-playbook")
        .args(["-i", "inventory.yml", "pb.yml"])
        .args(BOTH_PASSWORDS)
        .arg("-e")
        .arg(format!("out={}", a_out.display()))
        .env("ANSIBLE_FORKS", "10")
        .output()
        .expect("run ansible-playbook");
    let a_stdout = String::from_utf8_lossy(&a.stdout).into_owned();
    assert_eq!(
        a.status.code(),
        Some(0),
        "ansible failed:\n{a_stdout}\n{}",
        String::from_utf8_lossy(&a.stderr)
    );

    let m_out = out_dir(&w, "out-mixop");
    let out_arg = format!("out={}", m_out.display());
    let mut args = vec!["check", "pb.yml", "-i", "inventory.yml"];
    args.extend(BOTH_PASSWORDS);
    w.mixop(&args).ok();
    args[0] = "run";
    args.extend(["-e", out_arg.as_str()]);
    let r = w.mixop(&args);
    r.ok();
    for h in ["h1", "h2"] {
        assert_eq!(
            parse_recap(&r.stdout, h),
            parse_recap(&a_stdout, h),
            "recap of {h}\n--- ansible\n{a_stdout}\n--- mixop\n{}",
            r.all()
        );
    }
    let files = tree(&m_out);
    assert_eq!(files, tree(&a_out), "files differ");
    let file = |rel: &str| {
        files
            .iter()
            .find(|(r, _)| r == rel)
            .map(|(_, c)| c.as_str())
    };
    assert_eq!(
        file("h1-values.txt"),
        Some(
            format!("{PLAY_SECRET}|{FILE_SECRET}|{GROUP_SECRET}|{HOST_SECRET}|{TOKEN}|8444\n")
                .as_str()
        )
    );
    assert_eq!(
        file("h1-motd"),
        Some(format!("host h1 uses {FILE_SECRET}\n").as_str())
    );
    assert_eq!(
        file("h1-secret.conf"),
        Some(format!("[auth]\n{CONF_LINE}\n").as_str())
    );
    assert_eq!(
        file("h1-dir/inner.txt"),
        Some(format!("inner {TOKEN}\n").as_str())
    );
    assert_eq!(file("h1-dir/plain.txt"), Some("not encrypted\n"));
    // A second run changes nothing: the decrypted sources compare equal to what was written.
    let again = w.mixop(&args);
    again.ok();
    assert_eq!(again.recap("h1").changed, 0, "{}", again.all());
}

fn assert_no_secret(what: &str, text: &str) {
    for s in ALL_SECRETS {
        assert!(!text.contains(s), "{s} printed in {what}:\n{text}");
    }
}

#[test]
fn decrypted_values_are_never_printed() {
    let w = scene();
    let out = out_dir(&w, "out");
    w.write(
        "leak.yml",
        &r#"- hosts: all
  gather_facts: false
  vars_files: [vault-vars.yml]
  tasks:
    - debug: var=host_secret
    - debug: {msg: "token {{ lookup('file', 'token.txt') }} and {{ group_secret }}"}
    - command: echo {{ file_secret }}
      register: echoed
    - copy: {src: secret.conf, dest: "@OUT@/secret.conf"}
    - fail: {msg: "failing with {{ host_secret }}"}
      when: inventory_hostname == 'h1'
"#
        .replace("@OUT@", &out.display().to_string()),
    );
    let log = w.path().join("run.log");
    for output in ["human", "json"] {
        let mut args = vec![
            "run",
            "leak.yml",
            "-i",
            "inventory.yml",
            "--diff",
            "-vvv",
            "--output",
            output,
            "--log",
            log.to_str().unwrap(),
        ];
        args.extend(BOTH_PASSWORDS);
        let r = w.mixop(&args);
        assert_eq!(r.code, 2, "{}", r.all());
        assert_no_secret(output, &r.all());
        // The values were there to print: they show as the mask.
        assert!(r.stdout.contains("********"), "{}", r.all());
    }
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("host_result"), "{logged}");
    assert_no_secret("the log", &logged);

    let mut args = vec!["inventory", "-i", "inventory.yml", "--list"];
    args.extend(BOTH_PASSWORDS);
    let r = w.mixop(&args);
    r.ok();
    assert_no_secret("inventory --list", &r.all());
    assert!(
        r.stdout.contains("\"host_secret\": \"********\""),
        "{}",
        r.all()
    );

    // A diagnostic about a decrypted file names the place without quoting its text.
    w.write(
        "bad-vars.yml",
        &format!("good: 1\nbad: !!int {FILE_SECRET}\n"),
    );
    encrypt_files(&w, "default", &["bad-vars.yml"]);
    w.write(
        "bad.yml",
        "- hosts: all\n  gather_facts: false\n  vars_files: [bad-vars.yml]\n  tasks: []\n",
    );
    let mut args = vec!["check", "bad.yml", "-i", "inventory.yml"];
    args.extend(BOTH_PASSWORDS);
    let r = w.mixop(&args);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(r.stderr.contains("bad-vars.yml:2:6"), "{}", r.all());
    assert!(!r.stderr.contains("good: 1"), "{}", r.all());
    assert_no_secret("a diagnostic", &r.all());
}

/// A playbook whose first task leaves a marker: a run that stops before any host is contacted
/// leaves none. Its inventory, `local.yml`, holds no vault value itself (the group_vars file
/// beside it does).
fn marker_playbook(w: &Work, extra: &str) -> PathBuf {
    w.write(
        "local.yml",
        "all:\n  hosts:\n    h1:\n      ansible_connection: local\n",
    );
    let out = w.out();
    w.write(
        "marker.yml",
        &format!(
            "- hosts: all\n  gather_facts: false\n{extra}  tasks:\n    - copy: {{content: touched, dest: \"{}/marker-{{{{ inventory_hostname }}}}\"}}\n    - copy: {{src: secret.conf, dest: \"{}/conf\"}}\n",
            out.display(),
            out.display()
        ),
    )
}

#[test]
fn a_wrong_or_missing_password_stops_before_any_host() {
    let w = scene();
    w.write("wrongpw", "not it\n");
    marker_playbook(&w, "  vars_files: [vault-vars.yml]\n");
    for cmd in ["check", "run"] {
        // The `prod` password is wrong: the vars file (1.2, vault id prod) cannot be read.
        let r = w.mixop(&[
            cmd,
            "marker.yml",
            "-i",
            "local.yml",
            "--vault-password-file",
            "pw",
            "--vault-id",
            "prod@wrongpw",
        ]);
        assert_eq!(r.code, 3, "{cmd}: {}", r.all());
        assert!(
            r.stderr.contains("cannot decrypt")
                && r.stderr.contains("vault-vars.yml (vault id `prod`)")
                && r.stderr.contains("tried `prod`, `default`"),
            "{cmd}: {}",
            r.all()
        );
        // No password at all.
        let r = w.mixop(&[cmd, "marker.yml", "-i", "local.yml"]);
        assert_eq!(r.code, 3, "{cmd}: {}", r.all());
        assert!(
            r.stderr.contains("is encrypted with Ansible Vault")
                && r.stderr.contains("no vault password was given"),
            "{cmd}: {}",
            r.all()
        );
    }
    // The `default` password is wrong: the group_vars file, and the copy source, cannot be read.
    let r = w.mixop(&[
        "run",
        "marker.yml",
        "-i",
        "local.yml",
        "--vault-password-file",
        "wrongpw",
        "--vault-id",
        "prod@prodpw",
    ]);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(r.stderr.contains("group_vars/all.yml"), "{}", r.all());
    assert!(
        std::fs::read_dir(w.out()).unwrap().next().is_none(),
        "a host was touched"
    );
}

/// Alters one byte of the ciphertext of an envelope, keeping it well-formed.
fn tamper(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let (header, body) = text.split_once('\n').unwrap();
    let hex_body: String = body.split_whitespace().collect();
    let inner = String::from_utf8(hex::decode(hex_body).unwrap()).unwrap();
    let mut parts: Vec<String> = inner.splitn(3, '\n').map(str::to_string).collect();
    let flipped = if parts[2].starts_with('0') { "1" } else { "0" };
    parts[2].replace_range(0..1, flipped);
    let outer = hex::encode(parts.join("\n"));
    let lines: Vec<&str> = outer
        .as_bytes()
        .chunks(80)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    std::fs::write(path, format!("{header}\n{}\n", lines.join("\n"))).unwrap();
}

#[test]
fn an_altered_file_fails_its_hmac_check() {
    let w = scene();
    marker_playbook(&w, "");
    tamper(&w.path().join("files/secret.conf"));
    let mut args = vec!["run", "marker.yml", "-i", "local.yml"];
    args.extend(BOTH_PASSWORDS);
    let r = w.mixop(&args);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(
        r.stderr
            .contains("files/secret.conf: no vault password given fits")
            && r.stderr.contains("its HMAC does not match"),
        "{}",
        r.all()
    );
    assert!(std::fs::read_dir(w.out()).unwrap().next().is_none());
    // ansible-vault agrees the file is damaged.
    let a = ansible(&w, "ansible-vault")
        .args(["view", "--vault-password-file", "pw", "files/secret.conf"])
        .output()
        .unwrap();
    assert!(!a.status.success());
}

#[test]
fn password_scripts_the_environment_and_the_terminal() {
    use std::os::unix::fs::PermissionsExt;
    let w = scene();
    let script = w.write("pw.sh", "#!/bin/sh\necho hunter2\n");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
    let client = w.write(
        "vault-client.sh",
        "#!/bin/sh\n[ \"$1 $2\" = \"--vault-id prod\" ] && { echo 'correct horse battery'; exit 0; }\nexit 2\n",
    );
    std::fs::set_permissions(&client, std::fs::Permissions::from_mode(0o700)).unwrap();
    // ANSIBLE_VAULT_PASSWORD_FILE names the `default` password (here a script).
    let r = common::Run::from(
        Command::new(common::mixop_bin())
            .args(["check", "pb.yml", "-i", "inventory.yml", "--vault-id"])
            .arg(format!("prod@{}", client.display()))
            .current_dir(w.path())
            .env("ANSIBLE_VAULT_PASSWORD_FILE", &script)
            .output()
            .unwrap(),
    );
    r.ok();
    // Asking needs a terminal: without one, a clear usage error.
    let r = w.mixop(&["check", "pb.yml", "-i", "inventory.yml", "--ask-vault-pass"]);
    assert_eq!(r.code, 5, "{}", r.all());
    assert!(r.stderr.contains("no terminal to ask on"), "{}", r.all());
    // On a terminal, both prompts are answered and the run goes on.
    let answer = r#"
import os, pty, sys, termios, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
def answer(text):
    # Type only once echo is off, as a person at the prompt would.
    while termios.tcgetattr(fd)[3] & termios.ECHO and time.time() < deadline:
        time.sleep(0.01)
    os.write(fd, text)
seen, answered = b"", 0
deadline = time.time() + 60
while time.time() < deadline:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    seen += chunk
    if answered == 0 and b"Vault password (prod): " in seen:
        answer(b"correct horse battery\n"); answered = 1
    if answered == 1 and b"Vault password: " in seen:
        answer(b"hunter2\n"); answered = 2
_, status = os.waitpid(pid, 0)
sys.stdout.write(seen.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let out = common::venv_python()
        .args(["-c", answer])
        .arg(common::mixop_bin())
        .args([
            "check",
            "pb.yml",
            "-i",
            "inventory.yml",
            "--vault-id",
            "prod@prompt",
            "-J",
        ])
        .current_dir(w.path())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("pb.yml: ok"), "{text}");
    // What was typed is not echoed.
    assert!(
        !text.contains("hunter2") && !text.contains("correct horse"),
        "{text}"
    );
}

#[test]
fn whole_file_vault_inventories_ini_and_yaml() {
    let w = Work::new();
    passwords(&w);
    w.write(
        "hosts.ini",
        "[web]\nh1 ansible_connection=local db_pass=ini-s3cret-5150\n",
    );
    w.write(
        "inv.yml",
        "all:\n  hosts:\n    h2:\n      ansible_connection: local\n      api_key: yml-s3cret-8086\n",
    );
    encrypt_files(&w, "default", &["hosts.ini", "inv.yml"]);
    let r = w.mixop(&[
        "inventory",
        "-i",
        "hosts.ini",
        "-i",
        "inv.yml",
        "--list",
        "--vault-password-file",
        "pw",
    ]);
    r.ok();
    assert!(
        r.stdout.contains("\"db_pass\": \"********\""),
        "{}",
        r.all()
    );
    assert!(
        r.stdout.contains("\"api_key\": \"********\""),
        "{}",
        r.all()
    );
    assert!(!r.all().contains("s3cret"), "{}", r.all());
    let pb = w.write(
        "pb.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - copy: {content: \"{{ db_pass if db_pass is defined else api_key }}\", dest: \"@OUT@/{{ inventory_hostname }}\"}\n",
    );
    let r = w.mixop(&[
        "run",
        pb.to_str().unwrap(),
        "-i",
        "hosts.ini",
        "-i",
        "inv.yml",
        "--vault-password-file",
        "pw",
    ]);
    r.ok();
    assert_eq!(w.read("h1"), "ini-s3cret-5150");
    assert_eq!(w.read("h2"), "yml-s3cret-8086");
}

/// A vault-encrypted `script` runs as its plaintext (Ansible's `decrypt` default).
#[test]
fn an_encrypted_script_runs_as_its_plaintext() {
    let w = Work::new();
    passwords(&w);
    w.local_inventory(1);
    w.write(
        "files/secret.sh",
        "#!/bin/sh\necho \"ran $1\" > @OUT@/ran\n",
    );
    encrypt_files(&w, "default", &["files/secret.sh"]);
    let pb = w.write(
        "pb.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - script: secret.sh decrypted\n",
    );
    let r = w.mixop(&[
        "run",
        pb.to_str().unwrap(),
        "-i",
        "inventory.yml",
        "--vault-password-file",
        "pw",
    ]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(w.read("ran"), "ran decrypted\n");
}
