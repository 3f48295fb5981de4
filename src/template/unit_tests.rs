//! Unit tests of the template language: typed results, undefined naming, filters, tests,
//! lookups, conditionals.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Value as Json, json};

use super::*;

fn ctx(vars: Json) -> Vars {
    let mut srv = json!({
        "inventory_hostname": "srv",
        "ansible_host": "10.231.0.10",
        "k3s_url": "https://{{ ansible_host }}:6443",
        "node_token": "K10abc",
    })
    .as_object()
    .cloned()
    .unwrap_or_default();
    srv.insert(
        "groups".into(),
        json!({"server": ["srv"], "agents": ["a1", "a2"]}),
    );
    let a1 = json!({"inventory_hostname": "a1", "ansible_host": "10.231.0.11"})
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut hv = BTreeMap::new();
    hv.insert("srv".to_string(), Arc::new(srv));
    hv.insert("a1".to_string(), Arc::new(a1));
    Vars {
        vars: Arc::new(vars.as_object().cloned().unwrap_or_default()),
        hostvars: Arc::new(hv),
        data_vars: Arc::default(),
    }
}

fn base() -> Vars {
    ctx(json!({
        "inventory_hostname": "a1",
        "n": 5,
        "f": 1.5,
        "s": "abc",
        "yes_str": "yes",
        "l": [3, 1, 2],
        "words": ["b", "a", "B"],
        "d": {"b": 1, "a": [1, 2], "c": {"x": "y"}},
        "users": [{"name": "al", "admin": true, "uid": 1}, {"name": "bo", "admin": false, "uid": 2}],
        "res_ok": {"changed": true, "failed": false, "rc": 0, "stdout": "ok"},
        "res_fail": {"changed": false, "failed": true, "rc": 2},
        "res_skip": {"changed": false, "skipped": true},
        "res_loop": {"results": [{"changed": false}, {"changed": true}]},
        "groups": {"server": ["srv"], "agents": ["a1", "a2"], "all": ["srv", "a1"]},
        "ip": "10.0.0.1",
        "url": "https://{{ ip }}:6443",
        "port": "{{ 6443 }}",
        "cfg": {"server": "{{ url }}", "list": ["{{ n }}", 2]},
        "loop_a": "{{ loop_b }}",
        "loop_b": "{{ loop_a }}",
        "broken": "x-{{ missing_var }}",
        "tpl_name": "t.j2",
    }))
}

fn t() -> Templar {
    Templar::new(TemplarOptions::default())
}

fn r(s: &str) -> Json {
    match t().render(s, &base()) {
        Ok(v) => v,
        Err(e) => panic!("render {s:?} failed: {e}"),
    }
}

fn rerr(s: &str) -> TemplateError {
    match t().render(s, &base()) {
        Ok(v) => panic!("render {s:?} should fail, got {v}"),
        Err(e) => e,
    }
}

#[test]
fn plain_strings_untouched() {
    assert_eq!(r("just text {x} %"), json!("just text {x} %"));
    assert_eq!(r(""), json!(""));
}

#[test]
fn typed_results() {
    assert_eq!(r("{{ n }}"), json!(5));
    assert_eq!(r("{{ 5 }}"), json!(5));
    assert_eq!(r("{{ f }}"), json!(1.5));
    assert_eq!(r("{{ n > 3 }}"), json!(true));
    assert_eq!(r("{{ l }}"), json!([3, 1, 2]));
    assert_eq!(r("{{ d }}"), json!({"b": 1, "a": [1, 2], "c": {"x": "y"}}));
    assert_eq!(r("{{ none }}"), Json::Null);
    assert_eq!(r("  {{ n }}\n"), json!(5));
    assert_eq!(r("{{- n -}}"), json!(5));
    // A string result keeps the text around the braces (a trailing newline matters in files).
    assert_eq!(r("{{ s }}\n"), json!("abc\n"));
    assert_eq!(r("x{{ n }}"), json!("x5"));
    assert_eq!(r("{{ 1 }}{{ 2 }}"), json!("12"));
    assert_eq!(r("x{{ none }}"), json!("x"));
    assert_eq!(
        r("x {{ [1, 'a', none, true] }}"),
        json!("x [1, 'a', None, True]")
    );
    assert_eq!(
        r("x {{ d }}"),
        json!("x {'b': 1, 'a': [1, 2], 'c': {'x': 'y'}}")
    );
    assert_eq!(r("{{ 3.0 }}|{{ 1.5e20 }}"), json!("3.0|1.5e+20"));
    assert_eq!(r("{{ {'k': n} }}"), json!({"k": 5}));
    assert_eq!(r("{% if n > 1 %}big{% endif %}"), json!("big"));
}

