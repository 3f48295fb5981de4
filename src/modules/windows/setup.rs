//! Fact gathering on Windows hosts (the `setup` module's Windows half): one request.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::script;
use crate::modules::{Args, ModError, ModResult, ModuleCtx};

pub static SCRIPT: super::Script = script!("setup");

#[derive(Serialize)]
struct SetupArgs {
    gather_subset: Vec<String>,
}

#[derive(Deserialize)]
struct Facts {
    ansible_facts: Map<String, Value>,
}

pub async fn gather(ctx: &ModuleCtx<'_>, args: &Args) -> ModResult {
    let gather_subset = match args.get("gather_subset") {
        Some(Value::Array(a)) => a.iter().map(crate::value::to_text).collect(),
        Some(Value::String(s)) => s.split(',').map(|x| x.trim().to_string()).collect(),
        _ => Vec::new(),
    };
    let (facts, warnings) = SCRIPT
        .run::<Facts>(ctx, &SetupArgs { gather_subset })
        .await
        .map_err(|e| match e {
            ModError::Failed { msg, result } => ModError::Failed {
                msg: format!("fact gathering failed: {msg}"),
                result,
            },
            other => other,
        })?;
    let mut r = super::finish(false, warnings, Value::Null);
    r.insert("ansible_facts".into(), Value::Object(facts.ansible_facts));
    Ok(r)
}
