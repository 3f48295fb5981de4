//! `mixop run` over SSH against real OpenSSH servers (the lab): modules on several hosts at
//! once, facts passed between hosts, idempotence, and the faults users meet.

mod common;

use common::{Lab, Work};

const MODULES_PLAYBOOK: &str = r#"
- hosts: lab1
  gather_facts: true
  tasks:
    - shell: umask 077; mkdir -p /var/lib/rancher/t && test -s /var/lib/rancher/t/token || echo tok-$(hostname) > /var/lib/rancher/t/token
      args: {creates: /var/lib/rancher/t/token}
    - slurp: {src: /var/lib/rancher/t/token}
      register: token
    - set_fact:
        node_token: "{{ token.content | b64decode | trim }}"
        server_os: "{{ ansible_distribution }}"

- hosts: lab
  gather_facts: false
  tasks:
    - file: {path: /opt/app, state: directory, mode: "0755"}
    - copy:
        dest: /opt/app/token
        content: "{{ hostvars['lab1'].node_token }} {{ hostvars['lab1'].server_os }}\n"
        mode: "0600"
    - template: {src: conf.j2, dest: /opt/app/conf}
    - lineinfile: {path: /opt/app/extra.conf, line: "extra=1", create: true}
    - stat: {path: /opt/app/token}
      register: st
    - assert:
        that: [st.stat.exists, "st.stat.mode == '0600'"]
    - command: hostname
      register: hn
      changed_when: false
    - copy: {dest: /opt/app/hostname, content: "{{ hn.stdout }}"}
    - wait_for: {path: /opt/app/hostname, timeout: 5}
    - fetch: {src: /opt/app/hostname, dest: "@OUT@/fetched"}
"#;

#[test]
fn modules_over_ssh_on_four_hosts_then_nothing_changes() {
    let lab = Lab::up(4, &[]);
    let w = Work::new();
    w.write(
        "conf.j2",
        "host={{ inventory_hostname }}\ntoken={{ hostvars['lab1'].node_token }}\n",
    );
    let pb = w.write("pb.yml", MODULES_PLAYBOOK);
    let inv = lab.inventory.to_str().unwrap();
    let first = w.mixop(&["run", pb.to_str().unwrap(), "-i", inv]);
    first.ok();
    for h in ["lab1", "lab2", "lab3", "lab4"] {
        assert_eq!(
            lab.exec(h, "cat /opt/app/token"),
            "tok-lab1 Debian\n",
            "{h}"
        );
        assert_eq!(
            lab.exec(h, "cat /opt/app/conf"),
            format!("host={h}\ntoken=tok-lab1\n")
        );
        assert_eq!(lab.exec(h, "stat -c %a /opt/app/token"), "600\n");
        assert_eq!(w.read(&format!("fetched/{h}/opt/app/hostname")), h);
        assert!(first.recap(h).changed >= 5, "{}", first.all());
    }
    // The token lives on lab1 only: every host has its own filesystem.
    assert_eq!(
        lab.exec(
            "lab2",
            "test -e /var/lib/rancher/t/token && echo yes || echo no"
        ),
        "no\n"
    );
    let second = w.mixop(&["run", pb.to_str().unwrap(), "-i", inv]);
    second.ok();
    for h in ["lab1", "lab2", "lab3", "lab4"] {
        assert_eq!(
            second.recap(h).changed,
            0,
            "second run must change nothing on {h}:\n{}",
            second.all()
        );
    }
}

#[test]
fn wrong_password_makes_only_that_host_unreachable() {
    let lab = Lab::up(3, &[]);
    let w = Work::new();
    let inv = w.write(
        "inventory.yml",
        &format!(
            "all:\n  vars:\n    ansible_ssh_private_key_file: {key}\n    mixop_known_hosts_file: {kh}\n    ansible_user: root\n  hosts:\n    lab1: {{ansible_host: {a1}}}\n    lab2: {{ansible_host: {a2}, ansible_user: labuser, ansible_password: wrong, ansible_ssh_private_key_file: /nonexistent-key}}\n    lab3: {{ansible_host: {a3}}}\n",
            key = lab.key().display(),
            kh = lab.known_hosts().display(),
            a1 = lab.addr("lab1"),
            a2 = lab.addr("lab2"),
            a3 = lab.addr("lab3"),
        ),
    );
    let pb = w.write(
        "pb.yml",
        "- hosts: all\n  tasks:\n    - command: hostname\n    - command: hostname\n",
    );
    let r = w.mixop(&["run", pb.to_str().unwrap(), "-i", inv.to_str().unwrap()]);
    assert_eq!(r.code, 4, "{}", r.all());
    assert_eq!(r.recap("lab2").unreachable, 1, "{}", r.all());
    assert_eq!(r.recap("lab1").changed, 2);
    assert_eq!(r.recap("lab3").changed, 2);
    assert!(r.stdout.contains("unreachable: [lab2]"), "{}", r.all());
}

