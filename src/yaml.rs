//! YAML loading that keeps every node's position, so errors point at the user's line.
//!
//! Scalars are resolved like PyYAML (YAML 1.1), which is what Ansible users' files are written
//! for: `yes`/`no`/`on`/`off` are booleans, `0644` is the octal number 420, `~` is null.
//! Duplicate keys are an error (Ansible only warns and keeps the last). Merge keys (`<<`) work.
//! Ansible Vault: `!vault` values are decrypted here (a string, as in Ansible), and a whole
//! encrypted file is decrypted before parsing; the values of either are registered as secrets.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use serde_json::{Map, Number, Value};

use crate::diag::{Diag, Loc, Result, Source};

#[derive(Clone, Debug)]
pub struct Node {
    pub loc: Loc,
    pub kind: Kind,
}

#[derive(Clone, Debug)]
pub enum Kind {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Null => "null",
            Kind::Bool(_) => "a boolean",
            Kind::Int(_) | Kind::Float(_) => "a number",
            Kind::Str(_) => "a string",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            Kind::Map(m) => Some(m),
            _ => None,
        }
    }
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            Kind::Seq(s) => Some(s),
            _ => None,
        }
    }
    pub fn is_null(&self) -> bool {
        matches!(self.kind, Kind::Null)
    }
    /// Looks a key up in a mapping.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, v)| v)
    }
    /// The key as text (scalars of any type are accepted as keys, like Ansible's).
    pub fn key_text(&self) -> String {
        match &self.kind {
            Kind::Str(s) => s.clone(),
            Kind::Null => String::new(),
            Kind::Bool(b) => if *b { "True" } else { "False" }.to_string(),
            Kind::Int(i) => i.to_string(),
            Kind::Float(f) => f.to_string(),
            _ => self.to_value().to_string(),
        }
    }

    pub fn expect_map(&self, what: &str) -> Result<&[(Node, Node)]> {
        self.as_map().ok_or_else(|| {
            Diag::input(format!(
                "{what} must be a mapping, found {}",
                self.type_name()
            ))
            .at(&self.loc)
        })
    }
    pub fn expect_seq(&self, what: &str) -> Result<&[Node]> {
        self.as_seq().ok_or_else(|| {
            Diag::input(format!("{what} must be a list, found {}", self.type_name())).at(&self.loc)
        })
    }
    pub fn expect_str(&self, what: &str) -> Result<&str> {
        self.as_str().ok_or_else(|| {
            Diag::input(format!(
                "{what} must be a string, found {}",
                self.type_name()
            ))
            .at(&self.loc)
        })
    }

    /// Converts to a plain value (positions dropped). Numbers stay numbers.
    pub fn to_value(&self) -> Value {
        match &self.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Int(i) => Value::Number((*i).into()),
            Kind::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Kind::Str(s) => Value::String(s.clone()),
            Kind::Seq(items) => Value::Array(items.iter().map(Node::to_value).collect()),
            Kind::Map(pairs) => {
                let mut m = Map::new();
                for (k, v) in pairs {
                    m.insert(k.key_text(), v.to_value());
                }
                Value::Object(m)
            }
        }
    }
}

/// Reads and parses a file (decrypting a vault-encrypted one); returns its documents.
pub fn load_file(path: &Path) -> Result<Vec<Node>> {
    let (text, secret) = crate::vault::read_text(path)?;
    load_str(if secret {
        Source::decrypted(path, text)
    } else {
        Source::new(path, text)
    })
}

/// Parses a source's documents.
pub fn load_str(src: Arc<Source>) -> Result<Vec<Node>> {
    let mut builder = Builder {
        offsets: char_offsets(&src.text),
        src: src.clone(),
        stack: Vec::new(),
        anchors: HashMap::new(),
        docs: Vec::new(),
    };
    let text: &str = &src.text;
    for ev in Parser::new_from_str(text) {
        let (ev, span) = ev.map_err(|e| {
            let m = e.marker();
            let offset = builder.byte(m.index());
            Diag::input(format!("invalid YAML: {}", e.info()))
                .at(&builder.loc_from(offset, 1, m.line(), m.col()))
                .hint("check the indentation and quoting around this line")
        })?;
        builder.event(ev, span)?;
    }
    Ok(builder.docs)
}

