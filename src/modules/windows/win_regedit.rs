//! `win_regedit` (ansible.windows): create or remove a registry key, set or remove one of its
//! values with a type; `data_changed`, `data_type_changed` and a diff, as Ansible returns them.
//!
//! As in Ansible: `path` is `HKLM:\…` style (HKCC, HKCR, HKCU, HKLM, HKU); a missing or empty
//! `name` is the key's `(Default)` value, which only takes a string; without `name` and `data`
//! only the key is created (or, `state: absent`, deleted — or its default value cleared with
//! `delete_key: false`). Data is converted here (hex strings such as `hex:be,ef` for binary,
//! `0x…` or decimal for dword/qword, lists for multistring) and compared with what the probe
//! read (`DoNotExpandEnvironmentNames`: an expandstring is compared unexpanded). The script
//! reaches every hive through `Registry::HKEY_…` paths, since Windows PowerShell only maps
//! HKLM: and HKCU: as drives. `hive` (loading a hive file) is not supported.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{WINDOWS, finish, script, typed_args};
use crate::modules::ParamType::*;
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Param, Target, alias,
    choice, p,
};

pub static SCRIPT: super::Script = script!("win_regedit");

static DEF: ModuleDef = ModuleDef {
    name: "win_regedit",
    namespaces: WINDOWS,
    params: &[
        Param {
            required: true,
            ..alias(p("path", Str), &["key"])
        },
        alias(p("name", Str), &["entry", "value"]),
        p("data", Any),
        alias(
            choice(
                "type",
                &[
                    "none",
                    "binary",
                    "dword",
                    "expandstring",
                    "multistring",
                    "string",
                    "qword",
                ],
            ),
            &["datatype"],
        ),
        choice("state", &["present", "absent"]),
        p("delete_key", Bool),
        p("hive", Str),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Windows,
    mutually_exclusive: &[],
    required_one_of: &[],
};

#[derive(Debug, Clone, Deserialize)]
pub struct RegArgs {
    pub path: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub data: Option<Value>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub delete_key: Option<bool>,
    #[serde(default)]
    pub hive: Option<String>,
}

/// A value as .NET's `RegistryKey.GetValue` gives it and `SetValue` takes it: strings, a string
/// list, a signed Int32/Int64, or bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Data {
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
    List(Vec<String>),
}

/// The PowerShell `RegistryValueKind` name for an Ansible type.
fn kind_name(t: &str) -> &'static str {
    match t {
        "none" => "None",
        "binary" => "Binary",
        "dword" => "DWord",
        "qword" => "QWord",
        "expandstring" => "ExpandString",
        "multistring" => "MultiString",
        _ => "String",
    }
}

/// What the task asks for, checked and converted.
#[derive(Debug, Clone, PartialEq)]
pub struct Want {
    /// `Registry::HKEY_LOCAL_MACHINE\SOFTWARE\…` for the cmdlets.
    pub key: String,
    /// The path as the user wrote it (diffs, messages).
    pub print_path: String,
    /// `None`: the key itself / its default value.
    pub name: Option<String>,
    pub present: bool,
    pub delete_key: bool,
    /// present: the value to set (`None`: only the key).
    pub value: Option<(String, Data)>,
}

const HIVES: &[(&str, &str)] = &[
    ("HKCC", "HKEY_CURRENT_CONFIG"),
    ("HKCR", "HKEY_CLASSES_ROOT"),
    ("HKCU", "HKEY_CURRENT_USER"),
    ("HKLM", "HKEY_LOCAL_MACHINE"),
    ("HKU", "HKEY_USERS"),
];

/// `HKLM:\SOFTWARE\X` → `Registry::HKEY_LOCAL_MACHINE\SOFTWARE\X`; anything else is refused with
/// Ansible's message.
pub fn provider_path(path: &str) -> Result<String, String> {
    let bad = || {
        format!(
            "path: {path} is not a valid powershell path, see module documentation for examples."
        )
    };
    let (drive, rest) = path.split_once(":\\").ok_or_else(bad)?;
    let hive = HIVES
        .iter()
        .find(|(d, _)| *d == drive)
        .map(|(_, h)| *h)
        .ok_or_else(bad)?;
    let sub: Vec<&str> = rest.split('\\').filter(|s| !s.is_empty()).collect();
    Ok(if sub.is_empty() {
        format!("Registry::{hive}")
    } else {
        format!("Registry::{hive}\\{}", sub.join("\\"))
    })
}

