//! Roles on the local connection: what is wrong with a role is found when the playbook loads
//! (exit 3, file:line, no host touched), and roles are found where ansible-playbook finds them.

mod common;

use std::process::Command;

use common::{Run, Work, mixop_bin};

/// The first task touches a file: it must not exist after a rejected run.
const PLAY: &str =
    "- hosts: all\n  gather_facts: false\n  pre_tasks:\n    - shell: touch @OUT@/touched\n";

/// `mixop <args>` in `w` with `ANSIBLE_ROLES_PATH` set (or unset).
fn mixop_env(w: &Work, args: &[&str], roles_path: Option<&str>) -> Run {
    let mut c = Command::new(mixop_bin());
    c.args(args).current_dir(w.path()).env("NO_COLOR", "1");
    match roles_path {
        Some(p) => c.env("ANSIBLE_ROLES_PATH", p),
        None => c.env_remove("ANSIBLE_ROLES_PATH"),
    };
    Run::from(c.output().expect("run mixop"))
}

/// Runs `pb.yml`, which must be rejected before anything runs (by `run`, `check` and the
/// listings alike); returns stderr.
fn rejected(w: &Work, playbook: &str) -> String {
    w.local_inventory(2);
    w.write("pb.yml", playbook);
    let r = mixop_env(w, &["run", "pb.yml", "-i", "inventory.yml"], None);
    assert_eq!(r.code, 3, "bad input must exit 3:\n{}", r.all());
    assert!(
        !w.out().join("touched").exists(),
        "a task ran before validation failed"
    );
    assert!(!r.stderr.contains("panicked"), "{}", r.all());
    for args in [
        &["check", "pb.yml", "-i", "inventory.yml"][..],
        &["run", "pb.yml", "-i", "inventory.yml", "--list-tasks"],
    ] {
        let c = mixop_env(w, args, None);
        assert_eq!(
            (c.code, c.stderr.as_str()),
            (3, r.stderr.as_str()),
            "{args:?}"
        );
    }
    r.stderr
}

#[test]
fn a_missing_role_is_named_with_where_it_was_looked_for() {
    let w = Work::new();
    let err = rejected(&w, &format!("{PLAY}  roles:\n    - web\n"));
    assert!(err.contains("pb.yml:6:7: role `web` not found"), "{err}");
    assert!(err.contains("roles/web"), "{err}");
    assert!(err.contains("ANSIBLE_ROLES_PATH"), "{err}");
}

#[test]
fn a_missing_role_in_import_role_and_include_role() {
    for action in [
        "import_role",
        "include_role",
        "ansible.builtin.import_role",
        "ansible.legacy.include_role",
    ] {
        let w = Work::new();
        let err = rejected(
            &w,
            &format!("{PLAY}  tasks:\n    - {action}:\n        name: web\n"),
        );
        assert!(
            err.contains("pb.yml:7:15: role `web` not found"),
            "{action}: {err}"
        );
    }
}

#[test]
fn a_missing_tasks_from_file() {
    let w = Work::new();
    w.write("roles/web/tasks/main.yml", "- debug: msg=hi\n");
    let err = rejected(
        &w,
        &format!(
            "{PLAY}  tasks:\n    - include_role:\n        name: web\n        tasks_from: setup\n"
        ),
    );
    assert!(
        err.contains("pb.yml:8:21: role `web` has no tasks file `setup`"),
        "{err}"
    );
}

#[test]
fn a_bad_task_inside_a_role_points_into_the_role() {
    let w = Work::new();
    w.write(
        "roles/web/tasks/main.yml",
        "- debug: msg=hi\n- name: typo\n  comand: ls\n",
    );
    let err = rejected(&w, &format!("{PLAY}  roles:\n    - role: web\n"));
    assert!(
        err.contains("roles/web/tasks/main.yml:3:3: unknown module or keyword `comand`"),
        "{err}"
    );
}

#[test]
fn a_bad_dependency_points_into_meta() {
    let w = Work::new();
    w.write("roles/web/tasks/main.yml", "- debug: msg=hi\n");
    w.write(
        "roles/web/meta/main.yml",
        "galaxy_info: {}\ndependencies:\n  - role: base\n",
    );
    let err = rejected(&w, &format!("{PLAY}  roles:\n    - web\n"));
    assert!(
        err.contains("roles/web/meta/main.yml:3:11: role `base` not found"),
        "{err}"
    );
}

