//! Linux system modules over SSH: systemd_service/service, get_url, unarchive, reboot, apt,
//! package, package_facts, user, group, sysctl, pip, uri, git,
//! service_facts.
//!
//! Like the file modules, each one reads what it needs from the target in one `sh` round trip
//! (scripts built with `files::remote`), decides on the controller, and changes the target in
//! as few further round trips as it can. Arguments and return values follow ansible-core's
//! modules of the same names.

mod apt;
mod get_url;
mod git;
mod package;
mod pip;
mod reboot;
mod service_facts;
mod sysctl;
mod systemd;
mod unarchive;
mod uri;
mod user;

use std::sync::Arc;

use super::files::remote::Reply;
use super::{ModError, Module, ModuleCtx, Outcome};
use crate::connection::{CommandSpec, Connection};

pub static MODULES: &[&dyn Module] = &[
    &systemd::SYSTEMD_SERVICE,
    &systemd::SYSTEMD,
    &systemd::Service,
    &get_url::GetUrl,
    &unarchive::Unarchive,
    &reboot::Reboot,
    &apt::Apt,
    &package::Package,
    &package::PackageFacts,
    &user::User,
    &user::Group,
    &sysctl::Sysctl,
    &pip::Pip,
    &uri::Uri,
    &git::Git,
    &service_facts::ServiceFacts,
];

const BUILTIN: &[&str] = &["ansible.builtin"];

/// Runs a script given on stdin (`sh -s`), so what it carries (passwords, headers) never
/// appears on a command line or in the transport's command log. Parses its `key=value` reply;
/// an `error=` line fails the module with that message.
async fn run_stdin(ctx: &ModuleCtx<'_>, script: String) -> Result<Reply, ModError> {
    let conn: Arc<dyn Connection> = ctx.connection().await?;
    let out = conn
        .exec(CommandSpec {
            cmd: "/bin/sh -s".into(),
            stdin: Some(script.into_bytes()),
            env: ctx.env.clone(),
            timeout: ctx.timeout,
            become_: ctx.become_.clone(),
            output: None,
        })
        .await?;
    let reply = Reply::parse(&out.stdout);
    if let Some(e) = reply.get("error") {
        // What a failing script reports besides its message (get_url's HTTP status).
        let mut result = Outcome::new();
        if let Some(code) = reply.get("status_code").and_then(|c| c.parse::<i64>().ok()) {
            result.insert("status_code".into(), code.into());
        }
        if let Some(r) = reply.get("response") {
            result.insert("response".into(), r.into());
        }
        return Err(ModError::Failed {
            msg: e.to_string(),
            result,
        });
    }
    if out.rc != 0 {
        return Err(ModError::msg(format!(
            "the remote shell script failed (rc={}): {}",
            out.rc,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(reply)
}
