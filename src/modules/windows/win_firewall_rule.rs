//! `win_firewall_rule`: Windows Defender Firewall rules (community.windows.win_firewall_rule's
//! arguments: `name` (the rule's display name), `group`, `enabled`, `state`, `action`,
//! `direction`, `protocol`, `localport`, `remoteport`, `localip`, `remoteip`, `program`,
//! `service`, `profiles`, `description`).
//!
//! Probe: the rules whose display name is `name` (or, without `name`, the rules of `group`) with
//! their port, address, application and service filters (`Get-NetFirewallRule` and the
//! `Get-NetFirewall*Filter` cmdlets). Rust compares only what the task gives, each value in the
//! form Windows reports it (`10.0.0.0/24` reads back as `10.0.0.0/255.255.255.0`, port lists in
//! any order, `tcp` as `TCP`, all three profiles as `Any`), and apply sets only what differs:
//! `New-NetFirewallRule` for a new rule, `Set-NetFirewallRule -Name <id>` with just the changed
//! parameters (the group through the rule's CIM instance), `Remove-NetFirewallRule`.
//! Several rules may share a display name: all of them are checked and set, as
//! community.windows does. Not supported: `icmp_type_code`, `interfacetypes`, `edge`,
//! `security`.

use std::net::IpAddr;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::{finish, list, opt_list, script, typed_args};
use crate::modules::ParamType::*;
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Target, alias, choice, p,
};

pub static SCRIPT: super::Script = script!("win_firewall_rule");

static DEF: ModuleDef = ModuleDef {
    name: "win_firewall_rule",
    namespaces: &["community.windows", "ansible.windows"],
    params: &[
        p("name", Str),
        p("group", Str),
        alias(p("enabled", Bool), &["enable"]),
        choice("state", &["present", "absent"]),
        choice("direction", &["in", "out"]),
        choice("action", &["allow", "block"]),
        p("protocol", Str),
        p("localport", Str),
        p("remoteport", Str),
        p("localip", Str),
        p("remoteip", Str),
        p("program", Str),
        p("service", Str),
        alias(p("profiles", List), &["profile"]),
        p("description", Str),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Windows,
    mutually_exclusive: &[],
    required_one_of: &[&["name", "group"]],
};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RuleArgs {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub direction: Option<String>,
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub protocol: Option<String>,
    #[serde(default)]
    pub localport: Option<String>,
    #[serde(default)]
    pub remoteport: Option<String>,
    #[serde(default)]
    pub localip: Option<String>,
    #[serde(default)]
    pub remoteip: Option<String>,
    #[serde(default)]
    pub program: Option<String>,
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default, deserialize_with = "opt_list")]
    pub profiles: Option<Vec<String>>,
    #[serde(default)]
    pub description: Option<String>,
}

/// One rule as probed (NetSecurity's names and forms).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Rule {
    /// The rule's Name (its ID: a GUID for rules made without one).
    pub id: String,
    /// DisplayName (community.windows' `name`).
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub enabled: bool,
    /// Inbound / Outbound.
    #[serde(default)]
    pub direction: String,
    /// Allow / Block.
    #[serde(default)]
    pub action: String,
    /// "Any" or "Domain, Private".
    #[serde(default)]
    pub profile: String,
    #[serde(default)]
    pub protocol: String,
    #[serde(default, deserialize_with = "list")]
    pub local_port: Vec<String>,
    #[serde(default, deserialize_with = "list")]
    pub remote_port: Vec<String>,
    #[serde(default, deserialize_with = "list")]
    pub local_address: Vec<String>,
    #[serde(default, deserialize_with = "list")]
    pub remote_address: Vec<String>,
    #[serde(default)]
    pub program: String,
    #[serde(default)]
    pub service: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Probe {
    #[serde(default, deserialize_with = "list")]
    pub rules: Vec<Rule>,
}