/// Ansible's conversion of `data` for a type.
pub fn convert(kind: &str, data: Option<&Value>) -> Result<Data, String> {
    match kind {
        "binary" | "none" => match data {
            None | Some(Value::Null) => Ok(Data::Bytes(Vec::new())),
            Some(Value::String(s)) => hex_bytes(s).map(Data::Bytes),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(b) if b <= 255 => Ok(Data::Bytes(vec![b as u8])),
                _ => Err(format!(
                    "cannot convert binary data '{n}' to byte array, please specify this value as a yaml byte array or a comma separated hex value string"
                )),
            },
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_u64()
                        .filter(|b| *b <= 255)
                        .map(|b| b as u8)
                        .ok_or_else(|| format!("cannot convert binary data {v} to a byte"))
                })
                .collect::<Result<_, _>>()
                .map(Data::Bytes),
            Some(other) => Err(format!(
                "cannot convert binary data {other} to a byte array"
            )),
        },
        "dword" | "qword" => {
            let n: u128 = match data {
                None | Some(Value::Null) => 0,
                Some(Value::Number(n)) => n
                    .as_u64()
                    .map(u128::from)
                    .or_else(|| n.as_i64().map(|i| (i as i128) as u128))
                    .ok_or_else(|| format!("data {n} is not an integer"))?,
                Some(Value::String(s)) => parse_uint(s)?,
                Some(other) => return Err(format!("data {other} is not an integer")),
            };
            if kind == "dword" {
                if n > u128::from(u32::MAX) && (n as i128) >= 0 {
                    return Err("data cannot be larger than 0xffffffff when type is dword".into());
                }
                // .NET takes a DWORD as a signed Int32: 0xffffffff is -1.
                Ok(Data::Int(i64::from(n as u32 as i32)))
            } else {
                if n > u128::from(u64::MAX) && (n as i128) >= 0 {
                    return Err(
                        "data cannot be larger than 0xffffffffffffffff when type is qword".into(),
                    );
                }
                Ok(Data::Int(n as u64 as i64))
            }
        }
        "multistring" => Ok(Data::List(match data {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a.iter().map(crate::value::arg_text).collect(),
            Some(v) => vec![crate::value::arg_text(v)],
        })),
        _ => Ok(Data::Text(match data {
            None | Some(Value::Null) => String::new(),
            Some(v) => crate::value::arg_text(v),
        })),
    }
}

fn parse_uint(s: &str) -> Result<u128, String> {
    let t = s.trim();
    let r = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => u128::from_str_radix(h, 16),
        None => t.parse::<u128>(),
    };
    r.map_err(|_| format!("data '{s}' is not an integer (decimal or 0x hex)"))
}

/// `hex:be,ef,…`, `be:ef`, `beef`, as `reg.exe export` writes binary data (Ansible's
/// Convert-RegExportHexStringToByteArray).
pub fn hex_bytes(s: &str) -> Result<Vec<u8>, String> {
    let lower = s.to_ascii_lowercase();
    let body = lower.strip_prefix("hex:").unwrap_or(&lower);
    let clean: String = body
        .chars()
        .filter(|c| c.is_ascii_hexdigit() || *c == ',' || *c == ':')
        .map(|c| if c == ',' { ':' } else { c })
        .collect();
    let bad = || format!("cannot convert binary data '{s}' to a byte array");
    if clean.is_empty() {
        return Ok(Vec::new());
    }
    if clean.contains(':') {
        return clean
            .split(':')
            .filter(|p| !p.is_empty())
            .map(|p| u8::from_str_radix(p, 16).map_err(|_| bad()))
            .collect();
    }
    if clean.len() == 1 {
        return u8::from_str_radix(&clean, 16)
            .map(|b| vec![b])
            .map_err(|_| bad());
    }
    if !clean.len().is_multiple_of(2) {
        return Err(bad());
    }
    (0..clean.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&clean[i..i + 2], 16).map_err(|_| bad()))
        .collect()
}