#[test]
fn host_key_mismatch_is_refused_with_the_fingerprint() {
    let lab = Lab::up(2, &[]);
    let w = Work::new();
    // known_hosts claims lab1 has lab2's key.
    let kh = std::fs::read_to_string(lab.known_hosts()).unwrap();
    let a1 = lab.addr("lab1");
    let a2 = lab.addr("lab2");
    let forged: String = kh
        .lines()
        .filter(|l| l.contains(&format!(",{a2} ")) || l.starts_with("lab2,"))
        .map(|l| l.replacen("lab2", "lab1", 1).replace(&a2, &a1) + "\n")
        .collect();
    let khf = w.write("known_hosts", &forged);
    let inv = w.write(
        "inventory.yml",
        &format!(
            "all:\n  hosts:\n    lab1: {{ansible_host: {a1}, ansible_user: root, ansible_ssh_private_key_file: {}, mixop_known_hosts_file: {}}}\n",
            lab.key().display(),
            khf.display()
        ),
    );
    let pb = w.write(
        "pb.yml",
        "- hosts: all\n  tasks:\n    - command: hostname\n",
    );
    let r = w.mixop(&["run", pb.to_str().unwrap(), "-i", inv.to_str().unwrap()]);
    assert_eq!(r.code, 4, "{}", r.all());
    assert!(
        r.stdout.contains("SHA256:"),
        "the message must show the fingerprint seen:\n{}",
        r.all()
    );
    assert!(
        r.stdout.contains(&khf.display().to_string()),
        "the message must name the known_hosts file:\n{}",
        r.all()
    );
}

