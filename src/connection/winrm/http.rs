//! One owned HTTP/1.1 connection (TCP or TLS) to a WinRM listener.
//!
//! hyper's low-level `client::conn::http1` is used so that this code, not a pool, decides when a
//! connection is opened: NTLM authenticates the TCP connection, so every request must go over the
//! connection that did the handshake, and a new connection means a new handshake.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderMap, HeaderValue};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// Where and how to connect.
#[derive(Clone)]
pub struct Endpoint {
    pub scheme: Scheme,
    pub address: String,
    pub port: u16,
    pub path: String,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub connect_timeout: Duration,
}

impl Endpoint {
    /// `address:port` as it goes in the Host header (IPv6 in brackets).
    pub fn authority(&self) -> String {
        if self.address.contains(':') && !self.address.starts_with('[') {
            format!("[{}]:{}", self.address, self.port)
        } else {
            format!("{}:{}", self.address, self.port)
        }
    }
    pub fn url(&self) -> String {
        format!(
            "{}://{}{}",
            self.scheme.as_str(),
            self.authority(),
            self.path
        )
    }
}

/// What went wrong with one exchange; the caller decides about reconnecting and retrying.
#[derive(Debug)]
pub enum HttpError {
    /// TCP connect or TLS handshake failed (the message names host, port and scheme).
    Connect(String),
    /// The request was never written: sending it again on a new connection is safe.
    NotSent(String),
    /// The connection broke after the request was (perhaps) written.
    Broken(String),
    /// No complete answer within the read timeout.
    Timeout,
    /// The answer is larger than the limit (the body is not read).
    TooLarge(u64),
}

