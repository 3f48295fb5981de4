//! `k8s`: server-side apply (field manager `mixop`) or delete of manifests from `definition`,
//! `src` or `template`, with waits. Check mode is a server-side dry run.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::{Map, Value};

use super::client::{K8sError, Kube};
use super::{
    CONN_PARAMS, KUBERNETES_CORE, WAIT_PARAMS, WaitSpec, api_for, api_version_param, display_name,
    kind_of, kind_param, name_of, to_value, wait_until, wanted,
};
use crate::modules::ParamType::*;
use crate::modules::{
    Args, FreeForm, ModError, ModResult, Module, ModuleCtx, ModuleDef, Param, alias, arg_bool,
    arg_str, choice, outcome, p,
};

pub struct K8s;

const FIELD_MANAGER: &str = "mixop";

static PARAMS: [Param; 19] = [
    choice("state", &["present", "absent"]),
    p("force", Bool),
    CONN_PARAMS[0],
    CONN_PARAMS[1],
    CONN_PARAMS[2],
    CONN_PARAMS[3],
    p("namespace", Str),
    kind_param(),
    api_version_param(),
    p("name", Str),
    alias(p("definition", Any), &["resource_definition", "inline"]),
    p("src", Str),
    p("template", Any),
    // kubernetes.core's client-side `apply: true`: mixop always applies server-side.
    p("apply", Bool),
    p("server_side_apply", Dict),
    p("wait_timeout", Int),
    WAIT_PARAMS[0],
    WAIT_PARAMS[1],
    WAIT_PARAMS[2],
];

static DEF: ModuleDef = ModuleDef {
    name: "k8s",
    namespaces: KUBERNETES_CORE,
    params: &PARAMS,
    free_form: FreeForm::No,
    open_args: false,
    target: crate::modules::Target::Controller,
    mutually_exclusive: &[&["definition", "src", "template"]],
    required_one_of: &[],
};

#[async_trait]
impl Module for K8s {
    fn def(&self) -> &'static ModuleDef {
        &DEF
    }
    async fn run(&self, ctx: &ModuleCtx<'_>, args: Args) -> ModResult {
        let docs = load_docs(ctx, &args)?;
        let kube = Kube::for_args(&args).await?;
        let absent = arg_str(&args, "state") == Some("absent");
        let wait = arg_bool(&args, "wait", false);
        let spec = WaitSpec::from_args(&args)?;
        let ssa = args.get("server_side_apply").and_then(Value::as_object);
        let manager = ssa
            .and_then(|m| m.get("field_manager"))
            .and_then(Value::as_str)
            .unwrap_or(FIELD_MANAGER)
            .to_string();
        let force = arg_bool(&args, "force", false)
            || ssa
                .and_then(|m| m.get("force_conflicts"))
                .and_then(crate::value::as_bool)
                .unwrap_or(false);
        let opts = Opts {
            check: ctx.check_mode,
            wait,
            spec,
            manager,
            force,
            namespace: arg_str(&args, "namespace").map(str::to_string),
        };
        let mut results = Vec::new();
        let mut any_changed = false;
        for doc in docs {
            let r = if absent {
                delete_one(&kube, doc, &opts).await?
            } else {
                apply_one(&kube, doc, &opts).await?
            };
            any_changed |= r.get("changed").and_then(Value::as_bool) == Some(true);
            results.push(r);
        }
        let mut out = outcome(any_changed);
        if results.len() == 1 {
            if let Some(Value::Object(one)) = results.pop() {
                for k in ["method", "result", "duration"] {
                    if let Some(v) = one.get(k) {
                        out.insert(k.into(), v.clone());
                    }
                }
            }
        } else {
            let mut wrapped = Map::new();
            wrapped.insert("results".into(), Value::Array(results));
            out.insert("result".into(), Value::Object(wrapped));
        }
        Ok(out)
    }
}

struct Opts {
    check: bool,
    wait: bool,
    spec: WaitSpec,
    manager: String,
    force: bool,
    namespace: Option<String>,
}