/// `tcp`, `6` → `TCP` ...; `any` → `Any`; another number stays a number.
pub fn protocol(v: &str) -> Result<String, String> {
    let t = v.trim().to_ascii_lowercase();
    Ok(match t.as_str() {
        "tcp" | "6" => "TCP".into(),
        "udp" | "17" => "UDP".into(),
        "icmpv4" | "icmp" | "1" => "ICMPv4".into(),
        "icmpv6" | "58" => "ICMPv6".into(),
        "any" | "" => "Any".into(),
        n if n.parse::<u8>().is_ok() => n.to_string(),
        _ => return Err(format!("Unknown protocol '{v}'.")),
    })
}

/// A port list (`80,443`, `5000-5010`, `any`) as a sorted set of lower-case items; `["any"]`
/// for any.
pub fn ports(items: &[String]) -> Vec<String> {
    let mut v: Vec<String> = items
        .iter()
        .flat_map(|s| s.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    if v.is_empty() || v.iter().any(|s| s == "any") {
        return vec!["any".into()];
    }
    v.sort();
    v.dedup();
    v
}

fn mask_bits(mask: &str) -> Option<u32> {
    let ip: std::net::Ipv4Addr = mask.parse().ok()?;
    let n = u32::from(ip);
    let ones = n.leading_ones();
    (n.checked_shl(ones).unwrap_or(0) == 0).then_some(ones)
}

/// One address item in a comparable form: `a.b.c.d/N` (a mask becomes its prefix length), a
/// host prefix (/32, /128) the bare address, keywords and ranges lower-cased.
pub fn address(item: &str) -> String {
    let t = item.trim();
    if let Some((addr, suffix)) = t.split_once('/')
        && let Ok(ip) = addr.trim().parse::<IpAddr>()
    {
        let bits = suffix
            .trim()
            .parse::<u32>()
            .ok()
            .or_else(|| mask_bits(suffix.trim()));
        if let Some(bits) = bits {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            return if bits == max {
                ip.to_string()
            } else {
                format!("{ip}/{bits}")
            };
        }
    }
    if let Ok(ip) = t.parse::<IpAddr>() {
        return ip.to_string();
    }
    t.to_ascii_lowercase()
}

/// An address list as a sorted set; `["any"]` for any.
pub fn addresses(items: &[String]) -> Vec<String> {
    let mut v: Vec<String> = items
        .iter()
        .flat_map(|s| s.split(','))
        .map(address)
        .filter(|s| !s.is_empty())
        .collect();
    if v.is_empty() || v.iter().any(|s| s == "any") {
        return vec!["any".into()];
    }
    v.sort();
    v.dedup();
    v
}

/// Profiles as NetSecurity's Profile flags: `Any`, or some of `Domain, Private, Public` in that
/// order (all three is `Any`).
pub fn profile(items: &[String]) -> Result<String, String> {
    let mut set = [false; 3];
    for p in items.iter().flat_map(|s| s.split(',')) {
        match p.trim().to_ascii_lowercase().as_str() {
            "domain" => set[0] = true,
            "private" => set[1] = true,
            "public" => set[2] = true,
            "any" => set = [true; 3],
            "" => {}
            other => return Err(format!("Unknown profile '{other}'.")),
        }
    }
    if set == [true; 3] || set == [false; 3] {
        return Ok("Any".into());
    }
    Ok(["Domain", "Private", "Public"]
        .iter()
        .zip(set)
        .filter(|(_, on)| *on)
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", "))
}

fn is_any(s: &str) -> bool {
    s.trim().is_empty() || s.trim().eq_ignore_ascii_case("any")
}