#[test]
fn undefined_variables_are_named() {
    let e = rerr("{{ k3s_token }}");
    assert_eq!(e.undefined.as_deref(), Some("k3s_token"));
    assert!(
        e.message.contains("'k3s_token' is undefined"),
        "{}",
        e.message
    );

    let e = rerr("{{ hostvars['srv'].k3s_token }}");
    assert_eq!(e.undefined.as_deref(), Some("hostvars['srv'].k3s_token"));
    assert!(
        e.message
            .contains("hostvars['srv'] has no variable 'k3s_token'"),
        "{}",
        e.message
    );
    let e = rerr("{{ hostvars[groups['server'][0]]['k3s_token'] }}");
    assert!(
        e.message.contains("has no variable 'k3s_token'"),
        "{}",
        e.message
    );

    let e = rerr("{{ hostvars['nosuch'].x }}");
    assert!(
        e.message.contains("'nosuch' is not a host"),
        "{}",
        e.message
    );

    let e = rerr("{{ d.c.zz }}");
    assert_eq!(e.undefined.as_deref(), Some("d.c.zz"));
    assert!(
        e.message.contains("'d.c' has no attribute 'zz'"),
        "{}",
        e.message
    );

    let e = rerr("{{ l[7] }}");
    assert_eq!(e.undefined.as_deref(), Some("l[7]"));

    // Inside a filter argument, an if test, a loop.
    assert_eq!(
        rerr("{{ s | replace(nope, 'x') }}").undefined.as_deref(),
        Some("nope")
    );
    assert_eq!(
        rerr("{% if nope %}x{% endif %}").undefined.as_deref(),
        Some("nope")
    );
    assert_eq!(
        rerr("{% for i in nope %}{% endfor %}").undefined.as_deref(),
        Some("nope")
    );
    assert_eq!(
        rerr("{{ nope | combine({}) }}").undefined.as_deref(),
        Some("nope")
    );
}

#[test]
fn undefined_line_in_multiline_template() {
    let e = rerr("line1\nline2 {{ n }}\nline3 {{ missing_here }}\n");
    assert_eq!(e.line, Some(3));
    assert!(e.message.contains("line 3"), "{}", e.message);
}

#[test]
fn default_defined_and_omit() {
    assert_eq!(r("{{ k3s_token | default('x') }}"), json!("x"));
    assert_eq!(r("{{ d.zz | d(7) }}"), json!(7));
    assert_eq!(r("{{ '' | default('e', true) }}"), json!("e"));
    assert_eq!(r("{{ '' | default('e') }}"), json!(""));
    assert_eq!(r("{{ nope is defined }}"), json!(false));
    assert_eq!(r("{{ nope is undefined }}"), json!(true));
    assert_eq!(r("{{ d.c is defined }}"), json!(true));
    assert_eq!(
        r("{{ hostvars['srv'].k3s_token is defined }}"),
        json!(false)
    );
    assert_eq!(r("{{ nope | default(omit) }}"), json!(OMIT));
    assert_eq!(r("{{ omit }}"), json!(OMIT));
}

#[test]
fn variables_holding_templates_are_rendered_lazily() {
    assert_eq!(r("{{ url }}"), json!("https://10.0.0.1:6443"));
    assert_eq!(r("{{ port + 1 }}"), json!(6444));
    assert_eq!(
        r("{{ cfg }}"),
        json!({"server": "https://10.0.0.1:6443", "list": [5, 2]})
    );
    assert_eq!(r("{{ cfg.list[0] * 2 }}"), json!(10));
    // hostvars are templated in their own host's context
    assert_eq!(
        r("{{ hostvars['srv'].k3s_url }}"),
        json!("https://10.231.0.10:6443")
    );
    assert_eq!(r("{{ vars['n'] }}"), json!(5));

    let e = rerr("{{ loop_a }}");
    assert!(e.message.contains("recursive loop"), "{}", e.message);

    let e = rerr("{{ broken }}");
    assert_eq!(e.undefined.as_deref(), Some("missing_var"));
    assert!(e.message.contains("'broken'"), "{}", e.message);
    assert_eq!(r("{{ broken | default('z') }}"), json!("z"));
}

#[test]
fn eval_and_eval_bool() {
    let tp = t();
    let c = base();
    assert_eq!(tp.eval("n * 2", &c).unwrap(), json!(10));
    assert_eq!(
        tp.eval("groups['agents']", &c).unwrap(),
        json!(["a1", "a2"])
    );
    assert!(tp.eval_bool(&json!(true), &c).unwrap());
    assert!(!tp.eval_bool(&json!(false), &c).unwrap());
    assert!(tp.eval_bool(&json!("n > 3"), &c).unwrap());
    assert!(tp.eval_bool(&json!("{{ n > 3 }}"), &c).unwrap());
    assert!(
        tp.eval_bool(&json!("res_ok is changed and res_ok is succeeded"), &c)
            .unwrap()
    );
    assert!(
        tp.eval_bool(&json!("inventory_hostname in groups['agents']"), &c)
            .unwrap()
    );
    assert!(tp.eval_bool(&json!("yes_str | bool"), &c).unwrap());

    let e = tp.eval_bool(&json!("s"), &c).unwrap_err();
    assert!(e.message.contains("must yield a boolean"), "{}", e.message);
    assert!(e.message.contains("str"), "{}", e.message);
    assert!(e.message.contains("'s'"), "{}", e.message);
    let e = tp.eval_bool(&json!("n"), &c).unwrap_err();
    assert!(e.message.contains("int"), "{}", e.message);
    let e = tp.eval_bool(&json!("k3s_ready"), &c).unwrap_err();
    assert_eq!(e.undefined.as_deref(), Some("k3s_ready"));
    assert!(tp.eval_bool(&json!(1), &c).is_err());
    assert!(tp.eval_bool(&json!("a }} {{ b"), &c).is_err());
}

