//! Variable precedence, lowest first (Ansible's order for the features mixop has):
//! role defaults (the play's static roles', then the task's role's), inventory (all < parent
//! group < child group < host, see `inventory`), play `vars`, `vars_files`, role vars (the
//! play's static roles', then the task's role's), block `vars`, task `vars`, facts (`set_fact`,
//! `register`, gathered facts), role parameters, extra vars (`-e`), then the magic variables.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::{Map, Value};

use super::{Engine, Inherit, PlayCtx};
use crate::inventory::Inventory;
use crate::playbook::Task;
use crate::template::{OMIT, Vars};
use crate::value::merge;

/// Every host's variables for `hostvars`, and which of them are data (facts, registered
/// results: never rendered as templates), taken once per task.
#[derive(Clone, Default)]
pub(super) struct HostVars {
    vars: Arc<BTreeMap<String, Arc<Map<String, Value>>>>,
    data: BTreeMap<String, Arc<BTreeSet<String>>>,
}

impl Engine {
    /// Everything one task on one host sees.
    pub(super) fn vars_for(
        &self,
        pc: &PlayCtx<'_>,
        host: &str,
        inh: &Inherit,
        task: &Task,
        hostvars: &HostVars,
    ) -> Vars {
        let role = task.role.as_deref();
        let mut vars = pc.play.role_defaults.clone();
        if let Some(r) = role {
            merge(&mut vars, &r.defaults, false);
        }
        merge(&mut vars, &self.host(host).inv_vars(), false);
        merge(&mut vars, &pc.play_vars, false);
        merge(&mut vars, &pc.play.role_vars, false);
        if let Some(r) = role {
            merge(&mut vars, &r.vars, false);
        }
        merge(&mut vars, &inh.vars, false);
        merge(&mut vars, &task.vars, false);
        merge(&mut vars, &inh.include_vars, false);
        merge(&mut vars, &self.host(host).facts(), false);
        if let Some(r) = role {
            merge(&mut vars, &r.params, false);
        }
        merge(&mut vars, &self.opts.extra_vars, false);
        self.add_magic(pc, host, &mut vars);
        if let Some(r) = role {
            vars.insert("role_name".into(), r.name.clone().into());
            vars.insert("role_path".into(), abs(&r.path).into());
        }
        let mut data = hostvars.data.clone();
        let mut own: BTreeSet<String> = data.get(host).map(|d| (**d).clone()).unwrap_or_default();
        own.extend(inh.include_vars.keys().cloned());
        data.insert(String::new(), Arc::new(own));
        Vars {
            vars: Arc::new(vars),
            hostvars: hostvars.vars.clone(),
            data_vars: Arc::new(data),
        }
    }

    /// A snapshot of every host's variables, taken once per task.
    pub(super) fn hostvars(&self, pc: &PlayCtx<'_>) -> HostVars {
        let mut vars = BTreeMap::new();
        let mut data = BTreeMap::new();
        let inv_hosts: Vec<String> = self.inv().hosts.keys().cloned().collect();
        for h in inv_hosts.iter().chain(pc.play_hosts.iter()) {
            if !vars.contains_key(h) {
                vars.insert(h.clone(), Arc::new(self.host_level_vars(pc, h)));
                let facts: BTreeSet<String> = self.host(h).facts().keys().cloned().collect();
                data.insert(h.clone(), Arc::new(facts));
            }
        }
        HostVars {
            vars: Arc::new(vars),
            data,
        }
    }

    /// What `hostvars[host]` shows: everything but block and task vars.
    fn host_level_vars(&self, pc: &PlayCtx<'_>, host: &str) -> Map<String, Value> {
        let hs = self.host(host);
        host_level(
            &self.inv(),
            host,
            &[
                &hs.inv_vars(),
                &pc.play_vars,
                &hs.facts(),
                &self.opts.extra_vars,
            ],
        )
    }

    fn add_magic(&self, pc: &PlayCtx<'_>, host: &str, vars: &mut Map<String, Value>) {
        let active: Vec<Value> = pc
            .play_hosts
            .iter()
            .filter(|h| self.host_active(h))
            .map(|h| Value::String(h.clone()))
            .collect();
        let batch: Vec<Value> = pc
            .batch
            .iter()
            .filter(|h| self.host_active(h))
            .map(|h| Value::String(h.clone()))
            .collect();
        inventory_magic(&self.inv(), host, vars);
        vars.insert("ansible_play_hosts".into(), Value::Array(active.clone()));
        vars.insert("play_hosts".into(), Value::Array(active));
        vars.insert(
            "ansible_play_hosts_all".into(),
            pc.play_hosts
                .iter()
                .map(|h| Value::String(h.clone()))
                .collect(),
        );
        vars.insert("ansible_play_batch".into(), Value::Array(batch));
        vars.insert("ansible_play_name".into(), pc.name.clone().into());
        vars.insert("playbook_dir".into(), abs(&self.playbook_dir).into());
        if let Some(dir) = inventory_dir(&self.inv()) {
            vars.insert("inventory_dir".into(), dir.into());
        }
        vars.insert("ansible_check_mode".into(), self.opts.check.into());
        vars.insert("ansible_diff_mode".into(), self.opts.diff.into());
        vars.insert(
            "ansible_run_tags".into(),
            if self.opts.tags.is_empty() {
                vec!["all".to_string()]
            } else {
                self.opts.tags.clone()
            }
            .into(),
        );
        vars.insert(
            "ansible_skip_tags".into(),
            self.opts.skip_tags.clone().into(),
        );
        vars.insert("ansible_verbosity".into(), self.opts.verbosity.into());
        vars.insert("omit".into(), OMIT.into());
        vars.insert("mixop_version".into(), env!("CARGO_PKG_VERSION").into());
    }
}

/// `layers` merged, lowest first, with the host's name and groups: what `hostvars[host]`
/// shows (a run passes inventory, play vars, facts and extra vars; an ad hoc command has no
/// play and no facts).
pub(crate) fn host_level(
    inv: &Inventory,
    host: &str,
    layers: &[&Map<String, Value>],
) -> Map<String, Value> {
    let mut vars = Map::new();
    for layer in layers {
        merge(&mut vars, layer, false);
    }
    vars.insert("inventory_hostname".into(), host.into());
    vars.insert("group_names".into(), inv.group_names(host).into());
    vars
}

/// The magic variables the inventory alone gives a host, but `inventory_dir` (a play adds its
/// own between them).
pub(crate) fn inventory_magic(inv: &Inventory, host: &str, vars: &mut Map<String, Value>) {
    vars.insert("inventory_hostname".into(), host.into());
    vars.insert(
        "inventory_hostname_short".into(),
        host.split('.').next().unwrap_or(host).into(),
    );
    vars.insert("group_names".into(), inv.group_names(host).into());
    vars.insert("groups".into(), Value::Object(inv.groups_var()));
}

/// `inventory_dir`, absolute.
pub(crate) fn inventory_dir(inv: &Inventory) -> Option<String> {
    inv.dir.as_deref().map(abs)
}

fn abs(p: &std::path::Path) -> String {
    // A playbook named without a directory has the parent "", which is the current one.
    let p = if p.as_os_str().is_empty() {
        std::path::Path::new(".")
    } else {
        p
    };
    std::path::absolute(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}