pub struct Response {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Response {
    pub fn header_values<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
    }
    pub fn content_type(&self) -> &str {
        self.headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

pub struct HttpConn {
    sender: http1::SendRequest<Full<Bytes>>,
    driver: tokio::task::JoinHandle<()>,
    /// Requests sent on this connection so far.
    pub requests: u64,
    /// Over TLS: the `tls-server-end-point` channel binding of the certificate the server
    /// presented (RFC 5929), which NTLM puts in its AUTHENTICATE message.
    pub channel_binding: Option<Vec<u8>>,
}

impl Drop for HttpConn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl HttpConn {
    pub async fn connect(ep: &Endpoint) -> Result<HttpConn, HttpError> {
        let target = format!("{} ({})", ep.authority(), ep.scheme.as_str());
        let tcp = tokio::time::timeout(
            ep.connect_timeout,
            TcpStream::connect((ep.address.as_str(), ep.port)),
        )
        .await
        .map_err(|_| {
            HttpError::Connect(format!(
                "timed out after {}s connecting to {target}",
                ep.connect_timeout.as_secs_f32()
            ))
        })?
        .map_err(|e| {
            let what = match e.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    "connection refused (is the WinRM listener running on that port and scheme?)"
                        .to_string()
                }
                _ => e.to_string(),
            };
            HttpError::Connect(format!("cannot connect to {target}: {what}"))
        })?;
        // Without this every request with a body waits for the peer's delayed ACK (~40 ms).
        tcp.set_nodelay(true)
            .map_err(|e| HttpError::Connect(format!("{target}: cannot set TCP_NODELAY: {e}")))?;
        let mut channel_binding = None;
        let io: Box<dyn Io> = match &ep.tls {
            None => Box::new(tcp),
            Some(cfg) => {
                let name = ServerName::try_from(ep.address.trim_matches(['[', ']']).to_string())
                    .map_err(|e| {
                        HttpError::Connect(format!("invalid TLS server name {}: {e}", ep.address))
                    })?;
                let connector = tokio_rustls::TlsConnector::from(cfg.clone());
                let tls = tokio::time::timeout(ep.connect_timeout, connector.connect(name, tcp))
                    .await
                    .map_err(|_| {
                        HttpError::Connect(format!("TLS handshake with {target} timed out"))
                    })?
                    .map_err(|e| {
                        HttpError::Connect(format!(
                            "TLS handshake with {target} failed: {}",
                            describe_tls_error(&e, &ep.address)
                        ))
                    })?;
                channel_binding = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .map(|c| tls_server_end_point(c.as_ref()));
                Box::new(tls)
            }
        };
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| HttpError::Connect(format!("{target}: HTTP handshake failed: {e}")))?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(HttpConn {
            sender,
            driver,
            requests: 0,
            channel_binding,
        })
    }

    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// Sends one POST and reads the whole answer (at most `limit` bytes) within `timeout`.
    pub async fn post(
        &mut self,
        ep: &Endpoint,
        headers: &[(&'static str, String)],
        body: Bytes,
        limit: usize,
        timeout: Duration,
    ) -> Result<Response, HttpError> {
        let mut req = hyper::Request::post(ep.path.as_str())
            .header(HOST, ep.authority())
            .header(CONTENT_LENGTH, body.len())
            .header(
                "User-Agent",
                concat!("mixop/", env!("CARGO_PKG_VERSION"), " (WinRM)"),
            );
        for (k, v) in headers {
            let value = HeaderValue::from_str(v)
                .map_err(|e| HttpError::NotSent(format!("invalid {k} header: {e}")))?;
            req = req.header(*k, value);
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| HttpError::NotSent(format!("cannot build request: {e}")))?;
        self.requests += 1;
        let exchange = async {
            if self.sender.ready().await.is_err() {
                return Err(HttpError::NotSent("connection closed".into()));
            }
            let resp = self.sender.try_send_request(req).await.map_err(|mut e| {
                if e.take_message().is_some() {
                    HttpError::NotSent(e.into_error().to_string())
                } else {
                    HttpError::Broken(describe_hyper_error(&e.into_error()))
                }
            })?;
            let (parts, body) = resp.into_parts();
            let declared = parts
                .headers
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if let Some(n) = declared.filter(|n| *n > limit as u64) {
                return Err(HttpError::TooLarge(n));
            }
            let body = Limited::new(body, limit)
                .collect()
                .await
                .map_err(|e| {
                    if e.downcast_ref::<http_body_util::LengthLimitError>()
                        .is_some()
                    {
                        HttpError::TooLarge(limit as u64 + 1)
                    } else if let Some(h) = e.downcast_ref::<hyper::Error>() {
                        HttpError::Broken(describe_hyper_error(h))
                    } else {
                        HttpError::Broken(e.to_string())
                    }
                })?
                .to_bytes();
            Ok(Response {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| HttpError::Timeout)?
    }
}

fn describe_hyper_error(e: &hyper::Error) -> String {
    if e.is_incomplete_message() || e.is_closed() || e.is_canceled() {
        "the connection was closed before a complete answer arrived".into()
    } else {
        let mut s = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(inner) = src {
            s.push_str(&format!(": {inner}"));
            src = inner.source();
        }
        s
    }
}

/// Names the certificate problem behind a TLS failure and what setting fixes it.
/// The `tls-server-end-point` channel binding data of a server certificate (RFC 5929 §4.1):
/// `tls-server-end-point:` and the certificate's DER hashed with the hash of its signature
/// algorithm, SHA-256 when that is MD5 or SHA-1 (or not known).
pub fn tls_server_end_point(cert_der: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    let hash = match signature_oid(cert_der).as_deref() {
        // sha384WithRSAEncryption, ecdsa-with-SHA384
        Some([0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0c])
        | Some([0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03]) => {
            sha2::Sha384::digest(cert_der).to_vec()
        }
        // sha512WithRSAEncryption, ecdsa-with-SHA512
        Some([0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d])
        | Some([0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x04]) => {
            sha2::Sha512::digest(cert_der).to_vec()
        }
        _ => sha2::Sha256::digest(cert_der).to_vec(),
    };
    [b"tls-server-end-point:".as_slice(), &hash].concat()
}

/// The OID (content bytes) of a certificate's outer `signatureAlgorithm`:
/// `SEQUENCE { tbsCertificate, SEQUENCE { OID, ... }, BIT STRING }`.
fn signature_oid(der: &[u8]) -> Option<Vec<u8>> {
    /// (tag, content, rest) of the DER element at the start of `b`.
    fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, b) = b.split_first()?;
        let (&first, mut b) = b.split_first()?;
        let len = if first < 0x80 {
            first as usize
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 || b.len() < n {
                return None;
            }
            let len = b[..n].iter().fold(0usize, |a, &x| (a << 8) | x as usize);
            b = &b[n..];
            len
        };
        (b.len() >= len).then(|| (tag, &b[..len], &b[len..]))
    }
    let (0x30, cert, _) = tlv(der)? else {
        return None;
    };
    let (_, _tbs, rest) = tlv(cert)?;
    let (0x30, alg, _) = tlv(rest)? else {
        return None;
    };
    let (0x06, oid, _) = tlv(alg)? else {
        return None;
    };
    Some(oid.to_vec())
}

pub fn describe_tls_error(e: &std::io::Error, host: &str) -> String {
    use rustls::CertificateError as C;
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return e.to_string();
    };
    let fix = "set ansible_winrm_ca_trust_path to the CA that signed it, or \
               ansible_winrm_server_cert_validation: ignore (insecure)";
    match tls {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => format!(
                "the server certificate is not signed by a trusted CA (unknown issuer, or \
                 self-signed): {fix}"
            ),
            C::NotValidForName | C::NotValidForNameContext { .. } => format!(
                "the server certificate is not valid for the name {host:?} (check ansible_host \
                 against the certificate's subject alternative names): {c:?}"
            ),
            C::Expired | C::ExpiredContext { .. } => {
                format!("the server certificate has expired: {c:?}")
            }
            C::NotValidYet | C::NotValidYetContext { .. } => {
                format!("the server certificate is not valid yet (check clocks): {c:?}")
            }
            C::Revoked => "the server certificate has been revoked".into(),
            C::BadSignature => "the server certificate has a bad signature".into(),
            other => format!("invalid server certificate: {other:?}"),
        },
        other => other.to_string(),
    }
}

