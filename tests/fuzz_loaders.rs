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
        if let Err(d) = mixop::playbook::load_playbook(&path, &templar, &Default::default()) {
            // Every error renders without panicking, with or without a location.
            let _ = d.render(false);
        }
    }

    /// Vault envelopes: random, truncated and altered ones are errors, never panics.
    #[test]
    fn vault_envelopes_never_panic(
        cut in 0usize..700,
        flip in proptest::option::of((0usize..700, any::<u8>())),
        header in prop_oneof![
            Just("$ANSIBLE_VAULT;1.1;AES256".to_string()),
            Just("$ANSIBLE_VAULT;1.2;AES256;prod".to_string()),
            Just("$ANSIBLE_VAULT;1.2;AES256;".to_string()),
            Just("$ANSIBLE_VAULT;1.1".to_string()),
            "\\$ANSIBLE_VAULT[ -~]{0,30}",
        ],
        body in "[0-9a-f\n ]{0,300}",
    ) {
        const VALID: &str = include_str!("fixtures/vault/vars-1.1.yml");
        let mut data = VALID.as_bytes()[..cut.min(VALID.len())].to_vec();
        if let Some((at, byte)) = flip
            && let Some(b) = data.get_mut(at)
        {
            *b = byte;
        }
        for candidate in [data, format!("{header}\n{body}").into_bytes()] {
            if let Ok(env) = mixop::vault::Envelope::parse(&candidate) {
                let _ = env.decrypt(b"hunter2");
            }
        }
        // Through the YAML loader (no password is installed here: an error, not a panic).
        let doc = format!("x: !vault |\n  {header}\n  {}\n", body.replace('\n', "\n  "));
        let _ = mixop::yaml::load_str(Source::new("fuzz.yml", doc));
    }

    #[test]
    fn arbitrary_unicode_never_panics(text in "\\PC{0,200}") {
        let _ = mixop::yaml::load_str(Source::new("fuzz.yml", text.clone()));
        let _ = mixop::inventory::Inventory::from_yaml_str("inv.yml", &text);
    }
}