#[test]
fn sshd_killed_mid_run_fails_that_host_only() {
    let lab = Lab::up(3, &[]);
    let w = Work::new();
    let pb = w.write(
        "pb.yml",
        "- hosts: lab\n  tasks:\n    - command: hostname\n    - shell: touch /opt/waiting; until [ -e /opt/go ]; do sleep 0.05; done\n    - shell: echo done > /opt/done\n",
    );
    let inv = lab.inventory.clone();
    let mut child = std::process::Command::new(common::mixop_bin())
        .args(["run", pb.to_str().unwrap(), "-i", inv.to_str().unwrap()])
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Every host is inside the second task (waiting for /opt/go) when lab2's sshd is killed.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    for h in ["lab1", "lab2", "lab3"] {
        while lab.exec(h, "test -e /opt/waiting && echo yes") != "yes\n" {
            if let Ok(Some(_)) = child.try_wait() {
                let r = common::Run::from(child.wait_with_output().unwrap());
                panic!("mixop ended before {h} reached the gate:\n{}", r.all());
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{h} never reached the gate"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    lab.ctl(&["stop", "lab2", "--kill-sessions"]);
    for h in ["lab1", "lab3"] {
        lab.exec(h, "touch /opt/go");
    }
    let out = child.wait_with_output().unwrap();
    let r = common::Run::from(out);
    assert!(r.code == 2 || r.code == 4, "{}", r.all());
    let lab2 = r.recap("lab2");
    assert_eq!(lab2.failed + lab2.unreachable, 1, "{}", r.all());
    assert_eq!(lab.exec("lab1", "cat /opt/done"), "done\n");
    assert_eq!(lab.exec("lab3", "cat /opt/done"), "done\n");
}

#[test]
fn become_with_and_without_password() {
    let lab = Lab::up(2, &[]);
    let w = Work::new();
    let inv = w.write(
        "inventory.yml",
        &format!(
            "all:\n  vars:\n    mixop_known_hosts_file: {kh}\n    ansible_ssh_private_key_file: {key}\n  hosts:\n    lab1: {{ansible_host: {a1}, ansible_user: labuser, ansible_password: labpass, ansible_become_password: labpass}}\n    lab2: {{ansible_host: {a2}, ansible_user: nopass}}\n",
            kh = lab.known_hosts().display(),
            key = lab.key().display(),
            a1 = lab.addr("lab1"),
            a2 = lab.addr("lab2"),
        ),
    );
    let pb = w.write(
        "pb.yml",
        "- hosts: all\n  tasks:\n    - command: id -un\n      register: plain\n    - command: id -un\n      become: true\n      register: root\n    - copy: {dest: \"@OUT@/{{ inventory_hostname }}\", content: \"{{ plain.stdout }} {{ root.stdout }}\"}\n      delegate_to: localhost\n",
    );
    let r = w.mixop(&["run", pb.to_str().unwrap(), "-i", inv.to_str().unwrap()]);
    r.ok();
    assert_eq!(w.read("lab1"), "labuser root");
    assert_eq!(w.read("lab2"), "nopass root");
    assert!(
        !r.all().contains("labpass"),
        "the sudo password must never be printed"
    );
}

#[test]
fn proxy_jump_through_a_lab_host() {
    let lab = Lab::up(2, &[]);
    let w = Work::new();
    let inv = w.write(
        "inventory.yml",
        &format!(
            "all:\n  vars:\n    ansible_user: root\n    ansible_ssh_private_key_file: {key}\n    mixop_known_hosts_file: {kh}\n  hosts:\n    lab2:\n      ansible_host: {a2}\n      ansible_ssh_common_args: \"-o ProxyJump=root@{a1} -o UserKnownHostsFile={kh}\"\n",
            key = lab.key().display(),
            kh = lab.known_hosts().display(),
            a1 = lab.addr("lab1"),
            a2 = lab.addr("lab2"),
        ),
    );
    let pb = w.write(
        "pb.yml",
        "- hosts: all\n  tasks:\n    - shell: echo $SSH_CLIENT > /opt/client\n",
    );
    w.mixop(&["run", pb.to_str().unwrap(), "-i", inv.to_str().unwrap()])
        .ok();
    // The connection reached lab2 from lab1's address, not the controller's.
    let client = lab.exec("lab2", "cat /opt/client");
    assert!(
        client.starts_with(&format!("{} ", lab.addr("lab1"))),
        "SSH_CLIENT on lab2: {client}"
    );
}

/// A network partition mid-run (lab2's link taken down while a command runs there: packets are
/// dropped, nothing is refused): the others finish, and lab2 is reported unreachable once the
/// SSH keepalives go unanswered (ServerAliveInterval × ServerAliveCountMax), not after the
/// command's own end that never comes.
#[test]
fn link_down_mid_run_fails_that_host_within_the_keepalive_timeout() {
    let lab = Lab::up(3, &[]);
    let w = Work::new();
    let pb = w.write(
        "pb.yml",
        "- hosts: lab\n  tasks:\n    - command: hostname\n    - shell: touch /opt/waiting; until [ -e /opt/go ]; do sleep 0.05; done\n    - shell: echo done > /opt/done\n",
    );
    let inv = lab.inventory.clone();
    let mut bg = w.spawn_mixop(&[
        "run",
        pb.to_str().unwrap(),
        "-i",
        inv.to_str().unwrap(),
        "-e",
        r#"{"ansible_ssh_common_args": "-o ServerAliveInterval=1 -o ServerAliveCountMax=3"}"#,
    ]);
    for h in ["lab1", "lab2", "lab3"] {
        common::wait_until(
            std::time::Duration::from_secs(120),
            &format!("{h} reaches the gate"),
            || {
                assert!(!bg.exited(), "mixop ended before {h} reached the gate");
                (lab.exec(h, "test -e /opt/waiting && echo yes") == "yes\n")
                    .then_some(())
                    .ok_or_else(|| "not yet".into())
            },
        );
    }
    lab.ctl(&["link-down", "lab2"]);
    let t0 = std::time::Instant::now();
    for h in ["lab1", "lab3"] {
        lab.exec(h, "touch /opt/go");
    }
    let (r, _) = bg.wait(std::time::Duration::from_secs(60));
    let took = t0.elapsed();
    eprintln!("lab2 given up {took:?} after its link went down");
    lab.ctl(&["link-up", "lab2"]);
    lab.exec("lab2", "touch /opt/go");
    assert!(r.code == 2 || r.code == 4, "{}", r.all());
    let lab2 = r.recap("lab2");
    assert_eq!(lab2.failed + lab2.unreachable, 1, "{}", r.all());
    assert_eq!(lab.exec("lab1", "cat /opt/done"), "done\n");
    assert_eq!(lab.exec("lab3", "cat /opt/done"), "done\n");
    assert!(
        took < std::time::Duration::from_secs(20),
        "lab2 was given up after {took:?}:\n{}",
        r.all()
    );
}

/// copy/template over SFTP start no process on the target for new files and small existing
/// ones: here the user's login shell is /bin/false, so any command would fail the task. Mode,
/// owner, check mode, a directory destination, an unchanged file, a hard link and a replaced
/// file still give the usual results; a refused write still fails the usual way, with no
/// temporary left.
#[test]
fn copy_over_sftp_starts_no_process_on_the_target() {
    let lab = Lab::up(1, &[]);
    lab.exec(
        "lab1",
        "usermod -s /bin/false labuser && mkdir /tmp/d && chown labuser /tmp/d",
    );
    let w = Work::new();
    let inv = w.write(
        "inventory.yml",
        &format!(
            "all:\n  vars:\n    mixop_known_hosts_file: {kh}\n  hosts:\n    lab1: {{ansible_host: {a1}, ansible_user: labuser, ansible_password: labpass}}\n",
            kh = lab.known_hosts().display(),
            a1 = lab.addr("lab1"),
        ),
    );
    w.write("t.j2", "host={{ inventory_hostname }}\n");
    w.write("local.txt", "from a local file\n");
    let pb = w.write(
        "pb.yml",
        r#"- hosts: lab1
  gather_facts: false
  tasks:
    - copy: {content: "one\n", dest: /tmp/d/c.txt, mode: "0640"}
      register: c
    - template: {src: t.j2, dest: /tmp/d}
      register: t
    - copy: {src: local.txt, dest: /tmp/d/l.txt, owner: labuser, group: "{{ 'labuser' }}"}
      register: l
    - copy: {content: "x\n", dest: /tmp/d/checked.txt}
      check_mode: true
      register: k
    - copy:
        dest: "@OUT@/results"
        content: |
          {% for r in [c, t, l] %}{{ r.changed }} {{ r.dest }} {{ r.mode }} {{ r.owner }} {{ r.group }} {{ r.state }} {{ r.size }}
          {% endfor %}{{ k.changed }}
      delegate_to: localhost
"#,
    );
    let run = || w.mixop(&["run", pb.to_str().unwrap(), "-i", inv.to_str().unwrap()]);
    let r = run();
    r.ok();
    let umask_mode = "0644"; // 0666 less the lab's umask 022
    assert_eq!(
        w.read("results"),
        format!(
            "True /tmp/d/c.txt 0640 labuser labuser file 4\nTrue /tmp/d/t.j2 {umask_mode} labuser labuser file 10\nTrue /tmp/d/l.txt {umask_mode} labuser labuser file 18\nTrue\n"
        )
    );
    assert_eq!(
        lab.exec(
            "lab1",
            "cd /tmp/d && ls -A && stat -c '%n %a %U' c.txt t.j2 l.txt && cat c.txt t.j2 l.txt"
        ),
        "c.txt\nl.txt\nt.j2\nc.txt 640 labuser\nt.j2 644 labuser\nl.txt 644 labuser\none\nhost=lab1\nfrom a local file\n"
    );

    // Still without a shell: a second run reads and hashes the files over SFTP and changes
    // nothing (a hard link shows as state "hard", as `stat` would report it); a changed file is
    // replaced keeping its mode.
    lab.exec("lab1", "ln /tmp/d/c.txt /tmp/c-link");
    let r = run();
    r.ok();
    assert!(
        w.read("results")
            .starts_with("False /tmp/d/c.txt 0640 labuser labuser hard 4\nFalse /tmp/d/t.j2"),
        "{}",
        w.read("results")
    );
    lab.exec("lab1", "chmod 600 /tmp/d/l.txt");
    w.write("local.txt", "changed\n");
    let r = run();
    r.ok();
    assert!(
        w.read("results")
            .contains("True /tmp/d/l.txt 0600 labuser labuser file 8"),
        "{}",
        w.read("results")
    );
    assert_eq!(
        lab.exec("lab1", "cat /tmp/d/l.txt; ls -A /tmp/d | wc -l"),
        "changed\n3\n"
    );
    // With a shell again: a refused write fails as before (the probe script reports it).
    lab.exec("lab1", "usermod -s /bin/sh labuser");
    let denied = w.write(
        "denied.yml",
        "- hosts: lab1\n  gather_facts: false\n  tasks:\n    - copy: {content: x, dest: /root/denied.txt}\n",
    );
    let r = w.mixop(&["run", denied.to_str().unwrap(), "-i", inv.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{}", r.all());
    assert!(
        r.all().to_lowercase().contains("permission denied"),
        "{}",
        r.all()
    );
    assert_eq!(lab.exec("lab1", "ls -A /root | grep -c mixop"), "0\n");
}

/// A connection is reused only by tasks that would open the same one: a later task with another
/// `remote_user` (or port, or key) gets its own connection, not the first task's.
#[test]
fn a_task_with_another_remote_user_gets_its_own_connection() {
    let lab = Lab::up(1, &[]);
    let w = Work::new();
    let pb = w.write(
        "pb.yml",
        r#"
- hosts: lab1
  gather_facts: false
  tasks:
    - command: id -un
      register: first
    - command: id -un
      remote_user: nopass
      register: second
    - command: id -un
      vars: {ansible_user: labuser}
      register: third
    - command: id -un
      register: again
    - copy:
        dest: /tmp/users
        content: "{{ first.stdout }} {{ second.stdout }} {{ third.stdout }} {{ again.stdout }}\n"
"#,
    );
    w.mixop(&[
        "run",
        pb.to_str().unwrap(),
        "-i",
        lab.inventory.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(
        lab.exec("lab1", "cat /tmp/users"),
        "root nopass labuser root\n"
    );
}