/// The objects to act on, from `definition`, `src`, `template`, or `kind` + `name`.
fn load_docs(ctx: &ModuleCtx<'_>, args: &Args) -> Result<Vec<Value>, ModError> {
    let mut docs = Vec::new();
    if let Some(def) = args.get("definition").filter(|v| !v.is_null()) {
        match def {
            Value::String(text) => docs.extend(parse_yaml("the `definition` text", text)?),
            Value::Array(items) => docs.extend(items.iter().cloned()),
            other => docs.push(other.clone()),
        }
    } else if let Some(src) = arg_str(args, "src") {
        let path = ctx.find_local(src, "files")?;
        let text = std::fs::read_to_string(&path)
            .map_err(|e| ModError::msg(format!("cannot read {}: {e}", path.display())))?;
        docs.extend(parse_yaml(&path.display().to_string(), &text)?);
    } else if let Some(t) = args.get("template").filter(|v| !v.is_null()) {
        let name = match t {
            Value::String(s) => s.as_str(),
            Value::Object(m) => m.get("path").and_then(Value::as_str).ok_or_else(|| {
                ModError::msg("`template` must be a path or a mapping with `path`")
            })?,
            _ => return Err(ModError::msg("`template` must be a path")),
        };
        let path = ctx.find_local(name, "templates")?;
        let text = ctx
            .templar
            .render_file(&path, ctx.vars)
            .map_err(|e| ModError::msg(format!("{}: {e}", ctx.task)))?;
        docs.extend(parse_yaml(&path.display().to_string(), &text)?);
    } else if let (Some(kind), Some(name)) = (arg_str(args, "kind"), arg_str(args, "name")) {
        let mut meta = Map::new();
        meta.insert("name".into(), name.into());
        let mut obj = Map::new();
        // Without `api_version`, the kind is looked up in every API group.
        if let Some(v) = arg_str(args, "api_version") {
            obj.insert("apiVersion".into(), v.into());
        }
        obj.insert("kind".into(), kind.into());
        obj.insert("metadata".into(), Value::Object(meta));
        docs.push(Value::Object(obj));
    } else {
        return Err(ModError::msg(
            "`k8s` needs `definition`, `src` or `template` (or `kind` and `name` to delete)",
        ));
    }
    // `kind: List` documents (kubectl's output format) hold their objects in `items`.
    let mut flat = Vec::new();
    for d in docs {
        if kind_of(&d) == "List"
            && let Some(items) = d.get("items").and_then(Value::as_array)
        {
            flat.extend(items.iter().cloned());
        } else if !d.is_null() {
            flat.push(d);
        }
    }
    for d in &flat {
        if !d.is_object() {
            return Err(ModError::msg(format!(
                "a Kubernetes object must be a mapping, got {d}"
            )));
        }
    }
    Ok(flat)
}

/// Multi-document YAML, with the project's YAML rules (errors name the line).
fn parse_yaml(name: &str, text: &str) -> Result<Vec<Value>, ModError> {
    let nodes = crate::yaml::load_str(crate::diag::Source::new(name, text))
        .map_err(|d| ModError::msg(d.to_string()))?;
    Ok(nodes.iter().map(crate::yaml::Node::to_value).collect())
}

/// Checks an object has what apply needs and gives it the default namespace.
fn prepare(kube: &Kube, mut doc: Value, opts: &Opts) -> Result<(Value, Target), K8sError> {
    let bad = |what: &str| {
        K8sError::Other(format!(
            "a Kubernetes object {what}: {}",
            crate::value::to_text(&doc)
        ))
    };
    let bare = doc
        .as_object()
        .is_some_and(|m| m.keys().all(|k| k == "kind" || k == "metadata"));
    let api_version = match doc.get("apiVersion").and_then(Value::as_str) {
        Some(v) => Some(v.to_string()),
        // Only `kind` + `name` arguments (a delete) may leave the apiVersion to discovery.
        None if bare => None,
        None => return Err(bad("needs `apiVersion`")),
    };
    let kind = doc
        .get("kind")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("needs `kind`"))?
        .to_string();
    let name = name_of(&doc).to_string();
    if name.is_empty() {
        return Err(bad(
            "needs `metadata.name` (generateName cannot be applied)",
        ));
    }
    let ns = doc
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| opts.namespace.clone())
        .unwrap_or_else(|| kube.default_namespace.clone());
    Ok((
        doc.take(),
        Target {
            api_version,
            kind,
            name,
            ns,
        },
    ))
}

struct Target {
    api_version: Option<String>,
    kind: String,
    name: String,
    ns: String,
}

