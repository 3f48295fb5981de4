//! CLIXML on stderr: Windows PowerShell writes error (and progress) records to stderr as
//! `#< CLIXML` followed by serialized objects, even with `$ProgressPreference` set (pywinrm#245,
//! ansible/ansible#67964). Like Ansible's `_parse_clixml`, keep the text of the `Error` strings
//! and drop progress records.

use quick_xml::Reader;
use quick_xml::events::Event;

const MARKER: &str = "#< CLIXML";

/// Turns stderr that holds CLIXML into plain text; other stderr is returned unchanged.
pub fn decode_stderr(stderr: &str) -> String {
    let Some(pos) = stderr.find(MARKER) else {
        return stderr.to_string();
    };
    let mut out = stderr[..pos].to_string();
    let rest = &stderr[pos + MARKER.len()..];
    // Several CLIXML documents may follow one another.
    for doc in rest.split(MARKER) {
        out.push_str(&error_text(doc.trim()));
    }
    out
}

/// The concatenated text of `<S S="Error">` elements, with `_xHHHH_` escapes undone.
fn error_text(xml: &str) -> String {
    let mut reader = Reader::from_str(xml);
    let mut out = String::new();
    let mut in_error = false;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                in_error = e.name().0 == "S"
                    && e.attributes()
                        .flatten()
                        .any(|a| a.key.0 == "S" && a.value == "Error");
            }
            Ok(Event::Text(t)) if in_error => {
                let raw = t.to_string();
                let text = quick_xml::escape::unescape(&raw)
                    .map(|c| c.into_owned())
                    .unwrap_or(raw);
                out.push_str(&unescape_x(&text));
            }
            Ok(Event::GeneralRef(r)) if in_error => {
                let name = r.to_string();
                let s = match name.as_str() {
                    "amp" => "&".to_string(),
                    "lt" => "<".into(),
                    "gt" => ">".into(),
                    "quot" => "\"".into(),
                    "apos" => "'".into(),
                    n => n
                        .strip_prefix("#x")
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                        .or_else(|| n.strip_prefix('#').and_then(|d| d.parse().ok()))
                        .and_then(char::from_u32)
                        .map(String::from)
                        .unwrap_or_default(),
                };
                out.push_str(&s);
            }
            Ok(Event::End(_)) => in_error = false,
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
    }
    out
}

/// `_x000D__x000A_` → CRLF, as PowerShell's serializer escapes characters.
fn unescape_x(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("_x") {
        out.push_str(&rest[..i]);
        let cand = &rest[i..];
        let code = cand
            .get(2..6)
            .filter(|h| h.chars().all(|c| c.is_ascii_hexdigit()))
            .filter(|_| cand.get(6..7) == Some("_"))
            .and_then(|h| u32::from_str_radix(h, 16).ok());
        match code {
            Some(c) => {
                if let Some(ch) = char::from_u32(c) {
                    out.push(ch);
                }
                rest = &cand[7..];
            }
            None => {
                out.push_str("_x");
                rest = &cand[2..];
            }
        }
    }
    out.push_str(rest);
    out.replace("\r\n", "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_errors_and_drops_progress() {
        // As Windows PowerShell 5.1 writes it (pywinrm's test_clixml fixtures have this shape).
        let stderr = "#< CLIXML\r\n<Objs Version=\"1.1.0.1\" xmlns=\"http://schemas.microsoft.com/powershell/2004/04\"><Obj S=\"progress\" RefId=\"0\"><TN RefId=\"0\"><T>System.Management.Automation.PSCustomObject</T><T>System.Object</T></TN><MS><I64 N=\"SourceId\">1</I64><PR N=\"Record\"><AV>Preparing modules for first use.</AV><AI>0</AI><Nil /><PI>-1</PI><PC>-1</PC><T>Completed</T><SR>-1</SR><SD> </SD></PR></MS></Obj><S S=\"Error\">Get-Item : Cannot find path 'C:\\nope' because it does not exist._x000D__x000A_</S><S S=\"Error\">At line:1 char:1 &amp; more_x000D__x000A_</S></Objs>";
        assert_eq!(
            decode_stderr(stderr),
            "Get-Item : Cannot find path 'C:\\nope' because it does not exist.\nAt line:1 char:1 & more\n"
        );
    }

    #[test]
    fn plain_stderr_is_unchanged() {
        assert_eq!(decode_stderr("plain error\r\n"), "plain error\r\n");
        assert_eq!(unescape_x("a_x_b_x00"), "a_x_b_x00");
    }
}
