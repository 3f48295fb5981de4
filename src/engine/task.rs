//! One task on a set of hosts: conditions, loops, delegation, retries, register, handlers.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::{Map, Value};

use super::events::{Event, LineSplitter, PlayEndReason, Status, censor};
use super::vars::HostVars;
use super::{Engine, Inherit, PlayCtx};
use crate::connection::{Become, ConnSpec, Transport};
use crate::modules::{self, ModError, ModuleCtx};
use crate::playbook::{LoopControl, Play, RoleRef, Task, TaskKind, TaskOpts};
use crate::template::{TemplateError, Vars};

/// What happened on one host (for one loop item, or the task as a whole).
struct Outcome {
    result: Map<String, Value>,
    /// The module arguments as rendered for this run (`ansible_failed_task.args`).
    args: Option<Box<Map<String, Value>>>,
}

impl Outcome {
    fn of(result: Map<String, Value>) -> Outcome {
        Outcome { result, args: None }
    }
    fn flag(&self, k: &str) -> bool {
        self.result.get(k).and_then(Value::as_bool).unwrap_or(false)
    }
    fn status(&self) -> Status {
        if self.flag("unreachable") {
            Status::Unreachable
        } else if self.flag("failed") {
            Status::Failed
        } else if self.flag("skipped") {
            Status::Skipped
        } else if self.flag("changed") {
            Status::Changed
        } else {
            Status::Ok
        }
    }
    fn failed(msg: impl Into<String>) -> Outcome {
        let mut result = Map::new();
        result.insert("failed".into(), true.into());
        result.insert("changed".into(), false.into());
        result.insert("msg".into(), msg.into().into());
        Outcome::of(result)
    }
    fn skipped(reason: &str, condition: Option<&Value>) -> Outcome {
        let mut result = Map::new();
        result.insert("changed".into(), false.into());
        result.insert("skipped".into(), true.into());
        result.insert("skip_reason".into(), reason.into());
        if let Some(c) = condition {
            result.insert("false_condition".into(), c.clone());
        }
        Outcome::of(result)
    }
}

/// The synthetic fact-gathering task of `gather_facts: true`.
pub fn setup_task(play: &Play) -> Task {
    let module = modules::lookup("setup").expect("setup module is registered");
    let mut task = Task::synthetic(
        play.loc.clone(),
        play.dir.clone(),
        "gather_facts",
        TaskKind::Module {
            module,
            args: Map::new(),
            args_loc: play.loc.clone(),
        },
    );
    task.name = Some("Gathering Facts".into());
    task.tags = vec!["always".into()];
    task
}

/// `file:line` of a task, as events show it.
fn task_location(task: &Task) -> String {
    format!("{}:{}", task.loc.path().display(), task.loc.line)
}

/// `ansible_failed_task`: the task as ansible-core serializes it, for the attributes mixop has:
/// the name as displayed (templated with the first host's variables), the module as written,
/// the arguments as rendered for the host (`args`: as written when they were never rendered).
fn failed_task(task: &Task, opts: &TaskOpts, args: Option<&Map<String, Value>>) -> Value {
    let args = match (&task.kind, args) {
        (_, Some(rendered)) => Value::Object(rendered.clone()),
        (TaskKind::Module { args, .. }, None) => Value::Object(args.clone()),
        (TaskKind::IncludeTasks { file, .. }, None) => serde_json::json!({ "_raw_params": file }),
        (TaskKind::IncludeRole { role }, None) => serde_json::json!({ "name": role.name }),
        (TaskKind::Meta { action }, None) => serde_json::json!({ "_raw_params": action }),
        (TaskKind::Block { .. }, None) => Value::Object(Map::new()),
    };
    let conditions = |c: &Option<Vec<Value>>| Value::Array(c.clone().unwrap_or_default());
    serde_json::json!({
        "name": task.name.clone().unwrap_or_default(),
        "action": task.action,
        "args": args,
        "when": task.when,
        "tags": task.tags,
        "register": task.register,
        "loop": task.loop_,
        "until": task.until,
        "changed_when": conditions(&task.changed_when),
        "failed_when": conditions(&task.failed_when),
        "notify": (!task.notify.is_empty()).then_some(&task.notify),
        "ignore_errors": opts.ignore_errors,
        "delegate_to": opts.delegate_to,
        "run_once": opts.run_once,
        "no_log": opts.no_log.unwrap_or(false),
        "become": opts.become_.unwrap_or(false),
        "become_user": opts.become_user,
        "vars": task.vars,
    })
}

/// A task failure that names the task and where it is: `task 'NAME' at FILE:LINE: msg`.
fn failed_at(task: &Task, msg: impl std::fmt::Display) -> Outcome {
    Outcome::failed(format!(
        "task '{}' at {}: {msg}",
        task.display_name(),
        task.loc
    ))
}

fn template_failure(task: &Task, what: &str, e: &TemplateError, limited: bool) -> Outcome {
    let mut msg = format!("{what}: {}", e.message);
    if let Some(var) = &e.undefined
        && var.contains("hostvars")
        && limited
    {
        msg.push_str(" (the host that sets this variable may be excluded by --limit; run without --limit or include that host)");
    }
    failed_at(task, msg)
}

