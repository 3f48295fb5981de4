//! WinRM message encryption framing (`multipart/encrypted`, MS-WSMV 2.2.9.1.1).
//!
//! Over plain HTTP a Windows host refuses unencrypted SOAP bodies, so every envelope is sealed
//! with the NTLM session of its TCP connection and framed as:
//!
//! ```text
//! --Encrypted Boundary\r\n
//! \tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n
//! \tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=<plaintext length>\r\n
//! --Encrypted Boundary\r\n
//! \tContent-Type: application/octet-stream\r\n
//! <le32 signature length = 16><signature><sealed bytes>--Encrypted Boundary--\r\n
//! ```
//!
//! NTLM sealing is RC4, so the sealed part is exactly `Length` bytes long: the parser uses that
//! length rather than searching for the closing boundary inside binary data.

use thiserror::Error;

pub const PROTOCOL: &str = "application/HTTP-SPNEGO-session-encrypted";
pub const BOUNDARY: &str = "Encrypted Boundary";
pub const CONTENT_TYPE: &str = "multipart/encrypted;protocol=\"application/HTTP-SPNEGO-session-encrypted\";boundary=\"Encrypted Boundary\"";
pub const SIGNATURE_LEN: usize = 16;

/// Seals and unseals message bodies with a session's keys (NTLM in practice; a fake in tests).
pub trait Sealer {
    /// Encrypts `data` in place and returns its signature.
    fn seal(&mut self, data: &mut [u8]) -> Result<[u8; SIGNATURE_LEN], SealError>;
    /// Decrypts `data` in place and verifies `signature` (and the sequence number in it).
    fn unseal(&mut self, signature: &[u8], data: &mut [u8]) -> Result<(), SealError>;
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{0}")]
pub struct SealError(pub String);

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FrameError {
    #[error("response is not encrypted (Content-Type {0:?}) although message encryption is on")]
    NotEncrypted(String),
    #[error("unsupported encryption protocol in Content-Type {0:?}")]
    Protocol(String),
    #[error("malformed multipart/encrypted body: {0}")]
    Malformed(String),
    #[error("cannot decrypt the response (wrong signature or sequence number): {0}")]
    Unseal(String),
    #[error("decrypted body is {got} bytes but OriginalContent says Length={want}")]
    Length { got: usize, want: usize },
}

/// Seals `plaintext` and frames it as a request body.
pub fn encrypt(sealer: &mut dyn Sealer, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
    let mut data = plaintext.to_vec();
    let sig = sealer.seal(&mut data)?;
    Ok(frame(&sig, &data, plaintext.len()))
}

/// Builds the framed body from a signature and sealed bytes.
pub fn frame(signature: &[u8], sealed: &[u8], plain_len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(sealed.len() + 256);
    out.extend_from_slice(b"--Encrypted Boundary\r\n\tContent-Type: ");
    out.extend_from_slice(PROTOCOL.as_bytes());
    out.extend_from_slice(
        b"\r\n\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=",
    );
    out.extend_from_slice(plain_len.to_string().as_bytes());
    out.extend_from_slice(
        b"\r\n--Encrypted Boundary\r\n\tContent-Type: application/octet-stream\r\n",
    );
    out.extend_from_slice(&(signature.len() as u32).to_le_bytes());
    out.extend_from_slice(signature);
    out.extend_from_slice(sealed);
    out.extend_from_slice(b"--Encrypted Boundary--\r\n");
    out
}

/// One sealed part of a framed body, borrowed from it.
#[derive(Debug, PartialEq, Eq)]
pub struct Part<'a> {
    pub length: usize,
    pub signature: &'a [u8],
    pub sealed: &'a [u8],
}

