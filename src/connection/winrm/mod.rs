//! WinRM transport (WS-Management WinRS cmd shell) over HTTP with NTLM message encryption or
//! HTTPS.
pub mod auth;
pub mod encryption;
pub mod soap;
