//! File modules for POSIX targets: copy, template, file, stat, slurp, fetch, lineinfile,
//! replace, blockinfile.
//!
//! Each module gathers what it needs about the target in one `sh` round trip (see `remote`),
//! decides on the controller, and changes the target in at most one more round trip (plus the
//! upload itself). Arguments and return values follow ansible-core's modules of the same name.

mod blockinfile;
mod copy;
mod file;
mod info;
mod lineinfile;
mod pyre;
pub(crate) mod remote;
mod replace;

use serde_json::Value;

use super::{Args, ModError, Module, Outcome, Param, ParamType, p, typed};
use remote::{AttrChange, FileStat};

pub static MODULES: &[&dyn Module] = &[
    &copy::Copy,
    &copy::Template,
    &file::File,
    &info::Stat,
    &info::Slurp,
    &info::Fetch,
    &lineinfile::LineInFile,
    &replace::Replace,
    &blockinfile::BlockInFile,
];

const BUILTIN: &[&str] = &["ansible.builtin"];

pub use super::source::{content_diff, sha1_file, sha1_hex};

/// A `mode` argument: octal, symbolic (`u+rwx,g-w`), or `preserve` (copy/template only).
#[derive(Debug, Clone, PartialEq)]
pub enum ModeSpec {
    Octal(u32),
    Symbolic(String),
    Preserve,
}

impl ModeSpec {
    pub fn parse(v: &Value, allow_preserve: bool) -> Result<Option<ModeSpec>, ModError> {
        match v {
            Value::Null => Ok(None),
            Value::String(s) if s == "preserve" => {
                if allow_preserve {
                    Ok(Some(ModeSpec::Preserve))
                } else {
                    Err(ModError::msg(
                        "mode `preserve` is only valid for copy and template",
                    ))
                }
            }
            Value::String(s) if !s.is_empty() && s.trim().bytes().any(|b| !b.is_ascii_digit()) => {
                let s = s.trim();
                if s.starts_with("0o") {
                    return super::parse_mode(v)
                        .map(|m| Some(ModeSpec::Octal(m)))
                        .map_err(ModError::msg);
                }
                // Validate now so a typo fails before anything is touched.
                symbolic_mode(0o644, false, s, 0o022)?;
                Ok(Some(ModeSpec::Symbolic(s.to_string())))
            }
            other => super::parse_mode(other)
                .map(|m| Some(ModeSpec::Octal(m)))
                .map_err(ModError::msg),
        }
    }

    /// The permission bits this spec gives an entry that now has `current` bits.
    pub fn resolve(&self, current: u32, is_dir: bool, umask: u32) -> Result<u32, ModError> {
        match self {
            ModeSpec::Octal(m) => Ok(*m),
            ModeSpec::Symbolic(s) => symbolic_mode(current, is_dir, s, umask),
            ModeSpec::Preserve => Ok(current),
        }
    }
}

/// Applies a chmod-style symbolic mode (`u=rwX,g+r,o-w`) to `current`, the way Ansible's
/// `_symbolic_mode_to_octal` does (a clause without users honours the umask).
pub fn symbolic_mode(current: u32, is_dir: bool, spec: &str, umask: u32) -> Result<u32, ModError> {
    let bad = || ModError::msg(format!("bad symbolic permission for mode: {spec}"));
    let mut mode = current & 0o7777;
    for clause in spec.split(',') {
        let op_at = clause.find(['+', '-', '=']).ok_or_else(bad)?;
        let who = &clause[..op_at];
        if !who.bytes().all(|b| b"ugoa".contains(&b)) {
            return Err(bad());
        }
        let use_umask = who.is_empty();
        let users: Vec<u8> = if who.is_empty() || who.contains('a') {
            b"ugo".to_vec()
        } else {
            who.bytes().collect()
        };
        // Split the rest into (operator, perms) pairs: "+x-w" → [('+', "x"), ('-', "w")].
        let mut ops: Vec<(char, String)> = Vec::new();
        for c in clause[op_at..].chars() {
            match c {
                '+' | '-' | '=' => ops.push((c, String::new())),
                'r' | 'w' | 'x' | 'X' | 's' | 't' | 'u' | 'g' | 'o' => {
                    if let Some(last) = ops.last_mut() {
                        last.1.push(c)
                    }
                }
                _ => return Err(bad()),
            }
        }
        for (op, perms) in &ops {
            for &user in &users {
                let apply_x = is_dir || (mode & 0o111) != 0;
                let mut bits = 0u32;
                for p in perms.chars() {
                    bits |= perm_bits(user, p, mode, apply_x, use_umask, umask);
                }
                mode = match op {
                    '=' => {
                        let mask = match user {
                            b'u' => 0o4700,
                            b'g' => 0o2070,
                            _ => 0o1007,
                        };
                        (mode & !mask & 0o7777) | bits
                    }
                    '+' => mode | bits,
                    _ => mode & !bits,
                };
            }
        }
    }
    Ok(mode)
}