/// Checks the Content-Type of an encrypted response and returns its boundary.
pub fn boundary_of(content_type: &str) -> Result<String, FrameError> {
    let lower = content_type.to_ascii_lowercase();
    if !lower.trim_start().starts_with("multipart/encrypted")
        && !lower
            .trim_start()
            .starts_with("multipart/x-multi-encrypted")
    {
        return Err(FrameError::NotEncrypted(content_type.to_string()));
    }
    let protocol = param(content_type, "protocol");
    if !protocol
        .as_deref()
        .is_some_and(|p| p.eq_ignore_ascii_case(PROTOCOL))
    {
        return Err(FrameError::Protocol(content_type.to_string()));
    }
    Ok(param(content_type, "boundary").unwrap_or_else(|| BOUNDARY.to_string()))
}

fn param(content_type: &str, name: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

/// Splits a framed body into its parts, without decrypting.
pub fn parse<'a>(boundary: &str, body: &'a [u8]) -> Result<Vec<Part<'a>>, FrameError> {
    let bad = |m: &str| FrameError::Malformed(m.to_string());
    let open = format!("--{boundary}");
    let mut rest = body;
    rest = strip_line(rest, open.as_bytes()).ok_or_else(|| bad("no opening boundary"))?;
    let mut parts = Vec::new();
    loop {
        // Headers of the description part, up to the next boundary line.
        let mut length = None;
        loop {
            let (line, after) = split_line(rest).ok_or_else(|| bad("truncated part headers"))?;
            if line == open.as_bytes() {
                rest = after;
                break;
            }
            let text = String::from_utf8_lossy(line);
            let text = text.trim();
            if text.len() > 4096 {
                return Err(bad("header line too long"));
            }
            if text.to_ascii_lowercase().starts_with("originalcontent:") {
                length = text
                    .split(';')
                    .find_map(|p| p.trim().strip_prefix("Length="))
                    .and_then(|n| n.trim().parse::<usize>().ok());
            }
            rest = after;
        }
        let length = length.ok_or_else(|| bad("missing OriginalContent Length"))?;
        let (line, after) = split_line(rest).ok_or_else(|| bad("truncated data part"))?;
        if !String::from_utf8_lossy(line)
            .to_ascii_lowercase()
            .contains("application/octet-stream")
        {
            return Err(bad("data part is not application/octet-stream"));
        }
        rest = after;
        if rest.len() < 4 {
            return Err(bad("truncated signature length"));
        }
        let sig_len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if sig_len != SIGNATURE_LEN {
            return Err(FrameError::Malformed(format!(
                "signature length {sig_len}, expected {SIGNATURE_LEN}"
            )));
        }
        rest = &rest[4..];
        // `Length` comes from the peer: a huge value must not wrap the sum below.
        let end = sig_len
            .checked_add(length)
            .filter(|end| *end <= rest.len())
            .ok_or_else(|| {
                FrameError::Malformed(format!(
                    "truncated: {} bytes of sealed data, OriginalContent says {length}",
                    rest.len().saturating_sub(sig_len)
                ))
            })?;
        parts.push(Part {
            length,
            signature: &rest[..sig_len],
            sealed: &rest[sig_len..end],
        });
        rest = &rest[end..];
        if !rest.starts_with(open.as_bytes()) {
            return Err(bad("sealed data not followed by the boundary"));
        }
        rest = &rest[open.len()..];
        if rest.starts_with(b"--") {
            return Ok(parts);
        }
        rest = strip_line(rest, b"").ok_or_else(|| bad("garbage after boundary"))?;
    }
}

/// Parses, unseals and checks a framed response body.
pub fn decrypt(
    sealer: &mut dyn Sealer,
    content_type: &str,
    body: &[u8],
) -> Result<Vec<u8>, FrameError> {
    let boundary = boundary_of(content_type)?;
    let parts = parse(&boundary, body)?;
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.length).sum());
    for part in parts {
        let mut data = part.sealed.to_vec();
        sealer
            .unseal(part.signature, &mut data)
            .map_err(|e| FrameError::Unseal(e.0))?;
        if data.len() != part.length {
            return Err(FrameError::Length {
                got: data.len(),
                want: part.length,
            });
        }
        out.extend_from_slice(&data);
    }
    Ok(out)
}

