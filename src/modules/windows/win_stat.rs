//! `win_stat`: facts about a path (ansible.windows.win_stat), one probe.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{WINDOWS, finish, script, typed_args};
use crate::modules::ParamType::*;
use crate::modules::{
    Args, FreeForm, ModResult, Module, ModuleCtx, ModuleDef, Target, alias, choice, p, req,
};

pub static SCRIPT: super::Script = script!("win_stat");

static DEF: ModuleDef = ModuleDef {
    name: "win_stat",
    namespaces: WINDOWS,
    params: &[
        alias(req("path", Str), &["dest", "name"]),
        p("get_checksum", Bool),
        choice(
            "checksum_algorithm",
            &["md5", "sha1", "sha256", "sha384", "sha512"],
        ),
        p("follow", Bool),
        p("get_size", Bool),
    ],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Windows,
    mutually_exclusive: &[],
    required_one_of: &[],
};

#[derive(Debug, Serialize, Deserialize)]
pub struct StatArgs {
    pub path: String,
    #[serde(default = "yes")]
    pub get_checksum: bool,
    #[serde(default = "sha1")]
    pub checksum_algorithm: String,
}

fn yes() -> bool {
    true
}
fn sha1() -> String {
    "sha1".into()
}

#[derive(Deserialize)]
struct Probe {
    stat: Value,
}

pub(super) struct WinStat;

/// The `stat` of a path, for modules that need it (win_copy, win_get_url, ...).
pub async fn stat(
    ctx: &ModuleCtx<'_>,
    args: &StatArgs,
) -> Result<(Value, Vec<String>), crate::modules::ModError> {
    let (p, w) = SCRIPT.probe::<Probe>(ctx, args).await?;
    Ok((p.stat, w))
}

#[async_trait]
impl Module for WinStat {
    fn def(&self) -> &'static ModuleDef {
        &DEF
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let args: StatArgs = typed_args(DEF.name, &args)?;
        let (stat, warnings) = stat(ctx, &args).await?;
        Ok(finish(false, warnings, json!({ "stat": stat })))
    }
}