fn perm_bits(user: u8, p: char, prev: u32, apply_x: bool, use_umask: bool, umask: u32) -> u32 {
    let shift = match user {
        b'u' => 6,
        b'g' => 3,
        _ => 0,
    };
    let masked = |bit: u32| {
        let b = bit << shift;
        if use_umask { b & !umask } else { b }
    };
    // Copying another class's bits ("g=u") moves its rwx triplet into this class's position.
    let triplet = |of: u32| ((prev >> of) & 0o7) << shift;
    match p {
        'r' => masked(4),
        'w' => masked(2),
        'x' => masked(1),
        'X' if apply_x => 1 << shift,
        'X' => 0,
        's' => match user {
            b'u' => 0o4000,
            b'g' => 0o2000,
            _ => 0,
        },
        't' if user == b'o' => 0o1000,
        't' => 0,
        'u' => triplet(6),
        'g' => triplet(3),
        'o' => triplet(0),
        _ => 0,
    }
}

/// The common file-attribute parameters (`mode`, `owner`, `group`): every module that creates
/// or changes a file takes them (`file_params!`) and reads them with `Wanted::from_args`.
pub const ATTR_PARAMS: [Param; 3] = [
    p("mode", ParamType::Any),
    p("owner", ParamType::Str),
    p("group", ParamType::Str),
];

/// A module's own parameters followed by `ATTR_PARAMS`, as a `&'static [Param]`.
macro_rules! file_params {
    ($($param:expr),* $(,)?) => {{
        const OWN: &[$crate::modules::Param] = &[$($param),*];
        const ALL: [$crate::modules::Param;
            OWN.len() + $crate::modules::files::ATTR_PARAMS.len()] =
            $crate::modules::files::concat_params(OWN, &$crate::modules::files::ATTR_PARAMS);
        &ALL
    }};
}
pub(crate) use file_params;

/// `a` then `b` in an array of their combined length (for `file_params!`).
pub const fn concat_params<const N: usize>(a: &[Param], b: &[Param]) -> [Param; N] {
    assert!(a.len() + b.len() == N);
    let mut out = [p("", ParamType::Any); N];
    let mut i = 0;
    while i < a.len() {
        out[i] = a[i];
        i += 1;
    }
    while i < N {
        out[i] = b[i - a.len()];
        i += 1;
    }
    out
}

/// `ATTR_PARAMS` as given (a module's typed arguments flatten it in).
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct AttrArgs {
    pub mode: Option<Value>,
    pub owner: Option<String>,
    pub group: Option<String>,
}

/// The common file attributes a task asks for (`ATTR_PARAMS`).
#[derive(Debug, Clone, Default)]
pub struct Wanted {
    pub mode: Option<ModeSpec>,
    pub owner: Option<String>,
    pub group: Option<String>,
}

impl Wanted {
    pub fn from_args(args: &Args, allow_preserve: bool) -> Result<Wanted, ModError> {
        Wanted::from_attrs(&typed(args)?, allow_preserve)
    }

    pub fn from_attrs(a: &AttrArgs, allow_preserve: bool) -> Result<Wanted, ModError> {
        // An empty owner or group asks for nothing, as in Ansible.
        let text = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        Ok(Wanted {
            mode: match &a.mode {
                Some(v) => ModeSpec::parse(v, allow_preserve)?,
                None => None,
            },
            owner: text(&a.owner),
            group: text(&a.group),
        })
    }

    /// What must change for an entry with stat `st` to have these attributes.
    pub fn change_for(&self, st: &FileStat, umask: u32) -> Result<AttrChange, ModError> {
        let is_dir = st.kind() == remote::Kind::Dir;
        let mode = match &self.mode {
            Some(spec) => {
                let want = spec.resolve(st.perm(), is_dir, umask)?;
                (want != st.perm()).then_some(want)
            }
            None => None,
        };
        Ok(AttrChange {
            mode,
            owner: self.owner.clone().filter(|o| !st.owner_is(o)),
            group: self.group.clone().filter(|g| !st.group_is(g)),
        })
    }

    /// The attributes to apply to a new file, whatever it starts with.
    pub fn for_new(&self, base_perm: u32, umask: u32) -> Result<AttrChange, ModError> {
        Ok(AttrChange {
            mode: match &self.mode {
                Some(spec) => Some(spec.resolve(base_perm, false, umask)?),
                None => None,
            },
            owner: self.owner.clone(),
            group: self.group.clone(),
        })
    }
}