/// Splits off one `\r\n`-terminated line (the terminator is dropped).
fn split_line(b: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = b.windows(2).position(|w| w == b"\r\n")?;
    Some((&b[..i], &b[i + 2..]))
}

/// Removes `prefix` followed by `\r\n` from the start of `b`.
fn strip_line<'a>(b: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let (line, rest) = split_line(b)?;
    (line == prefix).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy sealer: XOR with a running counter, signature = seq number + checksum. Enough to
    /// check framing independently of NTLM (NTLM itself is checked in `auth`).
    #[derive(Default)]
    struct Xor {
        send: u32,
        recv: u32,
    }
    impl Sealer for Xor {
        fn seal(&mut self, data: &mut [u8]) -> Result<[u8; 16], SealError> {
            let sum: u32 = data.iter().map(|b| *b as u32).sum();
            data.iter_mut().for_each(|b| *b ^= 0x5a);
            let mut sig = [0u8; 16];
            sig[..4].copy_from_slice(&1u32.to_le_bytes());
            sig[4..8].copy_from_slice(&sum.to_le_bytes());
            sig[12..].copy_from_slice(&self.send.to_le_bytes());
            self.send += 1;
            Ok(sig)
        }
        fn unseal(&mut self, sig: &[u8], data: &mut [u8]) -> Result<(), SealError> {
            data.iter_mut().for_each(|b| *b ^= 0x5a);
            let sum: u32 = data.iter().map(|b| *b as u32).sum();
            if sig[4..8] != sum.to_le_bytes() || sig[12..] != self.recv.to_le_bytes() {
                return Err(SealError("bad signature".into()));
            }
            self.recv += 1;
            Ok(())
        }
    }

    // The bytes pywinrm's `Encryption._encrypt_message` + closing boundary produce for a 4-byte message with
    // a signature of 16 0x11 bytes and sealed bytes "ABCD".
    const PYWINRM_FRAME: &[u8] = b"--Encrypted Boundary\r\n\tContent-Type: application/HTTP-SPNEGO-session-encrypted\r\n\tOriginalContent: type=application/soap+xml;charset=UTF-8;Length=4\r\n--Encrypted Boundary\r\n\tContent-Type: application/octet-stream\r\n\x10\x00\x00\x00\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11\x11ABCD--Encrypted Boundary--\r\n";

    #[test]
    fn frame_matches_reference_bytes() {
        assert_eq!(frame(&[0x11; 16], b"ABCD", 4), PYWINRM_FRAME);
    }

    #[test]
    fn parse_reference_bytes() {
        let parts = parse(BOUNDARY, PYWINRM_FRAME).unwrap();
        assert_eq!(
            parts,
            vec![Part {
                length: 4,
                signature: &[0x11; 16],
                sealed: b"ABCD"
            }]
        );
    }

    #[test]
    fn sealed_data_may_contain_the_boundary() {
        let sealed = b"--Encrypted Boundary--\r\n";
        let body = frame(&[7; 16], sealed, sealed.len());
        let parts = parse(BOUNDARY, &body).unwrap();
        assert_eq!(parts[0].sealed, sealed);
    }

    #[test]
    fn round_trip_and_sequence() {
        let mut client = Xor::default();
        let mut server = Xor::default();
        for msg in [&b"<s:Envelope/>"[..], b"", &[0u8; 5000]] {
            let body = encrypt(&mut client, msg).unwrap();
            assert_eq!(decrypt(&mut server, CONTENT_TYPE, &body).unwrap(), msg);
        }
        // Replaying an old message fails the sequence check.
        let mut c2 = Xor::default();
        let old = encrypt(&mut c2, b"x").unwrap();
        let err = decrypt(&mut server, CONTENT_TYPE, &old).unwrap_err();
        assert!(matches!(err, FrameError::Unseal(_)), "{err:?}");
    }

    #[test]
    fn two_parts_are_concatenated() {
        let mut a = Xor::default();
        let mut first = encrypt(&mut a, b"hello ").unwrap();
        // Replace the closing `--Encrypted Boundary--\r\n` with a part separator.
        first.truncate(first.len() - b"--\r\n".len());
        first.extend_from_slice(b"\r\n");
        let second = encrypt(&mut a, b"world").unwrap();
        first.extend_from_slice(&second[b"--Encrypted Boundary\r\n".len()..]);
        let mut b = Xor::default();
        assert_eq!(
            decrypt(&mut b, CONTENT_TYPE, &first).unwrap(),
            b"hello world"
        );
    }

    #[test]
    fn truncated_and_garbage_bodies_are_errors() {
        let body = frame(&[1; 16], b"0123456789", 10);
        // Only the final CRLF may be missing.
        for cut in 0..body.len() - 2 {
            let r = parse(BOUNDARY, &body[..cut]);
            assert!(r.is_err(), "prefix of {cut} bytes parsed");
        }
        assert!(parse(BOUNDARY, b"<html>oops</html>").is_err());
        // Length larger than the data.
        let lying = String::from_utf8_lossy(&body).replace("Length=10", "Length=99999");
        assert!(parse(BOUNDARY, lying.as_bytes()).is_err());
    }

    #[test]
    fn huge_lengths_are_refused_not_wrapped() {
        // sig_len + Length overflows usize: it used to wrap and panic on the slice.
        let body = frame(&[1; 16], b"0123456789", 10);
        for huge in [
            "18446744073709551610",
            "18446744073709551615",
            "18446744073709551600",
        ] {
            let lying =
                String::from_utf8_lossy(&body).replace("Length=10", &format!("Length={huge}"));
            let err = parse(BOUNDARY, lying.as_bytes()).unwrap_err();
            assert!(
                matches!(&err, FrameError::Malformed(m) if m.contains("truncated")),
                "{err:?}"
            );
            let mut x = Xor::default();
            assert!(decrypt(&mut x, CONTENT_TYPE, lying.as_bytes()).is_err());
        }
        // Larger than usize: not a number we accept at all.
        let lying =
            String::from_utf8_lossy(&body).replace("Length=10", "Length=99999999999999999999999");
        assert!(parse(BOUNDARY, lying.as_bytes()).is_err());
    }

    #[test]
    fn content_type_checks() {
        assert_eq!(boundary_of(CONTENT_TYPE).unwrap(), "Encrypted Boundary");
        assert_eq!(
            boundary_of(
                "multipart/encrypted; protocol=\"application/http-spnego-session-encrypted\"; boundary=\"B\""
            )
            .unwrap(),
            "B"
        );
        assert!(matches!(
            boundary_of("application/soap+xml;charset=UTF-8"),
            Err(FrameError::NotEncrypted(_))
        ));
        assert!(matches!(
            boundary_of(
                "multipart/encrypted;protocol=\"application/HTTP-Kerberos-session-encrypted\""
            ),
            Err(FrameError::Protocol(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn parser_never_panics(body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
            let _ = parse(BOUNDARY, &body);
        }

        #[test]
        fn parser_never_panics_on_mutated_frames(
            msg in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            pos in 0usize..400, byte in proptest::prelude::any::<u8>(), cut in 0usize..400,
        ) {
            let mut body = frame(&[3; 16], &msg, msg.len());
            if pos < body.len() { body[pos] = byte; }
            body.truncate(cut.max(1).min(body.len()));
            let _ = parse(BOUNDARY, &body);
            let mut x = Xor::default();
            let _ = decrypt(&mut x, CONTENT_TYPE, &body);
        }

        #[test]
        fn frames_round_trip(msg in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2000)) {
            let mut c = Xor::default();
            let mut s = Xor::default();
            let body = encrypt(&mut c, &msg).unwrap();
            proptest::prop_assert_eq!(decrypt(&mut s, CONTENT_TYPE, &body).unwrap(), msg);
        }
    }
}