/// A task value split into the list form the cmdlets take (`Any` stays one item).
fn items(v: &str) -> Vec<String> {
    if is_any(v) {
        return vec!["Any".into()];
    }
    v.split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The cmdlet parameters for what the task gives, in NetSecurity's terms.
fn desired(a: &RuleArgs) -> Result<Map<String, Value>, String> {
    let mut m = Map::new();
    if let Some(e) = a.enabled {
        m.insert("Enabled".into(), if e { "True" } else { "False" }.into());
    }
    if let Some(d) = &a.direction {
        m.insert(
            "Direction".into(),
            if d == "out" { "Outbound" } else { "Inbound" }.into(),
        );
    }
    if let Some(x) = &a.action {
        m.insert(
            "Action".into(),
            if x == "block" { "Block" } else { "Allow" }.into(),
        );
    }
    if let Some(p) = &a.profiles {
        m.insert("Profile".into(), profile(p)?.into());
    }
    if let Some(p) = &a.protocol {
        m.insert("Protocol".into(), protocol(p)?.into());
    }
    for (given, key) in [
        (&a.localport, "LocalPort"),
        (&a.remoteport, "RemotePort"),
        (&a.localip, "LocalAddress"),
        (&a.remoteip, "RemoteAddress"),
    ] {
        if let Some(v) = given {
            m.insert(key.into(), json!(items(v)));
        }
    }
    for (given, key) in [(&a.program, "Program"), (&a.service, "Service")] {
        if let Some(v) = given {
            m.insert(
                key.into(),
                if is_any(v) { "Any".into() } else { v.clone() }.into(),
            );
        }
    }
    if let Some(d) = &a.description {
        m.insert("Description".into(), d.clone().into());
    }
    if let Some(g) = &a.group {
        m.insert("Group".into(), g.clone().into());
    }
    let has_ports = ["LocalPort", "RemotePort"].iter().any(|k| {
        m.get(*k)
            .and_then(Value::as_array)
            .is_some_and(|v| v.iter().any(|x| x != "Any"))
    });
    if has_ports && a.protocol.is_none() {
        return Err("localport and remoteport need `protocol` (tcp or udp)".to_string());
    }
    Ok(m)
}

/// Whether a rule already has the value for one parameter.
fn same(rule: &Rule, key: &str, want: &Value) -> bool {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let arr = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| a.iter().map(&s).collect())
            .unwrap_or_default()
    };
    match key {
        "Enabled" => rule.enabled == (s(want) == "True"),
        "Direction" => rule.direction.eq_ignore_ascii_case(&s(want)),
        "Action" => rule.action.eq_ignore_ascii_case(&s(want)),
        "Profile" => profile(std::slice::from_ref(&rule.profile)).ok() == Some(s(want)),
        "Protocol" => protocol(&rule.protocol).ok() == Some(s(want)),
        "LocalPort" => ports(&rule.local_port) == ports(&arr(want)),
        "RemotePort" => ports(&rule.remote_port) == ports(&arr(want)),
        "LocalAddress" => addresses(&rule.local_address) == addresses(&arr(want)),
        "RemoteAddress" => addresses(&rule.remote_address) == addresses(&arr(want)),
        "Program" => {
            (is_any(&rule.program) && is_any(&s(want)))
                || rule.program.eq_ignore_ascii_case(&s(want))
        }
        "Service" => {
            (is_any(&rule.service) && is_any(&s(want)))
                || rule.service.eq_ignore_ascii_case(&s(want))
        }
        "Description" => rule.description == s(want),
        "Group" => rule.group == s(want),
        _ => false,
    }
}

/// One rule to change: its ID and the parameters that differ.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Change {
    pub id: String,
    pub name: String,
    pub params: Map<String, Value>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Plan {
    /// New-NetFirewallRule parameters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create: Option<Map<String, Value>>,
    pub set: Vec<Change>,
    /// Rule IDs to remove.
    pub remove: Vec<String>,
    #[serde(skip)]
    pub unchanged: Vec<String>,
    #[serde(skip)]
    pub msg: String,
}

impl Plan {
    pub fn changed(&self) -> bool {
        self.create.is_some() || !self.set.is_empty() || !self.remove.is_empty()
    }
}

