//! Changes a run makes to the in-memory inventory: `add_host` and `group_by` (ansible-core's
//! `InventoryManager.add_dynamic_host` / `add_dynamic_group`).

use serde_json::{Map, Value};

use super::Inventory;
use crate::value::merge;

impl Inventory {
    /// `add_host`: creates the host (in `all`) if it is new, merges `vars` into its own
    /// variables and puts it in `groups` (created if new). Returns whether anything changed.
    pub fn add_dynamic_host(
        &mut self,
        name: &str,
        groups: &[String],
        vars: &Map<String, Value>,
    ) -> Result<bool, String> {
        let mut changed = false;
        let is_new = self.hosts.get(name).is_none_or(|h| h.implicit);
        if is_new {
            // An implicit localhost named by add_host becomes a real inventory host.
            self.hosts.shift_remove(name);
            self.add_host(name, Some("all"), None, None, None);
            self.load_entity_files(name, false)?;
            changed = true;
        }
        if let Some(h) = self.hosts.get_mut(name) {
            let mut combined = h.vars.clone();
            merge(&mut combined, vars, false);
            if combined != h.vars {
                h.vars = combined;
                changed = true;
            }
        }
        for group in groups {
            changed |= self.ensure_dynamic_group(group)?;
            changed |= self.join(name, group);
        }
        if changed {
            self.reconcile();
        }
        Ok(changed)
    }

    /// `group_by`: puts `host` in `group` (created if new) and makes `parents` (created if new)
    /// its parents. Returns whether anything changed.
    pub fn add_dynamic_group(
        &mut self,
        host: &str,
        group: &str,
        parents: &[String],
    ) -> Result<bool, String> {
        if !self.hosts.contains_key(host) {
            return Err(format!("{host} cannot be matched in inventory"));
        }
        let mut changed = self.ensure_dynamic_group(group)?;
        for parent in parents {
            changed |= self.ensure_dynamic_group(parent)?;
            let linked = self.groups[parent.as_str()]
                .children
                .iter()
                .any(|c| c == group);
            if !linked {
                if let Some(path) = self.child_path(group, parent) {
                    return Err(format!("group cycle: {} -> {group}", path.join(" -> ")));
                }
                if let Some(p) = self.groups.get_mut(parent.as_str()) {
                    p.children.push(group.to_string());
                }
                if let Some(g) = self.groups.get_mut(group) {
                    g.parents.push(parent.clone());
                }
                changed = true;
            }
        }
        changed |= self.join(host, group);
        if changed {
            self.reconcile();
        }
        Ok(changed)
    }

    fn ensure_dynamic_group(&mut self, name: &str) -> Result<bool, String> {
        if !self.add_group(name, None) {
            return Ok(false);
        }
        self.load_entity_files(name, true)?;
        Ok(true)
    }

    /// Puts a host in a group; whether it was not there yet.
    fn join(&mut self, host: &str, group: &str) -> bool {
        let before = self.hosts.get(host).map_or(0, |h| h.groups.len());
        self.add_host(host, Some(group), None, None, None);
        self.hosts.get(host).map_or(0, |h| h.groups.len()) != before
    }

    /// `group_vars/NAME` or `host_vars/NAME` of a group or host created during the run, from
    /// every directory already read (Ansible's vars plugin reads them whenever it is asked).
    fn load_entity_files(&mut self, name: &str, group: bool) -> Result<(), String> {
        let sub = if group { "group_vars" } else { "host_vars" };
        for (index, dir) in self.vars_dirs.clone().into_iter().enumerate() {
            let sub_dir = dir.join(sub);
            if !sub_dir.is_dir() {
                continue;
            }
            let Some(vars) = self
                .read_entity_vars(&sub_dir, name)
                .map_err(|d| d.to_string())?
            else {
                continue;
            };
            if group {
                if let Some(g) = self.groups.get_mut(name) {
                    g.file_vars.push((index, vars));
                }
            } else if let Some(h) = self.hosts.get_mut(name) {
                merge(&mut h.vars, &vars, false);
            }
        }
        Ok(())
    }
}
