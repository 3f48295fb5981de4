//! Output for people: a live line per host (on a terminal), a line per changed or failed host
//! per task, `debug` messages, and the recap.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use console::style;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use crate::engine::{Event, Output, PlayEndReason, Stats, Status};

pub struct Human {
    verbosity: u8,
    state: Mutex<State>,
}

struct State {
    multi: Option<MultiProgress>,
    bars: HashMap<String, ProgressBar>,
    task: String,
    task_header_printed: bool,
}

impl Human {
    pub fn new(verbosity: u8) -> Human {
        let live = std::io::stderr().is_terminal() && std::io::stdout().is_terminal();
        Human {
            verbosity,
            state: Mutex::new(State {
                multi: live.then(|| {
                    MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10))
                }),
                bars: HashMap::new(),
                task: String::new(),
                task_header_printed: false,
            }),
        }
    }
}

impl State {
    /// Writes a line to stdout; a closed pipe (`mixop run ... | head`) is not an error.
    fn println(&self, line: String) {
        let write = || {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}");
        };
        match &self.multi {
            Some(m) => m.suspend(write),
            None => write(),
        }
    }

    fn header(&mut self) {
        if !self.task_header_printed {
            self.task_header_printed = true;
            let line = format!(
                "{} {}",
                style("TASK").bold(),
                style(format!("[{}]", self.task)).bold()
            );
            self.println(line);
        }
    }

    fn bar(&mut self, host: &str) -> Option<ProgressBar> {
        let multi = self.multi.as_ref()?;
        let bar = self.bars.entry(host.to_string()).or_insert_with(|| {
            let b = multi.add(ProgressBar::new_spinner());
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner:.cyan} {prefix:.bold} {wide_msg} {elapsed:>4}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.set_prefix(host.to_string());
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        Some(bar.clone())
    }

    fn clear_bars(&mut self) {
        for (_, b) in self.bars.drain() {
            b.finish_and_clear();
        }
        if let Some(m) = &self.multi {
            let _ = m.clear();
        }
    }
}

fn one_line(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

fn failure_details(result: &Value) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(censored) = result.get("censored") {
        // `no_log`: say so, with what is not secret.
        let mut facts = Vec::new();
        if let Some(m) = result.get("module").and_then(Value::as_str) {
            facts.push(format!("module={m}"));
        }
        if let Some(rc) = result.get("rc") {
            facts.push(format!("rc={rc}"));
        }
        let mut line = one_line(censored);
        if let Some(msg) = result.get("msg").map(one_line).filter(|m| !m.is_empty()) {
            line = format!("{msg}: {line}");
        }
        if !facts.is_empty() {
            line = format!("{line} ({})", facts.join(", "));
        }
        return vec![line];
    }
    let msg = result.get("msg").map(one_line).unwrap_or_default();
    let mut first = msg;
    if let Some(rc) = result.get("rc") {
        first = format!("{first} (rc={rc})");
    }
    if !first.is_empty() {
        lines.push(first);
    }
    for key in ["stderr", "stdout"] {
        if let Some(Value::String(s)) = result.get(key)
            && !s.trim().is_empty()
        {
            let text: Vec<&str> = s.trim_end().lines().collect();
            let shown = if text.len() > 20 {
                &text[text.len() - 20..]
            } else {
                &text[..]
            };
            lines.push(format!("{key}:"));
            lines.extend(shown.iter().map(|l| format!("  {l}")));
            if key == "stderr" {
                break;
            }
        }
    }
    lines
}