#[test]
fn a_dependency_cycle_is_refused() {
    let w = Work::new();
    w.write("roles/a/meta/main.yml", "dependencies: [b]\n");
    w.write("roles/b/meta/main.yml", "dependencies: [a]\n");
    let err = rejected(&w, &format!("{PLAY}  roles:\n    - a\n"));
    assert!(
        err.contains("roles/b/meta/main.yml:1:16: role `a` depends on itself"),
        "{err}"
    );
}

#[test]
fn a_role_task_notifying_a_missing_handler() {
    let w = Work::new();
    w.write(
        "roles/web/tasks/main.yml",
        "- command: echo\n  notify: restart web\n",
    );
    w.write(
        "roles/web/handlers/main.yml",
        "- name: restart nginx\n  command: echo\n",
    );
    let err = rejected(&w, &format!("{PLAY}  roles:\n    - web\n"));
    assert!(
        err.contains("roles/web/tasks/main.yml:1:3: `notify` names the handler `restart web`"),
        "{err}"
    );
    assert!(
        err.contains("handlers are: restart nginx, web : restart nginx"),
        "{err}"
    );
}

#[test]
fn a_bad_include_role_argument_and_a_templated_import() {
    let w = Work::new();
    w.write("roles/web/tasks/main.yml", "- debug: msg=hi\n");
    let err = rejected(
        &w,
        &format!("{PLAY}  tasks:\n    - include_role:\n        name: web\n        task_from: x\n"),
    );
    assert!(
        err.contains("pb.yml:8:9: `include_role` has no argument `task_from`"),
        "{err}"
    );
    assert!(err.contains("did you mean `tasks_from`?"), "{err}");
    let err = rejected(
        &w,
        &format!("{PLAY}  tasks:\n    - import_role:\n        name: \"{{{{ r }}}}\"\n"),
    );
    assert!(
        err.contains("pb.yml:7:15: `import_role` is static"),
        "{err}"
    );
}

#[test]
fn roles_are_found_beside_the_playbook_and_on_the_roles_path() {
    let w = Work::new();
    w.local_inventory(1);
    let elsewhere = Work::new();
    elsewhere.write(
        "shared/far/tasks/main.yml",
        "- shell: echo \"far {{ role_name }} {{ far_default }}\" >> @OUT@/log\n",
    );
    elsewhere.write("shared/far/defaults/main.yml", "far_default: d\n");
    w.write(
        "roles/near/tasks/main.yml",
        "- shell: echo \"near {{ role_path | basename }}\" >> @OUT@/log\n",
    );
    w.write(
        "beside/tasks/main.yml",
        "- shell: echo beside >> @OUT@/log\n",
    );
    w.write(
        "pb.yml",
        "- hosts: all\n  gather_facts: false\n  roles: [near, beside, far]\n",
    );
    // Without the roles path, `far` is not found.
    let r = mixop_env(&w, &["run", "pb.yml", "-i", "inventory.yml"], None);
    assert_eq!(r.code, 3, "{}", r.all());
    assert!(r.stderr.contains("role `far` not found"), "{}", r.all());
    let path = format!("/nonexistent:{}", elsewhere.path().join("shared").display());
    let r = mixop_env(&w, &["run", "pb.yml", "-i", "inventory.yml"], Some(&path));
    r.ok();
    assert_eq!(
        std::fs::read_to_string(elsewhere.out().join("log")).unwrap(),
        "far far d\n"
    );
    assert_eq!(w.read("log"), "near near\nbeside\n");
    assert!(r.stdout.contains("TASK [near : shell]"), "{}", r.all());
}

#[test]
fn include_role_with_a_templated_name_is_loaded_when_it_runs() {
    let w = Work::new();
    w.local_inventory(2);
    w.write(
        "roles/web/tasks/main.yml",
        "- shell: echo \"{{ inventory_hostname }} {{ item }}\" >> @OUT@/log\n",
    );
    w.write(
        "pb.yml",
        "- hosts: all\n  gather_facts: false\n  tasks:\n    - include_role:\n        name: \"{{ which }}\"\n      loop: [1]\n      vars:\n        which: \"{{ 'web' if inventory_hostname == 'h1' else 'nope' }}\"\n",
    );
    let r = mixop_env(&w, &["run", "pb.yml", "-i", "inventory.yml"], None);
    assert_eq!(r.code, 2, "{}", r.all());
    assert_eq!(w.read("log"), "h1 1\n");
    assert!(r.stdout.contains("role `nope` not found"), "{}", r.all());
    assert_eq!(r.recap("h1").failed, 0);
    assert_eq!(r.recap("h2").failed, 1);
}
