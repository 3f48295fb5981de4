//! ansible-playbook's login options on the command line: `-u`, `--private-key`, `-k`, `-b`,
//! `--become-user`, `-K`, against the lab's real sshd and sudo. Passwords are typed on a real
//! terminal (a pty made by util-linux `script`), as a user types them.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::{Lab, Run, Work};

/// An inventory with the lab hosts' addresses and host keys only: who logs in, with what,
/// comes from the command line.
fn bare_inventory(w: &Work, lab: &Lab, hosts: &[&str], extra: &str) {
    let mut inv = String::from("[lab]\n");
    for h in hosts {
        inv.push_str(&format!("{h} ansible_host={}\n", lab.addr(h)));
    }
    inv.push_str(&format!(
        "[lab:vars]\nmixop_known_hosts_file={}\n{extra}",
        lab.known_hosts().display()
    ));
    w.write("hosts", &inv);
}

const WHO: &str = r#"
- hosts: lab
  gather_facts: false
  tasks:
    - command: id -un
      register: who
      changed_when: false
    - debug:
        msg: "who={{ who.stdout }}"
"#;

/// mixop with HOME in the workspace (no key of the machine's user is found by accident).
fn mixop(w: &Work, args: &[&str]) -> Run {
    let out = Command::new(common::mixop_bin())
        .args(args)
        .current_dir(w.path())
        .env("NO_COLOR", "1")
        .env("HOME", w.path())
        .env_remove("ANSIBLE_CONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("run mixop");
    Run::from(out)
}

/// mixop on a terminal of its own, `input` typed into it; returns the exit code and everything
/// the terminal showed (prompts, stdout and stderr together). The terminal does not echo what is
/// typed (`-E never`), so a password in the text came from mixop.
fn mixop_on_tty(w: &Work, args: &[&str], input: &str) -> (i32, String) {
    let line = std::iter::once(common::mixop_bin().display().to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new("script")
        .args(["-q", "-E", "never", "-e", "-c", &line, "/dev/null"])
        .current_dir(w.path())
        .env("NO_COLOR", "1")
        .env("HOME", w.path())
        .env_remove("ANSIBLE_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run script(1) from util-linux");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn user_and_private_key_from_the_command_line_rank_below_play_and_host() {
    let lab = Lab::up(2, &[]);
    let w = Work::new();
    bare_inventory(&w, &lab, &["lab1", "lab2"], "");
    w.write("who.yml", WHO);
    let key = lab.key().display().to_string();
    let r = mixop(
        &w,
        &[
            "run",
            "who.yml",
            "-i",
            "hosts",
            "-u",
            "labuser",
            "--private-key",
            &key,
        ],
    );
    r.ok();
    assert_eq!(r.stdout.matches("who=labuser").count(), 2, "{}", r.all());

    // Without the key there is no way in: the option is what logged in.
    let r = mixop(&w, &["run", "who.yml", "-i", "hosts", "-u", "labuser"]);
    assert_eq!(r.code, 4, "unreachable without a key: {}", r.all());

    // A host's ansible_user wins over -u; a play's remote_user wins over -u too.
    bare_inventory(&w, &lab, &["lab1", "lab2"], "");
    let inv = std::fs::read_to_string(w.path().join("hosts"))
        .unwrap()
        .replace("lab2 ansible_host", "lab2 ansible_user=nopass ansible_host");
    w.write("hosts", &inv);
    let r = mixop(
        &w,
        &[
            "run",
            "who.yml",
            "-i",
            "hosts",
            "-u",
            "labuser",
            "--key-file",
            &key,
        ],
    );
    r.ok();
    assert!(r.stdout.contains("who=labuser"), "{}", r.all());
    assert!(r.stdout.contains("who=nopass"), "{}", r.all());
    w.write(
        "play_user.yml",
        &WHO.replace(
            "  gather_facts: false\n",
            "  gather_facts: false\n  remote_user: root\n",
        ),
    );
    bare_inventory(&w, &lab, &["lab1"], "");
    let r = mixop(
        &w,
        &[
            "run",
            "play_user.yml",
            "-i",
            "hosts",
            "-u",
            "labuser",
            "--private-key",
            &key,
        ],
    );
    r.ok();
    assert!(r.stdout.contains("who=root"), "{}", r.all());
}

#[test]
fn become_options_from_the_command_line_and_their_precedence() {
    let lab = Lab::up(1, &[]);
    let w = Work::new();
    bare_inventory(&w, &lab, &["lab1"], "");
    w.write("who.yml", WHO);
    let key = lab.key().display().to_string();
    let base = [
        "run",
        "who.yml",
        "-i",
        "hosts",
        "-u",
        "nopass",
        "--private-key",
        &key,
    ];

    let with = |extra: &[&str]| {
        let mut a: Vec<&str> = base.to_vec();
        a.extend_from_slice(extra);
        mixop(&w, &a)
    };
    let r = with(&["-b"]);
    r.ok();
    assert!(r.stdout.contains("who=root"), "{}", r.all());
    let r = with(&["--become", "--become-user", "labuser"]);
    r.ok();
    assert!(r.stdout.contains("who=labuser"), "{}", r.all());
    // --become-user alone does not turn become on (as in Ansible).
    let r = with(&["--become-user", "labuser"]);
    r.ok();
    assert!(r.stdout.contains("who=nopass"), "{}", r.all());
    // A play's `become: false` wins over -b.
    w.write(
        "no_become.yml",
        &WHO.replace(
            "  gather_facts: false\n",
            "  gather_facts: false\n  become: false\n",
        ),
    );
    let r = mixop(
        &w,
        &[
            "run",
            "no_become.yml",
            "-i",
            "hosts",
            "-u",
            "nopass",
            "--private-key",
            &key,
            "-b",
        ],
    );
    r.ok();
    assert!(r.stdout.contains("who=nopass"), "{}", r.all());
    // An unknown become method is a usage error before any host is contacted.
    let r = with(&["-b", "--become-method", "sudoo"]);
    assert_eq!(r.code, 5, "{}", r.all());
    assert!(
        r.stderr
            .contains("`sudoo` is not one of sudo (did you mean `sudo`?)"),
        "{}",
        r.all()
    );
}

#[test]
fn passwords_typed_on_the_terminal_log_in_and_become_and_are_never_shown() {
    let lab = Lab::up(1, &[]);
    let w = Work::new();
    bare_inventory(&w, &lab, &["lab1"], "");
    w.write("who.yml", WHO);

    // -k: labuser logs in with its password (no key anywhere); -K left empty takes the SSH
    // password, as ansible-playbook's "BECOME password[defaults to SSH password]".
    let args = [
        "run", "who.yml", "-i", "hosts", "-u", "labuser", "-k", "-b", "-K", "-vvv",
    ];
    let (code, text) = mixop_on_tty(&w, &args, "labpass\n\n");
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("SSH password: "), "{text}");
    assert!(
        text.contains("BECOME password[defaults to SSH password]: "),
        "{text}"
    );
    assert!(text.contains("who=root"), "{text}");
    assert!(!text.contains("labpass"), "a password was shown:\n{text}");

    // -K alone, with a key login: labuser's sudo wants its password.
    let key = lab.key().display().to_string();
    let args = [
        "run",
        "who.yml",
        "-i",
        "hosts",
        "-u",
        "labuser",
        "--private-key",
        &key,
        "-b",
        "-K",
    ];
    let (code, text) = mixop_on_tty(&w, &args, "labpass\n");
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("BECOME password: "), "{text}");
    assert!(text.contains("who=root"), "{text}");
    // A wrong one: sudo's refusal, the host failed, the password still not shown.
    let (code, text) = mixop_on_tty(&w, &args, "not-the-password\n");
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("incorrect password"), "{text}");
    assert!(!text.contains("not-the-password"), "{text}");

    // No terminal to ask on: a usage error that says what to do, before anything runs.
    let r = mixop(
        &w,
        &["run", "who.yml", "-i", "hosts", "-u", "labuser", "-k"],
    );
    assert_eq!(r.code, 5, "usage error: {}", r.all());
    assert!(
        r.stderr
            .contains("cannot ask for the connection password (-k): there is no terminal"),
        "{}",
        r.all()
    );
    // Listing asks for nothing.
    let r = mixop(
        &w,
        &["run", "who.yml", "-i", "hosts", "-k", "-K", "--list-hosts"],
    );
    r.ok();
    assert!(r.stdout.contains("lab1"), "{}", r.all());
}