pub fn wanted(args: &RegArgs) -> Result<(Want, Vec<String>), String> {
    if args.hive.is_some() {
        return Err("hive (loading a registry hive file) is not supported by mixop".into());
    }
    let mut warnings = Vec::new();
    let key = provider_path(&args.path)?;
    let name = args.name.clone().filter(|n| !n.is_empty());
    let mut kind = args.kind.clone().unwrap_or_else(|| "string".into());
    if name.is_none() && kind != "string" {
        warnings.push("the data type when name is not specified can only be 'string', the type has automatically been converted".into());
        kind = "string".into();
    }
    let present = args.state.as_deref() != Some("absent");
    let value = if present && (name.is_some() || args.data.as_ref().is_some_and(|d| !d.is_null())) {
        Some((
            kind_name(&kind).to_string(),
            convert(&kind, args.data.as_ref())?,
        ))
    } else {
        None
    };
    Ok((
        Want {
            key,
            print_path: args.path.clone(),
            name,
            present,
            delete_key: args.delete_key.unwrap_or(true),
            value,
        },
        warnings,
    ))
}

#[derive(Debug, Clone, Deserialize, Default)]
pub struct Probe {
    #[serde(default)]
    pub key_exists: bool,
    #[serde(default)]
    pub value_exists: bool,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub data: Option<Value>,
}

