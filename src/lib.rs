//! mixop: Ansible-style playbooks over SSH and WinRM for mixed Linux + Windows Kubernetes labs.
//!
//! Data flows one way: `cli` → `inventory`/`playbook` (load with source spans) → validation of the
//! whole plan → `engine` (plays, batches, tasks, hosts in parallel) → `modules` → `connection`,
//! with the engine emitting events that `output` renders.

pub mod app;
pub mod cli;
pub mod config;
pub mod connection;
pub mod diag;
pub mod engine;
pub mod fuzzing;
pub mod inventory;
pub mod modules;
pub mod output;
pub mod playbook;
pub mod powershell;
pub mod secret;
pub mod template;
pub mod value;
pub mod vault;
pub mod yaml;

pub fn main() -> i32 {
    app::main()
}