#[test]
fn syntax_checks() {
    let tp = t();
    assert!(tp.check_template("plain").is_ok());
    assert!(tp.check_template("{{ x | default(1) }}").is_ok());
    let e = tp.check_template("a\n{{ x").unwrap_err();
    assert!(e.message.contains("syntax error"), "{}", e.message);
    assert!(tp.check_template("{% if x %}").is_err());
    assert!(tp.check_expr("x == 1 and y is defined").is_ok());
    assert!(tp.check_expr("{{ x }}").is_ok());
    assert!(tp.check_expr("x ==").is_err());
    assert!(tp.check_expr("a }}{{ b").is_err());
    assert!(tp.check_expr("").is_err());
    // unknown filters are reported at render time with their name
    let e = rerr("{{ n | no_such_filter }}");
    assert!(
        e.message.contains("no_such_filter") || e.message.contains("unknown filter"),
        "{}",
        e.message
    );
}

#[test]
fn check_refuses_filters_and_tests_that_do_not_exist() {
    let tp = t();
    for ok in [
        "{{ x | default(1) | upper | b64decode | to_json }}",
        "{{ x | ternary('a', 'b') | regex_replace('a', 'b') }}",
        "{% filter upper %}{{ x }}{% endfilter %}",
        "{{ l | selectattr('k', 'defined') | map(attribute='k') | list }}",
        "{% for i in l if i is number %}{{ i | string }}{% endfor %}",
        "{{ lookup('env', 'HOME') }}",
    ] {
        assert!(
            tp.check_template(ok).is_ok(),
            "{ok}: {:?}",
            tp.check_template(ok)
        );
    }
    assert!(
        tp.check_expr("x is defined and y is not none and z is succeeded")
            .is_ok()
    );
    let e = tp.check_template("{{ x | defualt(1) }}").unwrap_err();
    assert_eq!(
        e.message,
        "no filter named 'defualt' in \"{{ x | defualt(1) }}\""
    );
    let e = tp
        .check_template("a\n{% if x %}\n{{ y | upper | no_such }}\n{% endif %}")
        .unwrap_err();
    assert!(
        e.message.starts_with("no filter named 'no_such'"),
        "{}",
        e.message
    );
    assert_eq!(e.line, Some(3));
    let e = tp.check_expr("x is definned").unwrap_err();
    assert!(
        e.message.starts_with("no test named 'definned'"),
        "{}",
        e.message
    );
    // In a block, and applied through `map`/`select`, names are still checked where Jinja has
    // them as filters/tests: the string argument of `map` is only known at run time.
    assert!(
        tp.check_template("{% block b %}{{ x | nope }}{% endblock %}")
            .is_err()
    );
    let e = tp
        .check_template("{{ lookup('ansible.builtin.env', 'A') ~ query('nosuchplugin', '*') }}")
        .unwrap_err();
    assert!(
        e.message
            .starts_with("no lookup plugin named 'nosuchplugin'"),
        "{}",
        e.message
    );
    assert!(
        tp.check_expr("lookup('file', 'x') and q(\"env\", 'y')")
            .is_ok()
    );
}

#[test]
fn compiled_templates_are_cached() {
    let tp = t();
    let c = base();
    for _ in 0..3 {
        assert_eq!(tp.render("{{ n + 1 }}", &c).unwrap(), json!(6));
        assert_eq!(tp.render("v={{ n }}", &c).unwrap(), json!("v=5"));
        assert!(tp.eval_bool(&json!("n == 5"), &c).unwrap());
    }
    let caches = lock(&tp.inner.caches);
    assert_eq!(caches.strings.len(), 2);
    assert_eq!(caches.exprs.len(), 1);
    // the loader's hand-over table is drained once compiled
    assert!(lock(&tp.inner.sources).is_empty());
}

#[test]
fn render_deep_templates_keys_and_values() {
    let v = json!({"{{ s }}": ["{{ n }}", {"k": "{{ l | length }}"}], "x": 1});
    assert_eq!(
        t().render_deep(&v, &base()).unwrap(),
        json!({"abc": [5, {"k": 3}], "x": 1})
    );
}