impl Engine {
    pub(super) async fn run_task(
        &self,
        pc: &PlayCtx<'_>,
        task: &Task,
        hosts: &[String],
        inh: &Inherit,
        handler: bool,
    ) {
        let hostvars = self.hostvars(pc);
        let named;
        let task = match self.task_name(pc, task, hosts, inh, &hostvars) {
            Some(name) => {
                named = Task {
                    name: Some(name),
                    ..task.clone()
                };
                &named
            }
            None => task,
        };
        self.emit(Event::TaskStart {
            name: task.display_name(),
            location: task_location(task),
            hosts: hosts.to_vec(),
            handler,
        });
        let opts = task.opts.inherit(&inh.opts);
        match &task.kind {
            TaskKind::Meta { action } => {
                return self.run_meta(pc, task, action, hosts, inh, &hostvars).await;
            }
            TaskKind::IncludeTasks { file, .. } => {
                return self
                    .run_include(pc, task, Included::Tasks(file), hosts, inh, &hostvars)
                    .await;
            }
            TaskKind::IncludeRole { role } => {
                return self
                    .run_include(pc, task, Included::Role(role), hosts, inh, &hostvars)
                    .await;
            }
            TaskKind::Block {
                block,
                rescue,
                always,
            } => {
                return Box::pin(self.run_block(pc, task, block, rescue, always, hosts, inh)).await;
            }
            TaskKind::Module { .. } => {}
        }
        // add_host and pause run once per task, for the first host (ansible-core's
        // BYPASS_HOST_LOOP). Unlike run_once's, their result is only the first host's: 2.19
        // registers it (and counts it in the recap) for that host alone.
        let bypass = matches!(&task.kind, TaskKind::Module { module, .. }
            if matches!(module.def().name, "add_host" | "pause"));
        let run_once = opts.run_once.unwrap_or(false) || bypass;
        let run_hosts = if run_once { &hosts[..1] } else { hosts };
        let futs = run_hosts.iter().map(|h| {
            let (opts, hostvars) = (&opts, &hostvars);
            async move {
                let _permit = self.forks.acquire().await;
                self.run_on_host(pc, task, h, inh, opts, hostvars).await
            }
        });
        let outcomes = join_all(futs).await;
        if run_once
            && !bypass
            && let Some(first) = outcomes.into_iter().next()
        {
            // run_once results apply to every host of the batch, like Ansible (not add_host's:
            // only the host it ran for registers it).
            for h in &hosts[1..] {
                self.apply_result(task, h, &first);
            }
        }
        if !inh.rescuable {
            let failed_now = hosts.iter().any(|h| {
                let hs = self.host(h);
                hs.is_failed() || hs.is_unreachable()
            });
            if failed_now && (opts.any_errors_fatal.unwrap_or(false) || pc.play.any_errors_fatal) {
                self.emit(Event::PlayEnded {
                    reason: PlayEndReason::AnyErrorsFatal {
                        task: task.display_name(),
                    },
                });
                pc.aborted.store(true, Ordering::SeqCst);
                self.playbook_stopped.store(true, Ordering::SeqCst);
            }
            if let Some(pct) = pc.play.max_fail_percentage {
                let failed = pc.batch.iter().filter(|h| !self.host_active(h)).count();
                if (failed as f64) * 100.0 / (pc.batch.len() as f64) > pct {
                    self.emit(Event::PlayEnded {
                        reason: PlayEndReason::MaxFailPercentage {
                            percent: pct,
                            failed,
                            hosts: pc.batch.len(),
                        },
                    });
                    pc.aborted.store(true, Ordering::SeqCst);
                    self.playbook_stopped.store(true, Ordering::SeqCst);
                }
            }
        }
    }

    /// The task's name templated with the first host's variables, as ansible-core's linear
    /// strategy does (undefined parts are marked, not fatal). `None` when there is nothing to
    /// template.
    fn task_name(
        &self,
        pc: &PlayCtx<'_>,
        task: &Task,
        hosts: &[String],
        inh: &Inherit,
        hostvars: &HostVars,
    ) -> Option<String> {
        let name = task.name.as_deref()?;
        let first = hosts.first()?;
        if !crate::template::is_template(name) {
            return None;
        }
        let vars = self.vars_for(pc, first, inh, task, hostvars);
        let (text, errors) = self.templar.render_lenient(name, &vars);
        for e in &errors {
            self.emit(Event::Warning {
                message: format!("task name at {}: {}", task.loc, e.message),
            });
        }
        Some(text)
    }

    async fn run_on_host(
        &self,
        pc: &PlayCtx<'_>,
        task: &Task,
        host: &str,
        inh: &Inherit,
        opts: &TaskOpts,
        hostvars: &HostVars,
    ) -> Map<String, Value> {
        let t0 = Instant::now();
        self.emit(Event::HostTaskStart {
            host: host.to_string(),
            task: task.display_name(),
        });
        let hs = self.host(host);
        hs.begin_task(task.display_name(), task_location(task));
        let vars = self.vars_for(pc, host, inh, task, hostvars);
        let conds: Vec<Value> = inh.when.iter().chain(task.when.iter()).cloned().collect();
        let outcome = match &task.loop_ {
            None => match self.conditions_hold(&conds, &vars) {
                Ok(None) => self.run_action(task, host, opts, &vars).await,
                Ok(Some(false_cond)) => {
                    Outcome::skipped("Conditional result was False", Some(&false_cond))
                }
                Err(e) => template_failure(task, "when", &e, self.opts.limit.is_some()),
            },
            Some(lv) => self.run_loop(task, host, opts, &vars, &conds, lv).await,
        };
        let result = outcome.result.clone();
        self.apply_result(task, host, &result);
        self.report(task, host, opts, &outcome, t0, None);
        hs.end_task();
        result
    }