/// rustls client configuration with the ring provider. `ca_path` (a PEM file or a directory of
/// them) replaces the system roots; `validate: false` accepts any certificate.
pub fn tls_config(
    validate: bool,
    ca_path: Option<&Path>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let config = if validate {
        let mut roots = rustls::RootCertStore::empty();
        match ca_path {
            Some(path) => {
                let files: Vec<std::path::PathBuf> = if path.is_dir() {
                    let mut v: Vec<_> = std::fs::read_dir(path)
                        .map_err(|e| {
                            format!("ansible_winrm_ca_trust_path {}: {e}", path.display())
                        })?
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.is_file())
                        .collect();
                    v.sort();
                    v
                } else {
                    vec![path.to_path_buf()]
                };
                for f in files {
                    let certs = CertificateDer::pem_file_iter(&f)
                        .map_err(|e| format!("ansible_winrm_ca_trust_path {}: {e}", f.display()))?;
                    for cert in certs {
                        let cert = cert.map_err(|e| {
                            format!("ansible_winrm_ca_trust_path {}: {e}", f.display())
                        })?;
                        roots.add(cert).map_err(|e| {
                            format!("ansible_winrm_ca_trust_path {}: {e}", f.display())
                        })?;
                    }
                }
                if roots.is_empty() {
                    return Err(format!(
                        "ansible_winrm_ca_trust_path {}: no PEM certificates found",
                        path.display()
                    ));
                }
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                for cert in native.certs {
                    let _ = roots.add(cert);
                }
                if roots.is_empty() {
                    return Err("no system CA certificates found: set \
                                ansible_winrm_ca_trust_path"
                        .into());
                }
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
            .with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// `ansible_winrm_server_cert_validation: ignore`: any certificate, but the handshake
/// signatures are still checked.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    /// A certificate-shaped DER: SEQUENCE { tbs, SEQUENCE { OID }, BIT STRING }.
    fn cert_with(oid: &[u8]) -> Vec<u8> {
        let tbs = [0x30, 0x03, 0x02, 0x01, 0x05];
        let mut alg = vec![0x30, oid.len() as u8 + 2, 0x06, oid.len() as u8];
        alg.extend_from_slice(oid);
        let mut body = tbs.to_vec();
        body.extend(alg);
        body.extend([0x03, 0x01, 0x00]);
        let mut der = vec![0x30, body.len() as u8];
        der.extend(body);
        der
    }

    #[test]
    fn end_point_binding_hashes_with_the_certificates_signature_hash() {
        let prefix = b"tls-server-end-point:".as_slice();
        // sha256WithRSAEncryption, and SHA-1 (replaced by SHA-256), and garbage: SHA-256.
        for oid in [
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b][..],
            &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05][..],
        ] {
            let der = cert_with(oid);
            assert_eq!(signature_oid(&der).as_deref(), Some(oid));
            let want = [prefix, &sha2::Sha256::digest(&der)].concat();
            assert_eq!(tls_server_end_point(&der), want);
        }
        assert_eq!(tls_server_end_point(b"\x30\xff").len(), prefix.len() + 32);
        // ecdsa-with-SHA384 and sha512WithRSAEncryption.
        let der = cert_with(&[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03]);
        let want = [prefix, &sha2::Sha384::digest(&der)].concat();
        assert_eq!(tls_server_end_point(&der), want);
        let der = cert_with(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0d]);
        let want = [prefix, &sha2::Sha512::digest(&der)].concat();
        assert_eq!(tls_server_end_point(&der), want);
    }
}
