//! `win_environment` (ansible.windows): set or remove environment variables at the machine,
//! user or process level; `before_value`, `value`, `values` (per variable) and a diff, as
//! Ansible returns them.
//!
//! Values are compared exactly (Ansible's PowerShell `-ne` ignores case, so it would not
//! change `Foo` to `foo`). Level `process` is the host's PowerShell process, which mixop keeps
//! for the whole run: later tasks on the host see it.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{WINDOWS, finish, list, script, typed_args};
use crate::modules::ParamType::*;
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Param, Target, choice, p,
};

pub static SCRIPT: super::Script = script!("win_environment");

static DEF: ModuleDef = ModuleDef {
    name: "win_environment",
    namespaces: WINDOWS,
    params: &[
        p("name", Str),
        p("value", Str),
        choice("state", &["absent", "present"]),
        // Required, as in Ansible.
        Param {
            required: true,
            ..choice("level", &["machine", "process", "user"])
        },
        p("variables", Dict),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Windows,
    mutually_exclusive: &[
        &["variables", "name"],
        &["variables", "value"],
        &["variables", "state"],
    ],
    required_one_of: &[&["name", "variables"]],
};

#[derive(Debug, Clone, Deserialize)]
pub struct EnvArgs {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    pub level: String,
    #[serde(default)]
    pub variables: Option<Map<String, Value>>,
}

/// What one variable should be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    pub name: String,
    /// None: absent.
    pub value: Option<String>,
}

