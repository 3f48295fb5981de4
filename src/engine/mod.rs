//! The run: plays → batches → tasks → hosts, in parallel, emitting `Event`s.
//!
//! The engine walks the task tree once per batch ("linear": every task runs on all hosts of the
//! batch at once, the next task starts when all have finished it) or once per host ("free").
//! Per-host state (facts, registered results, connections, counters) lives in `HostState` and
//! persists across plays, like Ansible's.

pub mod adhoc;
pub mod events;
mod host;
mod task;
mod vars;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::future::{BoxFuture, FutureExt, join_all};
use indexmap::IndexMap;
use serde_json::{Map, Value};
use tokio::sync::Semaphore;

pub use events::{Event, Output, PlayEndReason, RunningTask, Stats, Status, Stream};
use host::HostState;

use crate::diag::Diag;
use crate::inventory::Inventory;
use crate::playbook::{Play, Playbook, Serial, Strategy, Task, TaskKind, TaskOpts};
use crate::template::{Templar, Vars};

/// How long an interrupted run waits for its commands to be stopped and its connections
/// closed: with the recap, the interrupt is over within 5 s even when a host does not answer.
const INTERRUPT_CLEANUP: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub limit: Option<String>,
    pub tags: Vec<String>,
    pub skip_tags: Vec<String>,
    pub check: bool,
    pub diff: bool,
    pub forks: Option<usize>,
    pub start_at_task: Option<String>,
    pub extra_vars: Map<String, Value>,
    pub verbosity: u8,
}

#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    pub stats: IndexMap<String, Stats>,
    pub interrupted: bool,
}

impl RunSummary {
    pub fn any_failed(&self) -> bool {
        self.stats.values().any(|s| s.failed > 0)
    }
    pub fn any_unreachable(&self) -> bool {
        self.stats.values().any(|s| s.unreachable > 0)
    }
}

pub struct Engine {
    /// Changed during the run by `add_host` and `group_by`.
    inv: std::sync::RwLock<Inventory>,
    templar: Arc<Templar>,
    opts: RunOptions,
    out: Arc<dyn Output>,
    hosts: std::sync::Mutex<IndexMap<String, Arc<HostState>>>,
    /// `--start-at-task`: tasks are skipped until one with this name is reached.
    waiting_for_start: std::sync::Mutex<Option<String>>,
    forks: Arc<Semaphore>,
    playbook_dir: PathBuf,
    /// any_errors_fatal or max_fail_percentage ended a play: as in ansible-core
    /// (RUN_FAILED_BREAK_PLAY), no later play runs either.
    playbook_stopped: AtomicBool,
    /// Hosts whose facts a play gathered (`gathering = smart` asks each host once per run).
    gathered: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// Settings inherited from enclosing plays and blocks.
#[derive(Clone, Default)]
struct Inherit {
    opts: TaskOpts,
    vars: Map<String, Value>,
    when: Vec<Value>,
    /// Inside a block that has `rescue`: failures are handled there, not by any_errors_fatal.
    rescuable: bool,
    /// Extra variables for tasks of an included file inside a loop (`item`).
    include_vars: Map<String, Value>,
}

/// One batch of one play.
struct PlayCtx<'a> {
    play: &'a Play,
    /// The play's name, templated.
    name: String,
    play_vars: Map<String, Value>,
    play_hosts: Vec<String>,
    batch: Vec<String>,
    aborted: AtomicBool,
    /// Roles that ran in this play (see `Play::role_ids`), with those `include_role` added.
    role_ids: std::sync::Mutex<Vec<String>>,
}

impl Engine {
    pub fn new(
        inv: Inventory,
        templar: Arc<Templar>,
        opts: RunOptions,
        out: Arc<dyn Output>,
        playbook_dir: &Path,
    ) -> Engine {
        let forks = opts.forks.unwrap_or(1024).max(1);
        Engine {
            waiting_for_start: std::sync::Mutex::new(opts.start_at_task.clone()),
            inv: std::sync::RwLock::new(inv),
            templar,
            opts,
            out,
            hosts: std::sync::Mutex::new(IndexMap::new()),
            forks: Arc::new(Semaphore::new(forks)),
            playbook_dir: playbook_dir.to_path_buf(),
            playbook_stopped: AtomicBool::new(false),
            gathered: std::sync::Mutex::default(),
        }
    }

