//! Authentication: NTLMv2 through the `sspi` crate (client side, with sealing), and Basic.
//!
//! One `NtlmSession` belongs to one TCP connection: WinRM binds the NTLM context to the
//! connection, and sspi keeps the per-direction sequence numbers inside the context, so
//! messages must be sealed and unsealed in exactly the order they go over that connection.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sspi::{
    AuthIdentity, AuthIdentityBuffers, BufferType, ClientRequestFlags, CredentialUse,
    DataRepresentation, EncryptionFlags, Ntlm, Secret, SecurityBuffer, SecurityBufferRef,
    SecurityStatus, Sspi, SspiImpl, Username,
};
use thiserror::Error;

use super::encryption::{SIGNATURE_LEN, SealError, Sealer};

#[derive(Debug, Error, Clone)]
pub enum AuthError {
    #[error("invalid user name {0:?}: {1}")]
    User(String, String),
    #[error("NTLM: {0}")]
    Ntlm(String),
}

fn ntlm_err(e: impl std::fmt::Display) -> AuthError {
    AuthError::Ntlm(e.to_string())
}

/// An NTLM client context for one connection.
pub struct NtlmSession {
    ntlm: Ntlm,
    creds: Option<AuthIdentityBuffers>,
    target: String,
}

impl std::fmt::Debug for NtlmSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NtlmSession")
            .field("target", &self.target)
            .finish()
    }
}

impl NtlmSession {
    /// `user` may be `user`, `DOMAIN\user` or `user@domain`; `host` names the target service
    /// (`HTTP/<host>`).
    pub fn new(user: &str, password: &str, host: &str) -> Result<Self, AuthError> {
        Self::with_channel_binding(user, password, host, None)
    }

    /// With the TLS channel's binding (`tls-server-end-point:<hash>`): its MD5, as MS-NLMP's
    /// `MsvAvChannelBindings`, goes in the AUTHENTICATE message, so a host that requires
    /// channel binding (CbtHardeningLevel=Strict) accepts it, and one behind a TLS-terminating
    /// man in the middle (another certificate) refuses it.
    pub fn with_channel_binding(
        user: &str,
        password: &str,
        host: &str,
        channel_binding: Option<&[u8]>,
    ) -> Result<Self, AuthError> {
        let username =
            Username::parse(user).map_err(|e| AuthError::User(user.into(), e.to_string()))?;
        let identity = AuthIdentity {
            username,
            password: Secret::from(password.to_string()),
        };
        let mut ntlm = Ntlm::new();
        if let Some(cb) = channel_binding {
            ntlm.set_channel_bindings(cb);
        }
        let acquired = ntlm
            .acquire_credentials_handle()
            .with_credential_use(CredentialUse::Outbound)
            .with_auth_data(&identity)
            .execute(&mut ntlm)
            .map_err(ntlm_err)?;
        Ok(NtlmSession {
            ntlm,
            creds: acquired.credentials_handle,
            target: format!("HTTP/{host}"),
        })
    }

    /// The NEGOTIATE token that opens the handshake.
    pub fn negotiate(&mut self) -> Result<Vec<u8>, AuthError> {
        self.step(None)
    }

    /// The AUTHENTICATE token answering the server's CHALLENGE.
    pub fn authenticate(&mut self, challenge: &[u8]) -> Result<Vec<u8>, AuthError> {
        self.step(Some(challenge))
    }

    fn step(&mut self, input: Option<&[u8]>) -> Result<Vec<u8>, AuthError> {
        let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
        let mut input_bufs = vec![SecurityBuffer::new(
            input.unwrap_or_default().to_vec(),
            BufferType::Token,
        )];
        let mut builder = self
            .ntlm
            .initialize_security_context()
            .with_credentials_handle(&mut self.creds)
            .with_context_requirements(
                // Without CONFIDENTIALITY the handshake passes but sealed messages fail.
                ClientRequestFlags::CONFIDENTIALITY
                    | ClientRequestFlags::INTEGRITY
                    | ClientRequestFlags::ALLOCATE_MEMORY,
            )
            .with_target_data_representation(DataRepresentation::Native)
            .with_target_name(&self.target)
            .with_output(&mut output);
        if input.is_some() {
            builder = builder.with_input(&mut input_bufs);
        }
        let result = self
            .ntlm
            .initialize_security_context_impl(&mut builder)
            .map_err(ntlm_err)?
            .resolve_to_result()
            .map_err(ntlm_err)?;
        match result.status {
            SecurityStatus::Ok | SecurityStatus::ContinueNeeded => {}
            other => return Err(AuthError::Ntlm(format!("unexpected status {other:?}"))),
        }
        let token = output
            .pop()
            .map(|b| b.buffer)
            .ok_or_else(|| AuthError::Ntlm("no output token".into()))?;
        if token.is_empty() {
            return Err(AuthError::Ntlm("empty output token".into()));
        }
        Ok(token)
    }
}