/// The variables the task asks for, with Ansible's rules: without `state`, a value means
/// present and none (or an empty one) absent; `present` needs a non-empty value; a value given
/// with `absent` is ignored with a warning.
pub fn wanted(args: &EnvArgs) -> Result<(Vec<Want>, Vec<String>), String> {
    let pairs: Vec<(String, Option<String>)> = match &args.variables {
        Some(vars) => vars
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::Null => None,
                    other => Some(crate::value::arg_text(other)),
                };
                (k.clone(), v)
            })
            .collect(),
        None => vec![(args.name.clone().unwrap_or_default(), args.value.clone())],
    };
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for (name, value) in pairs {
        if name.is_empty() {
            return Err("name must not be empty".into());
        }
        if name.contains('=') {
            return Err(format!(
                "environment variable name cannot contain '=': {name:?}"
            ));
        }
        let value = value.filter(|v| !v.is_empty());
        match args.state.as_deref() {
            Some("absent") => {
                if let Some(v) = &value {
                    warnings.push(format!(
                        "When removing environment variable '{name}' it should not have a value '{v}' set"
                    ));
                }
                out.push(Want { name, value: None });
            }
            Some("present") if value.is_none() => {
                return Err("When state=present, value must be defined and not an empty string, if you wish to remove the envvar, set state=absent".into());
            }
            _ => out.push(Want { name, value }),
        }
    }
    Ok((out, warnings))
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct Current {
    pub name: String,
    #[serde(default)]
    pub exists: bool,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct Probe {
    #[serde(default, deserialize_with = "list")]
    pub variables: Vec<Current>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Set {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct Plan {
    pub set: Vec<Set>,
    pub remove: Vec<String>,
    /// Per variable: (name, before, after, changed).
    #[serde(skip)]
    pub results: Vec<(String, Option<String>, Option<String>, bool)>,
}

impl Plan {
    pub fn changes(&self) -> bool {
        !self.set.is_empty() || !self.remove.is_empty()
    }
}

pub fn plan(probe: &Probe, wanted: &[Want]) -> Plan {
    let mut plan = Plan::default();
    for w in wanted {
        let before = probe
            .variables
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(&w.name))
            .filter(|c| c.exists)
            .map(|c| c.value.clone());
        let changed = match (&w.value, &before) {
            (Some(v), b) if b.as_ref() != Some(v) => {
                plan.set.push(Set {
                    name: w.name.clone(),
                    value: v.clone(),
                });
                true
            }
            (None, Some(_)) => {
                plan.remove.push(w.name.clone());
                true
            }
            _ => false,
        };
        plan.results
            .push((w.name.clone(), before, w.value.clone(), changed));
    }
    plan
}

#[derive(Serialize)]
struct ProbeArgs<'a> {
    level: &'a str,
    names: Vec<&'a str>,
}

pub(super) struct WinEnvironment;

#[async_trait]
impl Module for WinEnvironment {
    fn def(&self) -> &'static ModuleDef {
        &DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let args: EnvArgs = typed_args(DEF.name, &args)?;
        let (want, mut warnings) = wanted(&args).map_err(ModError::msg)?;
        let query = ProbeArgs {
            level: &args.level,
            names: want.iter().map(|w| w.name.as_str()).collect(),
        };
        let (probe, w) = SCRIPT.probe::<Probe>(ctx, &query).await?;
        warnings.extend(w);
        let plan = plan(&probe, &want);
        if plan.changes() && !ctx.check_mode {
            let (_, w) = SCRIPT.apply::<Value>(ctx, &query, &plan).await?;
            warnings.extend(w);
        }
        let opt = |v: &Option<String>| v.clone().map(Value::String).unwrap_or(Value::Null);
        let mut values = Map::new();
        let mut before_d = Map::new();
        let mut after_d = Map::new();
        for (name, before, after, changed) in &plan.results {
            values.insert(
                name.clone(),
                json!({ "before": opt(before), "after": opt(after), "changed": changed }),
            );
            if let Some(b) = before {
                before_d.insert(name.clone(), b.clone().into());
            }
            if let Some(a) = after {
                after_d.insert(name.clone(), a.clone().into());
            }
        }
        let last = plan.results.last();
        let mut fields = json!({
            "before_value": last.map(|r| opt(&r.1)).unwrap_or(Value::Null),
            "value": last.map(|r| opt(&r.2)).unwrap_or(Value::Null),
            "values": values.clone(),
            "env_values": values,
        });
        if ctx.diff {
            fields["diff"] = json!({
                "before": { args.level.clone(): before_d },
                "after": { args.level.clone(): after_d },
            });
        }
        Ok(finish(plan.changes(), warnings, fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ODD: &str = "C:\\it's \"q\" $env:PATH `n` %X% \u{e9}\u{540d}\nline";

    fn args(name: &str, value: Option<&str>, state: Option<&str>) -> EnvArgs {
        EnvArgs {
            name: Some(name.into()),
            value: value.map(str::to_string),
            state: state.map(str::to_string),
            level: "machine".into(),
            variables: None,
        }
    }

    fn probe(vars: &[(&str, Option<&str>)]) -> Probe {
        Probe {
            variables: vars
                .iter()
                .map(|(n, v)| Current {
                    name: n.to_string(),
                    exists: v.is_some(),
                    value: v.unwrap_or_default().to_string(),
                })
                .collect(),
        }
    }

    #[test]
    fn set_change_and_remove() {
        let (w, _) = wanted(&args("APP_HOME", Some(ODD), Some("present"))).unwrap();
        let p = plan(&probe(&[("APP_HOME", None)]), &w);
        assert_eq!(
            p.set,
            vec![Set {
                name: "APP_HOME".into(),
                value: ODD.into()
            }]
        );
        // Same value: nothing to do.
        let p = plan(&probe(&[("app_home", Some(ODD))]), &w);
        assert!(!p.changes());
        assert_eq!(p.results[0].1.as_deref(), Some(ODD));
        // Case matters in values.
        let (w2, _) = wanted(&args("X", Some("Foo"), None)).unwrap();
        assert!(plan(&probe(&[("X", Some("foo"))]), &w2).changes());
        // Absent.
        let (w, warn) = wanted(&args("X", Some("v"), Some("absent"))).unwrap();
        assert_eq!(warn.len(), 1);
        let p = plan(&probe(&[("X", Some("foo"))]), &w);
        assert_eq!(p.remove, vec!["X".to_string()]);
        assert!(!plan(&probe(&[("X", None)]), &w).changes());
    }

    #[test]
    fn ansible_rules() {
        assert!(wanted(&args("X", None, Some("present"))).is_err());
        assert!(wanted(&args("X", Some(""), Some("present"))).is_err());
        // No state and no value: absent.
        let (w, _) = wanted(&args("X", None, None)).unwrap();
        assert_eq!(w[0].value, None);
        assert!(wanted(&args("A=B", Some("v"), None)).is_err());
        let a = EnvArgs {
            name: None,
            value: None,
            state: None,
            level: "machine".into(),
            variables: Some(
                json!({"A": "1", "B": "", "C": null, "D": 5})
                    .as_object()
                    .cloned()
                    .unwrap(),
            ),
        };
        let (w, _) = wanted(&a).unwrap();
        let vals: Vec<_> = w.iter().map(|w| w.value.as_deref()).collect();
        assert_eq!(vals, vec![Some("1"), None, None, Some("5")]);
    }

    #[test]
    fn plan_serializes_values_exactly() {
        let (w, _) = wanted(&args("N", Some(ODD), None)).unwrap();
        let p = plan(&probe(&[]), &w);
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["set"][0]["value"], ODD);
        assert!(v.get("results").is_none());
    }
}
