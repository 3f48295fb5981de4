//! Property tests: no input makes the YAML, playbook or inventory loaders panic; every failure
//! is a diagnostic.

use mixop::diag::Source;
use mixop::template::{Templar, TemplarOptions};
use proptest::prelude::*;

fn yamlish() -> impl Strategy<Value = String> {
    // Fragments that exercise YAML and playbook structure more than random bytes would.
    let frag = prop_oneof![
        Just("- hosts: all\n".to_string()),
        Just("  tasks:\n".to_string()),
        Just("    - command: ls\n".to_string()),
        Just("      when: x\n".to_string()),
        Just("      loop: \"{{ y }}\"\n".to_string()),
        Just("  - block:\n".to_string()),
        Just("      rescue: []\n".to_string()),
        Just("- import_playbook: pb.yml\n".to_string()),
        Just("&a {x: *a}\n".to_string()),
        Just("<<: *b\n".to_string()),
        Just("'unterminated\n".to_string()),
        Just("{{ }}\n".to_string()),
        Just("\t\n".to_string()),
        Just("? complex\n: key\n".to_string()),
        Just("!!binary aGk=\n".to_string()),
        Just("---\n".to_string()),
        "[ -~]{0,20}\n",
    ];
    prop::collection::vec(frag, 0..12).prop_map(|v| v.concat())
}

fn iniish() -> impl Strategy<Value = String> {
    // Lines of Ansible's INI inventory format, valid and broken, and Python-literal values.
    let frag = prop_oneof![
        Just("[web]\n".to_string()),
        Just("[web:children]\n".to_string()),
        Just("[db:vars]\n".to_string()),
        Just("[all:vars]\n".to_string()),
        Just("[db]\n".to_string()),
        Just("[x:bogus]\n".to_string()),
        Just("web\n".to_string()),
        Just("db # c\n".to_string()),
        Just("h[01:03]:22 a=1 b='x y' c=[1,{'k':(2,)}]\n".to_string()),
        Just("h[a:z:5] x=\"q\\\"\n".to_string()),
        Just("k = {'a': b'\\x41', 1: u'\\u00e9'} # c\n".to_string()),
        Just("k = 0x_1F, 1_0.5e-3, -.5, ...\n".to_string()),
        Just("; comment\n".to_string()),
        Just("n[1:9999999999]\n".to_string()),
        Just("[[[[[[[[[[((((((\n".to_string()),
        "[ -~]{0,24}\n",
    ];
    prop::collection::vec(frag, 0..12).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    #[test]
    fn ini_inventory_loader_never_panics(text in iniish()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hosts.ini");
        std::fs::write(&path, &text).unwrap();
        match mixop::inventory::Inventory::load(&[path]) {
            Ok(inv) => {
                let _ = inv.to_list_json();
                let _ = inv.graph(None, true);
            }
            Err(d) => {
                let _ = d.render(false);
            }
        }
    }

    #[test]
    fn yaml_loader_never_panics(text in yamlish()) {
        let _ = mixop::yaml::load_str(Source::new("fuzz.yml", text));
    }

    #[test]
    fn playbook_loader_never_panics(text in yamlish()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pb.yml");
        std::fs::write(&path, &text).unwrap();
        let templar = Templar::new(TemplarOptions::default());
        if let Err(d) = mixop::playbook::load_playbook(&path, &templar) {
            // Every error renders without panicking, with or without a location.
            let _ = d.render(false);
        }
    }

    #[test]
    fn arbitrary_unicode_never_panics(text in "\\PC{0,200}") {
        let _ = mixop::yaml::load_str(Source::new("fuzz.yml", text.clone()));
        let _ = mixop::inventory::Inventory::from_yaml_str("inv.yml", &text);
    }
}
