//! `win_user` (ansible.windows): a local user — present with its settings and groups, absent,
//! or only queried — returning the user's settings as Ansible does (`account_disabled`,
//! `account_locked`, `description`, `fullname`, `groups`, `name`, `password_expired`,
//! `password_never_expires`, `sid`, `state`, `user_cannot_change_password`).
//!
//! The script uses the LocalAccounts cmdlets, ADSI (`WinNT://`) for what they do not show
//! (password expired, lockout) and, as Ansible does, `LogonUserW` to learn whether a given
//! password is already the user's: a network logon that fails only because the account is
//! disabled, expired or restricted still proves the password. A failed test logon counts as a
//! bad password attempt on the host, as with Ansible.
//!
//! The password is a secret: it travels in the request's `secrets`, never in `args`, the plan,
//! a command line or the result; the diff shows only whether it changes. Not supported:
//! `home_directory`, `login_script`, `profile` (refused as unknown arguments).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{WINDOWS, finish, list, opt_list, script, typed_args};
use crate::modules::ParamType::*;
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Target, choice, p, req,
};

pub static SCRIPT: super::Script = script!("win_user");

static DEF: ModuleDef = ModuleDef {
    name: "win_user",
    namespaces: WINDOWS,
    params: &[
        req("name", Str),
        p("fullname", Str),
        p("description", Str),
        p("password", Str),
        choice("update_password", &["always", "on_create"]),
        p("password_expired", Bool),
        p("password_never_expires", Bool),
        p("user_cannot_change_password", Bool),
        p("account_disabled", Bool),
        p("account_locked", Bool),
        p("groups", List),
        choice("groups_action", &["add", "remove", "replace"]),
        choice("state", &["present", "absent", "query"]),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Windows,
    mutually_exclusive: &[],
    required_one_of: &[],
};

#[derive(Debug, Clone, Deserialize, Default)]
pub struct UserArgs {
    pub name: String,
    #[serde(default)]
    pub fullname: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub update_password: Option<String>,
    #[serde(default)]
    pub password_expired: Option<bool>,
    #[serde(default)]
    pub password_never_expires: Option<bool>,
    #[serde(default)]
    pub user_cannot_change_password: Option<bool>,
    #[serde(default)]
    pub account_disabled: Option<bool>,
    #[serde(default)]
    pub account_locked: Option<bool>,
    #[serde(default, deserialize_with = "opt_list")]
    pub groups: Option<Vec<String>>,
    #[serde(default)]
    pub groups_action: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Default, PartialEq)]
pub struct Probe {
    #[serde(default)]
    pub exists: bool,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub fullname: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub sid: String,
    #[serde(default)]
    pub user_may_change_password: bool,
    #[serde(default)]
    pub password_never_expires: bool,
    #[serde(default)]
    pub password_expired: bool,
    #[serde(default)]
    pub locked: bool,
    /// The local groups the user is in.
    #[serde(default, deserialize_with = "list")]
    pub groups: Vec<String>,
    /// Every local group (to refuse an unknown one, and to spell names as Windows does).
    #[serde(default, deserialize_with = "list")]
    pub all_groups: Vec<String>,
    /// LogonUserW's Win32 error for the task's password (0: it logged on); absent when no
    /// password was tested.
    #[serde(default)]
    pub logon_result: Option<u32>,
}

impl Probe {
    /// Whether the user was created or changed between two probes.
    fn state_differs(&self, other: &Probe) -> bool {
        self != other
    }
}