impl Probe {
    /// The current value as `Data` (PowerShell 5.1 writes a one-element array as the element).
    fn current(&self) -> Option<(String, Data)> {
        if !self.value_exists {
            return None;
        }
        let kind = self.kind.clone().unwrap_or_else(|| "String".into());
        let data = self.data.clone().unwrap_or(Value::Null);
        let d = match kind.as_str() {
            "DWord" | "QWord" => Data::Int(data.as_i64().unwrap_or(0)),
            "MultiString" => Data::List(match data {
                Value::Array(a) => a.iter().map(crate::value::arg_text).collect(),
                Value::Null => Vec::new(),
                v => vec![crate::value::arg_text(&v)],
            }),
            "Binary" | "None" => Data::Bytes(match data {
                Value::Array(a) => a
                    .iter()
                    .filter_map(|v| v.as_u64())
                    .map(|b| b as u8)
                    .collect(),
                Value::Number(n) => vec![n.as_u64().unwrap_or(0) as u8],
                _ => Vec::new(),
            }),
            _ => Data::Text(match data {
                Value::Null => String::new(),
                v => crate::value::arg_text(&v),
            }),
        };
        Some((kind, d))
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct SetValue {
    /// `""` is the default value (`(default)` in the cmdlets).
    pub name: String,
    pub kind: String,
    pub data: Data,
    /// New-ItemProperty for a new value, Set-ItemProperty -Type for an existing one.
    pub exists: bool,
}

impl Default for Data {
    fn default() -> Self {
        Data::Text(String::new())
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Plan {
    pub create_key: bool,
    pub set: Option<SetValue>,
    /// Remove this value (`""`: the default value).
    pub remove_value: Option<String>,
    pub delete_key: bool,
    #[serde(skip)]
    pub data_changed: bool,
    #[serde(skip)]
    pub data_type_changed: bool,
    #[serde(skip)]
    pub diff: (Value, Value),
}

impl Plan {
    pub fn changes(&self) -> bool {
        self.create_key || self.set.is_some() || self.remove_value.is_some() || self.delete_key
    }
}

/// Ansible's diff form of a value: `{type, value}`, numbers as `0x…` hex and bytes as a list of
/// `0x..`.
fn diff_value(kind: &str, data: &Data) -> Value {
    let value = match (kind, data) {
        ("DWord", Data::Int(i)) => json!(format!("0x{:08x}", *i as i32 as u32)),
        ("QWord", Data::Int(i)) => json!(format!("0x{:016x}", *i as u64)),
        (_, Data::Bytes(b)) => json!(b.iter().map(|x| format!("0x{x:02x}")).collect::<Vec<_>>()),
        (_, Data::Text(t)) => json!(t),
        (_, Data::List(l)) => json!(l),
        (_, Data::Int(i)) => json!(i),
    };
    json!({ "type": kind, "value": value })
}

/// Equal as Ansible compares: case-sensitive text, element by element for lists.
fn same_data(a: &Data, b: &Data) -> bool {
    match (a, b) {
        (Data::Text(x), Data::Int(n)) | (Data::Int(n), Data::Text(x)) => x == &n.to_string(),
        _ => a == b,
    }
}

pub fn plan(probe: &Probe, want: &Want) -> Plan {
    let mut plan = Plan::default();
    let pp = &want.print_path;
    let name = want.name.clone().unwrap_or_default();
    if !want.present {
        if !probe.key_exists {
            return plan;
        }
        if want.delete_key && want.name.is_none() {
            plan.delete_key = true;
            plan.diff = (json!({ pp.clone(): {} }), json!({}));
        } else if let Some((kind, data)) = probe.current() {
            plan.remove_value = Some(name.clone());
            plan.diff = (
                json!({ pp.clone(): { name: diff_value(&kind, &data) } }),
                json!({ pp.clone(): {} }),
            );
        }
        return plan;
    }
    let (mut before, mut after) = if probe.key_exists {
        (json!({ pp.clone(): {} }), json!({ pp.clone(): {} }))
    } else {
        plan.create_key = true;
        (json!({}), json!({ pp.clone(): {} }))
    };
    if let Some((kind, data)) = &want.value {
        match probe.current() {
            Some((old_kind, old)) => {
                let type_changed = &old_kind != kind;
                let data_changed = !same_data(&old, data);
                before[pp][&name] = diff_value(&old_kind, &old);
                if type_changed || data_changed {
                    plan.data_type_changed = type_changed;
                    plan.data_changed = data_changed;
                    plan.set = Some(SetValue {
                        name: name.clone(),
                        kind: kind.clone(),
                        data: data.clone(),
                        exists: true,
                    });
                    after[pp][&name] = diff_value(kind, data);
                } else {
                    after[pp][&name] = diff_value(&old_kind, &old);
                }
            }
            None => {
                plan.set = Some(SetValue {
                    name: name.clone(),
                    kind: kind.clone(),
                    data: data.clone(),
                    exists: false,
                });
                after[pp][&name] = diff_value(kind, data);
            }
        }
    }
    plan.diff = (before, after);
    plan
}

#[derive(Serialize)]
struct ProbeArgs<'a> {
    key: &'a str,
    name: &'a str,
}

pub(super) struct WinRegedit;

#[async_trait]
impl Module for WinRegedit {
    fn def(&self) -> &'static ModuleDef {
        &DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let args: RegArgs = typed_args(DEF.name, &args)?;
        let (want, mut warnings) = wanted(&args).map_err(ModError::msg)?;
        let query = ProbeArgs {
            key: &want.key,
            name: want.name.as_deref().unwrap_or(""),
        };
        let (probe, w) = SCRIPT.probe::<Probe>(ctx, &query).await?;
        warnings.extend(w);
        let plan = plan(&probe, &want);
        if plan.changes() && !ctx.check_mode {
            let (_, w) = SCRIPT.apply::<Value>(ctx, &query, &plan).await?;
            warnings.extend(w);
        }
        let mut fields = json!({
            "data_changed": plan.data_changed,
            "data_type_changed": plan.data_type_changed,
        });
        if ctx.diff {
            fields["diff"] = json!({ "before": plan.diff.0, "after": plan.diff.1 });
        }
        Ok(finish(plan.changes(), warnings, fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: Value) -> RegArgs {
        serde_json::from_value(v).unwrap()
    }

    fn probe(kind: Option<(&str, Value)>) -> Probe {
        Probe {
            key_exists: true,
            value_exists: kind.is_some(),
            kind: kind.as_ref().map(|k| k.0.to_string()),
            data: kind.map(|k| k.1),
        }
    }

    #[test]
    fn paths_and_conversions() {
        assert_eq!(
            provider_path(r"HKLM:\SOFTWARE\\Mixop\").unwrap(),
            r"Registry::HKEY_LOCAL_MACHINE\SOFTWARE\Mixop"
        );
        assert_eq!(
            provider_path(r"HKCR:\").unwrap(),
            "Registry::HKEY_CLASSES_ROOT"
        );
        assert!(provider_path(r"HKEY_LOCAL_MACHINE\SOFTWARE").is_err());
        assert!(provider_path(r"hklm:\SOFTWARE").is_err());
        assert_eq!(hex_bytes("hex:be,ef,00").unwrap(), vec![0xbe, 0xef, 0]);
        assert_eq!(hex_bytes("BEEF").unwrap(), vec![0xbe, 0xef]);
        assert_eq!(hex_bytes("").unwrap(), Vec::<u8>::new());
        assert_eq!(
            convert("dword", Some(&json!("0xffffffff"))).unwrap(),
            Data::Int(-1)
        );
        assert_eq!(convert("dword", Some(&json!(10))).unwrap(), Data::Int(10));
        assert!(convert("dword", Some(&json!(4294967296u64))).is_err());
        assert_eq!(
            convert("qword", Some(&json!("0xffffffffffffffff"))).unwrap(),
            Data::Int(-1)
        );
        assert_eq!(
            convert("multistring", Some(&json!(["a", 1]))).unwrap(),
            Data::List(vec!["a".into(), "1".into()])
        );
        assert_eq!(
            convert("binary", Some(&json!([1, 255]))).unwrap(),
            Data::Bytes(vec![1, 255])
        );
        assert!(convert("binary", Some(&json!(256))).is_err());
    }

    #[test]
    fn default_value_only_takes_a_string() {
        let (w, warn) = wanted(&args(
            json!({"path": r"HKLM:\X", "data": 5, "type": "dword"}),
        ))
        .unwrap();
        assert_eq!(w.name, None);
        assert_eq!(w.value, Some(("String".into(), Data::Text("5".into()))));
        assert_eq!(warn.len(), 1);
        // No name and no data: the key only.
        let (w, _) = wanted(&args(json!({"path": r"HKLM:\X"}))).unwrap();
        assert_eq!(w.value, None);
        assert!(wanted(&args(json!({"path": r"HKLM:\X", "hive": "C:\\h.dat"}))).is_err());
    }

    #[test]
    fn present_compares_data_and_type() {
        let (w, _) = wanted(&args(
            json!({"path": r"HKLM:\X", "name": "n", "data": "0xffffffff", "type": "dword"}),
        ))
        .unwrap();
        // Same value as .NET reads it back (signed): nothing to do.
        let p = plan(&probe(Some(("DWord", json!(-1)))), &w);
        assert!(!p.changes(), "{p:?}");
        assert_eq!(p.diff.1[r"HKLM:\X"]["n"]["value"], "0xffffffff");
        // Same text, other type: the type changes, the data does not.
        let (w, _) = wanted(&args(
            json!({"path": r"HKLM:\X", "name": "n", "data": 1, "type": "dword"}),
        ))
        .unwrap();
        let p = plan(&probe(Some(("String", json!("1")))), &w);
        assert!(p.data_type_changed && !p.data_changed);
        assert!(p.set.as_ref().unwrap().exists);
        // Case matters in strings.
        let (w, _) = wanted(&args(
            json!({"path": r"HKLM:\X", "name": "n", "data": "Foo"}),
        ))
        .unwrap();
        let p = plan(&probe(Some(("String", json!("foo")))), &w);
        assert!(p.data_changed && !p.data_type_changed);
        // A new key and value.
        let p = plan(&Probe::default(), &w);
        assert!(p.create_key && !p.set.as_ref().unwrap().exists);
        assert_eq!(p.diff.0, json!({}));
        // A one-element multistring read back as a bare string is the same list.
        let (w, _) = wanted(&args(
            json!({"path": r"HKLM:\X", "name": "m", "data": ["a"], "type": "multistring"}),
        ))
        .unwrap();
        assert!(!plan(&probe(Some(("MultiString", json!("a")))), &w).changes());
    }

    #[test]
    fn absent_removes_value_key_or_default() {
        let (w, _) = wanted(&args(
            json!({"path": r"HKLM:\X", "name": "n", "state": "absent"}),
        ))
        .unwrap();
        let p = plan(&probe(Some(("String", json!("v")))), &w);
        assert_eq!(p.remove_value.as_deref(), Some("n"));
        assert!(!plan(&probe(None), &w).changes());
        let (w, _) = wanted(&args(json!({"path": r"HKLM:\X", "state": "absent"}))).unwrap();
        assert!(plan(&probe(None), &w).delete_key);
        assert!(!plan(&Probe::default(), &w).changes());
        let (w, _) = wanted(&args(
            json!({"path": r"HKLM:\X", "state": "absent", "delete_key": false}),
        ))
        .unwrap();
        let p = plan(&probe(Some(("String", json!("d")))), &w);
        assert_eq!(p.remove_value.as_deref(), Some(""));
        assert!(!p.delete_key);
    }

    #[test]
    fn plan_serializes_for_the_script() {
        let (w, _) = wanted(&args(
            json!({"path": r"HKCU:\Software\M", "name": "b", "data": "hex:01,02", "type": "binary"}),
        ))
        .unwrap();
        let v = serde_json::to_value(plan(&Probe::default(), &w)).unwrap();
        assert_eq!(
            v,
            json!({"create_key": true, "set": {"name": "b", "kind": "Binary", "data": [1, 2], "exists": false}, "remove_value": null, "delete_key": false})
        );
    }
}