pub fn plan(p: &Probe, a: &RuleArgs) -> Result<Plan, String> {
    let want = desired(a)?;
    let mut plan = Plan::default();
    let label = match (&a.name, &a.group) {
        (Some(n), _) => format!("'{n}'"),
        (None, Some(g)) => format!("in group '{g}'"),
        (None, None) => return Err("Either name or group must be specified".into()),
    };
    if a.state.as_deref() == Some("absent") {
        if p.rules.is_empty() {
            plan.msg = match &a.name {
                Some(n) => format!("Firewall rule '{n}' does not exist."),
                None => format!("No firewall rules {label} exist."),
            };
        } else {
            plan.remove = p.rules.iter().map(|r| r.id.clone()).collect();
            plan.msg = format!(
                "Firewall rule(s) '{}' removed.",
                p.rules
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join("', '")
            );
        }
        return Ok(plan);
    }
    if p.rules.is_empty() {
        let Some(name) = &a.name else {
            plan.msg = format!("No firewall rules {label} exist.");
            return Ok(plan);
        };
        let mut create = want.clone();
        create.insert("DisplayName".into(), name.clone().into());
        create.entry("Enabled").or_insert("True".into());
        create.entry("Direction").or_insert("Inbound".into());
        create.entry("Action").or_insert("Allow".into());
        create.entry("Profile").or_insert("Any".into());
        plan.create = Some(create);
        plan.msg = format!("Firewall rule '{name}' created.");
        return Ok(plan);
    }
    for rule in &p.rules {
        let params: Map<String, Value> = want
            .iter()
            .filter(|(k, v)| !same(rule, k, v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if params.is_empty() {
            plan.unchanged.push(rule.name.clone());
        } else {
            plan.set.push(Change {
                id: rule.id.clone(),
                name: rule.name.clone(),
                params,
            });
        }
    }
    plan.msg = format!(
        "Firewall rule(s) changed '{}' - unchanged '{}'",
        plan.set
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join("', '"),
        plan.unchanged.join("', '")
    );
    Ok(plan)
}

/// `--diff`: per rule, the changed parameters before and after.
fn diff(p: &Probe, plan: &Plan) -> Value {
    let mut before = Map::new();
    let mut after = Map::new();
    for c in &plan.set {
        if let Some(r) = p.rules.iter().find(|r| r.id == c.id) {
            let rv = serde_json::to_value(r).unwrap_or_default();
            let mut b = Map::new();
            for k in c.params.keys() {
                let field = match k.as_str() {
                    "LocalPort" => "local_port".to_string(),
                    "RemotePort" => "remote_port".to_string(),
                    "LocalAddress" => "local_address".to_string(),
                    "RemoteAddress" => "remote_address".to_string(),
                    other => other.to_ascii_lowercase(),
                };
                b.insert(k.clone(), rv.get(&field).cloned().unwrap_or(Value::Null));
            }
            before.insert(c.id.clone(), Value::Object(b));
            after.insert(c.id.clone(), Value::Object(c.params.clone()));
        }
    }
    if let Some(c) = &plan.create {
        after.insert("(new)".into(), Value::Object(c.clone()));
    }
    for id in &plan.remove {
        if let Some(r) = p.rules.iter().find(|r| &r.id == id) {
            before.insert(id.clone(), serde_json::to_value(r).unwrap_or_default());
        }
    }
    json!({"before": before, "after": after})
}

#[derive(Debug, Deserialize)]
struct Applied {
    #[serde(default, deserialize_with = "list")]
    rules: Vec<Rule>,
}

pub(super) struct WinFirewallRule;

#[async_trait]
impl Module for WinFirewallRule {
    fn def(&self) -> &'static ModuleDef {
        &DEF
    }

    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let a: RuleArgs = typed_args(DEF.name, &args)?;
        let (probe, mut warnings) = SCRIPT.probe::<Probe>(ctx, &a).await?;
        let plan = plan(&probe, &a).map_err(ModError::msg)?;
        let mut rules = probe.rules.clone();
        if plan.changed() && !ctx.check_mode {
            let (applied, w) = SCRIPT.apply::<Applied>(ctx, &a, &plan).await?;
            warnings.extend(w);
            rules = applied.rules;
        }
        let mut r = finish(
            plan.changed(),
            warnings,
            json!({"msg": plan.msg, "rules": rules}),
        );
        if ctx.diff && plan.changed() {
            r.insert("diff".into(), diff(&probe, &plan));
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> Rule {
        Rule {
            id: "{0b6c}".into(),
            name: "k3s vxlan".into(),
            description: String::new(),
            group: String::new(),
            enabled: true,
            direction: "Inbound".into(),
            action: "Allow".into(),
            profile: "Any".into(),
            protocol: "UDP".into(),
            local_port: vec!["4789".into()],
            remote_port: vec!["Any".into()],
            local_address: vec!["Any".into()],
            remote_address: vec!["10.0.0.0/255.255.255.0".into(), "192.168.56.21".into()],
            program: "Any".into(),
            service: "Any".into(),
        }
    }

    fn args(v: Value) -> RuleArgs {
        serde_json::from_value(v).unwrap()
    }

    fn probe(rules: Vec<Rule>) -> Probe {
        Probe { rules }
    }

    #[test]
    fn creates_with_community_defaults() {
        let p = plan(
            &probe(vec![]),
            &args(
                json!({"name": "k3s 'api' $x `y é", "localport": "6443, 9345", "protocol": "tcp"}),
            ),
        )
        .unwrap();
        let c = p.create.unwrap();
        assert_eq!(c["DisplayName"], "k3s 'api' $x `y é");
        assert_eq!(c["LocalPort"], json!(["6443", "9345"]));
        assert_eq!(c["Protocol"], "TCP");
        assert_eq!(c["Enabled"], "True");
        assert_eq!(c["Direction"], "Inbound");
        assert_eq!(c["Profile"], "Any");
        assert_eq!(p.msg, "Firewall rule 'k3s 'api' $x `y é' created.");
    }

    #[test]
    fn same_values_in_other_spellings_are_no_change() {
        let p = plan(
            &probe(vec![rule()]),
            &args(json!({
                "name": "k3s vxlan", "protocol": "17", "localport": "4789", "direction": "in",
                "remoteip": "192.168.56.21/32,10.0.0.0/24", "profiles": ["domain", "private", "public"],
                "enabled": true, "action": "allow", "program": "any", "localip": "Any"
            })),
        )
        .unwrap();
        assert!(!p.changed(), "{:?}", p.set);
        assert_eq!(p.unchanged, vec!["k3s vxlan"]);
    }

    #[test]
    fn sets_only_what_differs() {
        let p = plan(
            &probe(vec![rule(), Rule { id: "{2}".into(), enabled: false, ..rule() }]),
            &args(json!({"name": "k3s vxlan", "enabled": true, "localport": "4789,8472", "protocol": "udp", "profiles": "private", "group": "k3s"})),
        )
        .unwrap();
        assert_eq!(p.set.len(), 2);
        assert_eq!(
            p.set[0].params,
            json!({"LocalPort": ["4789", "8472"], "Profile": "Private", "Group": "k3s"})
                .as_object()
                .unwrap()
                .clone()
        );
        assert_eq!(p.set[1].params["Enabled"], "True");
    }

    #[test]
    fn absent_and_group_only() {
        let p = plan(
            &probe(vec![rule()]),
            &args(json!({"name": "k3s vxlan", "state": "absent"})),
        )
        .unwrap();
        assert_eq!(p.remove, vec!["{0b6c}"]);
        assert_eq!(p.msg, "Firewall rule(s) 'k3s vxlan' removed.");
        let p = plan(
            &probe(vec![]),
            &args(json!({"name": "x", "state": "absent"})),
        )
        .unwrap();
        assert!(!p.changed());
        assert_eq!(p.msg, "Firewall rule 'x' does not exist.");
        let p = plan(
            &probe(vec![]),
            &args(json!({"group": "g", "enabled": true})),
        )
        .unwrap();
        assert!(!p.changed());
    }

    #[test]
    fn values_are_checked() {
        assert!(
            plan(
                &probe(vec![]),
                &args(json!({"name": "x", "localport": "80"}))
            )
            .unwrap_err()
            .contains("need `protocol`")
        );
        assert!(
            plan(
                &probe(vec![]),
                &args(json!({"name": "x", "protocol": "sctpx"}))
            )
            .is_err()
        );
        assert!(
            plan(
                &probe(vec![]),
                &args(json!({"name": "x", "profiles": ["home"]}))
            )
            .is_err()
        );
        assert_eq!(address("10.1.0.0/255.255.0.0"), "10.1.0.0/16");
        assert_eq!(address("fe80::1/128"), "fe80::1");
        assert_eq!(address("LocalSubnet"), "localsubnet");
        assert_eq!(addresses(&["any".into()]), vec!["any"]);
        assert_eq!(ports(&["443, 80".into()]), vec!["443", "80"]);
        assert_eq!(
            profile(&["Public".into(), "domain".into()]).unwrap(),
            "Domain, Public"
        );
    }
}