#[test]
fn core_filters() {
    assert_eq!(r("{{ 'yes' | bool }}"), json!(true));
    assert_eq!(r("{{ 'off' | bool }}"), json!(false));
    assert_eq!(r("{{ 1 | bool }}"), json!(true));
    assert_eq!(r("{{ 'x' | bool }}"), json!(false));
    assert_eq!(r("{{ '42' | int }}"), json!(42));
    assert_eq!(r("{{ '1.5' | float }}"), json!(1.5));
    assert_eq!(r("{{ 5 | string }}"), json!("5"));
    assert_eq!(r("{{ true | string }}"), json!("True"));
    assert_eq!(
        r("{{ 'AbC' | lower }}-{{ 'abc' | upper }}"),
        json!("abc-ABC")
    );
    assert_eq!(r("{{ '  x ' | trim }}"), json!("x"));
    assert_eq!(r("{{ 'a-b-c' | replace('-', '+') }}"), json!("a+b+c"));
    assert_eq!(
        r("{{ l | length }}/{{ l | count }}/{{ s | length }}"),
        json!("3/3/3")
    );
    assert_eq!(r("{{ l | first }}/{{ l | last }}"), json!("3/2"));
    assert_eq!(r("{{ l | join(',') }}"), json!("3,1,2"));
    assert_eq!(r("{{ [1, true, none] | join(' ') }}"), json!("1 True None"));
    assert_eq!(r("{{ 'a b  c' | split }}"), json!(["a", "b", "c"]));
    assert_eq!(r("{{ 'a,b' | split(',') }}"), json!(["a", "b"]));
    assert_eq!(r("{{ ['a', 'A', 'b'] | unique }}"), json!(["a", "b"]));
    assert_eq!(r("{{ l | sort }}"), json!([1, 2, 3]));
    assert_eq!(r("{{ l | sort(reverse=true) }}"), json!([3, 2, 1]));
    assert_eq!(r("{{ l | reverse | list }}"), json!([2, 1, 3]));
    assert_eq!(
        r("{{ l | min }}/{{ l | max }}/{{ l | sum }}"),
        json!("1/3/6")
    );
    assert_eq!(r("{{ 'ab' | list }}"), json!(["a", "b"]));
    assert_eq!(r("{{ l | select('>', 1) | list }}"), json!([3, 2]));
    assert_eq!(r("{{ l | reject('>', 1) | list }}"), json!([1]));
    assert_eq!(
        r("{{ users | selectattr('admin') | map(attribute='name') | list }}"),
        json!(["al"])
    );
    assert_eq!(
        r("{{ users | rejectattr('admin') | map(attribute='uid') | list }}"),
        json!([2])
    );
    assert_eq!(
        r("{{ users | selectattr('uid', 'equalto', 2) | map(attribute='name') | first }}"),
        json!("bo")
    );
    assert_eq!(r("{{ l | map('string') | list }}"), json!(["3", "1", "2"]));
    assert_eq!(r("{{ [1, [2, [3, none]]] | flatten }}"), json!([1, 2, 3]));
    assert_eq!(
        r("{{ [1, [2, [3]]] | flatten(levels=1) }}"),
        json!([1, 2, [3]])
    );
    assert_eq!(
        r("{{ [1, 2] | zip(['a', 'b']) | list }}"),
        json!([[1, "a"], [2, "b"]])
    );
    assert_eq!(r("{{ range(3) | list }}"), json!([0, 1, 2]));
    assert_eq!(r("{{ dict(a=1) }}"), json!({"a": 1}));
    assert_eq!(
        r("{{ dict(['x', 'y'] | zip([1, 2])) }}"),
        json!({"x": 1, "y": 2})
    );
}

#[test]
fn dict_filters() {
    assert_eq!(
        r("{{ {'a': 1, 'b': 2} | dict2items }}"),
        json!([{"key": "a", "value": 1}, {"key": "b", "value": 2}])
    );
    assert_eq!(
        r("{{ {'a': 1} | dict2items(key_name='k', value_name='v') }}"),
        json!([{"k": "a", "v": 1}])
    );
    assert_eq!(
        r("{{ [{'key': 'a', 'value': 1}] | items2dict }}"),
        json!({"a": 1})
    );
    assert_eq!(
        r("{{ {'a': {'x': 1}, 'b': 1} | combine({'a': {'y': 2}}) }}"),
        json!({"a": {"y": 2}, "b": 1})
    );
    assert_eq!(
        r("{{ {'a': {'x': 1}} | combine({'a': {'y': 2}}, {'c': 3}, recursive=True) }}"),
        json!({"a": {"x": 1, "y": 2}, "c": 3})
    );
    assert_eq!(
        r("{{ {'a': [1]} | combine({'a': [2]}, list_merge='append') }}"),
        json!({"a": [1, 2]})
    );
    assert_eq!(
        r("{{ [{'a': 1}, {'b': 2}] | combine }}"),
        json!({"a": 1, "b": 2})
    );
    assert!(
        rerr("{{ {} | combine(1) }}")
            .message
            .contains("combine expects dictionaries")
    );
    assert_eq!(
        r("{{ d.items() | list }}"),
        json!([["b", 1], ["a", [1, 2]], ["c", {"x": "y"}]])
    );
    assert_eq!(r("{{ d.keys() | list }}"), json!(["b", "a", "c"]));
    assert_eq!(r("{{ d.get('zz', 9) }}"), json!(9));
}