impl Output for Human {
    fn emit(&self, event: &Event) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::PlaybookStart { check_mode, .. } => {
                if *check_mode {
                    st.println(format!(
                        "{}",
                        style("check mode: nothing will be changed").yellow()
                    ));
                }
            }
            Event::PlayStart { name, hosts } => {
                st.clear_bars();
                st.println(format!(
                    "\n{} {} ({} host{})",
                    style("PLAY").bold(),
                    style(format!("[{name}]")).bold(),
                    hosts.len(),
                    if hosts.len() == 1 { "" } else { "s" }
                ));
            }
            Event::TaskStart { name, handler, .. } => {
                st.task = if *handler {
                    format!("handler: {name}")
                } else {
                    name.clone()
                };
                st.task_header_printed = false;
                if self.verbosity > 0 {
                    st.header();
                }
            }
            Event::HostTaskStart { host, task } => {
                if let Some(b) = st.bar(host) {
                    b.set_message(task.clone());
                    b.reset_elapsed();
                }
            }
            Event::HostResult {
                host, item, status, ..
            } => {
                if item.is_none()
                    && let Some(b) = st.bar(host)
                {
                    let word = match status {
                        Status::Failed => "failed",
                        Status::Unreachable => "unreachable",
                        _ => "done",
                    };
                    b.set_message(format!("{} {word}", st.task));
                }
                let lines = self.result_lines(event);
                if !lines.is_empty() {
                    st.header();
                    for l in lines {
                        st.println(l);
                    }
                }
            }
            Event::HostOutput {
                host, stream, line, ..
            } => {
                st.header();
                let bar = match stream {
                    crate::engine::Stream::Stdout => style("|").dim(),
                    crate::engine::Stream::Stderr => style("!").red(),
                };
                st.println(format!("  {} {bar} {line}", style(host).dim()));
            }
            Event::Retry {
                host,
                task,
                retries_left,
                ..
            } => {
                // Ansible's wording, so that people and their log searches find it.
                st.header();
                st.println(format!(
                    "{} [{host}]: {task} ({retries_left} retries left).",
                    style("FAILED - RETRYING:").yellow()
                ));
            }
            Event::PlayEnded { reason } => st.println(play_ended_line(reason)),
            Event::Warning { message } => {
                st.println(format!("{} {message}", style("[WARNING]:").magenta()));
            }
            Event::Interrupted { running } => {
                st.clear_bars();
                for l in interrupted_lines(running) {
                    st.println(l);
                }
            }
            Event::Recap {
                hosts,
                elapsed_ms,
                interrupted,
            } => {
                st.clear_bars();
                for l in recap_lines(hosts, *elapsed_ms, *interrupted) {
                    st.println(l);
                }
            }
        }
    }
}

impl Human {
    /// What a host's result shows under its task header: nothing for an ok task at the
    /// default verbosity (except `debug`), loop items only at -v unless they failed.
    fn result_lines(&self, event: &Event) -> Vec<String> {
        let Event::HostResult {
            host,
            module,
            status,
            ignored,
            item,
            result,
            delegated_to,
            duration_ms,
            ..
        } = event
        else {
            return vec![];
        };
        let target = match delegated_to {
            Some(d) if d != host => format!("[{host} -> {d}]"),
            _ => format!("[{host}]"),
        };
        // A `no_log` item arrives as null, shown as Ansible does: `(item=None)`.
        let item_txt = match item {
            None => String::new(),
            Some(Value::Null) => " (item=None)".to_string(),
            Some(i) => format!(" (item={})", one_line(i)),
        };
        let failed_or_unreachable = matches!(status, Status::Failed | Status::Unreachable);
        if item.is_some() && self.verbosity == 0 && !failed_or_unreachable {
            return vec![];
        }
        let json = || format!("    {}", serde_json::to_string(result).unwrap_or_default());
        let mut lines = Vec::new();
        match status {
            Status::Failed => {
                let word = if *ignored {
                    "failed (ignored)"
                } else {
                    "failed"
                };
                lines.push(format!("{}: {target}{item_txt}", style(word).red().bold()));
                if item.is_none() || self.verbosity > 0 || !ignored {
                    for l in failure_details(result) {
                        lines.push(format!("    {}", style(l).red()));
                    }
                }
            }
            Status::Unreachable => {
                let msg = result.get("msg").map(one_line).unwrap_or_default();
                let word = style("unreachable").red().bold();
                lines.push(format!("{word}: {target} {msg}"));
            }
            Status::Changed => {
                lines.push(format!("{}: {target}{item_txt}", style("changed").yellow()));
                if let Some(d) = result.get("diff") {
                    lines.extend(render_diff(d));
                }
                if self.verbosity > 0 {
                    lines.push(json());
                }
            }
            Status::Ok | Status::Skipped if self.verbosity > 0 => {
                let word = if *status == Status::Ok {
                    style("ok").green()
                } else {
                    style("skipping").cyan()
                };
                lines.push(format!("{word}: {target}{item_txt} ({duration_ms} ms)"));
                if *status == Status::Ok {
                    lines.push(json());
                }
            }
            Status::Ok if module.as_deref() == Some("debug") && item.is_none() => {
                if let Some(text) = debug_text(result) {
                    lines.push(format!("{}: {target} {text}", style("ok").green()));
                }
            }
            Status::Ok | Status::Skipped => {}
        }
        lines
    }
}

