//! File modules: copy, template, file, stat, slurp, fetch, lineinfile.

use super::Module;

pub static MODULES: &[&dyn Module] = &[];