/// LogonUserW failures that still prove the password right: ERROR_ACCOUNT_RESTRICTION (1327),
/// ERROR_LOGON_TYPE_NOT_GRANTED (1385), ERROR_PASSWORD_EXPIRED (1330), ERROR_ACCOUNT_DISABLED
/// (1331), ERROR_PASSWORD_MUST_CHANGE (1907).
fn password_matches(logon_result: Option<u32>) -> bool {
    matches!(logon_result, Some(0 | 1327 | 1330 | 1331 | 1385 | 1907))
}

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Plan {
    pub create: bool,
    pub remove: bool,
    /// Set the password from the request's secrets.
    pub password: bool,
    pub fullname: Option<String>,
    pub description: Option<String>,
    pub password_never_expires: Option<bool>,
    pub user_may_change_password: Option<bool>,
    /// `Some(true)`: Enable-LocalUser, `Some(false)`: Disable-LocalUser.
    pub enable: Option<bool>,
    pub unlock: bool,
    pub password_expired: Option<bool>,
    pub add_groups: Vec<String>,
    pub remove_groups: Vec<String>,
}

impl Plan {
    pub fn changes(&self) -> bool {
        *self != Plan::default()
    }
}

/// What to change, or why the task cannot be done.
pub fn plan(probe: &Probe, a: &UserArgs) -> Result<Plan, String> {
    let mut plan = Plan::default();
    if a.account_locked == Some(true) {
        return Err("account_locked must be set to 'no' if provided".into());
    }
    match a.state.as_deref().unwrap_or("present") {
        "query" => return Ok(plan),
        "absent" => {
            plan.remove = probe.exists;
            return Ok(plan);
        }
        _ => {}
    }
    let differs = |want: &Option<String>, have: &str| want.clone().filter(|w| w != have);
    let differs_b = |want: Option<bool>, have: bool| want.filter(|w| *w != have);
    if !probe.exists {
        plan.create = true;
        plan.password = a.password.is_some();
        plan.fullname = a.fullname.clone().filter(|f| !f.is_empty());
        plan.description = a.description.clone().filter(|d| !d.is_empty());
        plan.password_never_expires = a.password_never_expires.filter(|b| *b);
        plan.user_may_change_password = a.user_cannot_change_password.filter(|b| *b).map(|_| false);
        plan.enable = a.account_disabled.filter(|b| *b).map(|_| false);
        plan.password_expired = a.password_expired.filter(|b| *b);
    } else {
        let always = a.update_password.as_deref() != Some("on_create");
        plan.password = a.password.is_some() && always && !password_matches(probe.logon_result);
        plan.fullname = differs(&a.fullname, &probe.fullname);
        plan.description = differs(&a.description, &probe.description);
        plan.password_never_expires =
            differs_b(a.password_never_expires, probe.password_never_expires);
        plan.user_may_change_password = differs_b(
            a.user_cannot_change_password.map(|c| !c),
            probe.user_may_change_password,
        );
        plan.enable = differs_b(a.account_disabled.map(|d| !d), probe.enabled);
        plan.unlock = a.account_locked == Some(false) && probe.locked;
        // A new password clears the expired flag: set it again when the task asks for it.
        let expired_now = probe.password_expired && !plan.password;
        plan.password_expired = differs_b(a.password_expired, expired_now);
    }
    // A new user's groups are planned after it exists: Windows puts new local users in Users.
    if !plan.create {
        (plan.add_groups, plan.remove_groups) = groups_plan(probe, a)?;
    }
    Ok(plan)
}

/// The groups to join and leave for `groups` / `groups_action` (Ansible's default: replace).
pub fn groups_plan(probe: &Probe, a: &UserArgs) -> Result<(Vec<String>, Vec<String>), String> {
    let Some(groups) = &a.groups else {
        return Ok((Vec::new(), Vec::new()));
    };
    let mut wanted = Vec::new();
    for g in groups.iter().map(|g| g.trim()).filter(|g| !g.is_empty()) {
        let canon = probe
            .all_groups
            .iter()
            .find(|x| x.eq_ignore_ascii_case(g))
            .ok_or_else(|| format!("group '{g}' not found"))?;
        if !wanted.contains(canon) {
            wanted.push(canon.clone());
        }
    }
    let member = |g: &String| probe.groups.iter().any(|m| m.eq_ignore_ascii_case(g));
    let action = a.groups_action.as_deref().unwrap_or("replace");
    let add = if action == "remove" {
        Vec::new()
    } else {
        wanted.iter().filter(|g| !member(g)).cloned().collect()
    };
    let remove = match action {
        "remove" => wanted.iter().filter(|g| member(g)).cloned().collect(),
        "replace" => probe
            .groups
            .iter()
            .filter(|g| !wanted.iter().any(|w| w.eq_ignore_ascii_case(g)))
            .cloned()
            .collect(),
        _ => Vec::new(),
    };
    Ok((add, remove))
}

