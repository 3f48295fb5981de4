//! `k8s_info`: get or list objects of any kind, optionally waiting until they satisfy a
//! condition. Returns `resources` and `api_found` like kubernetes.core.k8s_info.

use crate::modules::Target;
use async_trait::async_trait;
use kube::api::ListParams;
use serde_json::Value;

use super::client::{K8sError, Kube};
use super::{
    CONN_PARAMS, KUBERNETES_CORE, WAIT_PARAMS, WaitSpec, api_for, api_version_param, to_value,
    wait_until, wanted,
};
use crate::modules::ParamType::*;
use crate::modules::{
    Args, FreeForm, ModResult, Module, ModuleCtx, ModuleDef, Param, arg_bool, arg_str, outcome, p,
    req,
};

pub struct K8sInfo;

static PARAMS: [Param; 14] = [
    req("kind", Str),
    api_version_param(),
    p("name", Str),
    p("namespace", Str),
    p("label_selectors", List),
    p("field_selectors", List),
    CONN_PARAMS[0],
    CONN_PARAMS[1],
    CONN_PARAMS[2],
    CONN_PARAMS[3],
    WAIT_PARAMS[0],
    WAIT_PARAMS[1],
    WAIT_PARAMS[2],
    WAIT_PARAMS[3],
];

static DEF: ModuleDef = ModuleDef {
    name: "k8s_info",
    namespaces: KUBERNETES_CORE,
    params: &PARAMS,
    free_form: FreeForm::No,
    open_args: false,
    target: Target::Controller,
    mutually_exclusive: &[],
    required_one_of: &[],
};

#[async_trait]
impl Module for K8sInfo {
    fn def(&self) -> &'static ModuleDef {
        &DEF
    }
    async fn run(&self, _ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let kube = Kube::for_args(&args).await?;
        let kind = arg_str(&args, "kind").unwrap_or_default();
        let api_version = arg_str(&args, "api_version");
        let mut out = outcome(false);
        let r = match kube.resolve_kind(api_version, kind).await {
            Ok(r) => r,
            // Like kubernetes.core: an unknown kind is not a failure, `api_found` says so.
            Err(K8sError::Other(msg)) if msg.starts_with("unknown kind") => {
                out.insert("api_found".into(), false.into());
                out.insert("resources".into(), Value::Array(vec![]));
                out.insert("msg".into(), msg.into());
                return Ok(out);
            }
            Err(e) => return Err(e.into()),
        };
        let name = arg_str(&args, "name").map(str::to_string);
        // No namespace means all namespaces for a list, the default namespace for a name.
        let ns = match (arg_str(&args, "namespace"), &name) {
            (Some(ns), _) => Some(ns.to_string()),
            (None, Some(_)) => Some(kube.default_namespace.clone()),
            (None, None) => None,
        };
        let api = api_for(&kube, &r, ns.as_deref());
        let join = |key: &str| {
            args.get(key).and_then(Value::as_array).map(|items| {
                items
                    .iter()
                    .map(crate::value::to_text)
                    .collect::<Vec<_>>()
                    .join(",")
            })
        };
        let mut lp = ListParams::default();
        if let Some(l) = join("label_selectors").filter(|s| !s.is_empty()) {
            lp = lp.labels(&l);
        }
        if let Some(f) = join("field_selectors").filter(|s| !s.is_empty()) {
            lp = lp.fields(&f);
        }
        let what = match (&name, &ns) {
            (Some(n), Some(ns)) if r.namespaced => format!("{} {ns}/{n}", r.ar.kind),
            (Some(n), _) => format!("{} {n}", r.ar.kind),
            (None, _) => format!("{} objects matching the selectors", r.ar.kind),
        };
        let fetch = || {
            let (api, lp, name, r, kube) = (
                api.clone(),
                lp.clone(),
                name.clone(),
                r.clone(),
                kube.clone(),
            );
            async move {
                let found: Result<Vec<Value>, K8sError> = match name {
                    Some(n) => Ok(kube
                        .call(&format!("reading {}", r.ar.kind), api.get_opt(&n))
                        .await?
                        .map(|o| to_value(o, &r))
                        .into_iter()
                        .collect::<Vec<_>>()),
                    None => Ok(kube
                        .call(&format!("listing {}", r.ar.plural), api.list(&lp))
                        .await?
                        .items
                        .into_iter()
                        .map(|o| to_value(o, &r))
                        .collect()),
                };
                found
            }
        };
        let resources = if arg_bool(&args, "wait", false) {
            let spec = WaitSpec::from_args(&args)?;
            let what = format!("{what} to be {}", wanted(&r.ar.kind, spec.cond.as_ref()));
            wait_until(&kube, &spec, &what, true, fetch).await?
        } else {
            fetch().await?
        };
        out.insert("api_found".into(), true.into());
        out.insert("resources".into(), Value::Array(resources));
        Ok(out)
    }
}