#[test]
fn text_filters() {
    assert_eq!(r("{{ true | ternary('y', 'n') }}"), json!("y"));
    assert_eq!(r("{{ none | ternary('y', 'n', 'z') }}"), json!("z"));
    assert_eq!(r("{{ 'hi' | b64encode }}"), json!("aGk="));
    assert_eq!(r("{{ 'aGk=' | b64decode }}"), json!("hi"));
    assert_eq!(
        r("{{ 'a' | b64encode(encoding='utf-16-le') }}"),
        json!("YQA=")
    );
    assert_eq!(
        r("{{ {'a': 'é', 'b': [1, 1.0]} | to_json }}"),
        json!(r#"{"a": "\u00e9", "b": [1, 1.0]}"#)
    );
    assert_eq!(
        r("{{ {'b': 1, 'a': 2} | to_nice_json }}"),
        json!("{\n    \"a\": 2,\n    \"b\": 1\n}")
    );
    assert_eq!(
        r("{{ '{\"a\": [1, true]}' | from_json }}"),
        json!({"a": [1, true]})
    );
    assert_eq!(
        r("{{ d | to_yaml }}"),
        json!("a: [1, 2]\nb: 1\nc: {x: y}\n")
    );
    assert_eq!(
        r("{{ d | to_nice_yaml }}"),
        json!("a:\n- 1\n- 2\nb: 1\nc:\n    x: y\n")
    );
    assert_eq!(
        r("{{ 'a: [1, yes]' | from_yaml }}"),
        json!({"a": [1, true]})
    );
    assert_eq!(
        r("{{ 'v1.2.3' | regex_replace('^v(\\d+)', 'V\\1') }}"),
        json!("V1.2.3")
    );
    assert_eq!(
        r("{{ 'ab12cd' | regex_replace('(?P<n>\\d+)', '<\\g<n>>') }}"),
        json!("ab<12>cd")
    );
    assert_eq!(
        r("{{ 'abc' | regex_replace('B', 'x', ignorecase=True) }}"),
        json!("axc")
    );
    assert_eq!(
        r("{{ 'k3s v1.28' | regex_search('v[0-9.]+') }}"),
        json!("v1.28")
    );
    assert_eq!(
        r("{{ 'k=v' | regex_search('(\\w)=(\\w)', '\\2', '\\1') }}"),
        json!(["v", "k"])
    );
    assert_eq!(r("{{ 'abc' | regex_search('z') }}"), Json::Null);
    assert_eq!(
        r("{{ 'a1b22' | regex_findall('\\d+') }}"),
        json!(["1", "22"])
    );
    assert_eq!(
        r("{{ 'a=1 b=2' | regex_findall('(\\w)=(\\d)') }}"),
        json!([["a", "1"], ["b", "2"]])
    );
    assert_eq!(r("{{ 'a.b*c' | regex_escape }}"), json!("a\\.b\\*c"));
    assert_eq!(r("{{ \"it's\" | quote }}"), json!(r#"'it'"'"'s'"#));
    assert_eq!(r("{{ 'safe/path-1' | quote }}"), json!("safe/path-1"));
    assert_eq!(
        r("{{ '/etc/rancher/k3s.yaml' | basename }}"),
        json!("k3s.yaml")
    );
    assert_eq!(
        r("{{ '/etc/rancher/k3s.yaml' | dirname }}"),
        json!("/etc/rancher")
    );
    assert_eq!(r("{{ '/x' | dirname }}"), json!("/"));
    assert_eq!(
        r("{{ 'a/b.tar.gz' | splitext }}"),
        json!(["a/b.tar", ".gz"])
    );
    assert_eq!(r("{{ '.bashrc' | splitext }}"), json!([".bashrc", ""]));
    let home = std::env::var("HOME").unwrap_or_default();
    if !home.is_empty() {
        assert_eq!(
            r("{{ '~/x' | expanduser }}"),
            json!(format!("{}/x", home.trim_end_matches('/')))
        );
    }
    assert_eq!(
        r("{{ 'abc' | hash('sha1') }}"),
        json!("a9993e364706816aba3e25717850c26c9cd0d89d")
    );
    assert_eq!(
        r("{{ 'abc' | hash('md5') }}"),
        json!("900150983cd24fb0d6963f7d28e17f72")
    );
    assert_eq!(
        r("{{ 'abc' | hash('sha256') }}"),
        json!("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    );
    assert_eq!(
        r("{{ 'abc' | checksum }}"),
        json!("a9993e364706816aba3e25717850c26c9cd0d89d")
    );
    assert!(
        rerr("{{ 'x' | hash('crc') }}")
            .message
            .contains("unsupported hash type 'crc'")
    );
    assert_eq!(r("{{ n | mandatory }}"), json!(5));
    assert_eq!(
        rerr("{{ nope | mandatory }}").undefined.as_deref(),
        Some("nope")
    );
    assert!(
        rerr("{{ nope | mandatory('set nope!') }}")
            .message
            .contains("set nope!")
    );
    assert_eq!(r("{{ [1, 2, 3] | difference([2]) }}"), json!([1, 3]));
    assert_eq!(r("{{ [1, 2, 3] | intersect([3, 2, 9]) }}"), json!([2, 3]));
    assert_eq!(r("{{ [1, 2] | union([2, 5]) }}"), json!([1, 2, 5]));
    assert_eq!(
        r("{{ [1, 2] | symmetric_difference([2, 5]) }}"),
        json!([1, 5])
    );
    assert_eq!(
        r("{{ groups['all'] | map('extract', hostvars, 'ansible_host') | list }}"),
        json!(["10.231.0.10", "10.231.0.11"])
    );
    // a2 is in a group but has no hostvars entry
    let e = rerr("{{ groups['agents'] | map('extract', hostvars, 'ansible_host') | list }}");
    assert!(
        e.message.contains("hostvars has no host 'a2'"),
        "{}",
        e.message
    );
    assert_eq!(
        r("{{ n | type_debug }}/{{ s | type_debug }}"),
        json!("int/str")
    );
    assert_eq!(r("{{ 'a,b'.split(',') }}"), json!(["a", "b"]));
    assert_eq!(
        r("{{ s.startswith('ab') and s.endswith(('x', 'c')) }}"),
        json!(true)
    );
    assert_eq!(r("{{ ' x '.strip() ~ s.upper() }}"), json!("xABC"));
}

#[test]
fn jinja_tests() {
    assert_eq!(
        r(
            "{{ res_ok is succeeded }}/{{ res_ok is success }}/{{ res_fail is failed }}/{{ res_fail is failure }}"
        ),
        json!("True/True/True/True")
    );
    assert_eq!(
        r("{{ res_ok is changed }}/{{ res_fail is change }}/{{ res_loop is changed }}"),
        json!("True/False/True")
    );
    assert_eq!(
        r("{{ res_skip is skipped }}/{{ res_ok is skip }}"),
        json!("True/False")
    );
    assert!(
        rerr("{{ 'x' is failed }}")
            .message
            .contains("expects a registered task result")
    );
    assert_eq!(
        r("{{ 'k3s-agent' is match('k3s') }}/{{ 'x k3s' is match('k3s') }}"),
        json!("True/False")
    );
    assert_eq!(
        r("{{ 'x k3s' is search('k3s') }}/{{ 'X' is regex('x', ignorecase=true) }}"),
        json!("True/True")
    );
    assert_eq!(
        r("{{ l is contains(1) }}/{{ 2 in l }}/{{ 9 in l }}"),
        json!("True/True/False")
    );
    assert_eq!(
        r("{{ '1.28.3' is version('1.27', '>=') }}/{{ '1.9' is version('1.10', 'lt') }}"),
        json!("True/True")
    );
    assert_eq!(
        r("{{ '1.2.3' is version('1.2.3', '==', version_type='semver') }}"),
        json!(true)
    );
    assert_eq!(
        r("{{ 'x' is truthy }}/{{ '' is falsy }}/{{ 'no' is truthy(convert_bool=True) }}"),
        json!("True/True/False")
    );
    assert_eq!(
        r("{{ [1] is subset([1, 2]) }}/{{ [1, 2] is superset([2]) }}"),
        json!("True/True")
    );
    assert_eq!(
        r(
            "{{ none is none }}/{{ s is string }}/{{ n is number }}/{{ n is integer }}/{{ f is float }}"
        ),
        json!("True/True/True/True/True")
    );
    assert_eq!(
        r(
            "{{ true is boolean }}/{{ d is mapping }}/{{ l is sequence }}/{{ s is sequence }}/{{ d is iterable }}"
        ),
        json!("True/True/True/True/True")
    );
    assert_eq!(
        r("{{ [true, false] is any }}/{{ [true, false] is all }}"),
        json!("True/False")
    );
}

#[test]
fn lookups() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("files")).unwrap();
    std::fs::create_dir_all(dir.path().join("templates")).unwrap();
    std::fs::write(dir.path().join("files/token.txt"), "K10secret\n\n").unwrap();
    std::fs::write(dir.path().join("top.txt"), "top").unwrap();
    std::fs::write(
        dir.path().join("templates/t.j2"),
        "n={{ n }}\n{% if true %}\nyes\n{% endif %}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("templates/inc.j2"),
        "[{% include 'part.j2' %}]",
    )
    .unwrap();
    std::fs::write(dir.path().join("templates/part.j2"), "{{ s }}").unwrap();
    let tp = Templar::new(TemplarOptions {
        search_paths: vec![dir.path().to_path_buf()],
    });
    let c = base();
    let rr = |s: &str| tp.render(s, &c).unwrap_or_else(|e| panic!("{s}: {e}"));
    assert_eq!(rr("{{ lookup('file', 'token.txt') }}"), json!("K10secret"));
    assert_eq!(
        rr("{{ lookup('ansible.builtin.file', 'top.txt') }}"),
        json!("top")
    );
    assert_eq!(
        rr("{{ query('file', 'token.txt', 'top.txt') }}"),
        json!(["K10secret", "top"])
    );
    assert_eq!(
        rr("{{ lookup('file', 'token.txt', 'top.txt') }}"),
        json!("K10secret,top")
    );
    assert_eq!(
        rr("{{ lookup('template', tpl_name) }}"),
        json!("n=5\nyes\n")
    );
    assert_eq!(rr("{{ lookup('template', 'inc.j2') }}"), json!("[abc]"));
    assert_eq!(rr("{{ lookup('vars', 'n') }}"), json!(5));
    assert_eq!(
        rr("{{ lookup('vars', 'url') }}"),
        json!("https://10.0.0.1:6443")
    );
    assert_eq!(rr("{{ lookup('vars', 'nope', default='d') }}"), json!("d"));
    assert_eq!(
        rr("{{ lookup('pipe', 'echo hi; echo there') }}"),
        json!("hi\nthere")
    );
    assert_eq!(rr("{{ q('pipe', 'echo a') }}"), json!(["a"]));
    let home = std::env::var("HOME").unwrap_or_default();
    assert_eq!(rr("{{ lookup('env', 'HOME') }}"), json!(home));
    assert_eq!(
        rr("{{ lookup('env', 'MIXOP_SURELY_UNSET_VAR', default='dflt') }}"),
        json!("dflt")
    );
    assert_eq!(
        rr("{{ lookup('env', 'MIXOP_SURELY_UNSET_VAR') | default('u') }}"),
        json!("u")
    );
    assert_eq!(
        rr("{{ lookup('file', 'missing.txt', errors='ignore') }}"),
        Json::Null
    );

    let e = tp
        .render("{{ lookup('file', 'missing.txt') }}", &c)
        .unwrap_err();
    assert!(
        e.message.contains("could not find file 'missing.txt'"),
        "{}",
        e.message
    );
    let e = tp.render("{{ lookup('dig', 'x') }}", &c).unwrap_err();
    assert!(
        e.message.contains("lookup plugin 'dig' is not supported"),
        "{}",
        e.message
    );
    let e = tp.render("{{ lookup('pipe', 'exit 3') }}", &c).unwrap_err();
    assert!(e.message.contains("returned 3"), "{}", e.message);

    // render_file: same environment, trim_blocks, trailing newline kept
    let out = tp
        .render_file(&dir.path().join("templates/t.j2"), &c)
        .unwrap();
    assert_eq!(out, "n=5\nyes\n");
    let e = tp
        .render_file(&dir.path().join("templates/nope.j2"), &c)
        .unwrap_err();
    assert!(e.message.contains("nope.j2"), "{}", e.message);
    std::fs::write(
        dir.path().join("templates/bad.j2"),
        "a\nb\n{{ undefined_in_file }}\n",
    )
    .unwrap();
    let e = tp
        .render_file(&dir.path().join("templates/bad.j2"), &c)
        .unwrap_err();
    assert_eq!(e.undefined.as_deref(), Some("undefined_in_file"));
    assert_eq!(e.line, Some(3));
    assert!(e.message.contains("bad.j2"), "{}", e.message);
}

#[test]
fn templar_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Templar>();
}

mod no_panic {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn arbitrary_strings_never_panic(s in "\\PC{0,48}") {
            let tp = t();
            let c = base();
            let _ = tp.render(&s, &c);
            let _ = tp.check_template(&s);
            let _ = tp.check_expr(&s);
            let _ = tp.eval(&s, &c);
            let _ = tp.eval_bool(&Json::String(s.clone()), &c);
        }

        #[test]
        fn template_like_strings_never_panic(
            s in "[{}%#|'\"()\\[\\].,:~+*/<>=! a-z0-9_-]{0,40}",
        ) {
            let tp = t();
            let c = base();
            for candidate in [s.clone(), format!("{{{{ {s} }}}}"), format!("{{% {s} %}}")] {
                let _ = tp.render(&candidate, &c);
                let _ = tp.check_template(&candidate);
                let _ = tp.eval(&candidate, &c);
            }
        }
    }
}

/// Measurement, not a pass/fail test: `cargo test --lib template::unit_tests::perf -- --ignored --nocapture`.
#[test]
#[ignore]
fn perf_many_hosts_many_vars() {
    let mut hostvars = BTreeMap::new();
    let mk = |h: usize| {
        let mut m = serde_json::Map::new();
        m.insert("inventory_hostname".into(), json!(format!("h{h}")));
        m.insert("ansible_host".into(), json!(format!("10.231.0.{h}")));
        for i in 0..300 {
            m.insert(
                format!("var_{i}"),
                json!({"nested": {"list": [1, 2, 3], "s": "x".repeat(50)}}),
            );
        }
        m.insert("url".into(), json!("https://{{ ansible_host }}:6443"));
        m.insert(
            "ansible_facts".into(),
            json!({"os_family": "Debian", "mounts": vec![json!({"mount": "/", "size": 1}); 50]}),
        );
        Arc::new(m)
    };
    for h in 0..64 {
        hostvars.insert(format!("h{h}"), mk(h));
    }
    let ctx = Vars {
        vars: hostvars["h0"].clone(),
        hostvars: Arc::new(hostvars),
        data_vars: Arc::default(),
    };
    let tp = t();
    let cases = [
        "{{ ansible_facts.os_family == 'Debian' }}",
        "{{ hostvars['h5'].url }}",
        "k3s agent --server {{ hostvars['h1'].url }} --node-ip {{ ansible_host }}",
        "{{ var_17.nested.list | length }}",
        "plain string without templates",
    ];
    for c in cases {
        let n = 20_000;
        let start = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(tp.render(c, &ctx).unwrap());
        }
        let per = start.elapsed() / n;
        println!("{per:>10.2?} per render  {c}");
    }
    let start = std::time::Instant::now();
    for _ in 0..20_000 {
        std::hint::black_box(
            tp.eval_bool(
                &json!("ansible_facts.os_family == 'Debian' and var_3 is defined"),
                &ctx,
            )
            .unwrap(),
        );
    }
    println!("{:>10.2?} per eval_bool", start.elapsed() / 20_000);
}