    fn inv(&self) -> std::sync::RwLockReadGuard<'_, Inventory> {
        self.inv.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies an inventory change (`add_host`, `group_by`) and refreshes the inventory
    /// variables of every host the run knows.
    fn change_inventory(
        &self,
        change: impl FnOnce(&mut Inventory) -> Result<bool, String>,
    ) -> Result<bool, String> {
        let changed = change(&mut self.inv.write().unwrap_or_else(|e| e.into_inner()))?;
        if changed {
            // Never holding the inventory while taking the host table (`host` takes them the
            // other way round).
            let hosts: Vec<Arc<HostState>> = self
                .hosts
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .cloned()
                .collect();
            for hs in hosts {
                let vars = self.inv().host_vars(&hs.name);
                hs.set_inv_vars(vars);
            }
        }
        Ok(changed)
    }

    fn emit(&self, ev: Event) {
        self.out.emit(&ev);
    }

    fn host(&self, name: &str) -> Arc<HostState> {
        let mut hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        hosts
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(HostState::new(name, self.inv().host_vars(name))))
            .clone()
    }

    fn host_active(&self, name: &str) -> bool {
        self.host(name).active()
    }

    /// Runs every play. Returns the recap; `Err` only for problems found before any host was
    /// contacted in a play (e.g. a `vars_files` file that is not YAML).
    pub async fn run(&self, playbook: &Playbook) -> Result<RunSummary, Diag> {
        let t0 = Instant::now();
        self.emit(Event::PlaybookStart {
            playbook: playbook.path.display().to_string(),
            check_mode: self.opts.check,
        });
        for play in &playbook.plays {
            self.run_play(play).await?;
            if self.playbook_stopped.load(Ordering::SeqCst) {
                break;
            }
            let hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if hosts.values().any(|h| h.played())
                && hosts.values().filter(|h| h.played()).all(|h| !h.active())
            {
                break;
            }
        }
        Ok(self.finish(t0, false).await)
    }

    /// Closes every connection and emits the recap. `interrupted`: the future of `run` has
    /// been dropped (which starts stopping the commands it was running, see
    /// `connection::Cleanup`); says what was running, and waits a bounded time for the stops.
    pub async fn finish(&self, t0: Instant, interrupted: bool) -> RunSummary {
        let hosts: Vec<Arc<HostState>> = self
            .hosts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        if interrupted {
            let running = hosts
                .iter()
                .filter_map(|h| {
                    let (task, location) = h.running_task()?;
                    Some(RunningTask {
                        host: h.name.clone(),
                        task,
                        location,
                    })
                })
                .collect();
            self.emit(Event::Interrupted { running });
            let closes = hosts.iter().map(|h| async move {
                let done = tokio::time::timeout(INTERRUPT_CLEANUP, h.close()).await;
                (h, done.is_ok())
            });
            for (h, done) in join_all(closes).await {
                if !done {
                    self.emit(Event::Warning {
                        message: format!(
                            "{}: no answer within {}s while stopping its commands; they may \
                             still be running there",
                            h.name,
                            INTERRUPT_CLEANUP.as_secs()
                        ),
                    });
                }
            }
        } else {
            join_all(hosts.iter().map(|h| h.close())).await;
        }
        let stats: IndexMap<String, Stats> = hosts
            .iter()
            .filter(|h| h.played())
            .map(|h| (h.name.clone(), h.stats()))
            .collect();
        self.emit(Event::Recap {
            hosts: stats.clone(),
            elapsed_ms: t0.elapsed().as_millis() as u64,
            interrupted,
        });
        RunSummary { stats, interrupted }
    }

    async fn run_play(&self, play: &Play) -> Result<(), Diag> {
        let extra = &self.opts.extra_vars;
        // ansible-core asks before it looks at the play's hosts.
        let prompted = self.prompt_vars(play)?;
        let (pattern, mut hosts) = play_hosts(
            &self.inv(),
            &self.templar,
            play,
            extra,
            self.opts.limit.as_deref(),
        )?;
        hosts.retain(|h| self.host_active(h));
        if hosts.is_empty() {
            let what = if play.named {
                format!("play '{}'", play.name)
            } else {
                format!("play at {}", play.loc)
            };
            let why = if pattern.is_empty() {
                "the host pattern is empty".to_string()
            } else {
                format!("no hosts matched `{pattern}`")
            };
            self.emit(Event::Warning {
                message: format!("{what}: {why}; skipping"),
            });
            return Ok(());
        }
        let (play_vars, warnings) = play_vars_with(&self.templar, play, extra, &prompted)?;
        for message in warnings {
            self.emit(Event::Warning { message });
        }
        let name = play_name(&self.templar, play, &pattern, &play_vars, extra)?;
        for h in &hosts {
            self.host(h).mark_played();
        }
        self.emit(Event::PlayStart {
            name: name.clone(),
            hosts: hosts.clone(),
        });
        for batch in batches(&hosts, &play.serial) {
            let pc = PlayCtx {
                play,
                name: name.clone(),
                play_vars: play_vars.clone(),
                play_hosts: hosts.clone(),
                batch: batch.clone(),
                aborted: AtomicBool::new(false),
                role_ids: std::sync::Mutex::new(play.role_ids.clone()),
            };
            self.run_batch(&pc).await;
            for h in &batch {
                self.host(h).reset_end();
            }
            // A batch where every host failed ends the play, like Ansible's serial.
            if batch.iter().all(|h| !self.host_active(h)) {
                break;
            }
        }
        Ok(())
    }

    /// `vars_prompt`: each variable not given with `-e`, asked on the terminal (prompt and
    /// default templated with the play's variables). Without an interactive stdin nothing is
    /// asked, as in ansible-core 2.19: a warning, and the default, or the string `None` when
    /// there is no default (Python's `str(None)`, which is what 2.19 stores).
    fn prompt_vars(&self, play: &Play) -> Result<Map<String, Value>, Diag> {
        use std::io::IsTerminal;
        let mut answers = Map::new();
        if play.vars_prompt.is_empty() {
            return Ok(answers);
        }
        let extra = &self.opts.extra_vars;
        let (mut ctx, _) = play_vars(&self.templar, play, extra)?;
        crate::value::merge(&mut ctx, extra, false);
        let interactive = std::io::stdin().is_terminal();
        for vp in &play.vars_prompt {
            if extra.contains_key(&vp.name) {
                continue;
            }
            let render = |s: &str| {
                self.templar.render_str(s, &extra_only(&ctx)).map_err(|e| {
                    Diag::input(format!("vars_prompt `{}`: {}", vp.name, e.message)).at(&play.loc)
                })
            };
            let prompt = render(&vp.prompt)?;
            let default = match &vp.default {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(render(s)?),
                Some(other) => Some(crate::template::pyfmt::py_repr_json(other)),
            };
            let mut answer = if interactive {
                let msg = match (&default, prompt.is_empty()) {
                    (Some(d), false) => format!("{prompt} [{d}]: "),
                    (None, false) => format!("{prompt}: "),
                    (_, true) => format!("input for {}: ", vp.name),
                };
                let what = format!("`{}` (vars_prompt)", vp.name);
                let hint = format!("give it with -e {}=...", vp.name);
                let ask = |m: &str| crate::secret::ask_tty(m, &what, &hint, !vp.private);
                loop {
                    let first = ask(&msg)?;
                    if !vp.confirm || ask(&format!("confirm {msg}"))? == first {
                        break first;
                    }
                    let _ = std::fs::OpenOptions::new()
                        .write(true)
                        .open("/dev/tty")
                        .and_then(|mut t| {
                            std::io::Write::write_all(
                                &mut t,
                                b"***** VALUES ENTERED DO NOT MATCH ****\n",
                            )
                        });
                }
            } else {
                self.emit(Event::Warning {
                    message: "Not prompting as we are not in interactive mode".into(),
                });
                String::new()
            };
            // A private answer that was typed is kept out of mixop's output (ansible-core
            // would print it if a task showed it); defaults are not secrets.
            if vp.private && !answer.is_empty() {
                crate::secret::register(&answer);
            }
            if answer.is_empty() {
                answer = default.unwrap_or_else(|| {
                    if interactive {
                        String::new()
                    } else {
                        "None".into()
                    }
                });
            }
            answers.insert(
                vp.name.clone(),
                Value::String(untemplated(&answer, vp.unsafe_)?),
            );
        }
        Ok(answers)
    }

    /// The hosts of the batch whose facts the play gathers first: `gather_facts` when the play
    /// says, else ansible.cfg's `gathering` (implicit by default, as in Ansible).
    fn hosts_to_gather(&self, pc: &PlayCtx<'_>) -> Vec<String> {
        use crate::config::Gathering;
        let gathering = crate::config::get().gathering;
        let wanted = pc
            .play
            .gather_facts
            .unwrap_or(gathering != Gathering::Explicit);
        if !wanted {
            return Vec::new();
        }
        let mut gathered = self.gathered.lock().unwrap_or_else(|e| e.into_inner());
        let hosts = pc
            .batch
            .iter()
            .filter(|h| gathering != Gathering::Smart || !gathered.contains(*h))
            .cloned()
            .collect();
        gathered.extend(pc.batch.iter().cloned());
        hosts
    }

    async fn run_batch(&self, pc: &PlayCtx<'_>) {
        let root = Inherit {
            opts: pc.play.opts.clone(),
            when: pc.play.when.clone(),
            ..Default::default()
        };
        let hosts = self.hosts_to_gather(pc);
        if !hosts.is_empty() {
            let setup = task::setup_task(pc.play);
            self.run_items(pc, std::slice::from_ref(&setup), &hosts, &root)
                .await;
        }
        let sections = [&pc.play.pre_tasks, &pc.play.tasks, &pc.play.post_tasks];
        match pc.play.strategy {
            Strategy::Linear => {
                for section in sections {
                    if !pc.aborted.load(Ordering::SeqCst) {
                        self.run_items(pc, section, &pc.batch, &root).await;
                    }
                    self.flush_handlers(pc, &pc.batch, &root).await;
                }
            }
            Strategy::Free => {
                let per_host = pc.batch.iter().map(|h| {
                    let root = root.clone();
                    async move {
                        let one = std::slice::from_ref(h);
                        for section in sections {
                            if !pc.aborted.load(Ordering::SeqCst) {
                                self.run_items(pc, section, one, &root).await;
                            }
                            self.flush_handlers(pc, one, &root).await;
                        }
                    }
                });
                join_all(per_host).await;
            }
        }
    }

    /// Runs notified handlers for these hosts, in the order the handlers are written.
    async fn flush_handlers(&self, pc: &PlayCtx<'_>, hosts: &[String], inh: &Inherit) {
        self.run_handlers(pc, &pc.play.handlers, hosts, inh).await;
        for h in hosts {
            self.host(h).clear_notified();
        }
    }

    /// The notified handlers of this list. A block among handlers stands for the handlers in
    /// its `block:`, which inherit its keywords; as in ansible-core (`PlayIterator` keeps only
    /// each handler block's `block`), its `rescue` and `always` never run.
    fn run_handlers<'a>(
        &'a self,
        pc: &'a PlayCtx<'a>,
        handlers: &'a [Task],
        hosts: &'a [String],
        inh: &'a Inherit,
    ) -> BoxFuture<'a, ()> {
        async move {
            for handler in handlers {
                if let TaskKind::Block { block, .. } = &handler.kind {
                    let mut child = inh.clone();
                    child.opts = handler.opts.inherit(&inh.opts);
                    crate::value::merge(&mut child.vars, &handler.vars, false);
                    child.when.extend(handler.when.iter().cloned());
                    self.run_handlers(pc, block, hosts, &child).await;
                    continue;
                }
                let name = self.handler_name(pc, handler);
                let notified: Vec<String> = hosts
                    .iter()
                    .filter(|h| {
                        let hs = self.host(h);
                        (hs.active() || pc.play.force_handlers)
                            && hs.is_notified(&name, &handler.listen)
                    })
                    .cloned()
                    .collect();
                if notified.is_empty() {
                    continue;
                }
                self.run_task(pc, handler, &notified, inh, true).await;
            }
        }
        .boxed()
    }

    /// A handler's name as `notify` must spell it: templated with the play's variables (and
    /// extra vars), as ansible-core templates handler names before matching notifications.
    fn handler_name(&self, pc: &PlayCtx<'_>, handler: &Task) -> String {
        let name = handler.name.clone().unwrap_or_default();
        if !crate::template::is_template(&name) {
            return name;
        }
        let mut vars = pc.play_vars.clone();
        crate::value::merge(&mut vars, &self.opts.extra_vars, false);
        let (text, _) = self.templar.render_lenient(&name, &extra_only(&vars));
        text
    }

    fn run_items<'a>(
        &'a self,
        pc: &'a PlayCtx<'a>,
        items: &'a [Task],
        hosts: &'a [String],
        inh: &'a Inherit,
    ) -> BoxFuture<'a, ()> {
        async move {
            for task in items {
                if pc.aborted.load(Ordering::SeqCst) {
                    return;
                }
                let active: Vec<String> = hosts
                    .iter()
                    .filter(|h| self.host_active(h))
                    .cloned()
                    .collect();
                if active.is_empty() {
                    return;
                }
                match &task.kind {
                    TaskKind::Block { .. } if task.ran_before => {}
                    TaskKind::Block {
                        block,
                        rescue,
                        always,
                    } => {
                        self.run_block(pc, task, block, rescue, always, &active, inh)
                            .await;
                    }
                    TaskKind::IncludeTasks { .. }
                    | TaskKind::IncludeRole { .. }
                    | TaskKind::Meta { .. }
                    | TaskKind::Module { .. } => {
                        if !self.selected(task) {
                            continue;
                        }
                        self.run_task(pc, task, &active, inh, false).await;
                    }
                }
            }
        }
        .boxed()
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_block(
        &self,
        pc: &PlayCtx<'_>,
        task: &Task,
        block: &[Task],
        rescue: &[Task],
        always: &[Task],
        active: &[String],
        inh: &Inherit,
    ) {
        let mut child = inh.clone();
        child.opts = task.opts.inherit(&inh.opts);
        crate::value::merge(&mut child.vars, &task.vars, false);
        child.when.extend(task.when.iter().cloned());
        let mut in_block = child.clone();
        in_block.rescuable = inh.rescuable || !rescue.is_empty();
        self.run_items(pc, block, active, &in_block).await;
        let failed_in = |hosts: &[String]| -> Vec<String> {
            hosts
                .iter()
                .filter(|h| self.host(h).is_failed())
                .cloned()
                .collect()
        };
        let failed = failed_in(active);
        // A failure under a `rescue` (this block's or an enclosing one's) sets
        // ansible_failed_task/_result before anything else runs on that host.
        if in_block.rescuable {
            failed.iter().for_each(|h| self.host(h).publish_failure());
        }
        if !rescue.is_empty() && !failed.is_empty() {
            for h in &failed {
                self.host(h).rescue();
            }
            self.run_items(pc, rescue, &failed, &child).await;
            if child.rescuable {
                failed_in(&failed)
                    .iter()
                    .for_each(|h| self.host(h).publish_failure());
            }
        }
        if !always.is_empty() {
            let hosts: Vec<String> = active
                .iter()
                .filter(|h| !self.host(h).is_unreachable())
                .cloned()
                .collect();
            let still_failed = failed_in(&hosts);
            for h in &still_failed {
                self.host(h).set_failed(false);
            }
            self.run_items(pc, always, &hosts, &child).await;
            for h in &still_failed {
                self.host(h).set_failed(true);
            }
        }
    }

    /// Tag selection and `--start-at-task`.
    fn selected(&self, task: &Task) -> bool {
        {
            let mut waiting = self
                .waiting_for_start
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(name) = waiting.as_ref() {
                if task.name.as_deref() != Some(name.as_str()) {
                    return false;
                }
                *waiting = None;
            }
        }
        tags_selected(&task.tags, &self.opts.tags, &self.opts.skip_tags)
    }
}