/// The user as it is after the plan (as Ansible returns it).
pub fn after(probe: &Probe, plan: &Plan, a: &UserArgs, sid: Option<&str>) -> Map<String, Value> {
    let mut m = Map::new();
    let gone = plan.remove || (!probe.exists && !plan.create);
    m.insert("name".into(), a.name.clone().into());
    m.insert(
        "state".into(),
        if gone { "absent" } else { "present" }.into(),
    );
    if gone {
        return m;
    }
    let pick = |p: &Option<String>, have: &str| p.clone().unwrap_or_else(|| have.to_string());
    let pick_b = |p: Option<bool>, have: bool| p.unwrap_or(have);
    let mut groups: Vec<String> = probe
        .groups
        .iter()
        .filter(|g| !plan.remove_groups.contains(g))
        .cloned()
        .collect();
    groups.extend(plan.add_groups.iter().cloned());
    let fresh = plan.create;
    m.insert(
        "fullname".into(),
        pick(&plan.fullname, &probe.fullname).into(),
    );
    m.insert(
        "description".into(),
        pick(&plan.description, &probe.description).into(),
    );
    m.insert(
        "sid".into(),
        sid.map(str::to_string)
            .unwrap_or_else(|| probe.sid.clone())
            .into(),
    );
    m.insert(
        "account_disabled".into(),
        (!pick_b(plan.enable, fresh || probe.enabled)).into(),
    );
    m.insert(
        "account_locked".into(),
        (!fresh && probe.locked && !plan.unlock).into(),
    );
    m.insert(
        "password_expired".into(),
        pick_b(
            plan.password_expired,
            !fresh && probe.password_expired && !plan.password,
        )
        .into(),
    );
    m.insert(
        "password_never_expires".into(),
        pick_b(
            plan.password_never_expires,
            !fresh && probe.password_never_expires,
        )
        .into(),
    );
    m.insert(
        "user_cannot_change_password".into(),
        (!pick_b(
            plan.user_may_change_password,
            fresh || probe.user_may_change_password,
        ))
        .into(),
    );
    m.insert(
        "groups".into(),
        groups
            .into_iter()
            .map(|g| json!({ "name": g }))
            .collect::<Vec<_>>()
            .into(),
    );
    m
}

#[derive(Serialize)]
struct ProbeArgs<'a> {
    name: &'a str,
    /// Test the password in the secrets (LogonUserW).
    test_password: bool,
}

#[derive(Deserialize, Default)]
struct Applied {
    #[serde(default)]
    sid: Option<String>,
}

pub(super) struct WinUser;

