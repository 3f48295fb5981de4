//! Frames between mixop and its PowerShell wrapper: an ASCII header line
//! `MIXOP1 <KIND> <id> <length>` and a line of base64 (UTF-8 JSON) of exactly `length` characters.
//! Lines that are not frames (stray output) are set aside, never mistaken for answers.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;

/// Longest line kept while looking for frames; longer stray lines are cut (bounded memory).
const MAX_STRAY_LINE: usize = 4096;
/// Longest frame payload accepted (base64 characters).
pub const MAX_PAYLOAD: usize = 256 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub kind: String,
    pub id: u64,
    pub payload: Value,
}

/// Encodes one frame.
pub fn encode(kind: &str, id: u64, payload: &Value) -> Vec<u8> {
    let b64 = B64.encode(serde_json::to_vec(payload).unwrap_or_default());
    let mut out = format!("MIXOP1 {kind} {id} {}\n", b64.len()).into_bytes();
    out.extend_from_slice(b64.as_bytes());
    out.push(b'\n');
    out
}

/// Incremental reader over a byte stream (stdout of the wrapper).
#[derive(Debug, Default)]
pub struct Reader {
    line: Vec<u8>,
    /// Header of the frame whose payload line comes next.
    header: Option<(String, u64, usize)>,
    /// Stray (non-frame) output, bounded.
    pub stray: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Frame(Frame),
    /// A header and payload that did not decode (length mismatch, bad base64 or JSON).
    Bad(String),
}

impl Reader {
    pub fn push(&mut self, data: &[u8]) -> Vec<Item> {
        let mut items = Vec::new();
        for &b in data {
            if b != b'\n' {
                let limit = match self.header {
                    Some((_, _, len)) => len + 2,
                    None => MAX_STRAY_LINE,
                };
                if self.line.len() < limit {
                    self.line.push(b);
                }
                continue;
            }
            let mut line = std::mem::take(&mut self.line);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            match self.header.take() {
                Some((kind, id, len)) => items.push(decode_payload(kind, id, len, &line)),
                None => match parse_header(&line) {
                    Some(h) => self.header = Some(h),
                    None if line.is_empty() => {}
                    None => {
                        if self.stray.len() < 200 {
                            self.stray.push(String::from_utf8_lossy(&line).into_owned());
                        }
                    }
                },
            }
        }
        items
    }
}

fn parse_header(line: &[u8]) -> Option<(String, u64, usize)> {
    let text = std::str::from_utf8(line).ok()?;
    let mut parts = text.split(' ');
    if parts.next()? != "MIXOP1" {
        return None;
    }
    let kind = parts.next()?.to_string();
    let id = parts.next()?.parse().ok()?;
    let len: usize = parts.next()?.parse().ok()?;
    if parts.next().is_some() || len > MAX_PAYLOAD {
        return None;
    }
    Some((kind, id, len))
}

fn decode_payload(kind: String, id: u64, len: usize, line: &[u8]) -> Item {
    if line.len() != len {
        return Item::Bad(format!(
            "frame {kind} {id}: payload of {} characters, header says {len}",
            line.len()
        ));
    }
    let bytes = match B64.decode(line) {
        Ok(b) => b,
        Err(e) => return Item::Bad(format!("frame {kind} {id}: bad base64: {e}")),
    };
    match serde_json::from_slice(&bytes) {
        Ok(payload) => Item::Frame(Frame { kind, id, payload }),
        Err(e) => Item::Bad(format!("frame {kind} {id}: bad JSON: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn frames_round_trip_through_any_split_and_crlf() {
        let a = encode(
            "RES",
            7,
            &json!({"ok": true, "result": {"name": "Zoë 'x' \"y\" $z `n"}}),
        );
        let mut stream = b"WARNING: stray line\r\n".to_vec();
        stream.extend(
            String::from_utf8(a.clone())
                .unwrap()
                .replace('\n', "\r\n")
                .bytes(),
        );
        stream.extend(encode("READY", 0, &json!({"pid": 1})));
        for cut in 0..stream.len() {
            let mut r = Reader::default();
            let mut items = r.push(&stream[..cut]);
            items.extend(r.push(&stream[cut..]));
            assert_eq!(items.len(), 2, "cut at {cut}");
            assert_eq!(
                items[0],
                Item::Frame(Frame {
                    kind: "RES".into(),
                    id: 7,
                    payload: json!({"ok": true, "result": {"name": "Zoë 'x' \"y\" $z `n"}})
                })
            );
            assert_eq!(r.stray, vec!["WARNING: stray line".to_string()]);
        }
    }

    #[test]
    fn bad_frames_are_reported_not_trusted() {
        let mut r = Reader::default();
        let items = r.push(b"MIXOP1 RES 1 4\nabc\nMIXOP1 RES 2 4\n!!!!\nMIXOP1 RES 3 4\nYWJj\n");
        assert!(matches!(&items[0], Item::Bad(m) if m.contains("header says 4")));
        assert!(matches!(&items[1], Item::Bad(m) if m.contains("base64")));
        assert!(matches!(&items[2], Item::Bad(m) if m.contains("JSON")));
    }

    proptest! {
        #[test]
        fn reader_never_panics(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut r = Reader::default();
            let _ = r.push(&data);
        }

        #[test]
        fn any_json_string_survives(s in ".*", id in any::<u64>()) {
            let mut r = Reader::default();
            let items = r.push(&encode("REQ", id, &json!({"s": s})));
            prop_assert_eq!(items, vec![Item::Frame(Frame { kind: "REQ".into(), id, payload: json!({"s": s}) })]);
        }
    }
}
