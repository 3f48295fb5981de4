//! `user` and `group`: local accounts through useradd/usermod/userdel and
//! groupadd/groupmod/groupdel, deciding as ansible.builtin.user/group do on Linux.
//!
//! Round trip 1 reads the account (`getent passwd`/`shadow`), the groups the task names and
//! the user's supplementary memberships; the controller builds the one command Ansible would
//! run; round trip 2 (skipped when nothing changes, and in check mode) runs it, creates a
//! missing home directory from /etc/skel, and reads the account back for the result.

use async_trait::async_trait;
use serde_json::Value;

use super::BUILTIN;
use crate::modules::ParamType::*;
use crate::modules::Target;
use crate::modules::files::remote::{self, Reply};
use crate::modules::posix::quote;
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Outcome, alias, arg_bool,
    arg_str, choice, outcome, p, req,
};

static USER_DEF: ModuleDef = ModuleDef {
    name: "user",
    namespaces: BUILTIN,
    params: &[
        alias(req("name", Str), &["user"]),
        choice("state", &["absent", "present"]),
        p("uid", Int),
        p("non_unique", Bool),
        p("group", Str),
        p("groups", List),
        p("append", Bool),
        p("comment", Str),
        p("home", Str),
        p("shell", Str),
        p("password", Str),
        choice("update_password", &["always", "on_create"]),
        p("password_lock", Bool),
        p("force", Bool),
        p("remove", Bool),
        alias(p("create_home", Bool), &["createhome"]),
        p("skeleton", Str),
        p("system", Bool),
        p("move_home", Bool),
        p("umask", Str),
        p("uid_min", Int),
        p("uid_max", Int),
        p("expires", Float),
        // Accepted so that `check` knows them; refused at run time (see UNSUPPORTED).
        p("login_class", Str),
        p("hidden", Bool),
        p("seuser", Str),
        p("generate_ssh_key", Bool),
        p("ssh_key_bits", Int),
        p("ssh_key_type", Str),
        p("ssh_key_file", Str),
        p("ssh_key_comment", Str),
        p("ssh_key_passphrase", Str),
        p("password_expire_max", Int),
        p("password_expire_min", Int),
        p("password_expire_warn", Int),
        p("password_expire_account_disable", Int),
        p("local", Bool),
        p("profile", Str),
        p("authorization", Str),
        p("role", Str),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Posix,
    mutually_exclusive: &[],
    required_one_of: &[],
};

/// Options mixop does not implement: a task setting one fails instead of ignoring it.
const UNSUPPORTED: &[&str] = &[
    "expires",
    "login_class",
    "hidden",
    "seuser",
    "generate_ssh_key",
    "ssh_key_file",
    "ssh_key_passphrase",
    "password_expire_max",
    "password_expire_min",
    "password_expire_warn",
    "password_expire_account_disable",
    "local",
    "profile",
    "authorization",
    "role",
];

pub struct User;

/// A `getent passwd` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Passwd {
    pub name: String,
    pub password: String,
    pub uid: i64,
    pub gid: i64,
    pub comment: String,
    pub home: String,
    pub shell: String,
}

impl Passwd {
    pub fn parse(line: &str) -> Option<Passwd> {
        let f: Vec<&str> = line.splitn(7, ':').collect();
        let [name, password, uid, gid, comment, home, shell] = f[..] else {
            return None;
        };
        Some(Passwd {
            name: name.into(),
            password: password.into(),
            uid: uid.parse().ok()?,
            gid: gid.parse().ok()?,
            comment: comment.into(),
            home: home.into(),
            shell: shell.into(),
        })
    }
}

/// A `getent group` entry: name, gid, members.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupEnt {
    pub name: String,
    pub gid: i64,
    pub members: Vec<String>,
}

impl GroupEnt {
    pub fn parse(line: &str) -> Option<GroupEnt> {
        let f: Vec<&str> = line.splitn(4, ':').collect();
        let [name, _, gid, members] = f[..] else {
            return None;
        };
        Some(GroupEnt {
            name: name.into(),
            gid: gid.parse().ok()?,
            members: members
                .split(',')
                .filter(|m| !m.is_empty())
                .map(str::to_string)
                .collect(),
        })
    }
}

