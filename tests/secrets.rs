//! Known secrets planted in every path a secret takes through a run — a `no_log` result, a
//! variable registered from it, a `no_log` loop item, a `no_log` fact read through `hostvars`
//! (the node token pattern), the SSH and sudo password, a vault value, an error message quoting a
//! secret, a `--diff` of a file holding one — and every output grepped for every secret: human
//! output at -vvv, JSON events, the `--log` file, `artifacts/`, and the peers' own records (the
//! lab's sshd at LogLevel DEBUG3, which logs the command lines it runs, and the WinRM peer's
//! record of every command line, argument, environment and script it was handed).
//! Needs root (the lab) and the test virtualenv (the WinRM peer, ansible-vault).

mod common;

use common::{Lab, WinrmPeer, Work, venv};

const NOLOG_OUT: &str = "NoLogOut-5150";
const LOOP_ITEM: &str = "LoopItem-3141";
const VAULT: &str = "VaultSecret-2718";
const PASSWORD: &str = "labpass";
const WIN_OUT: &str = "WinSecret-1618";
/// What `set_fact` makes of NOLOG_OUT: `NodeToken-13-K10xyz`.
const TOKEN: &str = "NodeToken-13-K10xyz";
const SECRETS: &[&str] = &[NOLOG_OUT, LOOP_ITEM, VAULT, PASSWORD, WIN_OUT, TOKEN];

fn assert_clean(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} holds the secret {s}:\n{text}");
    }
}

/// `ansible-vault encrypt_string`, its body indented by `indent`.
fn vault_value(w: &Work, value: &str, indent: usize) -> String {
    w.write("vault-pw", "vault-pass-for-test\n");
    let out = std::process::Command::new(venv().join("bin/ansible-vault"))
        .current_dir(w.path())
        .env("ANSIBLE_HOME", w.path().join("ansible-home"))
        .args(["encrypt_string", "--vault-password-file", "vault-pw", value])
        .output()
        .expect("run ansible-vault");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let pad = " ".repeat(indent);
    let body: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "!vault |")
        .map(|l| format!("{pad}{l}"))
        .collect();
    format!("!vault |\n{}", body.join("\n"))
}

fn files_under(dir: &std::path::Path, found: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, found);
        } else {
            found.push(p);
        }
    }
}