#[async_trait]
impl Module for WinUser {
    fn def(&self) -> &'static ModuleDef {
        &DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let a: UserArgs = typed_args(DEF.name, &args)?;
        let mut secrets = Map::new();
        if let Some(pw) = &a.password {
            secrets.insert("password".into(), pw.clone().into());
        }
        let always = a.update_password.as_deref() != Some("on_create");
        let query = ProbeArgs {
            name: &a.name,
            test_password: a.password.is_some()
                && always
                && a.state.as_deref().unwrap_or("present") == "present",
        };
        let probe_secrets = if query.test_password {
            secrets.clone()
        } else {
            Map::new()
        };
        let (probe, mut warnings) = SCRIPT
            .probe_secret::<Probe>(ctx, &query, probe_secrets)
            .await?;
        let mut plan = plan(&probe, &a).map_err(ModError::msg)?;
        // Unknown groups fail before anything is created.
        let (mut add, mut remove) = groups_plan(&probe, &a).map_err(ModError::msg)?;
        let mut sid = None;
        let password_set = plan.password;
        let mut now = probe.clone();
        if plan.changes() && !ctx.check_mode {
            let apply_secrets = if plan.password { secrets } else { Map::new() };
            let (applied, w) = SCRIPT
                .apply_secret::<Applied>(ctx, &query, &plan, apply_secrets)
                .await?;
            warnings.extend(w);
            sid = applied.sid;
        }
        if plan.create && !ctx.check_mode {
            // The user exists now, in the groups Windows gave it: plan the groups from there.
            let again = ProbeArgs {
                name: &a.name,
                test_password: false,
            };
            let (fresh, w) = SCRIPT.probe::<Probe>(ctx, &again).await?;
            warnings.extend(w);
            (add, remove) = groups_plan(&fresh, &a).map_err(ModError::msg)?;
            let groups = Plan {
                add_groups: add.clone(),
                remove_groups: remove.clone(),
                ..Plan::default()
            };
            if groups.changes() {
                let (_, w) = SCRIPT.apply::<Applied>(ctx, &again, &groups).await?;
                warnings.extend(w);
            }
            now = fresh;
            plan = Plan::default();
        }
        plan.add_groups = add;
        plan.remove_groups = remove;
        let changed = plan.changes() || (probe.state_differs(&now));
        let mut fields = after(&now, &plan, &a, sid.as_deref());
        if ctx.diff {
            let mut before = if probe.exists {
                after(&probe, &Plan::default(), &a, None)
            } else {
                Map::new()
            };
            let mut after_d = fields.clone();
            if after_d["state"] == "absent" {
                after_d = Map::new();
            }
            // Whether the password changes, never what it is.
            if probe.exists {
                before.insert("password".into(), "REDACTED".into());
            }
            if !after_d.is_empty() && (a.password.is_some() || probe.exists) {
                after_d.insert(
                    "password".into(),
                    if password_set {
                        "CHANGED REDACTED"
                    } else {
                        "REDACTED"
                    }
                    .into(),
                );
            }
            before.remove("state");
            after_d.remove("state");
            fields.insert("diff".into(), json!({ "before": before, "after": after_d }));
        }
        Ok(finish(changed, warnings, Value::Object(fields)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: Value) -> UserArgs {
        serde_json::from_value(v).unwrap()
    }

    fn existing() -> Probe {
        Probe {
            exists: true,
            name: "bob".into(),
            fullname: "Bob".into(),
            description: "".into(),
            enabled: true,
            sid: "S-1-5-21-1-2-3-1001".into(),
            user_may_change_password: true,
            password_never_expires: false,
            password_expired: false,
            locked: false,
            groups: vec!["Users".into(), "Backup Operators".into()],
            all_groups: vec![
                "Administrators".into(),
                "Users".into(),
                "Backup Operators".into(),
                "Remote Management Users".into(),
            ],
            logon_result: Some(0),
        }
    }

    #[test]
    fn create_with_settings() {
        let p = plan(
            &Probe {
                all_groups: existing().all_groups,
                ..Probe::default()
            },
            &args(
                json!({"name": "bob", "password": "x", "account_disabled": true,
                "user_cannot_change_password": true, "groups": ["users"]}),
            ),
        )
        .unwrap();
        assert!(p.create && p.password);
        assert_eq!(p.enable, Some(false));
        assert_eq!(p.user_may_change_password, Some(false));
        // Groups are planned once the user exists (Windows puts it in Users).
        assert!(p.add_groups.is_empty());
        let fresh = Probe {
            all_groups: existing().all_groups,
            ..Probe::default()
        };
        let a = args(json!({"name": "bob", "groups": ["users"]}));
        assert_eq!(
            groups_plan(&fresh, &a).unwrap().0,
            vec!["Users".to_string()]
        );
        // The password is never in the plan.
        assert!(!serde_json::to_string(&p).unwrap().contains("\"x\""));
    }

    #[test]
    fn password_only_when_it_differs_and_always() {
        let a = args(json!({"name": "bob", "password": "pw"}));
        assert!(!plan(&existing(), &a).unwrap().changes());
        for code in [1327, 1330, 1331, 1385, 1907] {
            let pr = Probe {
                logon_result: Some(code),
                ..existing()
            };
            assert!(!plan(&pr, &a).unwrap().password, "{code}");
        }
        for code in [1326, 1909] {
            let pr = Probe {
                logon_result: Some(code),
                ..existing()
            };
            assert!(plan(&pr, &a).unwrap().password, "{code}");
        }
        let pr = Probe {
            logon_result: Some(1326),
            ..existing()
        };
        let on_create =
            args(json!({"name": "bob", "password": "pw", "update_password": "on_create"}));
        assert!(!plan(&pr, &on_create).unwrap().changes());
    }

    #[test]
    fn settings_and_flags() {
        let pr = Probe {
            locked: true,
            password_expired: true,
            ..existing()
        };
        let p = plan(
            &pr,
            &args(json!({"name": "bob", "fullname": "Bob", "description": "d",
                "account_locked": false, "password_expired": false, "password_never_expires": true})),
        )
        .unwrap();
        assert_eq!(p.fullname, None);
        assert_eq!(p.description.as_deref(), Some("d"));
        assert!(p.unlock);
        assert_eq!(p.password_expired, Some(false));
        assert_eq!(p.password_never_expires, Some(true));
        assert!(plan(&pr, &args(json!({"name": "bob", "account_locked": true}))).is_err());
        // A new password clears "expired": asking for expired sets it again.
        let pr = Probe {
            password_expired: true,
            logon_result: Some(1326),
            ..existing()
        };
        let p = plan(
            &pr,
            &args(json!({"name": "bob", "password": "n", "password_expired": true})),
        )
        .unwrap();
        assert!(p.password);
        assert_eq!(p.password_expired, Some(true));
    }

    #[test]
    fn groups_actions() {
        let g = |action: &str, groups: Value| {
            plan(
                &existing(),
                &args(json!({"name": "bob", "groups": groups, "groups_action": action})),
            )
            .unwrap()
        };
        let p = g("replace", json!(["administrators", "Users"]));
        assert_eq!(p.add_groups, vec!["Administrators".to_string()]);
        assert_eq!(p.remove_groups, vec!["Backup Operators".to_string()]);
        let p = g("add", json!(["Users", "Remote Management Users"]));
        assert_eq!(p.add_groups, vec!["Remote Management Users".to_string()]);
        assert!(p.remove_groups.is_empty());
        let p = g("remove", json!(["Users", "Administrators"]));
        assert!(p.add_groups.is_empty());
        assert_eq!(p.remove_groups, vec!["Users".to_string()]);
        let e = plan(
            &existing(),
            &args(json!({"name": "bob", "groups": ["nope"]})),
        )
        .unwrap_err();
        assert_eq!(e, "group 'nope' not found");
        // groups: [] with replace leaves the user in no group.
        assert_eq!(g("replace", json!([])).remove_groups.len(), 2);
    }

    #[test]
    fn absent_query_and_result() {
        assert!(
            plan(
                &existing(),
                &args(json!({"name": "bob", "state": "absent"}))
            )
            .unwrap()
            .remove
        );
        assert!(
            !plan(
                &Probe::default(),
                &args(json!({"name": "bob", "state": "absent"}))
            )
            .unwrap()
            .changes()
        );
        let a = args(json!({"name": "bob", "state": "query", "password": "p"}));
        let p = plan(&existing(), &a).unwrap();
        assert!(!p.changes());
        let r = after(&existing(), &p, &a, None);
        assert_eq!(r["state"], "present");
        assert_eq!(
            r["groups"],
            json!([{"name": "Users"}, {"name": "Backup Operators"}])
        );
        assert_eq!(r["account_disabled"], false);
        let r = after(&Probe::default(), &p, &a, None);
        assert_eq!(r["state"], "absent");
    }
}