    /// Registers the result, stores facts, and notifies handlers.
    fn apply_result(&self, task: &Task, host: &str, result: &Map<String, Value>) {
        let hs = self.host(host);
        let mut fact_sets: Vec<&Map<String, Value>> = Vec::new();
        if let Some(Value::Object(f)) = result.get("ansible_facts") {
            fact_sets.push(f);
        }
        if let Some(Value::Array(items)) = result.get("results") {
            for item in items {
                if let Some(Value::Object(f)) = item.get("ansible_facts") {
                    fact_sets.push(f);
                }
            }
        }
        // Facts a module gathers (setup, package_facts, ...) are also under `ansible_facts`
        // (without the `ansible_` prefix), as in ansible-core; variables set by set_fact and
        // include_vars are not.
        let gathered = matches!(&task.kind, TaskKind::Module { module, .. }
            if !matches!(module.def().name, "set_fact" | "include_vars"));
        for facts in fact_sets {
            for (k, v) in facts {
                hs.set_fact(k, v.clone());
            }
            if gathered {
                let mut all = match hs.facts().remove("ansible_facts") {
                    Some(Value::Object(m)) => m,
                    _ => Map::new(),
                };
                for (k, v) in facts {
                    all.insert(
                        k.strip_prefix("ansible_").unwrap_or(k).to_string(),
                        v.clone(),
                    );
                }
                hs.set_fact("ansible_facts", Value::Object(all));
            }
        }
        if let Some(name) = &task.register {
            let mut registered = result.clone();
            registered.remove("ansible_facts");
            hs.set_fact(name, Value::Object(registered));
        }
        if result
            .get("changed")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            && !result
                .get("failed")
                .and_then(Value::as_bool)
                .unwrap_or(false)
        {
            for n in &task.notify {
                hs.notify(n);
            }
        }
    }

    /// Counts the outcome and emits the host's result event.
    fn report(
        &self,
        task: &Task,
        host: &str,
        opts: &TaskOpts,
        outcome: &Outcome,
        t0: Instant,
        item: Option<Value>,
    ) {
        let hs = self.host(host);
        let status = outcome.status();
        let changed = outcome.flag("changed");
        let mut ignored = false;
        if item.is_none() {
            match status {
                Status::Unreachable => {
                    if opts.ignore_unreachable.unwrap_or(false) {
                        hs.count(|s| s.skipped += 1);
                    } else {
                        hs.count(|s| s.unreachable += 1);
                        hs.set_unreachable();
                    }
                }
                Status::Failed => {
                    if opts.ignore_errors.unwrap_or(false) {
                        ignored = true;
                        hs.count(|s| {
                            s.ok += 1;
                            s.ignored += 1;
                            if changed {
                                s.changed += 1;
                            }
                        });
                    } else {
                        hs.count(|s| s.failed += 1);
                        hs.set_failed(true);
                        hs.record_failure(
                            failed_task(task, opts, outcome.args.as_deref()),
                            outcome.result.clone(),
                        );
                    }
                }
                Status::Skipped => hs.count(|s| s.skipped += 1),
                Status::Changed => hs.count(|s| {
                    s.ok += 1;
                    s.changed += 1;
                }),
                Status::Ok => hs.count(|s| s.ok += 1),
            }
        }
        let result = Value::Object(outcome.result.clone());
        let no_log = opts.no_log.unwrap_or(false);
        let module = match &task.kind {
            TaskKind::Module { module, .. } => Some(module.def().name),
            _ => None,
        };
        let (result, item) = if no_log {
            // Whatever went in or came out is a secret from now on, everywhere; the result's
            // `msg` is left out so that it can say what went wrong (masked where it quotes one).
            crate::secret::register_values(&result, &["msg"]);
            if let Some(args) = &outcome.args {
                crate::secret::register_values(&Value::Object((**args).clone()), &[]);
            }
            if let Some(i) = &item {
                crate::secret::register_values(i, &[]);
            }
            // The item (or its label) may be the secret itself: Ansible shows `(item=None)`.
            (censor(&result, module), item.map(|_| Value::Null))
        } else {
            (result, item)
        };
        self.emit(Event::HostResult {
            host: host.to_string(),
            task: task.display_name(),
            module: module.map(str::to_string),
            status,
            changed,
            ignored,
            duration_ms: t0.elapsed().as_millis() as u64,
            item,
            delegated_to: opts.delegate_to.clone(),
            result,
        });
    }

    /// `Ok(None)` when every condition holds, `Ok(Some(cond))` with the first false one.
    fn conditions_hold(
        &self,
        conds: &[Value],
        vars: &Vars,
    ) -> Result<Option<Value>, TemplateError> {
        for c in conds {
            if !self.templar.eval_bool(c, vars)? {
                return Ok(Some(c.clone()));
            }
        }
        Ok(None)
    }

