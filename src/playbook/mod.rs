//! Playbooks: the typed model and its loader (keeping source positions), which validates the
//! whole plan — imported playbooks and task files included — before any host is contacted.

mod load;
mod model;

pub use load::{load_playbook, load_task_file};
pub use model::*;
