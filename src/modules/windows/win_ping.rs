//! `win_ping`: a round trip through the host's PowerShell process (ansible.windows.win_ping).

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{WINDOWS, finish, script, typed_args};
use crate::modules::ParamType::*;
use crate::modules::{Args, FreeForm, ModResult, Module, ModuleCtx, ModuleDef, Target, p};

pub static SCRIPT: super::Script = script!("win_ping");

static DEF: ModuleDef = ModuleDef {
    name: "win_ping",
    namespaces: WINDOWS,
    params: &[p("data", Str)],
    free_form: FreeForm::KeyValue,
    open_args: false,
    target: Target::Windows,
    mutually_exclusive: &[],
    required_one_of: &[],
};

#[derive(Serialize, Deserialize)]
struct PingArgs {
    #[serde(default = "pong")]
    data: String,
}

fn pong() -> String {
    "pong".into()
}

#[derive(Deserialize)]
struct Pong {
    ping: String,
}

pub(super) struct WinPing;

#[async_trait]
impl Module for WinPing {
    fn def(&self) -> &'static ModuleDef {
        &DEF
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let args: PingArgs = typed_args(DEF.name, &args)?;
        let (pong, warnings) = SCRIPT.run::<Pong>(ctx, &args).await?;
        Ok(finish(false, warnings, json!({ "ping": pong.ping })))
    }
}