impl Sealer for NtlmSession {
    fn seal(&mut self, data: &mut [u8]) -> Result<[u8; SIGNATURE_LEN], SealError> {
        let mut token = [0u8; SIGNATURE_LEN];
        let mut bufs = [
            SecurityBufferRef::token_buf(&mut token),
            SecurityBufferRef::data_buf(data),
        ];
        self.ntlm
            .encrypt_message(EncryptionFlags::empty(), &mut bufs)
            .map_err(|e| SealError(e.to_string()))?;
        Ok(token)
    }

    fn unseal(&mut self, signature: &[u8], data: &mut [u8]) -> Result<(), SealError> {
        if signature.len() != SIGNATURE_LEN {
            return Err(SealError(format!(
                "signature is {} bytes, expected {SIGNATURE_LEN}",
                signature.len()
            )));
        }
        let mut sig = signature.to_vec();
        let mut bufs = [
            SecurityBufferRef::token_buf(&mut sig),
            SecurityBufferRef::data_buf(data),
        ];
        self.ntlm
            .decrypt_message(&mut bufs)
            .map_err(|e| SealError(e.to_string()))?;
        Ok(())
    }
}

/// `Authorization: Basic ...` for a user and password.
pub fn basic_header(user: &str, password: &str) -> String {
    format!("Basic {}", B64.encode(format!("{user}:{password}")))
}