#[test]
fn planted_secrets_reach_no_output_and_no_peer_log() {
    let lab = Lab::up(1, &[]);
    // sshd logs each command line it is asked to run at DEBUG3 (the first LogLevel wins).
    lab.exec(
        "lab1",
        "sed -i '1i LogLevel DEBUG3' /etc/ssh/sshd_config && : > /var/log/sshd.log",
    );
    lab.ctl(&["stop", "lab1"]);
    lab.ctl(&["start", "lab1"]);
    let sim = tempfile::tempdir().unwrap();
    let peer = WinrmPeer::start(&["--mode", "sim", "--state-dir", sim.path().to_str().unwrap()]);

    let w = Work::new();
    let vault = vault_value(&w, VAULT, 6);
    w.write(
        "inventory.yml",
        &format!(
            "all:\n  vars:\n    vault_secret: {vault}\n  children:\n    linux:\n      hosts:\n        lab1: {{ansible_host: {a}, ansible_user: labuser, ansible_password: {PASSWORD}, ansible_become_password: {PASSWORD}, mixop_known_hosts_file: {kh}}}\n    controller:\n      hosts:\n        h1: {{ansible_connection: local}}\n    windows:\n      hosts:\n{win}",
            a = lab.addr("lab1"),
            kh = lab.known_hosts().display(),
            win = peer.inventory_host("win1"),
        ),
    );
    w.write(
        "secret.j2",
        "token={{ hostvars['lab1'].node_token }}\nvault={{ vault_secret }}\n",
    );
    let out = w.out();
    let pb = w.write(
        "pb.yml",
        &format!(
            r#"- hosts: lab1
  gather_facts: false
  become: true
  tasks:
    - name: make a secret on the host
      shell: "echo {NOLOG_OUT}"
      register: made
      no_log: true
    - name: keep a token made of it as a fact
      set_fact:
        node_token: "NodeToken-{{{{ made.stdout | length }}}}-K10xyz"
      no_log: true
    - name: a registered secret in a file
      copy: {{content: "token={{{{ made.stdout }}}}\n", dest: /tmp/token.txt, mode: "0600"}}
    - name: a secret loop item, as a command's input
      command: cat
      args: {{stdin: "{{{{ item }}}}"}}
      loop: ["{LOOP_ITEM}"]
      no_log: true
    - name: a vault value on the host
      copy: {{content: "{{{{ vault_secret }}}}\n", dest: /tmp/vault.txt, mode: "0600"}}
    - name: a hidden task that fails names what is missing
      copy: {{src: "missing-{{{{ 'file' }}}}.txt", dest: "/tmp/{{{{ made.stdout }}}}"}}
      no_log: true
      ignore_errors: true

- hosts: h1
  gather_facts: false
  tasks:
    - name: the token through hostvars and the vault value, with --diff
      template: {{src: secret.j2, dest: "{out}/rendered", mode: "0600"}}
    - name: an error that quotes a secret
      debug: {{msg: "{{{{ lookup('file', '/nonexistent/' ~ hostvars['lab1'].node_token) }}}}"}}
      ignore_errors: true
    - name: a failed assertion that quotes a secret
      assert:
        that: false
        fail_msg: "the vault said {{{{ vault_secret }}}}"
      ignore_errors: true

- hosts: win1
  gather_facts: false
  tasks:
    - win_shell: "Write-Output {WIN_OUT}"
      register: win_out
      no_log: true
    - win_copy: {{content: "{{{{ win_out.stdout | trim }}}} {{{{ vault_secret }}}}", dest: 'C:\secret.txt'}}
"#,
            out = out.display(),
        ),
    );
    let pb = pb.to_str().unwrap();
    let base = [
        "run",
        pb,
        "-i",
        "inventory.yml",
        "--vault-password-file",
        "vault-pw",
        "--diff",
    ];

    let mut args = base.to_vec();
    args.extend(["-vvv", "--log", "run.log"]);
    let r = w.mixop(&args);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_clean("the -vvv output", &r.all());
    // The secrets did their work: nothing was hidden from the hosts.
    assert_eq!(
        w.read("rendered"),
        format!("token={TOKEN}\nvault={VAULT}\n")
    );
    assert_eq!(
        lab.exec("lab1", "cat /tmp/token.txt /tmp/vault.txt"),
        format!("token={NOLOG_OUT}\n{VAULT}\n")
    );
    // A hidden failure still says what went wrong and why the rest is hidden.
    assert!(
        r.stdout.contains("missing-file.txt")
            && r.stdout
                .contains("'no_log: true' was specified for this result")
            && r.stdout.contains("module=copy"),
        "{}",
        r.stdout
    );
    // Masked, not dropped: the diff and the errors are there.
    assert!(r.stdout.contains("+token=********"), "{}", r.stdout);
    assert!(r.stdout.contains("the vault said ********"), "{}", r.stdout);
    let log = std::fs::read_to_string(w.path().join("run.log")).unwrap();
    assert!(log.contains("host_result"), "{log}");
    assert_clean("the --log file", &log);

    let mut args = base.to_vec();
    args.extend(["--output", "json"]);
    let r = w.mixop(&args);
    assert_eq!(r.code, 0, "{}", r.all());
    assert!(r.stdout.lines().count() > 10, "{}", r.stdout);
    assert_clean("the JSON events", &r.all());

    let mut files = Vec::new();
    files_under(&w.path().join("artifacts"), &mut files);
    for f in files {
        assert_clean(
            &f.display().to_string(),
            &String::from_utf8_lossy(&std::fs::read(&f).unwrap()),
        );
    }

    // The peers: nothing secret on a command line they were handed.
    let sshd = lab.exec("lab1", "cat /var/log/sshd.log");
    assert!(sshd.contains("debug3"), "sshd logs at DEBUG3: {sshd}");
    assert_clean("the lab's sshd log", &sshd);
    let records = peer.records();
    assert!(records.len() >= 2, "{records:?}");
    for rec in &records {
        for key in [
            "command",
            "arguments",
            "command_line",
            "environment",
            "argv",
        ] {
            assert_clean(&format!("the WinRM peer's {key}"), &rec[key].to_string());
        }
        if rec["script_source"] != "stdin" {
            assert_clean(
                "a script on the WinRM command line",
                &rec["script"].to_string(),
            );
        }
    }
}