/// What `debug` says at the default verbosity: its `msg`, or `name = value` for `var=name`
/// (the one key beside the `changed`/`failed` flags). None when censored or empty.
fn debug_text(result: &Value) -> Option<String> {
    let msg = result
        .get("msg")
        .filter(|_| result.get("censored").is_none());
    msg.map(one_line)
        .or_else(|| var_dump(result).map(|(k, v)| format!("{k} = {}", one_line(v))))
}

fn var_dump(result: &Value) -> Option<(&String, &Value)> {
    let mut rest = result
        .as_object()?
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "changed" | "failed"));
    match (rest.next(), rest.next()) {
        (Some(kv), None) => Some(kv),
        _ => None,
    }
}

fn play_ended_line(reason: &PlayEndReason) -> String {
    let why = match reason {
        PlayEndReason::AnyErrorsFatal { task } => {
            format!("any_errors_fatal: task '{task}' failed")
        }
        PlayEndReason::MaxFailPercentage {
            percent,
            failed,
            hosts,
        } => format!("max_fail_percentage {percent}% exceeded ({failed} of {hosts} hosts failed)"),
    };
    format!(
        "{} {why}; ending the playbook for all hosts",
        style("[ERROR]:").red().bold()
    )
}

/// After Ctrl-C: one line per task that was running, with its hosts.
fn interrupted_lines(running: &[crate::engine::RunningTask]) -> Vec<String> {
    let title = style("interrupted (SIGINT): stopping what was running");
    let mut lines = vec![format!("\n{}", title.red().bold())];
    if running.is_empty() {
        lines.push("  no task was running".to_string());
    }
    let mut tasks: Vec<(&str, &str, Vec<&str>)> = Vec::new();
    for r in running {
        match tasks
            .iter_mut()
            .find(|(t, l, _)| *t == r.task && *l == r.location)
        {
            Some((_, _, hosts)) => hosts.push(&r.host),
            None => tasks.push((&r.task, &r.location, vec![&r.host])),
        }
    }
    for (task, location, hosts) in tasks {
        lines.push(format!(
            "  TASK [{task}] ({location}) on {}",
            hosts.join(", ")
        ));
    }
    lines
}

fn recap_lines(
    hosts: &indexmap::IndexMap<String, Stats>,
    elapsed_ms: u64,
    interrupted: bool,
) -> Vec<String> {
    let mut lines = Vec::new();
    if interrupted {
        let title = style("interrupted: the run was stopped before it finished");
        lines.push(format!("\n{}", title.red().bold()));
    }
    lines.push(format!("\n{}", style("PLAY RECAP").bold()));
    let width = hosts.keys().map(String::len).max().unwrap_or(0);
    for (h, s) in hosts {
        lines.push(recap_line(h, s, width));
    }
    lines.push(format!("\nfinished in {:.2}s", elapsed_ms as f64 / 1000.0));
    lines
}

fn recap_line(host: &str, s: &Stats, width: usize) -> String {
    let name = format!("{host:width$}");
    let name = if s.failed > 0 || s.unreachable > 0 {
        style(name).red().bold()
    } else if s.changed > 0 {
        style(name).yellow()
    } else {
        style(name).green()
    };
    format!(
        "{name} : ok={:<4} changed={:<4} unreachable={:<4} failed={:<4} skipped={:<4} rescued={:<4} ignored={}",
        s.ok, s.changed, s.unreachable, s.failed, s.skipped, s.rescued, s.ignored
    )
}