/// A `vars_prompt` answer as a play variable: as typed, or with `unsafe` kept from being
/// templated (a raw block around it; an answer that would end the block is refused).
fn untemplated(answer: &str, unsafe_: bool) -> Result<String, Diag> {
    if !unsafe_ || !crate::template::is_template(answer) {
        return Ok(answer.to_string());
    }
    if answer.contains("endraw") {
        return Err(Diag::input(
            "vars_prompt: an `unsafe` answer containing `endraw` cannot be kept untemplated",
        ));
    }
    Ok(format!("{{% raw %}}{answer}{{% endraw %}}"))
}

/// Extra vars alone, for what is templated before a play has variables of its own.
fn extra_only(extra_vars: &Map<String, Value>) -> Vars {
    Vars {
        vars: Arc::new(extra_vars.clone()),
        hostvars: Arc::default(),
        data_vars: Arc::default(),
    }
}

/// A play's host pattern rendered with the extra vars, and the hosts it selects within
/// `--limit`, in inventory order.
pub(crate) fn play_hosts(
    inv: &Inventory,
    templar: &Templar,
    play: &Play,
    extra_vars: &Map<String, Value>,
    limit: Option<&str>,
) -> Result<(String, Vec<String>), Diag> {
    let pattern = templar
        .render_str(&play.hosts, &extra_only(extra_vars))
        .map_err(|e| Diag::input(format!("hosts: {}", e.message)).at(&play.loc))?;
    // `hosts: "{{ omit }}"` is no pattern at all (ansible-core renders it as None).
    let pattern = pattern.replace(crate::template::OMIT, "");
    if pattern.trim().is_empty() {
        return Ok((String::new(), Vec::new()));
    }
    let mut hosts = inv.select(&pattern)?;
    if let Some(limit) = limit {
        let allowed = inv.select(limit)?;
        hosts.retain(|h| allowed.contains(h));
    }
    Ok((pattern, hosts))
}

