//! win_regedit, win_group, win_user and win_powershell, run by the `mixop` binary against the
//! WinRM peer's simulated Windows Server 2022 host (`--mode sim`): the registry, the local
//! users and groups are checked as data (`host.json`), and what mixop sent (`scripts.jsonl`,
//! the peer's command records) is searched for the passwords it must never hold.
//!
//! win_powershell: PowerShell cannot run here. The simulator models a small set of statements
//! (sim/modules/win_powershell.py); these tests exercise what mixop sends (arguments, secrets,
//! check mode) and how it turns the answer into a result — not PowerShell's own behaviour.

mod common;

use common::{Session, Sim};
use serde_json::{Value, json};
use sha2::Digest;

/// What these suites read from the simulated host beyond common's `Sim`.
trait HostData {
    fn key(&self, full: &str) -> Value;
    fn value(&self, full: &str, name: &str) -> Value;
    fn assert_never_sent(&self, secret: &str);
}

impl HostData for Sim {
    fn key(&self, full: &str) -> Value {
        self.host()["registry"][full.to_lowercase()].clone()
    }

    fn value(&self, full: &str, name: &str) -> Value {
        self.key(full)["values"][name.to_lowercase()].clone()
    }

    /// Nothing the host was sent or logged holds `secret`.
    fn assert_never_sent(&self, secret: &str) {
        let scripts = self.scripts_text();
        assert!(!scripts.is_empty());
        assert!(
            !scripts.contains(secret),
            "scripts.jsonl holds {secret}:\n{scripts}"
        );
        for rec in self.peer().records() {
            for key in ["command_line", "arguments", "environment", "argv"] {
                assert!(
                    !rec[key].to_string().contains(secret),
                    "the peer's {key} holds {secret}"
                );
            }
        }
    }
}