/// Byte offset of every char (plus the end), so positions from the parser (in chars) map to
/// bytes in O(1): loading stays linear in the file size.
fn char_offsets(text: &str) -> Vec<usize> {
    let mut v: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
    v.push(text.len());
    v
}

enum Frame {
    Seq(Loc, usize, Vec<Node>),
    Map(Loc, usize, Vec<(Node, Node)>, Option<Node>, Vec<String>),
}

struct Builder {
    offsets: Vec<usize>,
    src: Arc<Source>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    docs: Vec<Node>,
}

impl Builder {
    fn byte(&self, char_index: usize) -> usize {
        self.offsets
            .get(char_index)
            .copied()
            .unwrap_or(self.src.text.len())
    }

    fn loc_from(&self, offset: usize, len: usize, line: usize, col: usize) -> Loc {
        Loc {
            src: self.src.clone(),
            offset,
            len,
            line: line.max(1),
            col: col + 1,
        }
    }

    fn loc(&self, span: Span) -> Loc {
        let start = self.byte(span.start.index());
        let end = self.byte(span.end.index()).max(start);
        self.loc_from(start, end - start, span.start.line(), span.start.col())
    }

    fn event(&mut self, ev: Event<'_>, span: Span) -> Result<()> {
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let loc = self.loc(span);
                let tag = tag.map(|t| format!("{}{}", t.handle, t.suffix));
                // Every value of a decrypted file is a secret (keys are names, not secrets).
                let is_key = matches!(self.stack.last(), Some(Frame::Map(_, _, _, None, _)));
                let kind = resolve_scalar(&text, style, tag.as_deref(), &loc);
                if self.src.secret && !is_key && !matches!(kind, Ok(Kind::Bool(_) | Kind::Null)) {
                    crate::secret::register(&text);
                }
                let kind = kind?;
                self.push(Node { loc, kind }, anchor)
            }
            Event::SequenceStart(anchor, _) => {
                self.stack
                    .push(Frame::Seq(self.loc(span), anchor, Vec::new()));
                Ok(())
            }
            Event::MappingStart(anchor, _) => {
                self.stack.push(Frame::Map(
                    self.loc(span),
                    anchor,
                    Vec::new(),
                    None,
                    Vec::new(),
                ));
                Ok(())
            }
            Event::SequenceEnd => match self.stack.pop() {
                Some(Frame::Seq(loc, anchor, items)) => self.push(
                    Node {
                        loc,
                        kind: Kind::Seq(items),
                    },
                    anchor,
                ),
                _ => Err(Diag::internal("unbalanced YAML sequence events")),
            },
            Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Map(loc, anchor, pairs, _, _)) => self.push(
                    Node {
                        loc,
                        kind: Kind::Map(pairs),
                    },
                    anchor,
                ),
                _ => Err(Diag::internal("unbalanced YAML mapping events")),
            },
            Event::Alias(id) => {
                let loc = self.loc(span);
                let node = self
                    .anchors
                    .get(&id)
                    .cloned()
                    .ok_or_else(|| Diag::input("alias refers to an unknown anchor").at(&loc))?;
                self.push(node, 0)
            }
            Event::DocumentEnd
            | Event::DocumentStart(_)
            | Event::StreamStart
            | Event::StreamEnd
            | Event::Nothing => Ok(()),
        }
    }

    fn push(&mut self, node: Node, anchor: usize) -> Result<()> {
        if anchor != 0 {
            if self.anchors.len() > 10_000 {
                return Err(Diag::input("too many YAML anchors").at(&node.loc));
            }
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.docs.push(node),
            Some(Frame::Seq(_, _, items)) => items.push(node),
            Some(Frame::Map(_, _, pairs, pending, merged)) => match pending.take() {
                None => *pending = Some(node),
                Some(key) => {
                    if key.as_str() == Some("<<") {
                        merge_into(pairs, node, merged)?;
                    } else {
                        let text = key.key_text();
                        if let Some(i) = merged.iter().position(|m| *m == text) {
                            // An explicit key overrides one that came from a merge.
                            merged.remove(i);
                            pairs.retain(|(k, _)| k.key_text() != text);
                        }
                        if let Some((first, _)) = pairs.iter().find(|(k, _)| k.key_text() == text) {
                            return Err(Diag::input(format!("duplicate key `{text}`"))
                                .at(&key.loc)
                                .hint(format!(
                                    "`{text}` is already set at line {}; remove one of them",
                                    first.loc.line
                                )));
                        }
                        pairs.push((key, node));
                    }
                }
            },
        }
        Ok(())
    }
}

