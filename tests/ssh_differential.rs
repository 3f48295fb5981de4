//! Differential test on the lab: the same playbook run by ansible-playbook and by mixop, each
//! against its own fresh lab, twice; the recaps and the files left on every host must match.

mod common;

use common::{Lab, Work, parse_recap};

const HOSTS: [&str; 3] = ["lab1", "lab2", "lab3"];

fn snapshot(lab: &Lab, host: &str) -> String {
    lab.exec(host, "cd /opt/diff 2>/dev/null && find . -type f -o -type d | sort | while read f; do stat -c '%n %a %F' \"$f\"; [ -f \"$f\" ] && cat \"$f\"; done")
}

#[test]
fn same_playbook_same_results_as_ansible() {
    let (lab_a, lab_m) = (Lab::up(3, &[]), Lab::up(3, &[]));
    let w = Work::new();
    for f in ["site.yml", "conf.j2"] {
        let text = std::fs::read_to_string(common::root().join("tests/fixtures/diff-ssh").join(f))
            .unwrap();
        w.write(f, &text);
    }
    for round in 1..=2 {
        let (a_code, a_out) = lab_a.ansible(&w, "site.yml", &[]);
        let m = w.mixop(&["run", "site.yml", "-i", lab_m.inventory.to_str().unwrap()]);
        let ctx = format!(
            "round {round}\n--- ansible (exit {a_code})\n{a_out}\n--- mixop\n{}",
            m.all()
        );
        assert!(a_out.contains("PLAY RECAP"), "ansible did not run:\n{ctx}");
        assert_eq!(m.code, a_code, "exit codes differ\n{ctx}");
        for h in HOSTS {
            assert_eq!(
                parse_recap(&m.stdout, h),
                parse_recap(&a_out, h),
                "recap of {h} differs\n{ctx}"
            );
            let (a, b) = (snapshot(&lab_a, h), snapshot(&lab_m, h));
            // The token embeds the server's hostname, the same in both labs.
            assert_eq!(b, a, "files on {h} differ\n{ctx}");
            assert!(a.contains("token-lab1"), "{h}: {a}");
        }
    }
}