fn sha256_hex(s: &str) -> String {
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

// ---------------------------------------------------------------- win_regedit

const KEY: &str = r"HKEY_LOCAL_MACHINE\SOFTWARE\Mixop\Lab";

const REG_TASKS: &str = r#"    - name: string
      win_regedit: {path: 'HKLM:\SOFTWARE\Mixop\Lab', name: Owner, data: "it's \"lab\""}
    - name: dword
      win_regedit: {path: 'HKLM:\SOFTWARE\Mixop\Lab', name: Flags, data: '0xffffffff', type: dword}
    - name: binary
      win_regedit: {path: 'HKLM:\SOFTWARE\Mixop\Lab', name: Blob, data: 'hex:be,ef,00', type: binary}
    - name: multi
      win_regedit: {path: 'HKLM:\SOFTWARE\Mixop\Lab', name: Hosts, data: [a, b], type: multistring}
    - name: expand
      win_regedit: {path: 'HKLM:\SOFTWARE\Mixop\Lab', name: Home, data: '%SystemRoot%\mixop', type: expandstring}
    - name: default
      win_regedit: {path: 'HKLM:\SOFTWARE\Mixop\Lab', data: dflt}
    - name: classes root
      win_regedit: {path: 'HKCR:\.mixop', name: Content Type, data: text/plain}
"#;

#[test]
fn regedit_sets_typed_values_once_then_removes_them() {
    let s = Session::win_sim(&[], None);
    let sim = s.sim();
    // Check mode first: reported, nothing written.
    let p = s.play(REG_TASKS, &["--check"]);
    p.ok();
    assert_eq!(p.changed(), 7);
    assert!(sim.key(KEY).is_null(), "{}", sim.key(KEY));

    let p = s.play(REG_TASKS, &["--diff"]);
    p.ok();
    assert_eq!(p.changed(), 7, "{}", p.all);
    assert_eq!(
        sim.value(KEY, "Owner"),
        json!({"name": "Owner", "kind": "String", "data": "it's \"lab\""})
    );
    // .NET keeps a DWORD as a signed Int32.
    assert_eq!(sim.value(KEY, "Flags")["kind"], "DWord");
    assert_eq!(sim.value(KEY, "Flags")["data"], -1);
    assert_eq!(sim.value(KEY, "Blob")["data"], json!([190, 239, 0]));
    assert_eq!(sim.value(KEY, "Hosts")["data"], json!(["a", "b"]));
    assert_eq!(
        sim.value(KEY, "Home"),
        json!({"name": "Home", "kind": "ExpandString", "data": "%SystemRoot%\\mixop"})
    );
    assert_eq!(sim.value(KEY, "")["data"], "dflt");
    assert_eq!(
        sim.value(r"HKEY_CLASSES_ROOT\.mixop", "Content Type")["data"],
        "text/plain"
    );
    // The parents were created too.
    assert!(!sim.key(r"HKEY_LOCAL_MACHINE\SOFTWARE\Mixop").is_null());
    assert_eq!(
        p.result("dword")["diff"],
        json!({"before": {r"HKLM:\SOFTWARE\Mixop\Lab": {}}, "after": {r"HKLM:\SOFTWARE\Mixop\Lab": {"Flags": {"type": "DWord", "value": "0xffffffff"}}}})
    );
    assert_eq!(p.result("string")["data_changed"], false);
    assert_eq!(
        p.result("string")["diff"]["before"],
        json!({}),
        "the key was new"
    );

    // Again: nothing to do (the expandstring is compared unexpanded, the dword as read back).
    let p = s.play(REG_TASKS, &[]);
    p.ok();
    assert_eq!(p.changed(), 0, "{}", p.all);

    // A new type for the same data, and new data.
    let p = s.play(
        r#"    - name: retype
      win_regedit: {path: 'HKLM:\SOFTWARE\Mixop\Lab', name: Owner, data: "it's \"lab\"", type: expandstring}
    - name: redata
      win_regedit: {path: 'HKLM:\SOFTWARE\Mixop\Lab', name: Flags, data: 7, type: dword}
"#,
        &[],
    );
    p.ok();
    assert_eq!(p.result("retype")["data_type_changed"], true);
    assert_eq!(p.result("retype")["data_changed"], false);
    assert_eq!(p.result("redata")["data_changed"], true);
    assert_eq!(sim.value(KEY, "Owner")["kind"], "ExpandString");
    assert_eq!(sim.value(KEY, "Flags")["data"], 7);

    // Remove one value, clear the default value, then the whole key with its subkeys.
    let p = s.play(
        r#"    - name: sub
      win_regedit: {path: 'HKLM:\SOFTWARE\Mixop\Lab\Deeper\Still'}
    - name: rm value
      win_regedit: {path: 'HKLM:\SOFTWARE\Mixop\Lab', name: Blob, state: absent}
    - name: clear default
      win_regedit: {path: 'HKLM:\SOFTWARE\Mixop\Lab', state: absent, delete_key: false}
"#,
        &[],
    );
    p.ok();
    assert_eq!(p.changed(), 3);
    assert!(sim.value(KEY, "Blob").is_null());
    assert!(sim.value(KEY, "").is_null());
    assert!(!sim.value(KEY, "Owner").is_null());
    let p = s.play(
        r#"    - name: rm key
      win_regedit: {path: 'HKLM:\SOFTWARE\Mixop\Lab', state: absent}
"#,
        &[],
    );
    p.ok();
    assert_eq!(p.changed(), 1);
    assert!(sim.key(KEY).is_null());
    assert!(sim.key(&format!(r"{KEY}\Deeper\Still")).is_null());
    assert!(!sim.key(r"HKEY_LOCAL_MACHINE\SOFTWARE\Mixop").is_null());
    let p = s.play(
        r#"    - name: rm key
      win_regedit: {path: 'HKLM:\SOFTWARE\Mixop\Lab', state: absent}
"#,
        &[],
    );
    p.ok();
    assert_eq!(p.changed(), 0);
}

#[test]
fn regedit_refuses_what_ansible_refuses() {
    let s = Session::win_sim(&[], None);
    let sim = s.sim();
    let p = s.play(
        r#"    - name: bad path
      win_regedit: {path: 'HKEY_LOCAL_MACHINE\SOFTWARE\X', name: a, data: b}
      ignore_errors: true
    - name: too big
      win_regedit: {path: 'HKLM:\SOFTWARE\X', name: a, data: 4294967296, type: dword}
      ignore_errors: true
"#,
        &[],
    );
    p.ok();
    assert!(
        p.result("bad path")["msg"]
            .as_str()
            .unwrap()
            .contains("is not a valid powershell path"),
        "{}",
        p.all
    );
    assert_eq!(
        p.result("too big")["msg"],
        "data cannot be larger than 0xffffffff when type is dword"
    );
    assert!(sim.key(r"HKEY_LOCAL_MACHINE\SOFTWARE\X").is_null());
}

// ---------------------------------------------------------------- win_group

#[test]
fn group_created_described_and_removed_once() {
    let s = Session::win_sim(&[], None);
    let sim = s.sim();
    let task = |extra: &str| {
        format!(
            r#"    - name: g
      win_group: {{name: k8s-admins{extra}}}
"#
        )
    };
    let p = s.play(&task(", description: 'Cluster admins'"), &[]);
    p.ok();
    assert_eq!(p.changed(), 1);
    let g = &sim.host()["local_groups"]["k8s-admins"];
    assert_eq!(g["description"], "Cluster admins");
    assert_eq!(g["members"], json!([]));
    // Same name in another case, same description: nothing to do.
    let p = s.play(
        r#"    - name: g
      win_group: {name: K8S-Admins, description: 'Cluster admins'}
"#,
        &[],
    );
    p.ok();
    assert_eq!(p.changed(), 0);
    let p = s.play(&task(", description: other"), &["--diff"]);
    p.ok();
    assert_eq!(p.changed(), 1);
    assert_eq!(
        p.result("g")["diff"]["before"]["description"],
        "Cluster admins"
    );
    assert_eq!(
        sim.host()["local_groups"]["k8s-admins"]["description"],
        "other"
    );
    let p = s.play(&task(", state: absent"), &["--check"]);
    p.ok();
    assert_eq!(p.changed(), 1);
    assert!(!sim.host()["local_groups"]["k8s-admins"].is_null());
    let p = s.play(&task(", state: absent"), &[]);
    p.ok();
    assert_eq!(p.changed(), 1);
    assert!(sim.host()["local_groups"]["k8s-admins"].is_null());
    // Windows refuses to remove a built-in group: the task fails with its message.
    let p = s.play(
        r#"    - name: builtin
      win_group: {name: Administrators, state: absent}
"#,
        &[],
    );
    assert_eq!(p.code, 2, "{}", p.all);
    assert!(
        p.result("builtin")["msg"]
            .as_str()
            .unwrap()
            .contains("built-in accounts"),
        "{}",
        p.all
    );
}

// ---------------------------------------------------------------- win_user

const PW1: &str = "Lab-Pa55w0rd!";
const PW2: &str = "N3w-'Pa55'$x";

fn user_task(extra: &str) -> String {
    format!(
        r#"    - name: u
      win_user: {{name: deploy{extra}}}
"#
    )
}

#[test]
fn user_lifecycle_with_a_password_that_is_never_sent_in_clear() {
    let s = Session::win_sim(&[], None);
    let sim = s.sim();
    let create = user_task(&format!(
        ", password: '{PW1}', fullname: Deploy Bot, description: CI, password_never_expires: true, groups: ['Remote Management Users', users]"
    ));
    let p = s.play(&create, &["--diff", "-vvv"]);
    p.ok();
    assert_eq!(p.changed(), 1);
    let u = &sim.host()["local_users"]["deploy"];
    assert_eq!(u["password_sha256"], sha256_hex(PW1));
    assert_eq!(u["full_name"], "Deploy Bot");
    assert_eq!(u["password_never_expires"], true);
    let groups = &sim.host()["local_groups"];
    assert!(
        groups["remote management users"]["members"]
            .as_array()
            .unwrap()
            .contains(&json!("deploy"))
    );
    let r = p.result("u");
    assert_eq!(r["state"], "present");
    assert_eq!(r["sid"], u["sid"]);
    assert_eq!(
        r["groups"],
        json!([{"name": "Users"}, {"name": "Remote Management Users"}])
    );
    assert_eq!(r["diff"]["after"]["password"], "CHANGED REDACTED");
    assert!(!p.all.contains(PW1), "the password was printed:\n{}", p.all);

    // Again: the password is proven by a logon, nothing changes.
    let p = s.play(&create, &[]);
    p.ok();
    assert_eq!(p.changed(), 0, "{}", p.all);
    assert_eq!(sim.host()["local_users"]["deploy"]["password_changes"], 1);

    // A new password is set; on_create leaves it alone.
    let p = s.play(&user_task(&format!(", password: \"{PW2}\"")), &[]);
    p.ok();
    assert_eq!(p.changed(), 1);
    assert_eq!(
        sim.host()["local_users"]["deploy"]["password_sha256"],
        sha256_hex(PW2)
    );
    let p = s.play(
        &user_task(&format!(", password: '{PW1}', update_password: on_create")),
        &[],
    );
    p.ok();
    assert_eq!(p.changed(), 0);

    // Disabled and password expired: the logon still proves the password (1331 / 1907).
    let p = s.play(
        &user_task(&format!(
            ", password: \"{PW2}\", account_disabled: true, password_expired: true, groups: [Users], groups_action: replace"
        )),
        &[],
    );
    p.ok();
    assert_eq!(p.changed(), 1);
    let u = &sim.host()["local_users"]["deploy"];
    assert_eq!(u["enabled"], false);
    assert_eq!(u["password_expired"], true);
    assert_eq!(u["password_changes"], 2);
    assert!(
        !sim.host()["local_groups"]["remote management users"]["members"]
            .as_array()
            .unwrap()
            .contains(&json!("deploy"))
    );
    let p = s.play(
        &user_task(&format!(
            ", password: \"{PW2}\", account_disabled: true, password_expired: true"
        )),
        &[],
    );
    p.ok();
    assert_eq!(p.changed(), 0, "{}", p.all);

    // Query, then absent (memberships go with the user).
    let p = s.play(&user_task(", state: query"), &[]);
    p.ok();
    assert_eq!(p.changed(), 0);
    assert_eq!(p.result("u")["account_disabled"], true);
    assert_eq!(p.result("u")["password_expired"], true);
    assert_eq!(p.result("u")["groups"], json!([{"name": "Users"}]));
    let p = s.play(&user_task(", state: absent"), &[]);
    p.ok();
    assert_eq!(p.changed(), 1);
    assert!(sim.host()["local_users"]["deploy"].is_null());
    assert!(
        !sim.host()["local_groups"]["users"]["members"]
            .as_array()
            .unwrap()
            .contains(&json!("deploy"))
    );

    // The passwords reached the host only as secrets.
    sim.assert_never_sent(PW1);
    sim.assert_never_sent("N3w-");
    let with_secrets: Vec<Value> = sim
        .scripts()
        .into_iter()
        .filter(|s| s["module"] == "win_user" && s["secrets"] == json!(["password"]))
        .collect();
    assert!(with_secrets.len() >= 4, "{with_secrets:?}");
}

#[test]
fn user_refusals_say_why() {
    let s = Session::win_sim(&[], None);
    let sim = s.sim();
    let p = s.play(
        &format!(
            "{}      ignore_errors: true\n    - name: group\n      win_user: {{name: other, groups: [nope]}}\n      ignore_errors: true\n    - name: locked\n      win_user: {{name: other, account_locked: true}}\n      ignore_errors: true\n",
            user_task(", password: short")
        ),
        &[],
    );
    p.ok();
    assert!(
        p.result("u")["msg"]
            .as_str()
            .unwrap()
            .contains("does not meet the password policy requirements"),
        "{}",
        p.all
    );
    assert_eq!(p.result("group")["msg"], "group 'nope' not found");
    assert_eq!(
        p.result("locked")["msg"],
        "account_locked must be set to 'no' if provided"
    );
    assert!(sim.host()["local_users"]["deploy"].is_null());
    assert!(sim.host()["local_users"]["other"].is_null());
    sim.assert_never_sent("short");
}

// ---------------------------------------------------------------- win_powershell

const PS_SCRIPT: &str = r#"[CmdletBinding(SupportsShouldProcess)]
param([string]$Name, [int]$Count = 2, $Token, $Cred)
Write-Output "hello $Name"
$Count
Write-Warning 'careful'
Write-Host 'to the host'
Write-Output $Token.Length
Write-Output $Cred.UserName
if ($PSCmdlet.ShouldProcess('thing')) { $Ansible.Result = @{done = $true; name = $Name} }
$Ansible.Changed = $false
"#;

#[test]
fn powershell_streams_result_and_sensitive_parameters() {
    let s = Session::win_sim(&[], None);
    let sim = s.sim();
    s.write("script.ps1", PS_SCRIPT);
    let task = r#"    - name: ps
      win_powershell:
        script: "{{ lookup('file', 'script.ps1') }}"
        parameters: {Name: lab}
        sensitive_parameters:
          - {name: Token, value: 'Tok-31415'}
          - {name: Cred, username: svc, password: 'CredPw-2718'}
      register: out
"#;
    let use_it = r#"    - name: use it
      debug: {msg: "{{ out.result.name }} {{ out.output[0] }}"}
"#;
    let p = s.play(&format!("{task}{use_it}"), &["-v"]);
    p.ok();
    let r = p.result("ps");
    assert_eq!(r["changed"], false);
    assert_eq!(r["output"], json!(["hello lab", 2, 9, "svc"]));
    assert_eq!(r["warning"], json!(["careful"]));
    assert_eq!(r["host_out"], "to the host\r\n");
    assert_eq!(r["information"][0]["tags"], json!(["PSHOST"]));
    assert_eq!(r["result"], json!({"done": true, "name": "lab"}));
    assert_eq!(r["error"], json!([]));
    assert_eq!(p.result("use it")["msg"], "lab hello lab");
    sim.assert_never_sent("Tok-31415");
    sim.assert_never_sent("CredPw-2718");
    let req = sim
        .scripts()
        .into_iter()
        .find(|s| s["module"] == "win_powershell")
        .unwrap();
    assert_eq!(req["secrets"], json!(["sensitive"]));
    assert_eq!(req["args"]["error_action"], "Continue");
    assert_eq!(req["args"]["depth"], 2);

    // Check mode: a script with SupportsShouldProcess runs with -WhatIf (ShouldProcess false).
    let p = s.play(task, &["--check"]);
    p.ok();
    assert_eq!(p.result("ps")["result"], json!({}));
    assert_eq!(p.result("ps")["output"][0], "hello lab");
    // One without it is skipped and reported as a change, as in Ansible.
    let p = s.play(
        r#"    - name: plain
      win_powershell: {script: "Write-Output 'x'"}
"#,
        &["--check"],
    );
    p.ok();
    assert_eq!(p.changed(), 1);
    assert_eq!(p.result("plain")["msg"], "skipped, running in check mode");
}

#[test]
fn powershell_failures() {
    let s = Session::win_sim(&[], None);
    let p = s.play(
        r#"    - name: throws
      win_powershell:
        script: |
          Write-Output 'before'
          throw 'it broke'
          Write-Output 'after'
      ignore_errors: true
    - name: flagged
      win_powershell:
        script: |
          $Ansible.Failed = $true
          $Ansible.Result = 'why'
      ignore_errors: true
    - name: soft error
      win_powershell:
        script: |
          Write-Error 'not fatal'
          'went on'
    - name: stop
      win_powershell:
        script: |
          Write-Error 'now fatal'
          'never'
        error_action: stop
      ignore_errors: true
    - name: unknown parameter
      win_powershell:
        script: 'param($A) $A'
        parameters: {B: 1}
      ignore_errors: true
"#,
        &[],
    );
    p.ok();
    let t = p.result("throws");
    assert_eq!(t["failed"], true);
    assert_eq!(t["msg"], "the script failed: it broke");
    assert_eq!(t["output"], json!(["before"]));
    assert_eq!(
        t["error"][0]["exception"]["type"],
        "System.Management.Automation.RuntimeException"
    );
    let f = p.result("flagged");
    assert_eq!(f["failed"], true);
    assert_eq!(f["result"], "why");
    let s = p.result("soft error");
    assert_eq!(s["failed"], false, "{s}");
    assert_eq!(s["output"], json!(["went on"]));
    assert_eq!(s["error"][0]["exception"]["message"], "not fatal");
    let st = p.result("stop");
    assert_eq!(st["msg"], "the script failed: now fatal");
    assert_eq!(st["output"], json!([]));
    assert!(
        p.result("unknown parameter")["msg"]
            .as_str()
            .unwrap()
            .contains("A parameter cannot be found that matches parameter name 'B'"),
        "{}",
        p.all
    );
}