/// A play's `vars` and `vars_files` (file names templated with those vars and the extra vars),
/// and a warning for each `vars_files` entry none of whose files exists: ansible-core 2.19
/// passes over such an entry (silently); mixop says so.
pub(crate) fn play_vars(
    templar: &Templar,
    play: &Play,
    extra_vars: &Map<String, Value>,
) -> Result<(Map<String, Value>, Vec<String>), Diag> {
    play_vars_with(templar, play, extra_vars, &Map::new())
}

/// `play_vars` with the `vars_prompt` answers, which are play vars (below `vars_files`).
fn play_vars_with(
    templar: &Templar,
    play: &Play,
    extra_vars: &Map<String, Value>,
    prompted: &Map<String, Value>,
) -> Result<(Map<String, Value>, Vec<String>), Diag> {
    let mut vars = play.vars.clone();
    crate::value::merge(&mut vars, prompted, false);
    let mut warnings = Vec::new();
    for (candidates, loc) in &play.vars_files {
        let mut ctx_map = vars.clone();
        crate::value::merge(&mut ctx_map, extra_vars, false);
        let mut names = Vec::new();
        let mut found = None;
        for file in candidates {
            let name = match templar.render_str(file, &extra_only(&ctx_map)) {
                Ok(name) => name,
                // ansible-core skips the entry with a warning (host facts are not known here).
                Err(e) if e.undefined.is_some() => {
                    warnings.push(format!(
                        "{loc}: skipping vars_files entry due to an undefined variable: {}",
                        e.message
                    ));
                    names.clear();
                    break;
                }
                Err(e) => return Err(Diag::input(format!("vars_files: {}", e.message)).at(loc)),
            };
            let path = play.dir.join(&name);
            // A list is Ansible's first-found form: a missing candidate is passed over.
            if path.is_file() {
                found = Some(path);
                break;
            }
            names.push(name);
        }
        let Some(path) = found else {
            if names.is_empty() {
                continue;
            }
            warnings.push(format!(
                "{loc}: vars_files: {} not found; this entry is skipped, as ansible-core does",
                names.join(", ")
            ));
            continue;
        };
        let docs = crate::yaml::load_file(&path)
            .map_err(|d| if d.loc.is_none() { d.at(loc) } else { d })?;
        match docs.first().map(|d| d.to_value()) {
            Some(Value::Object(m)) => crate::value::merge(&mut vars, &m, false),
            None | Some(Value::Null) => {}
            Some(_) => {
                return Err(Diag::input(format!(
                    "{}: a vars file must be a mapping",
                    path.display()
                ))
                .at(loc));
            }
        }
    }
    Ok((vars, warnings))
}