/// What round trip 1 found.
#[derive(Debug, Default)]
pub struct Account {
    pub passwd: Option<Passwd>,
    /// The shadow password field.
    pub shadow: Option<String>,
    /// Groups looked up by the names (or gids) the task gave: `(asked, entry)`.
    pub groups: Vec<(String, Option<GroupEnt>)>,
    /// Every group listing the user as a member.
    pub member_of: Vec<GroupEnt>,
    pub home_exists: bool,
}

impl Account {
    fn group(&self, asked: &str) -> Option<&GroupEnt> {
        self.groups
            .iter()
            .find(|(a, _)| a == asked)
            .and_then(|(_, g)| g.as_ref())
    }
    fn parse(reply: &Reply) -> Account {
        Account {
            passwd: reply.get("pw").and_then(Passwd::parse),
            shadow: reply.get("sp").map(str::to_string),
            groups: reply
                .all("g")
                .filter_map(|l| l.split_once('\t'))
                .map(|(a, e)| (a.to_string(), GroupEnt::parse(e)))
                .collect(),
            member_of: reply.all("mem").filter_map(GroupEnt::parse).collect(),
            home_exists: reply.flag("home_exists"),
        }
    }
}

/// The arguments, as Ansible's `User` object holds them.
#[derive(Debug, Default, Clone)]
pub struct UserReq {
    pub name: String,
    pub uid: Option<i64>,
    pub non_unique: bool,
    pub group: Option<String>,
    /// `groups` joined with commas (Ansible), `Some("")` to remove all.
    pub groups: Option<String>,
    pub append: bool,
    pub comment: Option<String>,
    pub home: Option<String>,
    pub shell: Option<String>,
    pub password: Option<String>,
    pub update_password_always: bool,
    pub password_lock: Option<bool>,
    pub create_home: bool,
    pub skeleton: Option<String>,
    pub system: bool,
    pub move_home: bool,
    pub umask: Option<String>,
    pub uid_min: Option<i64>,
    pub uid_max: Option<i64>,
}