    async fn run_loop(
        &self,
        task: &Task,
        host: &str,
        opts: &TaskOpts,
        vars: &Vars,
        conds: &[Value],
        lv: &Value,
    ) -> Outcome {
        let items = match lv {
            Value::String(s) => match self.templar.render(s, vars) {
                Ok(Value::Array(a)) => a,
                Ok(other) => {
                    let got = type_name(&other);
                    return failed_at(task, format!("loop needs a list, but `{s}` gave {got}"));
                }
                Err(e) => return template_failure(task, "loop", &e, self.opts.limit.is_some()),
            },
            Value::Array(a) => match self.templar.render_deep(&Value::Array(a.clone()), vars) {
                Ok(Value::Array(a)) => a,
                Ok(_) => Vec::new(),
                Err(e) => return template_failure(task, "loop", &e, self.opts.limit.is_some()),
            },
            other => {
                return Outcome::failed(format!("loop needs a list, got {}", type_name(other)));
            }
        };
        let lc = &task.loop_control;
        let mut results = Vec::new();
        let n = items.len();
        for (i, item) in items.into_iter().enumerate() {
            if i > 0
                && let Some(p) = lc.pause
            {
                // Checked when the playbook was loaded.
                let pause = Duration::try_from_secs_f64(p.max(0.0)).unwrap_or(Duration::ZERO);
                tokio::time::sleep(pause).await;
            }
            let item_vars = with_loop_vars(vars, lc, &item, i, n);
            let label = match &lc.label {
                Some(l) => self
                    .templar
                    .render_deep(l, &item_vars)
                    .unwrap_or_else(|_| l.clone()),
                None => item.clone(),
            };
            let t_item = Instant::now();
            let mut outcome = match self.conditions_hold(conds, &item_vars) {
                Ok(None) => self.run_action(task, host, opts, &item_vars).await,
                Ok(Some(c)) => Outcome::skipped("Conditional result was False", Some(&c)),
                Err(e) => template_failure(task, "when", &e, self.opts.limit.is_some()),
            };
            outcome.result.insert(lc.loop_var.clone(), item.clone());
            outcome.result.insert("item".into(), item.clone());
            outcome
                .result
                .insert("ansible_loop_var".into(), lc.loop_var.clone().into());
            if let Some(iv) = &lc.index_var {
                outcome.result.insert(iv.clone(), i.into());
            }
            self.report(task, host, opts, &outcome, t_item, Some(label));
            let unreachable = outcome.flag("unreachable");
            results.push(Value::Object(outcome.result));
            if unreachable {
                break;
            }
        }
        let any = |k: &str| {
            results
                .iter()
                .any(|r| r.get(k).and_then(Value::as_bool).unwrap_or(false))
        };
        let mut result = Map::new();
        result.insert("changed".into(), any("changed").into());
        if any("unreachable") {
            result.insert("unreachable".into(), true.into());
            result.insert(
                "msg".into(),
                "host became unreachable during the loop".into(),
            );
        } else if any("failed") {
            result.insert("failed".into(), true.into());
            result.insert("msg".into(), "One or more items failed".into());
        } else if !results.is_empty()
            && results
                .iter()
                .all(|r| r.get("skipped").and_then(Value::as_bool).unwrap_or(false))
        {
            result.insert("skipped".into(), true.into());
            result.insert("msg".into(), "All items skipped".into());
        } else {
            result.insert("msg".into(), "All items completed".into());
        }
        if results.is_empty() {
            result.insert("skipped".into(), true.into());
            result.insert("skipped_reason".into(), "No items in the list".into());
        }
        result.insert("results".into(), Value::Array(results));
        Outcome::of(result)
    }

    /// Runs the module once (with retries/until), then applies changed_when/failed_when.
    async fn run_action(&self, task: &Task, host: &str, opts: &TaskOpts, vars: &Vars) -> Outcome {
        let TaskKind::Module { module, args, .. } = &task.kind else {
            return Outcome::failed("internal error: not a module task");
        };
        let rendered = match self.templar.render_deep(&Value::Object(args.clone()), vars) {
            Ok(Value::Object(m)) => m,
            Ok(_) => Map::new(),
            Err(e) => {
                return template_failure(task, "arguments", &e, self.opts.limit.is_some());
            }
        };
        let mut outcome = self
            .run_module(task, *module, host, opts, vars, rendered.clone())
            .await;
        outcome.args = Some(Box::new(rendered));
        outcome
    }