async fn apply_one(kube: &Arc<Kube>, doc: Value, opts: &Opts) -> Result<Value, K8sError> {
    let (mut doc, t) = prepare(kube, doc, opts)?;
    let r = kube.resolve_kind(t.api_version.as_deref(), &t.kind).await?;
    if let Some(m) = doc.as_object_mut() {
        m.entry("apiVersion")
            .or_insert_with(|| r.ar.api_version.clone().into());
    }
    if let Some(meta) = doc.get_mut("metadata").and_then(Value::as_object_mut) {
        if r.namespaced {
            meta.insert("namespace".into(), t.ns.clone().into());
        } else {
            meta.remove("namespace");
        }
    }
    let ns = r.namespaced.then_some(t.ns.as_str());
    let api = api_for(kube, &r, ns);
    let label = match ns {
        Some(ns) => format!("{} {ns}/{}", r.ar.kind, t.name),
        None => format!("{} {}", r.ar.kind, t.name),
    };
    let before = kube
        .call(&format!("reading {label}"), api.get_opt(&t.name))
        .await?
        .map(|o| to_value(o, &r));
    let mut pp = PatchParams::apply(&opts.manager);
    pp.force = opts.force;
    pp.dry_run = opts.check;
    let doing = format!(
        "applying {label}{}",
        if opts.check { " (dry run)" } else { "" }
    );
    let after = to_value(
        kube.call(&doing, api.patch(&t.name, &pp, &Patch::Apply(&doc)))
            .await?,
        &r,
    );
    let changed = match &before {
        None => true,
        // A real apply that changes nothing keeps the resourceVersion; a dry run never
        // persists, so compare what it would store instead.
        Some(b) if opts.check => comparable(b) != comparable(&after),
        Some(b) => {
            b.pointer("/metadata/resourceVersion") != after.pointer("/metadata/resourceVersion")
        }
    };
    let mut result = after;
    if opts.wait && !opts.check {
        let start = std::time::Instant::now();
        let name = t.name.clone();
        let what = format!(
            "{label} to be {}",
            wanted(&r.ar.kind, opts.spec.cond.as_ref())
        );
        let objs = wait_until(kube, &opts.spec, &what, true, || {
            let api = api.clone();
            let name = name.clone();
            let r = r.clone();
            let kube = kube.clone();
            async move {
                let o = kube
                    .call(&format!("reading {name}"), api.get_opt(&name))
                    .await?;
                Ok::<_, K8sError>(o.map(|o| to_value(o, &r)).into_iter().collect())
            }
        })
        .await?;
        if let Some(o) = objs.into_iter().next() {
            result = o;
        }
        let mut m = entry(
            changed,
            if before.is_none() { "create" } else { "apply" },
            result,
        );
        m.insert(
            "duration".into(),
            Value::from(start.elapsed().as_secs_f64().round() as i64),
        );
        return Ok(Value::Object(m));
    }
    Ok(Value::Object(entry(
        changed,
        if before.is_none() { "create" } else { "apply" },
        result,
    )))
}

fn entry(changed: bool, method: &str, result: Value) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("changed".into(), changed.into());
    m.insert("method".into(), method.into());
    m.insert("result".into(), result);
    m
}

/// An object without what changes on every write (resourceVersion, managedFields times).
fn comparable(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
        if let Some(Value::Array(mf)) = meta.get_mut("managedFields") {
            for f in mf {
                if let Some(m) = f.as_object_mut() {
                    m.remove("time");
                }
            }
        }
    }
    o
}

async fn delete_one(kube: &Arc<Kube>, doc: Value, opts: &Opts) -> Result<Value, K8sError> {
    let (_, t) = prepare(kube, doc, opts)?;
    let r = kube.resolve_kind(t.api_version.as_deref(), &t.kind).await?;
    let ns = r.namespaced.then_some(t.ns.as_str());
    let api = api_for(kube, &r, ns);
    let label = match ns {
        Some(ns) => format!("{} {ns}/{}", r.ar.kind, t.name),
        None => format!("{} {}", r.ar.kind, t.name),
    };
    let Some(before) = kube
        .call(&format!("reading {label}"), api.get_opt(&t.name))
        .await?
    else {
        return Ok(Value::Object(entry(
            false,
            "delete",
            Value::Object(Map::new()),
        )));
    };
    let before = to_value(before, &r);
    let dp = DeleteParams {
        dry_run: opts.check,
        propagation_policy: Some(kube::api::PropagationPolicy::Background),
        ..DeleteParams::default()
    };
    match kube
        .call(&format!("deleting {label}"), api.delete(&t.name, &dp))
        .await
    {
        Ok(_) => {}
        // Gone in between: the goal is reached all the same.
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e),
    }
    if opts.wait && !opts.check {
        let start = tokio::time::Instant::now();
        loop {
            let cur = kube
                .call(&format!("reading {label}"), api.get_opt(&t.name))
                .await?;
            let Some(cur) = cur else { break };
            if start.elapsed() >= opts.spec.timeout {
                let cur = to_value(cur, &r);
                let finalizers = cur
                    .pointer("/metadata/finalizers")
                    .map(crate::value::to_text)
                    .unwrap_or_else(|| "none".into());
                return Err(K8sError::Other(format!(
                    "timed out after {} s waiting for {} to be deleted (finalizers: {finalizers}){}",
                    opts.spec.timeout.as_secs(),
                    display_name(&cur),
                    super::describe::describe(kube, &cur).await
                )));
            }
            tokio::time::sleep(opts.spec.sleep.min(Duration::from_secs(1))).await;
        }
    }
    Ok(Value::Object(entry(true, "delete", before)))
}
