//! `community.general.ufw` on the lab: real ufw (Debian package `ufw`, iptables-nft) inside a
//! lab host's network namespace, its /etc/ufw in the host's /etc overlay. The rules are checked
//! by connecting from the other lab host. (The venv has no community.general, so there is no
//! differential run; the command lines and `changed` rules follow the collection's source.)

mod common;

use common::Lab;

/// Listens on 8080 and 8081 on every address of `host`; returns once both sockets are bound
/// (the listener forks into the background after binding).
fn listen(lab: &Lab, host: &str) {
    lab.exec(
        host,
        r#"python3 -c '
import os, select, socket, sys
ss = [socket.create_server(("0.0.0.0", p)) for p in (8080, 8081)]
if os.fork():
    sys.exit(0)
os.setsid()
while True:
    r, _, _ = select.select(ss, [], [])
    for s in r:
        c, _ = s.accept()
        c.close()
' </dev/null >/dev/null 2>&1"#,
    );
}

/// `open`, `refused` or `timeout`: a TCP connection from `from` to `addr:port` (3 s limit).
fn connect(lab: &Lab, from: &str, addr: &str, port: u16) -> String {
    lab.exec(
        from,
        &format!(
            r#"python3 -c '
import socket
s = socket.socket()
s.settimeout(3)
try:
    s.connect(("{addr}", {port}))
    print("open")
except ConnectionRefusedError:
    print("refused")
except socket.timeout:
    print("timeout")
'"#
        ),
    )
    .trim()
    .to_string()
}

#[test]
fn ufw_enables_with_rules_that_really_filter_idempotently_and_check_mode_touches_nothing() {
    let lab = Lab::up(2, &[]);
    let w = common::Work::new();
    let (a1, a2) = (lab.addr("lab1"), lab.addr("lab2"));
    listen(&lab, "lab1");
    assert_eq!(connect(&lab, "lab2", &a1, 8080), "open");
    assert_eq!(connect(&lab, "lab2", &a1, 8081), "open");

    let pb = w.write(
        "pb.yml",
        &format!(
            r#"
- hosts: lab1
  gather_facts: false
  tasks:
    - community.general.ufw: {{rule: allow, port: "22", proto: tcp}}
    - ufw: {{rule: allow, port: "8080", proto: tcp, from_ip: "{a2}", comment: from lab2}}
    - ufw: {{default: deny, direction: incoming}}
    - ufw: {{state: enabled}}
      register: en
    - copy: {{dest: "@OUT@/en.json", content: "{{{{ en | to_json }}}}"}}
      delegate_to: localhost
      check_mode: false
      changed_when: false
"#
        ),
    );
    let status = || {
        lab.exec(
            "lab1",
            "LANG=C ufw status; grep -h '^### tuple' /etc/ufw/user.rules",
        )
    };

    // Check mode on an inactive ufw: every task would change something; nothing changes.
    let check = lab.run(&w, &pb, &["--check"]);
    check.ok();
    assert_eq!(check.recap("lab1").changed, 4, "{}", check.all());
    assert_eq!(status(), "Status: inactive\n");
    assert_eq!(connect(&lab, "lab2", &a1, 8081), "open");

    // For real: rules, then enabled (the default is already deny incoming on Debian, and an
    // inactive ufw's status does not show it: unchanged, as in the collection).
    let first = lab.run(&w, &pb, &[]);
    first.ok();
    assert_eq!(first.recap("lab1").changed, 3, "{}", first.all());
    let en: serde_json::Value = serde_json::from_str(&w.read("en.json")).unwrap();
    assert!(
        en["msg"].as_str().unwrap().starts_with("Status: active"),
        "{en}"
    );
    assert_eq!(en["commands"][2], "/usr/sbin/ufw -f enable", "{en}");
    let st = status();
    assert!(st.starts_with("Status: active"), "{st}");
    assert!(
        st.contains(&format!("8080/tcp                   ALLOW       {a2}")),
        "{st}"
    );
    assert!(
        st.contains(&format!(
            "### tuple ### allow tcp 8080 0.0.0.0/0 any {a2} in comment="
        )),
        "{st}"
    );

    // The rules filter for real: lab2 reaches 8080, not 8081 (dropped: default deny).
    assert_eq!(connect(&lab, "lab2", &a1, 8080), "open");
    assert_eq!(connect(&lab, "lab2", &a1, 8081), "timeout");

    // Idempotent, in check mode and for real.
    let again = lab.run(&w, &pb, &["--check"]);
    again.ok();
    assert_eq!(again.recap("lab1").changed, 0, "{}", again.all());
    let again = lab.run(&w, &pb, &[]);
    again.ok();
    assert_eq!(again.recap("lab1").changed, 0, "{}", again.all());

    // Deleting the rule closes 8080; logging; disabling opens everything again.
    let pb2 = w.write(
        "pb2.yml",
        &format!(
            r#"
- hosts: lab1
  gather_facts: false
  tasks:
    - ufw: {{rule: allow, port: "8080", proto: tcp, from_ip: "{a2}", delete: true}}
    - ufw: {{logging: medium}}
"#
        ),
    );
    let check = lab.run(&w, &pb2, &["--check"]);
    check.ok();
    assert_eq!(check.recap("lab1").changed, 2, "{}", check.all());
    assert_eq!(connect(&lab, "lab2", &a1, 8080), "open");
    let del = lab.run(&w, &pb2, &[]);
    del.ok();
    assert_eq!(del.recap("lab1").changed, 2, "{}", del.all());
    assert_eq!(connect(&lab, "lab2", &a1, 8080), "timeout");
    assert!(
        lab.exec("lab1", "LANG=C ufw status verbose")
            .contains("Logging: on (medium)")
    );
    let del = lab.run(&w, &pb2, &[]);
    del.ok();
    assert_eq!(del.recap("lab1").changed, 0, "{}", del.all());

    let off = w.write(
        "off.yml",
        "- hosts: lab1\n  gather_facts: false\n  tasks:\n    - ufw: {state: disabled}\n",
    );
    lab.run(&w, &off, &[]).ok();
    assert_eq!(connect(&lab, "lab2", &a1, 8081), "open");
}