    /// `run_action` once the arguments are rendered.
    async fn run_module(
        &self,
        task: &Task,
        module: &'static dyn modules::Module,
        host: &str,
        opts: &TaskOpts,
        vars: &Vars,
        rendered: Map<String, Value>,
    ) -> Outcome {
        let def = module.def();
        let limited = self.opts.limit.is_some();
        let args = match modules::normalize_args(def, rendered) {
            Ok(a) => a,
            Err(msg) => {
                return failed_at(task, msg);
            }
        };
        let delegate = match &opts.delegate_to {
            Some(d) => match self.templar.render_str(d, vars) {
                Ok(d) => Some(d),
                Err(e) => return template_failure(task, "delegate_to", &e, limited),
            },
            None => None,
        };
        let target = delegate.clone().unwrap_or_else(|| host.to_string());
        let slot = if def.controller_only() {
            None
        } else {
            match self.slot_for(host, &target, opts, vars).await {
                Ok(s) => Some(s),
                Err(msg) => return failed_at(task, msg),
            }
        };
        let become_ = match self.become_for(opts, vars) {
            Ok(b) => b,
            Err(e) => return template_failure(task, "become", &e, limited),
        };
        let env = match self.environment_for(opts, vars) {
            Ok(e) => e,
            Err(msg) => {
                return failed_at(task, msg);
            }
        };
        if let Some(s) = &slot
            && let Some(msg) = def.refuses(s.transport)
        {
            return Outcome::failed(msg);
        }
        // A role's own `files/` and `templates/` come first, as in ansible-core.
        let mut search_dirs: Vec<_> = task.role.iter().map(|r| r.path.clone()).collect();
        search_dirs.extend([task.dir.clone(), self.playbook_dir.clone()]);
        // Controller-only modules never touch a connection; give them a local slot anyway.
        let local_slot;
        let conn = match &slot {
            Some(s) => s.as_ref(),
            None => {
                local_slot = modules::ConnSlot::new(local_spec(&target));
                &local_slot
            }
        };
        // At -v and above the user's commands stream their output (never under no_log).
        let (live_tx, mut live_rx) = if self.opts.verbosity > 0 && !opts.no_log.unwrap_or(false) {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let ctx = ModuleCtx {
            host,
            conn,
            check_mode: opts.check_mode.unwrap_or(self.opts.check),
            diff: opts.diff.unwrap_or(self.opts.diff),
            templar: &self.templar,
            vars,
            search_dirs: &search_dirs,
            become_,
            env,
            timeout: opts.timeout.map(Duration::from_secs),
            output: live_tx,
            task: format!("task '{}' at {}", task.display_name(), task.loc),
        };
        let (retries, delay) = match self.retry_policy(task, vars) {
            Ok(p) => p,
            Err(msg) => return failed_at(task, msg),
        };
        let mut attempt = 0u64;
        loop {
            attempt += 1;
            let run = module.run(&ctx, args.clone());
            let outcome = match live_rx.as_mut() {
                Some(rx) => self.streaming(run, rx, host, task).await,
                None => run.await,
            };
            let mut result = match self.module_result(host, outcome) {
                Ok(result) => result,
                Err(unreachable) => return unreachable,
            };
            if let Err(msg) = self.apply_inventory_change(host, &mut result) {
                result.insert("failed".into(), true.into());
                result.insert("msg".into(), msg.into());
                return Outcome::of(result);
            }
            if let Err(o) = self.apply_overrides(task, vars, &mut result) {
                return o;
            }
            if task.until.is_empty() {
                return Outcome::of(result);
            }
            let check_vars = with_registered(vars, task.register.as_deref(), &result);
            let done = match self.conditions_hold(&task.until, &check_vars) {
                Ok(c) => c.is_none(),
                Err(e) => return template_failure(task, "until", &e, limited),
            };
            result.insert("attempts".into(), attempt.into());
            if done {
                result.insert("failed".into(), false.into());
                return Outcome::of(result);
            }
            if attempt > retries {
                result.insert("failed".into(), true.into());
                result
                    .entry("msg")
                    .or_insert(format!("condition not met after {attempt} attempts").into());
                return Outcome::of(result);
            }
            self.emit(Event::Retry {
                host: host.to_string(),
                task: task.display_name(),
                attempt,
                retries_left: retries + 1 - attempt,
            });
            tokio::time::sleep(delay).await;
        }
    }

    /// `retries` (default 3) and `delay` (default 5 s) of an `until` loop, rendered.
    fn retry_policy(&self, task: &Task, vars: &Vars) -> Result<(u64, Duration), String> {
        let number = |v: &Value| -> Option<Value> { self.templar.render_deep(v, vars).ok() };
        let retries = match &task.retries {
            Some(v) => number(v)
                .and_then(|v| {
                    v.as_u64()
                        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                })
                .ok_or("retries must be a number")?,
            None => 3,
        };
        let delay = task
            .delay
            .as_ref()
            .and_then(number)
            .and_then(|v| {
                v.as_f64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
            .unwrap_or(5.0);
        Ok((retries, crate::value::seconds(delay.max(0.0), "delay")?))
    }

    /// A module's answer as the registered result: every result says `failed` and `changed`
    /// (as ansible-core's TaskExecutor), a failure carries its `msg`, and module `warnings`
    /// are shown. A broken connection ends the task at once (Err: the finished outcome).
    fn module_result(
        &self,
        host: &str,
        answer: Result<Map<String, Value>, ModError>,
    ) -> Result<Map<String, Value>, Outcome> {
        match answer {
            Ok(mut m) => {
                m.entry("failed").or_insert(false.into());
                m.entry("changed").or_insert(false.into());
                if let Some(Value::Array(ws)) = m.get("warnings") {
                    for w in ws.iter().filter_map(Value::as_str) {
                        self.emit(Event::Warning {
                            message: format!("{host}: {w}"),
                        });
                    }
                }
                Ok(m)
            }
            Err(ModError::Failed { msg, mut result }) => {
                result.insert("failed".into(), true.into());
                result.insert("msg".into(), msg.into());
                result.entry("changed").or_insert(false.into());
                Ok(result)
            }
            Err(ModError::Conn(e)) => {
                let mut result = Map::new();
                let key = if e.kind == crate::connection::ConnErrorKind::Unreachable {
                    "unreachable"
                } else {
                    "failed"
                };
                result.insert(key.into(), true.into());
                result.insert("changed".into(), false.into());
                result.insert("msg".into(), e.message.into());
                Err(Outcome::of(result))
            }
        }
    }

    /// What `add_host` and `group_by` ask for (their `add_host` / `add_group` result keys);
    /// `changed` says whether the inventory changed, as in ansible-core.
    fn apply_inventory_change(
        &self,
        host: &str,
        result: &mut Map<String, Value>,
    ) -> Result<(), String> {
        let changed = if let Some(Value::Object(info)) = result.get("add_host") {
            let name = info.get("host_name").map(crate::value::to_text);
            let groups: Vec<String> = match info.get("groups") {
                Some(Value::Array(a)) => a.iter().map(crate::value::to_text).collect(),
                _ => Vec::new(),
            };
            let vars = match info.get("host_vars") {
                Some(Value::Object(m)) => m.clone(),
                _ => Map::new(),
            };
            let name = name.unwrap_or_default();
            self.change_inventory(|inv| inv.add_dynamic_host(&name, &groups, &vars))?
        } else if let Some(Value::String(group)) = result.get("add_group") {
            let parents: Vec<String> = match result.get("parent_groups") {
                Some(Value::Array(a)) => a.iter().map(crate::value::to_text).collect(),
                _ => Vec::new(),
            };
            let group = group.clone();
            self.change_inventory(|inv| inv.add_dynamic_group(host, &group, &parents))?
        } else {
            return Ok(());
        };
        result.insert("changed".into(), changed.into());
        Ok(())
    }

    /// `changed_when` / `failed_when`, evaluated with the registered name bound to the result.
    fn apply_overrides(
        &self,
        task: &Task,
        vars: &Vars,
        result: &mut Map<String, Value>,
    ) -> Result<(), Outcome> {
        if result
            .get("unreachable")
            .and_then(Value::as_bool)
            .unwrap_or(false)
        {
            return Ok(());
        }
        let limited = self.opts.limit.is_some();
        if let Some(conds) = &task.changed_when {
            let v = with_registered(vars, task.register.as_deref(), result);
            let changed = self
                .conditions_hold(conds, &v)
                .map_err(|e| template_failure(task, "changed_when", &e, limited))?
                .is_none();
            result.insert("changed".into(), changed.into());
        }
        if let Some(conds) = &task.failed_when {
            let v = with_registered(vars, task.register.as_deref(), result);
            let failed = self
                .conditions_hold(conds, &v)
                .map_err(|e| template_failure(task, "failed_when", &e, limited))?
                .is_none();
            result.insert("failed_when_result".into(), failed.into());
            result.insert("failed".into(), failed.into());
            if failed {
                result
                    .entry("msg")
                    .or_insert("failed_when condition was met".into());
            }
        }
        Ok(())
    }

    /// Runs a module while turning what its command streams into `HostOutput` events, in
    /// order and all of them before the module's result.
    async fn streaming(
        &self,
        run: impl std::future::Future<Output = modules::ModResult>,
        rx: &mut tokio::sync::mpsc::UnboundedReceiver<crate::connection::OutputChunk>,
        host: &str,
        task: &Task,
    ) -> modules::ModResult {
        let mut lines = LineSplitter::default();
        let emit = |stream, line| {
            self.emit(Event::HostOutput {
                host: host.to_string(),
                task: task.display_name(),
                stream,
                line,
            })
        };
        tokio::pin!(run);
        let result = loop {
            tokio::select! {
                r = &mut run => break r,
                Some(chunk) = rx.recv() => lines.push(chunk, emit),
            }
        };
        while let Ok(chunk) = rx.try_recv() {
            lines.push(chunk, emit);
        }
        lines.finish(emit);
        result
    }

    /// The connection for a task: the host's own, or the delegated host's.
    async fn slot_for(
        &self,
        host: &str,
        target: &str,
        opts: &TaskOpts,
        vars: &Vars,
    ) -> Result<Arc<modules::ConnSlot>, String> {
        let in_inventory = self.inv().hosts.contains_key(target);
        let delegated = target != host;
        let tvars: Map<String, Value> = if !delegated {
            (*vars.vars).clone()
        } else if let Some(hv) = vars.hostvars.get(target) {
            (**hv).clone()
        } else {
            Map::new()
        };
        let conn_vars = render_conn_vars(&self.templar, &tvars, vars)?;
        let spec = crate::connection::spec_from_vars(
            target,
            conn_vars,
            if delegated {
                None
            } else {
                opts.connection.as_deref()
            },
            if delegated {
                None
            } else {
                opts.remote_user.as_deref()
            },
            in_inventory,
        )?;
        Ok(self.host(target).slot(spec).await)
    }

    fn become_for(&self, opts: &TaskOpts, vars: &Vars) -> Result<Option<Become>, TemplateError> {
        let get = |k: &str| vars.vars.get(k).filter(|v| !v.is_null());
        let config = crate::config::get();
        let enabled = opts.become_.unwrap_or_else(|| {
            get("ansible_become")
                .and_then(crate::value::as_bool)
                .or(config.become_)
                .unwrap_or(false)
        });
        if !enabled {
            return Ok(None);
        }
        let user = match opts.become_user.clone() {
            Some(u) => self.templar.render_str(&u, vars)?,
            None => match get("ansible_become_user") {
                Some(v) => crate::value::to_text(&self.templar.render_deep(v, vars)?),
                None => config.become_user.clone().unwrap_or_else(|| "root".into()),
            },
        };
        let mut password = None;
        for k in [
            "ansible_become_password",
            "ansible_become_pass",
            "ansible_sudo_pass",
        ] {
            if let Some(v) = get(k) {
                let p = crate::value::to_text(&self.templar.render_deep(v, vars)?);
                crate::secret::register(&p);
                password = Some(p);
                break;
            }
        }
        let password = password.or_else(|| config.become_password.clone());
        Ok(Some(Become {
            method: opts
                .become_method
                .clone()
                .or_else(|| config.become_method.clone())
                .unwrap_or_else(|| "sudo".into()),
            user,
            password,
        }))
    }

    fn environment_for(
        &self,
        opts: &TaskOpts,
        vars: &Vars,
    ) -> Result<Vec<(String, String)>, String> {
        let mut env = Map::new();
        for e in &opts.environment {
            match self
                .templar
                .render_deep(e, vars)
                .map_err(|e| format!("environment: {}", e.message))?
            {
                Value::Object(m) => crate::value::merge(&mut env, &m, false),
                Value::Null => {}
                other => {
                    return Err(format!(
                        "environment must be a mapping, got {}",
                        type_name(&other)
                    ));
                }
            }
        }
        Ok(env
            .into_iter()
            .map(|(k, v)| (k, crate::value::to_text(&v)))
            .collect())
    }

    async fn run_meta(
        &self,
        pc: &PlayCtx<'_>,
        task: &Task,
        action: &str,
        hosts: &[String],
        inh: &Inherit,
        hostvars: &HostVars,
    ) {
        let conds: Vec<Value> = inh.when.iter().chain(task.when.iter()).cloned().collect();
        let mut applies = Vec::new();
        for h in hosts {
            let vars = self.vars_for(pc, h, inh, task, hostvars);
            match self.conditions_hold(&conds, &vars) {
                Ok(None) => applies.push(h.clone()),
                Ok(Some(_)) => {}
                Err(e) => {
                    let o = template_failure(task, "when", &e, self.opts.limit.is_some());
                    self.report(
                        task,
                        h,
                        &task.opts.inherit(&inh.opts),
                        &o,
                        Instant::now(),
                        None,
                    );
                }
            }
        }
        if applies.is_empty() {
            return;
        }
        match action {
            "flush_handlers" => Box::pin(self.flush_handlers(pc, &applies, inh)).await,
            "end_play" | "end_batch" => pc.aborted.store(true, Ordering::SeqCst),
            "end_host" => applies.iter().for_each(|h| self.host(h).end()),
            "clear_facts" => applies.iter().for_each(|h| self.host(h).clear_facts()),
            "clear_host_errors" => pc.batch.iter().for_each(|h| self.host(h).clear_errors()),
            "reset_connection" => {
                for h in &applies {
                    self.host(h).close().await;
                }
            }
            _ => {}
        }
    }

    /// `include_tasks` / `include_role`: the file or role is rendered per host (and loop item),
    /// loaded, and its tasks run for the hosts that include the same thing.
    async fn run_include(
        &self,
        pc: &PlayCtx<'_>,
        task: &Task,
        what: Included<'_>,
        hosts: &[String],
        inh: &Inherit,
        hostvars: &HostVars,
    ) {
        let conds: Vec<Value> = inh.when.iter().chain(task.when.iter()).cloned().collect();
        let opts = task.opts.inherit(&inh.opts);
        // The include's own conditions and tags do not pass to the included tasks.
        let mut child = inh.clone();
        child.opts = opts.clone();
        crate::value::merge(&mut child.vars, &task.vars, false);
        child.when = inh.when.clone();
        // (host, what to load, loop item vars) for every host the include applies to.
        let mut runs: Vec<(String, Target, Map<String, Value>)> = Vec::new();
        for h in hosts {
            let vars = self.vars_for(pc, h, inh, task, hostvars);
            let items: Vec<Option<(usize, Value)>> = match &task.loop_ {
                None => vec![None],
                Some(lv) => {
                    let rendered = match lv {
                        Value::String(s) => self.templar.render(s, &vars),
                        other => self.templar.render_deep(other, &vars),
                    };
                    match rendered {
                        Ok(Value::Array(a)) => a.into_iter().enumerate().map(Some).collect(),
                        Ok(other) => {
                            let o = Outcome::failed(format!(
                                "{} loop needs a list, got {}",
                                what.keyword(),
                                type_name(&other)
                            ));
                            self.report(task, h, &opts, &o, Instant::now(), None);
                            continue;
                        }
                        Err(e) => {
                            self.report(
                                task,
                                h,
                                &opts,
                                &template_failure(task, "loop", &e, false),
                                Instant::now(),
                                None,
                            );
                            continue;
                        }
                    }
                }
            };
            let n = items.len();
            let mut included = 0;
            let mut skipped = None;
            for it in items {
                let (item_vars, extra) = match &it {
                    Some((i, item)) => {
                        let v = with_loop_vars(&vars, &task.loop_control, item, *i, n);
                        let mut extra = Map::new();
                        extra.insert(task.loop_control.loop_var.clone(), item.clone());
                        if let Some(iv) = &task.loop_control.index_var {
                            extra.insert(iv.clone(), (*i).into());
                        }
                        (v, extra)
                    }
                    None => (vars.clone(), Map::new()),
                };
                match self.conditions_hold(&conds, &item_vars) {
                    Ok(None) => {}
                    Ok(Some(c)) => {
                        skipped = Some(c);
                        continue;
                    }
                    Err(e) => {
                        self.report(
                            task,
                            h,
                            &opts,
                            &template_failure(task, "when", &e, false),
                            Instant::now(),
                            None,
                        );
                        break;
                    }
                }
                match what.render(&self.templar, task, &item_vars) {
                    Ok(target) => {
                        included += 1;
                        runs.push((h.clone(), target, extra))
                    }
                    Err(e) => {
                        let what = format!("{} name", what.keyword());
                        self.report(
                            task,
                            h,
                            &opts,
                            &template_failure(task, &what, &e, false),
                            Instant::now(),
                            None,
                        );
                        break;
                    }
                }
            }
            // As ansible-core counts them: each inclusion is ok, an include that includes
            // nothing is skipped.
            for _ in 0..included {
                let o = Outcome::of(Map::from_iter([("changed".into(), false.into())]));
                self.report(task, h, &opts, &o, Instant::now(), None);
            }
            if included == 0
                && let Some(c) = skipped
            {
                let o = Outcome::skipped("Conditional result was False", Some(&c));
                self.report(task, h, &opts, &o, Instant::now(), None);
            }
        }
        // Hosts that include the same thing with the same loop item run it together, in the
        // order the inclusions first appear (ansible-core's `IncludedFile.process_include_results`).
        let mut groups: Vec<(Target, Map<String, Value>, Vec<String>)> = Vec::new();
        for (h, target, extra) in runs {
            match groups
                .iter_mut()
                .find(|(t, e, hs)| *t == target && *e == extra && !hs.contains(&h))
            {
                Some(g) => g.2.push(h),
                None => groups.push((target, extra, vec![h])),
            }
        }
        for (target, extra, group) in groups {
            let loaded = match &target {
                Target::File(path) => crate::playbook::load_task_file(
                    path,
                    &self.templar,
                    &[],
                    &self.playbook_dir,
                    task.role.clone(),
                ),
                Target::Role(role) => crate::playbook::load_role(
                    role,
                    &task.loc,
                    &self.templar,
                    &self.playbook_dir,
                    &mut pc.role_ids.lock().unwrap_or_else(|e| e.into_inner()),
                ),
            };
            let tasks = match loaded {
                Ok(t) => t,
                Err(d) => {
                    self.include_failed(task, &group, &opts, &d.to_string());
                    continue;
                }
            };
            let mut inh2 = child.clone();
            crate::value::merge(&mut inh2.include_vars, &extra, false);
            Box::pin(self.run_items(pc, &tasks, &group, &inh2)).await;
        }
    }

    fn include_failed(&self, task: &Task, hosts: &[String], opts: &TaskOpts, msg: &str) {
        for h in hosts {
            self.report(
                task,
                h,
                opts,
                &Outcome::failed(msg.to_string()),
                Instant::now(),
                None,
            );
        }
    }
}

/// What an include loads, as written.
enum Included<'a> {
    Tasks(&'a str),
    Role(&'a RoleRef),
}

/// What an include loads for one host, rendered.
#[derive(PartialEq)]
enum Target {
    File(std::path::PathBuf),
    Role(RoleRef),
}

impl Included<'_> {
    fn keyword(&self) -> &'static str {
        match self {
            Included::Tasks(_) => "include_tasks",
            Included::Role(_) => "include_role",
        }
    }

    fn render(
        &self,
        templar: &crate::template::Templar,
        task: &Task,
        vars: &Vars,
    ) -> Result<Target, TemplateError> {
        let render = |s: &String| templar.render_str(s, vars);
        let render_opt = |s: &Option<String>| s.as_ref().map(render).transpose();
        Ok(match self {
            Included::Tasks(file) => Target::File(task.dir.join(templar.render_str(file, vars)?)),
            Included::Role(r) => Target::Role(RoleRef {
                name: render(&r.name)?,
                tasks_from: render_opt(&r.tasks_from)?,
                vars_from: render_opt(&r.vars_from)?,
                defaults_from: render_opt(&r.defaults_from)?,
                handlers_from: render_opt(&r.handlers_from)?,
                ..(*r).clone()
            }),
        })
    }
}

/// Renders a host's `ansible_*` and `mixop_*` variables (connection settings may be templates).
pub(crate) fn render_conn_vars(
    templar: &crate::template::Templar,
    tvars: &Map<String, Value>,
    vars: &Vars,
) -> Result<Map<String, Value>, String> {
    let mut conn_vars = Map::new();
    for (k, v) in tvars {
        // ansible_failed_task/_result are results (data that may quote template text).
        let connection_var = k.starts_with("mixop_")
            || (k.starts_with("ansible_")
                && !k.starts_with("ansible_facts")
                && !k.starts_with("ansible_play")
                && !k.starts_with("ansible_failed_"));
        if connection_var {
            let rendered = templar
                .render_deep(v, vars)
                .map_err(|e| format!("{k}: {}", e.message))?;
            conn_vars.insert(k.clone(), rendered);
        }
    }
    Ok(conn_vars)
}

fn local_spec(host: &str) -> ConnSpec {
    ConnSpec {
        host: host.to_string(),
        transport: Transport::Local,
        address: "localhost".into(),
        port: None,
        user: None,
        password: None,
        vars: Map::new(),
    }
}

fn with_loop_vars(vars: &Vars, lc: &LoopControl, item: &Value, index: usize, len: usize) -> Vars {
    let mut m = (*vars.vars).clone();
    let names = vec![lc.loop_var.clone(), "ansible_loop".to_string()];
    m.insert(lc.loop_var.clone(), item.clone());
    m.insert("ansible_loop_var".into(), lc.loop_var.clone().into());
    if let Some(iv) = &lc.index_var {
        m.insert(iv.clone(), index.into());
    }
    if lc.extended {
        let mut l = Map::new();
        l.insert("index".into(), (index + 1).into());
        l.insert("index0".into(), index.into());
        l.insert("first".into(), (index == 0).into());
        l.insert("last".into(), (index + 1 == len).into());
        l.insert("length".into(), len.into());
        l.insert("revindex".into(), (len - index).into());
        l.insert("revindex0".into(), (len - index - 1).into());
        m.insert("ansible_loop".into(), Value::Object(l));
    }
    Vars {
        vars: Arc::new(m),
        hostvars: vars.hostvars.clone(),
        data_vars: with_data(vars, &names),
    }
}

/// Marks variables of the evaluated host as data (see `Vars::data_vars`).
fn with_data(
    vars: &Vars,
    names: &[String],
) -> Arc<std::collections::BTreeMap<String, Arc<std::collections::BTreeSet<String>>>> {
    let mut data = (*vars.data_vars).clone();
    let mut own = data.get("").map(|d| (**d).clone()).unwrap_or_default();
    own.extend(names.iter().cloned());
    data.insert(String::new(), Arc::new(own));
    Arc::new(data)
}

fn with_registered(vars: &Vars, name: Option<&str>, result: &Map<String, Value>) -> Vars {
    let Some(name) = name else {
        return vars.clone();
    };
    let names = vec![name.to_string()];
    let mut m = (*vars.vars).clone();
    m.insert(name.to_string(), Value::Object(result.clone()));
    Vars {
        vars: Arc::new(m),
        hostvars: vars.hostvars.clone(),
        data_vars: with_data(vars, &names),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}