/// `--diff`: a module's `diff` (`before`/`after` texts, or a list of them) as a unified diff.
fn render_diff(diff: &Value) -> Vec<String> {
    let parts: Vec<&Value> = match diff {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    let mut lines = Vec::new();
    for part in parts {
        let text = |k: &str| match part.get(k) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Null) | None => None,
            Some(other) => Some(serde_json::to_string_pretty(other).unwrap_or_default() + "\n"),
        };
        // A ready-made description of the change (apt's package list), shown as is.
        if let Some(prepared) = part.get("prepared").and_then(Value::as_str) {
            lines.extend(prepared.lines().map(|l| format!("    {l}")));
            continue;
        }
        let (Some(before), Some(after)) = (text("before"), text("after")) else {
            for k in [
                "before_binary",
                "after_binary",
                "src_binary",
                "dst_binary",
                "src_larger",
                "dst_larger",
            ] {
                if part.get(k).is_some() {
                    lines.push(format!("    (diff not shown: {k})"));
                }
            }
            continue;
        };
        let header =
            |k: &str, d: &str| part.get(k).and_then(Value::as_str).unwrap_or(d).to_string();
        let udiff = similar::TextDiff::from_lines(&before, &after);
        let rendered = udiff
            .unified_diff()
            .context_radius(3)
            .header(
                &header("before_header", "before"),
                &header("after_header", "after"),
            )
            .to_string();
        for l in rendered.lines() {
            let styled = if l.starts_with('+') && !l.starts_with("+++") {
                style(l).green().to_string()
            } else if l.starts_with('-') && !l.starts_with("---") {
                style(l).red().to_string()
            } else if l.starts_with("@@") {
                style(l).cyan().to_string()
            } else {
                l.to_string()
            };
            lines.push(format!("    {styled}"));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn result(status: Status, module: &str, item: Option<Value>, result: Value) -> Event {
        Event::HostResult {
            host: "web1".into(),
            task: "t".into(),
            module: Some(module.into()),
            status,
            changed: status == Status::Changed,
            ignored: false,
            duration_ms: 12,
            item,
            delegated_to: None,
            result,
        }
    }

    fn shown(verbosity: u8, event: &Event) -> Vec<String> {
        console::set_colors_enabled(false);
        Human::new(verbosity).result_lines(event)
    }

    #[test]
    fn ok_results_are_quiet_unless_debug_or_verbose() {
        let ok = result(Status::Ok, "command", None, json!({"rc": 0}));
        assert!(shown(0, &ok).is_empty());
        assert_eq!(shown(1, &ok), ["ok: [web1] (12 ms)", "    {\"rc\":0}"]);
        let msg = result(
            Status::Ok,
            "debug",
            None,
            json!({"msg": "hi", "changed": false}),
        );
        assert_eq!(shown(0, &msg), ["ok: [web1] hi"]);
        let var = result(
            Status::Ok,
            "debug",
            None,
            json!({"x": [1], "failed": false}),
        );
        assert_eq!(shown(0, &var), ["ok: [web1] x = [1]"]);
        let hidden = json!({"msg": "s3cret", "censored": "the output has been hidden"});
        let censored = result(Status::Ok, "debug", None, hidden);
        assert!(!shown(0, &censored).concat().contains("s3cret"));
        // A task merely named "debug…" is no debug.
        let named = result(Status::Ok, "shell", None, json!({"msg": "m"}));
        assert!(shown(0, &named).is_empty());
    }

    #[test]
    fn items_show_at_v_or_when_they_fail() {
        let item = result(Status::Changed, "file", Some(json!("a")), json!({}));
        assert!(shown(0, &item).is_empty());
        assert_eq!(shown(1, &item)[0], "changed: [web1] (item=a)");
        let failed = json!({"msg": "boom", "rc": 2, "stderr": "e1\ne2"});
        let bad = result(Status::Failed, "command", Some(Value::Null), failed);
        assert_eq!(
            shown(0, &bad),
            [
                "failed: [web1] (item=None)",
                "    boom (rc=2)",
                "    stderr:",
                "      e1",
                "      e2"
            ]
        );
    }

    #[test]
    fn interrupts_and_recaps_read_as_lines() {
        console::set_colors_enabled(false);
        let running = |host: &str, task: &str| crate::engine::RunningTask {
            host: host.into(),
            task: task.into(),
            location: "pb.yml:3:7".into(),
        };
        let lines = interrupted_lines(&[running("a", "wait"), running("b", "wait")]);
        assert_eq!(lines[1], "  TASK [wait] (pb.yml:3:7) on a, b");
        let mut hosts = indexmap::IndexMap::new();
        hosts.insert("web1".to_string(), Stats::default());
        let recap = recap_lines(&hosts, 1500, true);
        assert!(recap[0].contains("interrupted"));
        assert!(recap[2].starts_with("web1 : ok=0"), "{}", recap[2]);
        assert_eq!(recap[3], "\nfinished in 1.50s");
    }
}