impl UserReq {
    fn from_args(args: &Args) -> UserReq {
        let s = |k: &str| arg_str(args, k).map(str::to_string);
        let i = |k: &str| args.get(k).and_then(Value::as_i64);
        UserReq {
            name: s("name").unwrap_or_default(),
            uid: i("uid"),
            non_unique: arg_bool(args, "non_unique", false),
            group: s("group"),
            groups: args.get("groups").and_then(Value::as_array).map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            }),
            append: arg_bool(args, "append", false),
            comment: s("comment"),
            home: s("home"),
            shell: s("shell"),
            password: s("password"),
            update_password_always: arg_str(args, "update_password") != Some("on_create"),
            password_lock: args.get("password_lock").and_then(crate::value::as_bool),
            create_home: arg_bool(args, "create_home", true),
            skeleton: s("skeleton"),
            system: arg_bool(args, "system", false),
            move_home: arg_bool(args, "move_home", false),
            umask: s("umask"),
            uid_min: i("uid_min"),
            uid_max: i("uid_max"),
        }
    }

    /// The group names/gids the decision needs looked up.
    fn lookups(&self) -> Vec<String> {
        let mut v = vec![self.name.clone()];
        v.extend(self.group.clone());
        if let Some(g) = &self.groups {
            v.extend(
                g.split(',')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .map(str::to_string),
            );
        }
        v
    }

    fn group_list(&self) -> Vec<&str> {
        self.groups
            .as_deref()
            .map(|g| {
                g.split(',')
                    .map(str::trim)
                    .filter(|x| !x.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn missing_group(g: &str) -> ModError {
    ModError::msg(format!("Group {g} does not exist"))
}

/// Ansible's `create_user_useradd` argv (after `useradd`).
pub fn useradd_argv(r: &UserReq, acct: &Account) -> Result<Vec<String>, ModError> {
    let mut cmd: Vec<String> = vec!["useradd".into()];
    if let Some(uid) = r.uid {
        cmd.extend(["-u".into(), uid.to_string()]);
        if r.non_unique {
            cmd.push("-o".into());
        }
    }
    if let Some(g) = &r.group {
        if acct.group(g).is_none() {
            return Err(missing_group(g));
        }
        cmd.extend(["-g".into(), g.clone()]);
    } else if acct.group(&r.name).is_some() {
        cmd.push("-N".into());
    }
    let groups = r.group_list();
    if !groups.is_empty() {
        let mut set: Vec<String> = Vec::new();
        for g in groups {
            if acct.group(g).is_none() {
                return Err(missing_group(g));
            }
            if !set.iter().any(|x| x == g) {
                set.push(g.to_string());
            }
        }
        cmd.extend(["-G".into(), set.join(",")]);
    }
    if let Some(c) = &r.comment {
        cmd.extend(["-c".into(), c.clone()]);
    }
    if let Some(h) = &r.home {
        cmd.extend(["-d".into(), h.clone()]);
    }
    if let Some(s) = &r.shell {
        cmd.extend(["-s".into(), s.clone()]);
    }
    if let Some(pw) = &r.password {
        cmd.push("-p".into());
        cmd.push(if r.password_lock == Some(true) {
            format!("!{pw}")
        } else {
            pw.clone()
        });
    }
    if r.create_home {
        cmd.push("-m".into());
        if let Some(k) = &r.skeleton {
            cmd.extend(["-k".into(), k.clone()]);
        }
        if let Some(u) = &r.umask {
            cmd.extend(["-K".into(), format!("UMASK={u}")]);
        }
    } else {
        cmd.push("-M".into());
    }
    if r.system {
        cmd.push("-r".into());
    }
    if let Some(m) = r.uid_min {
        cmd.extend(["-K".into(), format!("UID_MIN={m}")]);
    }
    if let Some(m) = r.uid_max {
        cmd.extend(["-K".into(), format!("UID_MAX={m}")]);
    }
    cmd.push(r.name.clone());
    Ok(cmd)
}

/// Ansible's `modify_user_usermod` argv, or `None` when the account already matches.
pub fn usermod_argv(r: &UserReq, acct: &Account) -> Result<Option<Vec<String>>, ModError> {
    let Some(info) = &acct.passwd else {
        return Ok(None);
    };
    let mut cmd: Vec<String> = vec!["usermod".into()];
    if let Some(uid) = r.uid
        && info.uid != uid
    {
        cmd.extend(["-u".into(), uid.to_string()]);
        if r.non_unique {
            cmd.push("-o".into());
        }
    }
    if let Some(g) = &r.group {
        let ginfo = acct.group(g).ok_or_else(|| missing_group(g))?;
        if info.gid != ginfo.gid {
            cmd.extend(["-g".into(), ginfo.gid.to_string()]);
        }
    }
    if let Some(groups_arg) = &r.groups {
        // All groups the user is in, the primary included (Ansible: exclude_primary=False,
        // which only sees groups listing the user as a member).
        let current: Vec<&str> = acct.member_of.iter().map(|g| g.name.as_str()).collect();
        let mut need = false;
        let mut wanted: Vec<String> = Vec::new();
        if groups_arg.is_empty() {
            need = !current.is_empty() && !r.append;
        } else {
            for g in r.group_list() {
                let e = acct.group(g).ok_or_else(|| missing_group(g))?;
                if !wanted.contains(&e.name) {
                    wanted.push(e.name.clone());
                }
            }
            let differs = |g: &str| current.contains(&g) != wanted.iter().any(|w| w == g);
            let any_diff = current.iter().any(|g| differs(g)) || wanted.iter().any(|g| differs(g));
            if any_diff {
                if r.append {
                    if wanted.iter().any(|g| !current.contains(&g.as_str())) {
                        cmd.push("-a".into());
                        need = true;
                    }
                } else {
                    need = true;
                }
            }
        }
        if need {
            wanted.sort();
            cmd.extend(["-G".into(), wanted.join(",")]);
        }
    }
    if let Some(c) = &r.comment
        && info.comment != *c
    {
        cmd.extend(["-c".into(), c.clone()]);
    }
    if let Some(h) = &r.home
        && info.home != *h
    {
        cmd.extend(["-d".into(), h.clone()]);
        if r.move_home {
            cmd.push("-m".into());
        }
    }
    if let Some(s) = &r.shell
        && info.shell != *s
    {
        cmd.extend(["-s".into(), s.clone()]);
    }
    let current_pw = if info.password.len() <= 1 {
        acct.shadow.clone().unwrap_or_default()
    } else {
        info.password.clone()
    };
    match r.password_lock {
        Some(true) if !current_pw.starts_with('!') => cmd.push("-L".into()),
        Some(false) if current_pw.starts_with('!') => cmd.push("-U".into()),
        _ => {}
    }
    if r.update_password_always
        && let Some(pw) = &r.password
        && current_pw.trim_start_matches('!') != pw.trim_start_matches('!')
    {
        cmd.retain(|c| c != "-U" && c != "-L");
        cmd.push("-p".into());
        cmd.push(if r.password_lock == Some(true) {
            format!("!{pw}")
        } else {
            pw.clone()
        });
    }
    if cmd.len() == 1 {
        return Ok(None);
    }
    cmd.push(r.name.clone());
    Ok(Some(cmd))
}

fn read_script(name: &str, lookups: &[String], home: Option<&str>) -> String {
    let mut body = String::from(
        r#"pw=$(getent passwd "$n") && printf 'pw=%s\n' "$pw"
sp=$(getent shadow "$n" 2>/dev/null) && printf 'sp=%s\n' "$(printf '%s' "$sp" | cut -d: -f2)"
getent group | awk -F: -v u="$n" '{ k = split($4, a, ","); for (i = 1; i <= k; i++) if (a[i] == u) { print "mem=" $0; break } }'
h=${home:-$(printf '%s' "$pw" | cut -d: -f6)}
[ -n "$h" ] && [ -e "$h" ] && echo home_exists=1
"#,
    );
    for g in lookups {
        body.push_str(&format!(
            "e=$(getent group {q}) && printf 'g=%s\\t%s\\n' {q} \"$e\"\n",
            q = quote(g)
        ));
    }
    // Lookups that find nothing are answers, not failures.
    body.push_str("exit 0\n");
    remote::script(
        &[
            ("n", quote(name)),
            ("home", home.map(quote).unwrap_or_default()),
        ],
        &body,
    )
}

/// Round trip 2: the command (if any), a missing home from the skeleton, the account after.
fn act_script(
    argv: Option<&[String]>,
    make_home: Option<(&str, Option<&str>)>,
    name: &str,
) -> String {
    let mut body = String::new();
    if let Some(argv) = argv {
        let cmd: Vec<String> = argv.iter().map(|a| quote(a)).collect();
        body.push_str(&format!(
            "out=$({} 2>/tmp/.mixop-user-err.$$); rc=$?; err=$(cat /tmp/.mixop-user-err.$$); rm -f /tmp/.mixop-user-err.$$\nprintf 'rc=%s\\n' \"$rc\"\nprintf 'out=%s\\n' \"$out\" | tr '\\n' '\\036'; echo\nprintf 'err=%s\\n' \"$err\" | tr '\\n' '\\036'; echo\n[ \"$rc\" = 0 ] || exit 0\n",
            cmd.join(" ")
        ));
    }
    if let Some((home, skel)) = make_home {
        body.push_str(&format!(
            r#"h={}; k={}
if [ ! -e "$h" ]; then
  mkdir -p "$(dirname "$h")" || exit 1
  if [ -d "$k" ]; then cp -a "$k" "$h"; else mkdir "$h"; fi || exit 1
  chown -R "$(id -u "$n"):$(id -g "$n")" "$h" || exit 1
  echo home_made=1
fi
"#,
            quote(home),
            quote(skel.unwrap_or("/etc/skel"))
        ));
    }
    body.push_str("pw=$(getent passwd \"$n\") && printf 'pw=%s\\n' \"$pw\"\nexit 0\n");
    remote::script(&[("n", quote(name))], &body)
}

/// `out`/`err` lines of the act script, newlines restored.
fn field(reply: &Reply, k: &str) -> String {
    reply
        .get(k)
        .unwrap_or_default()
        .replace('\u{1e}', "\n")
        .trim_end_matches('\n')
        .to_string()
}

fn command_result(reply: &Reply, r: &mut Outcome, name: &str) -> Result<bool, ModError> {
    let Some(rc) = reply.get("rc").and_then(|x| x.parse::<i32>().ok()) else {
        return Ok(false);
    };
    let (out, err) = (field(reply, "out"), field(reply, "err"));
    if rc != 0 {
        let mut result = Outcome::new();
        result.insert("name".into(), name.into());
        result.insert("rc".into(), rc.into());
        return Err(ModError::Failed { msg: err, result });
    }
    if !out.is_empty() {
        r.insert("stdout".into(), out.into());
    }
    if !err.is_empty() {
        r.insert("stderr".into(), err.into());
    }
    Ok(true)
}

fn account_keys(r: &mut Outcome, pw: &Passwd) {
    r.insert("uid".into(), pw.uid.into());
    r.insert("group".into(), pw.gid.into());
    r.insert("comment".into(), pw.comment.clone().into());
    r.insert("home".into(), pw.home.clone().into());
    r.insert("shell".into(), pw.shell.clone().into());
}

#[async_trait]
impl Module for User {
    fn def(&self) -> &'static ModuleDef {
        &USER_DEF
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        for k in UNSUPPORTED {
            if args.get(*k).is_some_and(|v| !v.is_null()) {
                return Err(ModError::msg(format!(
                    "user: `{k}` is not supported by mixop"
                )));
            }
        }
        let req = UserReq::from_args(&args);
        let absent = arg_str(&args, "state") == Some("absent");
        let reply = remote::run(
            ctx,
            read_script(&req.name, &req.lookups(), req.home.as_deref()),
        )
        .await?;
        let acct = Account::parse(&reply);
        let mut r = Outcome::new();
        r.insert("name".into(), req.name.clone().into());
        r.insert(
            "state".into(),
            if absent { "absent" } else { "present" }.into(),
        );
        if absent {
            if acct.passwd.is_none() {
                r.insert("changed".into(), false.into());
                return Ok(r);
            }
            if ctx.check_mode {
                return Ok(outcome(true));
            }
            let mut argv = vec!["userdel".to_string()];
            if arg_bool(&args, "force", false) {
                argv.push("-f".into());
            }
            if arg_bool(&args, "remove", false) {
                argv.push("-r".into());
            }
            argv.push(req.name.clone());
            let done = remote::run(ctx, act_script(Some(&argv), None, &req.name)).await?;
            command_result(&done, &mut r, &req.name)?;
            r.insert("force".into(), arg_bool(&args, "force", false).into());
            r.insert("remove".into(), arg_bool(&args, "remove", false).into());
            r.insert("changed".into(), true.into());
            return Ok(r);
        }
        let exists = acct.passwd.is_some();
        let argv = if exists {
            usermod_argv(&req, &acct)?
        } else {
            if ctx.check_mode {
                return Ok(outcome(true));
            }
            Some(useradd_argv(&req, &acct)?)
        };
        // A home that does not exist is made (Ansible's "handle missing homedirs").
        let home = req
            .home
            .clone()
            .or_else(|| acct.passwd.as_ref().map(|p| p.home.clone()));
        let home_missing = req.create_home
            && exists
            && !acct.home_exists
            && home.as_deref().is_some_and(|h| !h.is_empty());
        if exists {
            r.insert("append".into(), req.append.into());
            r.insert("move_home".into(), req.move_home.into());
        } else {
            r.insert("system".into(), req.system.into());
            r.insert("create_home".into(), req.create_home.into());
        }
        if req.password.is_some() {
            r.insert("password".into(), "NOT_LOGGING_PASSWORD".into());
        }
        let mut changed = argv.is_some();
        let final_pw = if ctx.check_mode || (argv.is_none() && !home_missing) {
            changed |= home_missing;
            acct.passwd.clone()
        } else {
            let make_home = home_missing
                .then(|| (home.as_deref().unwrap_or_default(), req.skeleton.as_deref()));
            let done = remote::run(ctx, act_script(argv.as_deref(), make_home, &req.name)).await?;
            command_result(&done, &mut r, &req.name)?;
            changed |= done.flag("home_made");
            done.get("pw").and_then(Passwd::parse)
        };
        r.insert("changed".into(), changed.into());
        if let Some(pw) = final_pw {
            account_keys(&mut r, &pw);
            if let Some(g) = &req.groups {
                r.insert("groups".into(), g.clone().into());
            }
        }
        Ok(r)
    }
}

static GROUP_DEF: ModuleDef = ModuleDef {
    name: "group",
    namespaces: BUILTIN,
    params: &[
        req("name", Str),
        choice("state", &["absent", "present"]),
        p("force", Bool),
        p("gid", Int),
        p("system", Bool),
        p("local", Bool),
        p("non_unique", Bool),
        p("gid_min", Int),
        p("gid_max", Int),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Posix,
    mutually_exclusive: &[],
    required_one_of: &[],
};

pub struct Group;

/// The groupadd/groupmod/groupdel argv for a group in state `ent`, or `None`.
pub fn group_argv(args: &Args, ent: Option<&GroupEnt>) -> Option<Vec<String>> {
    let name = arg_str(args, "name").unwrap_or_default().to_string();
    let gid = args.get("gid").and_then(Value::as_i64);
    let non_unique = arg_bool(args, "non_unique", false);
    let mut cmd: Vec<String>;
    if arg_str(args, "state") == Some("absent") {
        ent?;
        cmd = vec!["groupdel".into()];
        if arg_bool(args, "force", false) {
            cmd.push("-f".into());
        }
    } else if let Some(e) = ent {
        cmd = vec!["groupmod".into()];
        if let Some(g) = gid
            && g != e.gid
        {
            cmd.extend(["-g".into(), g.to_string()]);
            if non_unique {
                cmd.push("-o".into());
            }
        }
        if cmd.len() == 1 {
            return None;
        }
    } else {
        cmd = vec!["groupadd".into()];
        if let Some(g) = gid {
            cmd.extend(["-g".into(), g.to_string()]);
            if non_unique {
                cmd.push("-o".into());
            }
        }
        if arg_bool(args, "system", false) {
            cmd.push("-r".into());
        }
        for (k, key) in [("gid_min", "GID_MIN"), ("gid_max", "GID_MAX")] {
            if let Some(v) = args.get(k).and_then(Value::as_i64) {
                cmd.extend(["-K".into(), format!("{key}={v}")]);
            }
        }
    }
    cmd.push(name);
    Some(cmd)
}

#[async_trait]
impl Module for Group {
    fn def(&self) -> &'static ModuleDef {
        &GROUP_DEF
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        if arg_bool(&args, "local", false) {
            return Err(ModError::msg("group: `local` is not supported by mixop"));
        }
        if arg_bool(&args, "non_unique", false) && args.get("gid").is_none_or(Value::is_null) {
            return Err(ModError::msg(
                "non_unique is True but all of the following are missing: gid",
            ));
        }
        let name = arg_str(&args, "name").unwrap_or_default().to_string();
        let absent = arg_str(&args, "state") == Some("absent");
        let script = |pre: &str| {
            remote::script(
                &[("n", quote(&name))],
                &format!("{pre}e=$(getent group \"$n\") && printf 'g=%s\\n' \"$e\"\nexit 0\n"),
            )
        };
        let reply = remote::run(ctx, script("")).await?;
        let ent = reply.get("g").and_then(GroupEnt::parse);
        let argv = group_argv(&args, ent.as_ref());
        if ctx.check_mode && argv.is_some() && (absent || ent.is_none()) {
            return Ok(outcome(true));
        }
        let mut r = Outcome::new();
        r.insert("name".into(), name.clone().into());
        r.insert(
            "state".into(),
            if absent { "absent" } else { "present" }.into(),
        );
        let after = match &argv {
            Some(argv) if !ctx.check_mode => {
                let cmd: Vec<String> = argv.iter().map(|a| quote(a)).collect();
                let done = remote::run(
                    ctx,
                    script(&format!(
                        "err=$({} 2>&1 >/dev/null) || {{ _err \"$err\"; exit 0; }}\n",
                        cmd.join(" ")
                    )),
                )
                .await
                .map_err(|e| match e {
                    ModError::Failed { msg, .. } => {
                        let mut result = Outcome::new();
                        result.insert("name".into(), name.clone().into());
                        ModError::Failed { msg, result }
                    }
                    other => other,
                })?;
                done.get("g").and_then(GroupEnt::parse)
            }
            _ => ent,
        };
        r.insert("changed".into(), argv.is_some().into());
        if let Some(g) = after {
            r.insert("system".into(), arg_bool(&args, "system", false).into());
            r.insert("gid".into(), g.gid.into());
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acct(groups: &[&str], member_of: &[&str]) -> Account {
        let ent = |g: &str, gid: i64| GroupEnt {
            name: g.into(),
            gid,
            members: vec![],
        };
        Account {
            passwd: Passwd::parse("alice:x:3001:3001:Alice:/home/alice:/bin/sh"),
            shadow: Some("!".into()),
            groups: groups
                .iter()
                .enumerate()
                .map(|(i, g)| (g.to_string(), Some(ent(g, 3001 + i as i64))))
                .collect(),
            member_of: member_of.iter().map(|g| ent(g, 0)).collect(),
            home_exists: true,
        }
    }

    fn user(f: impl FnOnce(&mut UserReq)) -> UserReq {
        let mut r = UserReq {
            name: "alice".into(),
            create_home: true,
            update_password_always: true,
            ..Default::default()
        };
        f(&mut r);
        r
    }

    #[test]
    fn useradd_as_ansible() {
        let a = Account::default();
        let r = user(|r| {
            r.uid = Some(3001);
            r.shell = Some("/bin/bash".into());
            r.system = true;
        });
        assert_eq!(
            useradd_argv(&r, &a).unwrap().join(" "),
            "useradd -u 3001 -s /bin/bash -m -r alice"
        );
        let r = user(|r| r.groups = Some("g1".into()));
        assert!(
            matches!(useradd_argv(&r, &a), Err(ModError::Failed { msg, .. }) if msg == "Group g1 does not exist")
        );
        // A group named like the user exists: -N, as Ansible.
        let r = user(|r| r.create_home = false);
        assert_eq!(
            useradd_argv(&r, &acct(&["alice"], &[])).unwrap().join(" "),
            "useradd -N -M alice"
        );
    }

    #[test]
    fn usermod_only_what_differs() {
        let a = acct(&["alice", "g1", "g2"], &["g1"]);
        assert_eq!(usermod_argv(&user(|_| {}), &a).unwrap(), None);
        let r = user(|r| {
            r.comment = Some("Alice".into());
            r.shell = Some("/bin/bash".into());
        });
        assert_eq!(
            usermod_argv(&r, &a).unwrap().unwrap().join(" "),
            "usermod -s /bin/bash alice"
        );
        // groups without append replaces; with append only adds when something is missing.
        let r = user(|r| r.groups = Some("g2".into()));
        assert_eq!(
            usermod_argv(&r, &a).unwrap().unwrap().join(" "),
            "usermod -G g2 alice"
        );
        let r = user(|r| {
            r.groups = Some("g1".into());
            r.append = true;
        });
        assert_eq!(usermod_argv(&r, &a).unwrap(), None);
        let r = user(|r| {
            r.groups = Some("g2".into());
            r.append = true;
        });
        assert_eq!(
            usermod_argv(&r, &a).unwrap().unwrap().join(" "),
            "usermod -a -G g2 alice"
        );
        let r = user(|r| r.password = Some("$6$x$y".into()));
        assert_eq!(
            usermod_argv(&r, &a).unwrap().unwrap().join(" "),
            "usermod -p $6$x$y alice"
        );
        let r = user(|r| {
            r.password = Some("$6$x$y".into());
            r.update_password_always = false;
        });
        assert_eq!(usermod_argv(&r, &a).unwrap(), None);
    }

    #[test]
    fn group_commands() {
        let args = |v: serde_json::Value| v.as_object().unwrap().clone();
        let e = GroupEnt::parse("devs:x:3005:alice,bob").unwrap();
        assert_eq!(e.members, ["alice", "bob"]);
        assert_eq!(
            group_argv(
                &args(serde_json::json!({"name": "devs", "gid": 3005})),
                Some(&e)
            ),
            None
        );
        assert_eq!(
            group_argv(
                &args(serde_json::json!({"name": "devs", "gid": 3006})),
                Some(&e)
            )
            .unwrap()
            .join(" "),
            "groupmod -g 3006 devs"
        );
        assert_eq!(
            group_argv(
                &args(serde_json::json!({"name": "devs", "system": true})),
                None
            )
            .unwrap()
            .join(" "),
            "groupadd -r devs"
        );
        assert_eq!(
            group_argv(
                &args(serde_json::json!({"name": "devs", "state": "absent"})),
                None
            ),
            None
        );
    }
}