/// Extracts the token from `WWW-Authenticate: Negotiate <b64>` (or `NTLM <b64>`) headers.
pub fn challenge_token<'a>(headers: impl Iterator<Item = &'a str>) -> Option<Vec<u8>> {
    headers.flat_map(|h| h.split(',')).find_map(|h| {
        let h = h.trim();
        let (scheme, token) = h.split_once(' ')?;
        if !(scheme.eq_ignore_ascii_case("negotiate") || scheme.eq_ignore_ascii_case("ntlm")) {
            return None;
        }
        B64.decode(token.trim()).ok().filter(|t| !t.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::winrm::encryption;
    use sspi::ServerRequestFlags;

    /// An sspi NTLM server for in-memory handshakes.
    struct Server {
        ntlm: Ntlm,
        creds: Option<AuthIdentityBuffers>,
    }

    impl Server {
        fn new(user: &str, password: &str) -> Server {
            let identity = AuthIdentity {
                username: Username::parse(user).unwrap(),
                password: Secret::from(password.to_string()),
            };
            let mut ntlm = Ntlm::new();
            let acq = ntlm
                .acquire_credentials_handle()
                .with_credential_use(CredentialUse::Inbound)
                .with_auth_data(&identity)
                .execute(&mut ntlm)
                .unwrap();
            Server {
                ntlm,
                creds: acq.credentials_handle,
            }
        }
        fn step(&mut self, token: &[u8]) -> sspi::Result<(SecurityStatus, Vec<u8>)> {
            let mut input = vec![SecurityBuffer::new(token.to_vec(), BufferType::Token)];
            let mut output = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
            let builder = self
                .ntlm
                .accept_security_context()
                .with_credentials_handle(&mut self.creds)
                .with_context_requirements(ServerRequestFlags::ALLOCATE_MEMORY)
                .with_target_data_representation(DataRepresentation::Native)
                .with_input(&mut input)
                .with_output(&mut output);
            let r = self
                .ntlm
                .accept_security_context_impl(builder)?
                .resolve_to_result()?;
            Ok((r.status, output.remove(0).buffer))
        }
    }

    impl Sealer for Server {
        fn seal(&mut self, data: &mut [u8]) -> Result<[u8; 16], SealError> {
            let mut token = [0u8; 16];
            let mut bufs = [
                SecurityBufferRef::token_buf(&mut token),
                SecurityBufferRef::data_buf(data),
            ];
            self.ntlm
                .encrypt_message(EncryptionFlags::empty(), &mut bufs)
                .map_err(|e| SealError(e.to_string()))?;
            Ok(token)
        }
        fn unseal(&mut self, sig: &[u8], data: &mut [u8]) -> Result<(), SealError> {
            let mut s = sig.to_vec();
            let mut bufs = [
                SecurityBufferRef::token_buf(&mut s),
                SecurityBufferRef::data_buf(data),
            ];
            self.ntlm
                .decrypt_message(&mut bufs)
                .map(|_| ())
                .map_err(|e| SealError(e.to_string()))
        }
    }

    fn handshake() -> (NtlmSession, Server) {
        let mut client = NtlmSession::new("LAB\\vagrant", "s3cret!", "win1").unwrap();
        let mut server = Server::new("LAB\\vagrant", "s3cret!");
        let negotiate = client.negotiate().unwrap();
        assert!(negotiate.starts_with(b"NTLMSSP\0\x01\0\0\0"));
        let (_, challenge) = server.step(&negotiate).unwrap();
        assert!(challenge.starts_with(b"NTLMSSP\0\x02\0\0\0"));
        let auth = client.authenticate(&challenge).unwrap();
        assert!(auth.starts_with(b"NTLMSSP\0\x03\0\0\0"));
        let (status, _) = server.step(&auth).unwrap();
        assert!(
            matches!(status, SecurityStatus::Ok | SecurityStatus::CompleteNeeded),
            "{status:?}"
        );
        if status == SecurityStatus::CompleteNeeded {
            let mut out = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
            server.ntlm.complete_auth_token(&mut out).unwrap();
        }
        (client, server)
    }

    #[test]
    fn sealed_messages_round_trip_in_both_directions() {
        let (mut client, mut server) = handshake();
        for i in 0..3 {
            let msg = format!("<s:Envelope>request {i}</s:Envelope>");
            let body = encryption::encrypt(&mut client, msg.as_bytes()).unwrap();
            // Sealed: the plaintext does not appear on the wire.
            assert!(!body.windows(7).any(|w| w == b"request"));
            let plain = encryption::decrypt(&mut server, encryption::CONTENT_TYPE, &body).unwrap();
            assert_eq!(plain, msg.as_bytes());
            let answer = format!("<s:Envelope>answer {i}</s:Envelope>");
            let body = encryption::encrypt(&mut server, answer.as_bytes()).unwrap();
            let plain = encryption::decrypt(&mut client, encryption::CONTENT_TYPE, &body).unwrap();
            assert_eq!(plain, answer.as_bytes());
        }
    }

    #[test]
    fn tampered_or_replayed_messages_are_rejected() {
        let (mut client, mut server) = handshake();
        let body = encryption::encrypt(&mut server, b"<a>first</a>").unwrap();
        let mut tampered = body.clone();
        let n = tampered.len();
        // Flip a byte of the sealed data (just before the closing boundary).
        tampered[n - 26] ^= 1;
        let err = encryption::decrypt(&mut client, encryption::CONTENT_TYPE, &tampered);
        assert!(
            matches!(err, Err(encryption::FrameError::Unseal(_))),
            "{err:?}"
        );
        // Out of order: the server's second message cannot be read before its first.
        let (mut client, mut server) = handshake();
        let _first = encryption::encrypt(&mut server, b"<a>1</a>").unwrap();
        let second = encryption::encrypt(&mut server, b"<a>2</a>").unwrap();
        assert!(encryption::decrypt(&mut client, encryption::CONTENT_TYPE, &second).is_err());
    }

    #[test]
    fn wrong_password_fails_at_the_server() {
        let mut client = NtlmSession::new("vagrant", "wrong", "win1").unwrap();
        let mut server = Server::new("vagrant", "right");
        let (_, challenge) = server.step(&client.negotiate().unwrap()).unwrap();
        let auth = client.authenticate(&challenge).unwrap();
        // sspi's server checks the proof in `complete_auth_token` (sspi-rs#167).
        let rejected = match server.step(&auth) {
            Err(_) => true,
            Ok(_) => {
                let mut out = vec![SecurityBuffer::new(Vec::new(), BufferType::Token)];
                server.ntlm.complete_auth_token(&mut out).is_err()
            }
        };
        assert!(rejected);
    }

    #[test]
    fn headers() {
        assert_eq!(basic_header("u", "p:w"), "Basic dTpwOnc=");
        assert_eq!(
            challenge_token(["Basic realm=\"WSMAN\"", "Negotiate TlRMTVNTUAAC"].into_iter()),
            Some(b"NTLMSSP\0\x02".to_vec())
        );
        assert_eq!(challenge_token(["Negotiate"].into_iter()), None);
    }
}