/// `<<: *anchor` or `<<: [*a, *b]`: copy keys that are not set explicitly.
fn merge_into(pairs: &mut Vec<(Node, Node)>, node: Node, merged: &mut Vec<String>) -> Result<()> {
    let sources: Vec<Node> = match node.kind {
        Kind::Seq(items) => items,
        _ => vec![node],
    };
    for src in sources {
        let Kind::Map(src_pairs) = src.kind else {
            return Err(
                Diag::input("a merge key `<<` needs a mapping or a list of mappings").at(&src.loc),
            );
        };
        for (k, v) in src_pairs {
            let text = k.key_text();
            if !pairs
                .iter()
                .any(|(existing, _)| existing.key_text() == text)
            {
                merged.push(text);
                pairs.push((k, v));
            }
        }
    }
    Ok(())
}

fn resolve_scalar(text: &str, style: ScalarStyle, tag: Option<&str>, loc: &Loc) -> Result<Kind> {
    if let Some(tag) = tag {
        return match tag {
            "!!str" | "tag:yaml.org,2002:str" | "!unsafe" => Ok(Kind::Str(text.to_string())),
            "!!int" | "tag:yaml.org,2002:int" => resolve_plain(text)
                .filter(|k| matches!(k, Kind::Int(_)))
                .ok_or_else(|| Diag::input(format!("`{text}` is not an integer")).at(loc)),
            "!!float" | "tag:yaml.org,2002:float" => match resolve_plain(text) {
                Some(Kind::Int(i)) => Ok(Kind::Float(i as f64)),
                Some(k @ Kind::Float(_)) => Ok(k),
                _ => Err(Diag::input(format!("`{text}` is not a number")).at(loc)),
            },
            "!!bool" | "tag:yaml.org,2002:bool" => resolve_plain(text)
                .filter(|k| matches!(k, Kind::Bool(_)))
                .ok_or_else(|| Diag::input(format!("`{text}` is not a boolean")).at(loc)),
            "!!null" | "tag:yaml.org,2002:null" => Ok(Kind::Null),
            "!vault" | "!vault-encrypted" => Ok(Kind::Str(
                crate::vault::decrypt_value(text, "the `!vault` value").map_err(|d| d.at(loc))?,
            )),
            other => Err(Diag::input(format!("unsupported YAML tag `{other}`")).at(loc)),
        };
    }
    if style != ScalarStyle::Plain {
        return Ok(Kind::Str(text.to_string()));
    }
    Ok(resolve_plain(text).unwrap_or_else(|| Kind::Str(text.to_string())))
}