/// Probe a text file that lineinfile, replace or blockinfile is about to edit: links followed,
/// the whole content read.
pub async fn probe_text(ctx: &super::ModuleCtx<'_>, path: &str) -> Result<remote::Probe, ModError> {
    let opts = remote::ProbeOpts {
        follow: true,
        content_max: Some(u64::MAX),
        ..Default::default()
    };
    remote::probe(ctx, path, &opts).await
}

/// A failure with Ansible's `rc` for it (the text editors use 256: a directory, 257: no such
/// file).
pub fn failed_rc(msg: String, rc: i64) -> ModError {
    let mut result = Outcome::new();
    result.insert("rc".into(), rc.into());
    ModError::Failed { msg, result }
}

/// Did applying attributes change anything between these two stats?
pub fn attrs_differ(a: &FileStat, b: &FileStat) -> bool {
    a.perm() != b.perm() || a.uid != b.uid || a.gid != b.gid
}

/// Ansible's `add_path_info`: uid, gid, owner, group, mode, state, size of a path.
pub fn add_path_info(r: &mut Outcome, st: &FileStat) {
    r.insert("uid".into(), st.uid.into());
    r.insert("gid".into(), st.gid.into());
    r.insert("owner".into(), st.owner_name().into());
    r.insert("group".into(), st.group_name().into());
    r.insert("mode".into(), st.mode_str().into());
    let state = match st.kind() {
        remote::Kind::Link => "link",
        remote::Kind::Dir => "directory",
        _ if st.nlink > 1 => "hard",
        _ => "file",
    };
    r.insert("state".into(), state.into());
    r.insert("size".into(), st.size.into());
}

/// `validate: visudo -cf %s` → the command with the quoted path (Python `%` formatting rules
/// for `%s` and `%%`).
pub fn validate_command(validate: &str, path: &str) -> Result<String, ModError> {
    if !validate.contains("%s") {
        return Err(ModError::msg(format!(
            "validate must contain %s: {validate}"
        )));
    }
    Ok(validate
        .replace("%%", "\u{0}")
        .replace("%s", &super::posix::quote(path))
        .replace('\u{0}', "%"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbolic_modes_follow_chmod() {
        let s = |cur, dir, spec| symbolic_mode(cur, dir, spec, 0o022).unwrap();
        assert_eq!(s(0o644, false, "u+x"), 0o744);
        assert_eq!(s(0o644, false, "u=rwx,g=rx,o="), 0o750);
        assert_eq!(s(0o777, false, "go-w"), 0o755);
        assert_eq!(s(0o600, false, "a+r"), 0o644);
        // No users: like `a`, but umask bits are left alone.
        assert_eq!(s(0o600, false, "+rw"), 0o644);
        // X: only for directories or entries that already have an x bit.
        assert_eq!(s(0o644, false, "a+X"), 0o644);
        assert_eq!(s(0o644, true, "a+X"), 0o755);
        assert_eq!(s(0o744, false, "go+X"), 0o755);
        assert_eq!(s(0o640, false, "o=g"), 0o644);
        assert_eq!(s(0o755, false, "u+s,g+s,o+t"), 0o7755);
        assert_eq!(s(0o4755, false, "u=rw"), 0o0655);
        assert_eq!(s(0o644, false, "u+x-w"), 0o544);
        assert!(symbolic_mode(0o644, false, "z+x", 0o022).is_err());
        assert!(symbolic_mode(0o644, false, "u+q", 0o022).is_err());
        assert!(symbolic_mode(0o644, false, "rw", 0o022).is_err());
    }

    #[test]
    fn mode_specs() {
        assert_eq!(
            ModeSpec::parse(&Value::from("0644"), false).unwrap(),
            Some(ModeSpec::Octal(0o644))
        );
        assert_eq!(
            ModeSpec::parse(&Value::from(420), false).unwrap(),
            Some(ModeSpec::Octal(0o644))
        );
        assert_eq!(
            ModeSpec::parse(&Value::from("u+x"), false).unwrap(),
            Some(ModeSpec::Symbolic("u+x".into()))
        );
        assert!(ModeSpec::parse(&Value::from("preserve"), false).is_err());
        assert_eq!(
            ModeSpec::parse(&Value::from("preserve"), true).unwrap(),
            Some(ModeSpec::Preserve)
        );
        assert!(ModeSpec::parse(&Value::from("0999"), false).is_err());
    }

    #[test]
    fn validate_substitution() {
        assert_eq!(
            validate_command("visudo -cf %s", "/etc/.x y").unwrap(),
            "visudo -cf '/etc/.x y'"
        );
        assert_eq!(
            validate_command("test 100%% -a -f %s", "/a").unwrap(),
            "test 100% -a -f /a"
        );
        assert!(validate_command("true", "/a").is_err());
    }
}
