//! `git`: clone or update a repository **on the target** with its `git`, following
//! ansible-core's git module: clone when `dest` has no repository (unless `clone: false`), leave
//! it when `update: false`, otherwise refuse local modifications unless `force`, fetch, and
//! switch to `version` (a branch, tag or commit; `HEAD` is the remote's default branch).
//! `before`/`after` are the commit ids; in check mode `after` is what the remote would give
//! (`git ls-remote`), as Ansible reports it.
//!
//! One round trip: the script decides and acts on the host, printing `key=value` lines.

use async_trait::async_trait;
use serde_json::Value;

use super::BUILTIN;
use crate::modules::ParamType::*;
use crate::modules::files::remote;
use crate::modules::files::remote::run_stdin;
use crate::modules::posix::quote;
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Target, alias, arg_bool,
    arg_str, outcome, p, req,
};

static GIT_DEF: ModuleDef = ModuleDef {
    name: "git",
    namespaces: BUILTIN,
    params: &[
        alias(req("repo", Str), &["name"]),
        p("dest", Str),
        p("version", Str),
        p("force", Bool),
        p("depth", Int),
        p("update", Bool),
        p("clone", Bool),
        p("bare", Bool),
        p("single_branch", Bool),
        p("remote", Str),
        p("accept_hostkey", Bool),
        p("accept_newhostkey", Bool),
        p("recursive", Bool),
        p("executable", Str),
        p("umask", Any),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Posix,
    mutually_exclusive: &[],
    required_one_of: &[],
};

pub struct Git;

/// The shell side. `g_git` is the git command; helpers print `error=` and exit on failure.
const BODY: &str = r#"
command -v "$g_git" >/dev/null 2>&1 || { _err "git is not installed on the target (looked for \`$g_git\` in PATH)"; exit 0; }
_g() { "$g_git" "$@"; }
_run() { # label, then the command: fails the module with git's own words
  _l=$1; shift
  if ! _o=$("$@" 2>&1); then _err "Failed to $_l: $_o"; exit 0; fi
}
# Sets `rh` to the commit `version` names on the remote (Ansible's get_remote_head): HEAD, a
# branch, a tag (its peeled commit), or the version itself (a commit id).
_remote_head() {
  if [ "$g_version" = HEAD ]; then _r=$(_g ls-remote "$1" -h HEAD 2>&1) || { _err "Could not determine remote revision for $g_version: $_r"; exit 0; }
  elif _r=$(_g ls-remote "$1" -h "refs/heads/$g_version" 2>&1) && [ -n "$_r" ]; then :
  elif _r=$(_g ls-remote "$1" -t "refs/tags/$g_version" "refs/tags/$g_version^{}" 2>&1) && [ -n "$_r" ]; then
    _p=$(printf '%s\n' "$_r" | grep '\^{}$'); [ -z "$_p" ] || _r=$_p
  else rh=$g_version; return; fi
  rh=$(printf '%s\n' "$_r" | head -n 1 | cut -f 1)
}
_is_branch() { [ -n "$(_g ls-remote "$1" -h "refs/heads/$g_version" 2>/dev/null)" ]; }
_is_tag() { [ -n "$(_g ls-remote "$1" -t "refs/tags/$g_version" 2>/dev/null)" ]; }
[ -z "$g_umask" ] || umask "$g_umask"
if [ -n "$g_bare" ]; then g_cfg=$g_dest/config; else g_cfg=$g_dest/.git/config; fi
if [ ! -e "$g_cfg" ]; then
  if [ -n "$g_check" ] || [ -z "$g_clone" ]; then
    _remote_head "$g_repo"; echo "after=$rh"; echo changed=1; exit 0
  fi
  set -- clone
  [ -z "$g_bare" ] || set -- "$@" --bare
  [ "$g_remote" = origin ] || set -- "$@" --origin "$g_remote"
  if [ -n "$g_depth" ]; then
    if [ "$g_version" = HEAD ]; then set -- "$@" --depth "$g_depth"
    elif _is_branch "$g_repo" || _is_tag "$g_repo"; then set -- "$@" --depth "$g_depth" --branch "$g_version"
    else echo "warning=Ignoring depth argument. Shallow clones are only available for HEAD, branches, tags or in combination with refspec."; fi
    [ -n "$g_single" ] || set -- "$@" --no-single-branch
  fi
  if [ -n "$g_single" ]; then
    set -- "$@" --single-branch
    if [ -z "$g_depth" ] && [ "$g_version" != HEAD ] && { _is_branch "$g_repo" || _is_tag "$g_repo"; }; then set -- "$@" --branch "$g_version"; fi
  fi
  _run clone _g "$@" -- "$g_repo" "$g_dest"
  cd -- "$g_dest" || { _err "cannot enter $g_dest"; exit 0; }
  echo cloned=1
else
  cd -- "$g_dest" || { _err "cannot enter $g_dest"; exit 0; }
  echo "before=$(_g rev-parse HEAD 2>/dev/null)"
  if [ -z "$g_update" ]; then exit 0; fi
  if [ -z "$g_bare" ] && [ -n "$(_g status --porcelain 2>/dev/null | grep -v '^??')" ]; then
    [ -n "$g_force" ] || { echo local_mods=1; exit 0; }
    echo local_mods=1
    [ -n "$g_check" ] || _run "reset the local modifications" _g reset --hard HEAD
  fi
  url=$(_g config --get "remote.$g_remote.url" 2>/dev/null)
  if [ -n "$url" ] && [ "$url" != "$g_repo" ]; then
    echo remote_url_changed=1
    [ -n "$g_check" ] || _run "set the remote url" _g remote set-url "$g_remote" "$g_repo"
  fi
  if [ -n "$g_check" ]; then _remote_head "$g_remote"; echo "after=$rh"; exit 0; fi
  if [ -n "$g_bare" ]; then
    _run "download remote objects and refs" _g fetch ${g_force:+--force} "$g_remote" '+refs/heads/*:refs/heads/*' '+refs/tags/*:refs/tags/*'
  else
    _run "download remote objects and refs" _g fetch ${g_depth:+--depth "$g_depth"} ${g_force:+--force} --tags "$g_remote"
  fi
fi
if [ -z "$g_bare" ]; then
  if [ "$g_version" = HEAD ]; then
    # The branch checked out, or when detached the remote's default branch.
    b=$(_g symbolic-ref --short -q HEAD 2>/dev/null)
    [ -n "$b" ] || { b=$(_g symbolic-ref --short "refs/remotes/$g_remote/HEAD" 2>/dev/null); b=${b#"$g_remote/"}; }
    _run "checkout branch $b" _g checkout --force "$b"
    _run "checkout branch $b" _g reset --hard "$g_remote/$b" --
  elif _g rev-parse --verify -q "refs/remotes/$g_remote/$g_version" >/dev/null; then
    if _g rev-parse --verify -q "refs/heads/$g_version" >/dev/null; then
      _run "checkout branch $g_version" _g checkout --force "$g_version"
      _run "checkout $g_version" _g reset --hard "$g_remote/$g_version"
    else
      _run "checkout $g_version" _g checkout --track -b "$g_version" "$g_remote/$g_version"
    fi
  else
    _run "checkout $g_version" _g checkout --force "$g_version"
  fi
fi
if [ -n "$g_recursive" ] && [ -z "$g_bare" ] && [ -f .gitmodules ]; then
  _run "init/update submodules" _g submodule update --init --recursive ${g_force:+--force}
fi
echo "after=$(_g rev-parse HEAD 2>/dev/null)"
"#;

#[async_trait]
impl Module for Git {
    fn def(&self) -> &'static ModuleDef {
        &GIT_DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let repo = arg_str(&args, "repo").unwrap_or_default().to_string();
        let clone = arg_bool(&args, "clone", true);
        let dest = arg_str(&args, "dest").filter(|s| !s.is_empty());
        let Some(dest) = dest else {
            return Err(ModError::msg(if clone {
                "the destination directory must be specified unless clone=no"
            } else {
                "mixop's git needs `dest` (the ls-remote-only form with clone: no and no dest is not supported)"
            }));
        };
        let depth = match args.get("depth") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_i64() {
                Some(d) if d > 0 => Some(d),
                _ => return Err(ModError::msg("depth must be a positive integer")),
            },
        };
        let version = arg_str(&args, "version").unwrap_or("HEAD").to_string();
        let flag = |b: bool| if b { "1".to_string() } else { String::new() };
        let bare = arg_bool(&args, "bare", false);
        // Ansible wants a quoted octal string; a YAML integer is taken as its octal digits.
        let umask = match args.get("umask") {
            None | Some(Value::Null) => String::new(),
            Some(v) => {
                let t = crate::value::to_text(v);
                if t.is_empty() || t.len() > 4 || !t.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                    return Err(ModError::msg("umask must be an octal integer"));
                }
                t
            }
        };
        let vars = vec![
            (
                "g_git",
                quote(arg_str(&args, "executable").unwrap_or("git")),
            ),
            ("g_repo", quote(&repo)),
            // Ansible makes dest absolute; sh_path expands `~` as Ansible does for paths.
            ("g_dest", remote::sh_path(dest)),
            ("g_version", quote(&version)),
            (
                "g_remote",
                quote(arg_str(&args, "remote").unwrap_or("origin")),
            ),
            ("g_depth", depth.map(|d| d.to_string()).unwrap_or_default()),
            ("g_force", flag(arg_bool(&args, "force", false))),
            ("g_update", flag(arg_bool(&args, "update", true))),
            ("g_clone", flag(clone)),
            ("g_bare", flag(bare)),
            ("g_single", flag(arg_bool(&args, "single_branch", false))),
            ("g_check", flag(ctx.check_mode)),
            ("g_recursive", flag(arg_bool(&args, "recursive", true))),
            ("g_umask", umask),
        ];
        let mut script = remote::script(&vars, BODY);
        // Never prompt on the host (ssh host keys, credentials): fail instead.
        script.insert_str(0, "GIT_TERMINAL_PROMPT=0; export GIT_TERMINAL_PROMPT\n");
        if arg_bool(&args, "accept_hostkey", false) || arg_bool(&args, "accept_newhostkey", false) {
            let opt = if arg_bool(&args, "accept_hostkey", false) {
                "no"
            } else {
                "accept-new"
            };
            script.insert_str(
                0,
                &format!(
                    "GIT_SSH_COMMAND='ssh -o StrictHostKeyChecking={opt}'; export GIT_SSH_COMMAND\n"
                ),
            );
        }
        let reply = run_stdin(ctx, script).await?;
        let sha = |k: &str| -> Value {
            reply
                .get(k)
                .filter(|s| !s.is_empty())
                .map(|s| Value::from(s.to_string()))
                .unwrap_or(Value::Null)
        };
        let before = sha("before");
        let mut after = sha("after");
        if after.is_null() {
            after = before.clone();
        }
        let mut r = outcome(false);
        r.insert("before".into(), before.clone());
        r.insert("after".into(), after.clone());
        let local_mods = reply.flag("local_mods");
        if local_mods && !arg_bool(&args, "force", false) {
            r.remove("changed");
            return Err(ModError::Failed {
                msg: format!("Local modifications exist in the destination: {dest} (force=no)."),
                result: r,
            });
        }
        let url_changed = reply.flag("remote_url_changed");
        if reply.get("before").is_some() && arg_bool(&args, "update", true) {
            r.insert("remote_url_changed".into(), url_changed.into());
        }
        let changed = reply.flag("changed")
            || reply.flag("cloned")
            || before != after
            || (local_mods && !ctx.check_mode)
            || url_changed;
        r.insert("changed".into(), changed.into());
        if local_mods && !ctx.check_mode {
            r.insert(
                "msg".into(),
                format!("Local modifications exist in the destination: {dest}").into(),
            );
        }
        let warnings: Vec<Value> = reply.all("warning").map(Value::from).collect();
        if !warnings.is_empty() {
            r.insert("warnings".into(), warnings.into());
        }
        Ok(r)
    }
}