/// Documented difference: minijinja's strict mode does not chain undefined values, so an
/// attribute of an undefined variable is an error (naming the variable) even under `default`
/// or `is defined`; Ansible yields undefined there. Write `(foo | default({})).bar` instead.
#[test]
fn attribute_of_undefined_is_an_error_naming_the_variable() {
    let e = rerr("{{ foo.bar | default(1) }}");
    assert_eq!(e.undefined.as_deref(), Some("foo"));
    assert_eq!(r("{{ (foo | default({})).bar | default(1) }}"), json!(1));
    assert_eq!(
        r("{{ foo is defined and foo.bar is defined }}"),
        json!(false)
    );
}

#[test]
fn deeply_nested_input_is_an_error_not_a_crash() {
    let tp = t();
    let c = base();
    for (open, close) in [("(", ")"), ("[", "]"), ("{'a': ", "}")] {
        let s = format!("{{{{ {}1{} }}}}", open.repeat(5000), close.repeat(5000));
        assert!(tp.render(&s, &c).is_err());
        assert!(tp.check_template(&s).is_err());
    }
    let s = "{% if true %}".repeat(3000);
    assert!(tp.check_template(&s).is_err());
}

#[test]
fn data_variables_are_never_rendered() {
    let mut c = ctx(json!({"out": {"stdout": "{{ not_a_var }}"}, "tpl": "{{ 1 + 1 }}"}));
    let mut data = BTreeMap::new();
    data.insert(
        String::new(),
        Arc::new(std::collections::BTreeSet::from(["out".to_string()])),
    );
    c.data_vars = Arc::new(data);
    let tp = t();
    assert_eq!(
        tp.render("{{ out.stdout }}", &c).unwrap(),
        json!("{{ not_a_var }}")
    );
    assert_eq!(tp.render("{{ tpl }}", &c).unwrap(), json!(2));
}