/// PyYAML's YAML 1.1 implicit resolvers (sexagesimal numbers excepted).
pub fn resolve_plain(text: &str) -> Option<Kind> {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Some(Kind::Null),
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Some(Kind::Bool(true));
        }
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Some(Kind::Bool(false));
        }
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Some(Kind::Float(f64::INFINITY));
        }
        "-.inf" | "-.Inf" | "-.INF" => return Some(Kind::Float(f64::NEG_INFINITY)),
        ".nan" | ".NaN" | ".NAN" => return Some(Kind::Float(f64::NAN)),
        _ => {}
    }
    let (neg, body) = match text.as_bytes()[0] {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if body.is_empty() {
        return None;
    }
    let digits = |s: &str, radix: u32| -> Option<i64> {
        let cleaned: String = s.chars().filter(|c| *c != '_').collect();
        if cleaned.is_empty() || !cleaned.chars().all(|c| c.is_digit(radix)) {
            return None;
        }
        i64::from_str_radix(&cleaned, radix).ok()
    };
    let int = if let Some(b) = body.strip_prefix("0b") {
        digits(b, 2)
    } else if let Some(h) = body.strip_prefix("0x") {
        digits(h, 16)
    } else if body.len() > 1
        && body.starts_with('0')
        && body.bytes().all(|c| c.is_ascii_digit() || c == b'_')
    {
        digits(&body[1..], 8)
    } else if body.as_bytes()[0].is_ascii_digit()
        && body.bytes().all(|c| c.is_ascii_digit() || c == b'_')
    {
        digits(body, 10)
    } else {
        None
    };
    if let Some(i) = int {
        return Some(Kind::Int(if neg { -i } else { i }));
    }
    // Floats need a dot in YAML 1.1 (`1e3` is a string there).
    let is_float = body.contains('.')
        && body
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | '_' | 'e' | 'E' | '+' | '-'))
        && body
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit() || c == '.')
        && body.chars().any(|c| c.is_ascii_digit());
    if is_float {
        let cleaned: String = body.chars().filter(|c| *c != '_').collect();
        if let Ok(f) = cleaned.parse::<f64>() {
            return Some(Kind::Float(if neg { -f } else { f }));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Node {
        load_str(Source::new("t.yml", text)).unwrap().remove(0)
    }

    #[test]
    fn yaml11_scalars() {
        let v = parse("a: yes\nb: 0644\nc: '0644'\nd: 1.5\ne: ~\nf: 1e3\ng: 0x1F\nh: -12\ni: on\n")
            .to_value();
        assert_eq!(v["a"], Value::Bool(true));
        assert_eq!(v["b"], Value::from(420));
        assert_eq!(v["c"], Value::from("0644"));
        assert_eq!(v["d"], Value::from(1.5));
        assert_eq!(v["e"], Value::Null);
        assert_eq!(v["f"], Value::from("1e3"));
        assert_eq!(v["g"], Value::from(31));
        assert_eq!(v["h"], Value::from(-12));
        assert_eq!(v["i"], Value::Bool(true));
    }

    #[test]
    fn positions_are_one_based() {
        let n = parse("- name: x\n  debug:\n    msg: hi\n");
        let task = &n.as_seq().unwrap()[0];
        let msg = task.get("debug").unwrap().get("msg").unwrap();
        assert_eq!((msg.loc.line, msg.loc.col), (3, 10));
    }

    #[test]
    fn duplicate_keys_are_errors() {
        let err = load_str(Source::new("t.yml", "a: 1\nb: 2\na: 3\n")).unwrap_err();
        assert!(
            err.to_string().starts_with("t.yml:3:1: duplicate key `a`"),
            "{err}"
        );
    }

    #[test]
    fn merge_keys_and_anchors() {
        let v = parse("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n").to_value();
        assert_eq!(v["other"]["x"], Value::from(1));
        assert_eq!(v["other"]["y"], Value::from(3));
    }

    #[test]
    fn syntax_error_has_position() {
        let err = load_str(Source::new("bad.yml", "a: [1, 2\nb: 3\n")).unwrap_err();
        assert!(err.to_string().starts_with("bad.yml:"), "{err}");
    }
}
