//! Every PowerShell script mixop ships parses with a real PowerShell grammar
//! (tree-sitter-powershell): no ERROR or MISSING nodes. PowerShell itself cannot run here, so
//! this is the check that a script is at least well-formed.

use mixop::powershell::script as ps;

fn problems(source: &str) -> Vec<String> {
    let mut parser = tree_sitter::Parser::new();
    parser
        .set_language(&tree_sitter_powershell::LANGUAGE.into())
        .expect("PowerShell grammar loads");
    let tree = parser.parse(source, None).expect("parse");
    let mut out = Vec::new();
    let mut cursor = tree.walk();
    let mut stack = vec![tree.root_node()];
    while let Some(node) = stack.pop() {
        if node.is_error() || node.is_missing() {
            let p = node.start_position();
            let line = source.lines().nth(p.row).unwrap_or("");
            out.push(format!(
                "{} at line {}, column {}: {}",
                if node.is_missing() {
                    "MISSING"
                } else {
                    "ERROR"
                },
                p.row + 1,
                p.column + 1,
                line.trim()
            ));
        }
        for child in node.children(&mut cursor) {
            stack.push(child);
        }
    }
    out
}

#[test]
fn every_shipped_script_parses() {
    let mut scripts = mixop::powershell::shipped_scripts();
    scripts.push((
        "connection/winrm put_script",
        ps::put_script("C:\\x\\it's.txt", "ab"),
    ));
    scripts.push((
        "connection/winrm get_script",
        ps::get_script("C:\\x\\it's.txt"),
    ));
    assert!(scripts.len() >= 6, "{} scripts", scripts.len());
    let mut failures = Vec::new();
    for (name, text) in &scripts {
        for p in problems(text) {
            failures.push(format!("{name}: {p}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_grammar_check_catches_broken_scripts() {
    assert!(!problems("if ($x) { Write-Output 'a' ").is_empty());
    assert!(!problems("$h = @{ a = 1 ").is_empty());
    assert!(problems("param($Mixop)\nreturn @{ ok = $true }\n").is_empty());
}