/// The play's name templated with play and extra vars (an undefined variable is an error, as in
/// ansible-core); a play without a name is called by its rendered host pattern.
pub(crate) fn play_name(
    templar: &Templar,
    play: &Play,
    pattern: &str,
    play_vars: &Map<String, Value>,
    extra_vars: &Map<String, Value>,
) -> Result<String, Diag> {
    if !play.named {
        return Ok(pattern.to_string());
    }
    let mut vars = play_vars.clone();
    crate::value::merge(&mut vars, extra_vars, false);
    templar
        .render_str(&play.name, &extra_only(&vars))
        .map_err(|e| Diag::input(format!("play name: {}", e.message)).at(&play.loc))
}

/// Ansible's tag rules (ansible-core's `Taggable.evaluate_tags`): `always` runs unless skipped
/// by name, `never` only when asked for by name; no `--tags` means `all`; an untagged task
/// matches `untagged`.
pub fn tags_selected(task_tags: &[String], only: &[String], skip: &[String]) -> bool {
    let has = |t: &str| task_tags.iter().any(|x| x == t);
    let untagged = task_tags.is_empty();
    let names = |list: &[String]| list.iter().any(|t| has(t) || (untagged && t == "untagged"));
    let asks = |list: &[String], t: &str| list.iter().any(|x| x == t);
    let selected = has("always")
        || ((only.is_empty() || asks(only, "all")) && !has("never"))
        || names(only)
        || (asks(only, "tagged") && !untagged && !has("never"));
    if !selected {
        return false;
    }
    if asks(skip, "all") {
        return has("always") && !asks(skip, "always");
    }
    !(names(skip) || (asks(skip, "tagged") && !untagged))
}

