//! Playbooks: the typed model and its loader (keeping source positions), which validates the
//! whole plan — imported playbooks, task files and roles included — before any host is contacted.

mod load;
mod model;
mod roles;

pub use load::{load_playbook, load_role, load_task_file};
pub use model::*;
pub use roles::roles_path;