#[test]
fn ipwrap_brackets_ipv6_only() {
    let tp = t();
    assert_eq!(
        tp.render_str(
            "{{ '10.0.0.1' | ipwrap }} {{ 'fd00::1' | ipwrap }} {{ 'host' | ipwrap }} {{ ['::1', 'a'] | ipwrap | join(',') }}",
            &base()
        )
        .unwrap(),
        "10.0.0.1 [fd00::1] host [::1],a"
    );
}

#[test]
fn fileglob_first_found_and_password_lookups() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("files/conf")).unwrap();
    for f in ["b.conf", "a.conf", "c.txt"] {
        std::fs::write(d.path().join("files/conf").join(f), "x").unwrap();
    }
    std::fs::write(d.path().join("files/debian.yml"), "x").unwrap();
    let tp = Templar::new(TemplarOptions {
        search_paths: vec![d.path().to_path_buf()],
    });
    let v = base();
    let files = tp
        .render_str(
            "{{ query('fileglob', 'conf/*.conf') | map('basename') | join(',') }}",
            &v,
        )
        .unwrap();
    assert_eq!(files, "a.conf,b.conf");
    let found = tp
        .render_str(
            "{{ lookup('first_found', ['redhat.yml', 'debian.yml']) | basename }}",
            &v,
        )
        .unwrap();
    assert_eq!(found, "debian.yml");
    let e = tp
        .render_str("{{ lookup('first_found', 'none.yml') }}", &v)
        .unwrap_err();
    assert!(e.message.contains("No file was found"), "{}", e.message);
    assert_eq!(
        tp.render_str(
            "{{ lookup('first_found', 'none.yml', skip=true) | default('-', true) }}",
            &v
        )
        .unwrap(),
        "-"
    );
    // Generated once, stored 0600, read back the same on the next lookup.
    let pw1 = tp
        .render_str(
            "{{ lookup('password', 'creds/db length=32 chars=digits') }}",
            &v,
        )
        .unwrap();
    assert_eq!(pw1.len(), 32);
    assert!(pw1.chars().all(|c| c.is_ascii_digit()), "{pw1}");
    let pw2 = tp
        .render_str(
            "{{ lookup('password', 'creds/db length=32 chars=digits') }}",
            &v,
        )
        .unwrap();
    assert_eq!(pw1, pw2);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.path().join("creds/db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let fresh = tp
        .render_str("{{ lookup('password', '/dev/null') }}", &v)
        .unwrap();
    assert_eq!(fresh.len(), 20);
}