/// Splits hosts into `serial` batches (the last size repeats).
pub fn batches(hosts: &[String], serial: &[Serial]) -> Vec<Vec<String>> {
    if serial.is_empty() {
        return vec![hosts.to_vec()];
    }
    let mut out = Vec::new();
    let mut rest = hosts;
    let mut i = 0;
    while !rest.is_empty() {
        let step = serial[i.min(serial.len() - 1)];
        let n = match step {
            Serial::Count(c) => c,
            Serial::Percent(p) => ((hosts.len() as f64 * p / 100.0) as usize).max(1),
        }
        .clamp(1, rest.len());
        out.push(rest[..n].to_vec());
        rest = &rest[n..];
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn tag_rules() {
        assert!(tags_selected(&s(&[]), &s(&[]), &s(&[])));
        assert!(!tags_selected(&s(&["never"]), &s(&[]), &s(&[])));
        assert!(tags_selected(
            &s(&["never", "debug"]),
            &s(&["debug"]),
            &s(&[])
        ));
        assert!(tags_selected(&s(&["always"]), &s(&["x"]), &s(&[])));
        assert!(!tags_selected(&s(&["always"]), &s(&[]), &s(&["always"])));
        assert!(!tags_selected(&s(&["a"]), &s(&["b"]), &s(&[])));
        assert!(tags_selected(&s(&["a"]), &s(&["tagged"]), &s(&[])));
        assert!(!tags_selected(&s(&["a"]), &s(&[]), &s(&["a"])));
        // `never` runs when named, even beside `all` (what --list-tags asks for).
        assert!(tags_selected(
            &s(&["never", "x"]),
            &s(&["never", "all"]),
            &s(&[])
        ));
        assert!(!tags_selected(&s(&["never"]), &s(&["tagged"]), &s(&[])));
        assert!(tags_selected(&s(&[]), &s(&["untagged"]), &s(&[])));
        assert!(!tags_selected(&s(&[]), &s(&[]), &s(&["untagged"])));
        // --skip-tags all keeps only `always` tasks (unless `always` is skipped too).
        assert!(!tags_selected(&s(&["a"]), &s(&[]), &s(&["all"])));
        assert!(tags_selected(&s(&["always"]), &s(&[]), &s(&["all"])));
        assert!(!tags_selected(
            &s(&["always"]),
            &s(&[]),
            &s(&["all", "always"])
        ));
    }

    #[test]
    fn serial_batches() {
        let hosts = s(&["a", "b", "c", "d", "e"]);
        let b = batches(&hosts, &[Serial::Count(1), Serial::Count(2)]);
        assert_eq!(b, vec![s(&["a"]), s(&["b", "c"]), s(&["d", "e"])]);
        let b = batches(&hosts, &[Serial::Percent(40.0)]);
        assert_eq!(b.len(), 3);
    }
}
