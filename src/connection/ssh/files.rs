//! File transfer: SFTP with pipelined 64 KiB requests, writing to a temporary name beside the
//! destination and renaming it into place; an exec-channel fallback (`cat`) for servers without
//! the SFTP subsystem. Memory stays bounded by the requests in flight, whatever the file size.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::{FuturesOrdered, FuturesUnordered};
use russh::ChannelMsg;
use russh_sftp::client::RawSftpSession;
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::{FileAttributes, OpenFlags, Packet, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{CHUNK, Input, Session, Sink, SshConnection};
use crate::connection::{ConnError, FsAttrs, FsContent, FsError, RemoteFs};

/// Requests in flight per transfer: 16 × 64 KiB keeps a LAN link busy in 1 MiB of buffers.
const IN_FLIGHT: usize = 16;
const POSIX_RENAME: &str = "posix-rename@openssh.com";
/// OpenSSH 9.1+: user and group names for ids, as the target's NSS knows them.
const USERS_GROUPS: &str = "users-groups-by-id@openssh.com";

pub(crate) enum SftpSlot {
    Untried,
    Ready(Arc<Sftp>),
    /// The server has no SFTP subsystem: use the exec fallback from now on.
    Unavailable,
}

pub(crate) struct Sftp {
    raw: RawSftpSession,
    posix_rename: bool,
    users_groups: bool,
    /// Names already asked for: (is a group, id) → name.
    names: std::sync::Mutex<HashMap<(bool, u32), Option<String>>>,
}

pub(crate) enum Source<'a> {
    Bytes(&'a [u8]),
    File(tokio::fs::File),
}

impl Source<'_> {
    async fn next_chunk(&mut self) -> std::io::Result<Vec<u8>> {
        match self {
            Source::Bytes(b) => {
                let n = b.len().min(CHUNK);
                let (head, tail) = b.split_at(n);
                *b = tail;
                Ok(head.to_vec())
            }
            Source::File(f) => {
                let mut buf = vec![0u8; CHUNK];
                let mut filled = 0;
                // Fill whole chunks: a short read from the local file would otherwise become a
                // short (and slower) SFTP write.
                while filled < CHUNK {
                    let n = f.read(&mut buf[filled..]).await?;
                    if n == 0 {
                        break;
                    }
                    filled += n;
                }
                buf.truncate(filled);
                Ok(buf)
            }
        }
    }
}

fn sq(s: &str) -> String {
    shell_words::quote(s).into_owned()
}

/// `dir/.name.mixop-<uuid>.tmp` beside `dest`, so the final rename stays on one filesystem.
fn temp_beside(dest: &str) -> String {
    let (dir, name) = match dest.rfind('/') {
        Some(i) => (&dest[..=i], &dest[i + 1..]),
        None => ("", dest),
    };
    format!("{dir}.{name}.mixop-{}.tmp", uuid::Uuid::new_v4().simple())
}

fn sftp_err(conn: &SshConnection, what: &str, path: &str, e: SftpError) -> ConnError {
    let why = match &e {
        SftpError::Status(s) => match s.status_code {
            StatusCode::NoSuchFile => "no such file or directory".to_string(),
            StatusCode::PermissionDenied => "permission denied".to_string(),
            _ if !s.error_message.is_empty() => s.error_message.clone(),
            _ => s.status_code.to_string(),
        },
        other => other.to_string(),
    };
    ConnError::failed(format!("{what} {path} on {}: {why}", conn.opts.target()))
}

fn is_transport_error(e: &SftpError) -> bool {
    !matches!(e, SftpError::Status(_))
}

/// The session's SFTP client, opened on first use. `None` when the server has no subsystem.
async fn sftp(conn: &SshConnection, sess: &Session) -> Result<Option<Arc<Sftp>>, ConnError> {
    let mut slot = sess.sftp.lock().await;
    match &*slot {
        SftpSlot::Ready(s) => return Ok(Some(s.clone())),
        SftpSlot::Unavailable => return Ok(None),
        SftpSlot::Untried => {}
    }
    let mut ch = conn.open_channel(sess).await?;
    ch.request_subsystem(true, "sftp")
        .await
        .map_err(|e| conn.lost(sess, "opening sftp", e))?;
    loop {
        match ch.wait().await {
            Some(ChannelMsg::Success) => break,
            Some(ChannelMsg::Failure) | Some(ChannelMsg::Close) | Some(ChannelMsg::Eof) => {
                tracing::info!(host = %conn.opts.host, "no sftp subsystem; using exec transfers");
                *slot = SftpSlot::Unavailable;
                return Ok(None);
            }
            Some(_) => {}
            None => return Err(conn.lost(sess, "opening sftp", "channel closed")),
        }
    }
    let cfg = russh_sftp::client::Config {
        request_timeout_secs: 60,
        ..Default::default()
    };
    let raw = RawSftpSession::new_with_config(ch.into_stream(), cfg);
    let version = match tokio::time::timeout(Duration::from_secs(30), raw.init()).await {
        Ok(Ok(v)) => v,
        // A subsystem that starts but never speaks SFTP (a broken sftp-server path) is as good
        // as none.
        other => {
            tracing::info!(host = %conn.opts.host, result = ?other.err(), "sftp did not start; using exec transfers");
            *slot = SftpSlot::Unavailable;
            return Ok(None);
        }
    };
    let s = Arc::new(Sftp {
        posix_rename: version.extensions.contains_key(POSIX_RENAME),
        users_groups: version.extensions.contains_key(USERS_GROUPS),
        names: Default::default(),
        raw,
    });
    *slot = SftpSlot::Ready(s.clone());
    Ok(Some(s))
}

/// Forgets a broken SFTP client so the next transfer opens a new one.
async fn reset_sftp(sess: &Session) {
    let mut slot = sess.sftp.lock().await;
    if matches!(*slot, SftpSlot::Ready(_)) {
        *slot = SftpSlot::Untried;
    }
}

pub(crate) async fn put(
    conn: &SshConnection,
    sess: &Session,
    src: Source<'_>,
    dest: &str,
    mode: Option<u32>,
) -> Result<(), ConnError> {
    match sftp(conn, sess).await? {
        Some(s) => {
            let r = sftp_put(conn, &s, src, dest, mode).await;
            if let Err((e, true)) = &r {
                tracing::debug!(error = %e, "sftp transport error");
                reset_sftp(sess).await;
            }
            r.map_err(|(e, _)| e)
        }
        None => exec_put(conn, sess, src, dest, mode).await,
    }
}

/// Errors carry whether the SFTP channel itself broke.
type SftpOutcome = Result<(), (ConnError, bool)>;

async fn sftp_put(
    conn: &SshConnection,
    s: &Sftp,
    mut src: Source<'_>,
    dest: &str,
    mode: Option<u32>,
) -> SftpOutcome {
    let tmp = temp_beside(dest);
    let fail = |what: &str, path: &str, e: SftpError| {
        let transport = is_transport_error(&e);
        (sftp_err(conn, what, path, e), transport)
    };
    let result: SftpOutcome = async {
        write_new(conn, s, &tmp, &mut src, 0o600).await?;

        // Keep the mode of the file being replaced when none is asked for (Ansible's
        // atomic_move does the same); new files get 0644.
        let mode = match mode {
            Some(m) => m,
            None => match s.raw.stat(dest).await {
                Ok(a) => a.attrs.permissions.map_or(0o644, |p| p & 0o7777),
                Err(_) => 0o644,
            },
        };
        let attrs = FileAttributes {
            permissions: Some(mode),
            ..FileAttributes::empty()
        };
        s.raw
            .setstat(tmp.as_str(), attrs)
            .await
            .map_err(|e| fail("cannot chmod", &tmp, e))?;
        rename(conn, s, &tmp, dest).await
    }
    .await;
    if result.is_err() {
        let _ = s.raw.remove(tmp.as_str()).await;
    }
    result
}

/// Creates `path` (which must not exist) with `perm`, less the server's umask, and writes
/// `src` into it with pipelined requests.
async fn write_new(
    conn: &SshConnection,
    s: &Sftp,
    path: &str,
    src: &mut Source<'_>,
    perm: u32,
) -> SftpOutcome {
    let fail = |what: &str, e: SftpError| {
        let transport = is_transport_error(&e);
        (sftp_err(conn, what, path, e), transport)
    };
    let attrs = FileAttributes {
        permissions: Some(perm),
        ..FileAttributes::empty()
    };
    let flags = OpenFlags::CREATE | OpenFlags::TRUNCATE | OpenFlags::WRITE | OpenFlags::EXCLUDE;
    let handle = s
        .raw
        .open(path, flags, attrs)
        .await
        .map_err(|e| fail("cannot create", e))?
        .handle;

    let write_all = async {
        let mut inflight = FuturesUnordered::new();
        let mut offset = 0u64;
        let mut eof = false;
        loop {
            while !eof && inflight.len() < IN_FLIGHT {
                let chunk = src.next_chunk().await.map_err(|e| {
                    (
                        ConnError::failed(format!("reading the local source: {e}")),
                        false,
                    )
                })?;
                if chunk.is_empty() {
                    eof = true;
                    break;
                }
                let off = offset;
                offset += chunk.len() as u64;
                inflight.push(s.raw.write(handle.as_str(), off, chunk));
            }
            match inflight.next().await {
                Some(r) => {
                    r.map_err(|e| fail("cannot write", e))?;
                }
                None => return Ok(()),
            }
        }
    };
    let written: SftpOutcome = write_all.await;
    let closed = s.raw.close(handle.as_str()).await;
    written?;
    closed
        .map(|_| ())
        .map_err(|e| fail("cannot finish writing", e))
}

/// Atomic replace: `posix-rename@openssh.com` (rename(2)); plain SFTP rename refuses to replace
/// an existing file, so without the extension an existing destination is removed first.
async fn rename(conn: &SshConnection, s: &Sftp, tmp: &str, dest: &str) -> SftpOutcome {
    let fail = |e: SftpError| {
        let transport = is_transport_error(&e);
        (sftp_err(conn, "cannot rename into", dest, e), transport)
    };
    if s.posix_rename {
        let mut data = Vec::new();
        for p in [tmp, dest] {
            data.extend_from_slice(&(p.len() as u32).to_be_bytes());
            data.extend_from_slice(p.as_bytes());
        }
        return match s.raw.extended(POSIX_RENAME, data).await.map_err(fail)? {
            Packet::Status(st) if st.status_code == StatusCode::Ok => Ok(()),
            Packet::Status(st) => Err(fail(SftpError::Status(st))),
            _ => Err(fail(SftpError::UnexpectedPacket)),
        };
    }
    match s.raw.rename(tmp, dest).await {
        Ok(_) => Ok(()),
        Err(SftpError::Status(st)) if st.status_code == StatusCode::Failure => {
            let _ = s.raw.remove(dest).await;
            s.raw.rename(tmp, dest).await.map(|_| ()).map_err(fail)
        }
        Err(e) => Err(fail(e)),
    }
}

/// [`RemoteFs`] over the session's SFTP client, offered when the server has the extensions
/// that make it complete: `posix-rename` (atomic replace) and `users-groups-by-id` (names).
pub(crate) async fn remote_fs(
    conn: &SshConnection,
    sess: Arc<Session>,
) -> Result<Option<Arc<dyn RemoteFs>>, ConnError> {
    Ok(match sftp(conn, &sess).await? {
        Some(s) if s.posix_rename && s.users_groups => Some(Arc::new(SftpFs {
            conn: conn.clone(),
            sess,
            s,
        })),
        _ => None,
    })
}

struct SftpFs {
    conn: SshConnection,
    sess: Arc<Session>,
    s: Arc<Sftp>,
}

impl SftpFs {
    /// A refusal for a status reply; a broken channel is dropped so the next use reopens it.
    async fn err(&self, what: &str, path: &str, e: SftpError) -> FsError {
        let transport = is_transport_error(&e);
        let ce = sftp_err(&self.conn, what, path, e);
        if transport {
            reset_sftp(&self.sess).await;
            FsError::Conn(ce)
        } else {
            FsError::Refused(ce.message)
        }
    }

    async fn outcome(&self, r: SftpOutcome) -> Result<(), FsError> {
        match r {
            Ok(()) => Ok(()),
            Err((e, true)) => {
                reset_sftp(&self.sess).await;
                Err(FsError::Conn(e))
            }
            Err((e, false)) => Err(FsError::Refused(e.message)),
        }
    }

    async fn attrs(
        &self,
        path: &str,
        r: Result<russh_sftp::protocol::Attrs, SftpError>,
    ) -> Result<Option<FsAttrs>, FsError> {
        match r {
            Ok(a) => {
                let a = a.attrs;
                Ok(Some(FsAttrs {
                    mode: a.permissions.unwrap_or(0),
                    uid: a.uid.unwrap_or(0),
                    gid: a.gid.unwrap_or(0),
                    size: a.size.unwrap_or(0),
                    atime: a.atime.unwrap_or(0),
                    mtime: a.mtime.unwrap_or(0),
                }))
            }
            Err(SftpError::Status(st)) if st.status_code == StatusCode::NoSuchFile => Ok(None),
            Err(e) => Err(self.err("cannot stat", path, e).await),
        }
    }

    async fn setstat(&self, path: &str, what: &str, attrs: FileAttributes) -> Result<(), FsError> {
        match self.s.raw.setstat(path, attrs).await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.err(what, path, e).await),
        }
    }
}

/// The link count in an `ls -l` style long name (`-rw-r--r--    1 root root ...`).
fn longname_nlink(longname: &str) -> Option<u64> {
    longname.split_whitespace().nth(1)?.parse().ok()
}

/// One SSH string off the front of `buf`.
fn take_string<'a>(buf: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = u32::from_be_bytes(buf.get(..4)?.try_into().ok()?) as usize;
    let s = buf.get(4..4 + len)?;
    *buf = &buf[4 + len..];
    Some(s)
}

/// `users-groups-by-id@openssh.com` request: a string of packed uids, one of packed gids.
fn users_groups_request(uids: &[u32], gids: &[u32]) -> Vec<u8> {
    let mut data = Vec::new();
    for ids in [uids, gids] {
        data.extend_from_slice(&((ids.len() * 4) as u32).to_be_bytes());
        for id in ids {
            data.extend_from_slice(&id.to_be_bytes());
        }
    }
    data
}

/// Names for ids, in request order (`None`: the id has no name).
type Names = Vec<Option<String>>;

/// Its reply: a string holding one name string per uid, then the same for gids; an empty name
/// is an id without one.
fn parse_users_groups(mut data: &[u8]) -> Option<(Names, Names)> {
    let mut lists = Vec::new();
    for _ in 0..2 {
        let mut inner = take_string(&mut data)?;
        let mut names = Vec::new();
        while !inner.is_empty() {
            let n = take_string(&mut inner)?;
            names.push((!n.is_empty()).then(|| String::from_utf8_lossy(n).into_owned()));
        }
        lists.push(names);
    }
    let groups = lists.pop()?;
    Some((lists.pop()?, groups))
}

#[async_trait::async_trait]
impl RemoteFs for SftpFs {
    async fn lstat(&self, path: &str) -> Result<Option<FsAttrs>, FsError> {
        let r = self.s.raw.lstat(path).await;
        self.attrs(path, r).await
    }

    async fn stat(&self, path: &str) -> Result<Option<FsAttrs>, FsError> {
        let r = self.s.raw.stat(path).await;
        self.attrs(path, r).await
    }

    async fn read(&self, path: &str, max: u64) -> Result<Option<Vec<u8>>, FsError> {
        let handle = match self
            .s
            .raw
            .open(path, OpenFlags::READ, FileAttributes::empty())
            .await
        {
            Ok(h) => h.handle,
            Err(e) => return Err(self.err("cannot open", path, e).await),
        };
        let mut data = Vec::new();
        let r = loop {
            match self
                .s
                .raw
                .read(handle.as_str(), data.len() as u64, CHUNK as u32)
                .await
            {
                Ok(d) if d.data.is_empty() => break Ok(Some(())),
                Ok(d) => {
                    data.extend_from_slice(&d.data);
                    if data.len() as u64 > max {
                        break Ok(None);
                    }
                }
                Err(SftpError::Status(st)) if st.status_code == StatusCode::Eof => {
                    break Ok(Some(()));
                }
                Err(e) => break Err(e),
            }
        };
        let _ = self.s.raw.close(handle.as_str()).await;
        match r {
            Ok(Some(())) => Ok(Some(data)),
            Ok(None) => Ok(None),
            Err(e) => Err(self.err("cannot read", path, e).await),
        }
    }

    async fn nlink(&self, path: &str) -> Result<Option<u64>, FsError> {
        let (dir, name) = match path.trim_end_matches('/').rsplit_once('/') {
            Some(("", n)) => ("/", n),
            Some((d, n)) => (d, n),
            None => (".", path),
        };
        let handle = match self.s.raw.opendir(dir).await {
            Ok(h) => h.handle,
            Err(e) => return Err(self.err("cannot list", dir, e).await),
        };
        let r = loop {
            match self.s.raw.readdir(handle.as_str()).await {
                Ok(list) => {
                    if let Some(f) = list.files.iter().find(|f| f.filename == name) {
                        break Ok(longname_nlink(&f.longname));
                    }
                }
                Err(SftpError::Status(st)) if st.status_code == StatusCode::Eof => break Ok(None),
                Err(e) => break Err(e),
            }
        };
        let _ = self.s.raw.close(handle.as_str()).await;
        match r {
            Ok(n) => Ok(n),
            Err(e) => Err(self.err("cannot list", dir, e).await),
        }
    }

    async fn create(&self, path: &str, content: FsContent<'_>, perm: u32) -> Result<(), FsError> {
        let mut src = match content {
            FsContent::Bytes(b) => Source::Bytes(b),
            FsContent::File(p) => {
                Source::File(tokio::fs::File::open(p).await.map_err(|e| {
                    FsError::Conn(ConnError::failed(format!("{}: {e}", p.display())))
                })?)
            }
        };
        let r = write_new(&self.conn, &self.s, path, &mut src, perm).await;
        if matches!(r, Err((_, false))) {
            // A write that failed half-way leaves the new file behind.
            let _ = self.s.raw.remove(path).await;
        }
        self.outcome(r).await
    }

    async fn chown(&self, path: &str, uid: u32, gid: u32) -> Result<(), FsError> {
        let attrs = FileAttributes {
            uid: Some(uid),
            gid: Some(gid),
            ..FileAttributes::empty()
        };
        self.setstat(path, "cannot chown", attrs).await
    }

    async fn chmod(&self, path: &str, mode: u32) -> Result<(), FsError> {
        let attrs = FileAttributes {
            permissions: Some(mode & 0o7777),
            ..FileAttributes::empty()
        };
        self.setstat(path, "cannot chmod", attrs).await
    }

    async fn rename(&self, from: &str, to: &str) -> Result<(), FsError> {
        let r = rename(&self.conn, &self.s, from, to).await;
        self.outcome(r).await
    }

    async fn remove(&self, path: &str) -> Result<(), FsError> {
        match self.s.raw.remove(path).await {
            Ok(_) => Ok(()),
            Err(e) => Err(self.err("cannot remove", path, e).await),
        }
    }

    async fn id_names(
        &self,
        uid: u32,
        gid: u32,
    ) -> Result<(Option<String>, Option<String>), FsError> {
        {
            let names = self.s.names.lock().unwrap();
            if let (Some(u), Some(g)) = (names.get(&(false, uid)), names.get(&(true, gid))) {
                return Ok((u.clone(), g.clone()));
            }
        }
        let reply = self
            .s
            .raw
            .extended(USERS_GROUPS, users_groups_request(&[uid], &[gid]))
            .await;
        let bad = || {
            FsError::Conn(ConnError::failed(format!(
                "{}: malformed {USERS_GROUPS} reply",
                self.conn.opts.target()
            )))
        };
        let (u, g) = match reply {
            Ok(Packet::ExtendedReply(r)) => match parse_users_groups(&r.data) {
                Some((mut u, mut g)) if u.len() == 1 && g.len() == 1 => {
                    (u.pop().flatten(), g.pop().flatten())
                }
                _ => return Err(bad()),
            },
            Ok(Packet::Status(st)) => {
                return Err(self.err("cannot name ids", "", SftpError::Status(st)).await);
            }
            Ok(_) => return Err(bad()),
            Err(e) => return Err(self.err("cannot name ids", "", e).await),
        };
        let mut names = self.s.names.lock().unwrap();
        names.insert((false, uid), u.clone());
        names.insert((true, gid), g.clone());
        Ok((u, g))
    }
}

async fn exec_put(
    conn: &SshConnection,
    sess: &Session,
    src: Source<'_>,
    dest: &str,
    mode: Option<u32>,
) -> Result<(), ConnError> {
    let tmp = temp_beside(dest);
    let (t, d) = (sq(&tmp), sq(dest));
    let chmod = match mode {
        Some(m) => format!("chmod {m:o} {t}"),
        None => {
            format!("if [ -e {d} ]; then chmod \"$(stat -c %a {d})\" {t}; else chmod 644 {t}; fi")
        }
    };
    let (input, size) = match src {
        Source::Bytes(b) => (Input::Bytes(b.to_vec()), b.len() as u64),
        Source::File(f) => {
            let size = f
                .metadata()
                .await
                .map_err(|e| ConnError::failed(format!("reading the file for {dest}: {e}")))?
                .len();
            (Input::File(f), size)
        }
    };
    // `cat` ends with success at end of input, and a controller that dies mid-transfer is an
    // end of input too: only a file of the whole size is renamed into place.
    let script = format!(
        "umask 077; cat > {t} && {{ [ \"$(($(wc -c < {t})))\" -eq {size} ] || {{ echo 'the transfer ended early' >&2; false; }}; }} && {chmod} && mv -f {t} {d} || {{ rc=$?; rm -f {t}; exit $rc; }}"
    );
    let cmd = shell_words::join(["/bin/sh", "-c", script.as_str()]);
    let out = conn
        .run(sess, &cmd, input, Sink::Collect, None, None, None, None)
        .await?;
    if out.rc != 0 {
        return Err(ConnError::failed(format!(
            "cannot write {dest} on {}: {}",
            conn.opts.target(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

pub(crate) async fn get(
    conn: &SshConnection,
    sess: &Session,
    src: &str,
    dest: &Path,
) -> Result<(), ConnError> {
    let local_err =
        |e: std::io::Error| ConnError::failed(format!("writing {}: {e}", dest.display()));
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "download".into());
    let tmp = dir.join(format!(
        ".{name}.mixop-{}.part",
        uuid::Uuid::new_v4().simple()
    ));
    // Private while it is written; its final mode is set before the rename.
    let file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .await
        .map_err(local_err)?;

    let fetched = match sftp(conn, sess).await {
        Ok(Some(s)) => {
            let r = sftp_get(conn, &s, src, file).await;
            if let Err((e, true)) = &r {
                tracing::debug!(error = %e, "sftp transport error");
                reset_sftp(sess).await;
            }
            r.map_err(|(e, _)| e)
        }
        Ok(None) => exec_get(conn, sess, src, file).await,
        Err(e) => Err(e),
    };
    let finished = match fetched {
        Ok(()) => {
            // Like the local transport: an existing file keeps its mode, a new one follows the
            // controller's umask.
            let mode = match tokio::fs::metadata(dest).await {
                Ok(m) => m.permissions().mode() & 0o7777,
                Err(_) => 0o666 & !crate::connection::local::umask(),
            };
            match tokio::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode)).await {
                Ok(()) => tokio::fs::rename(&tmp, dest).await.map_err(local_err),
                Err(e) => Err(local_err(e)),
            }
        }
        Err(e) => Err(e),
    };
    if finished.is_err() {
        let _ = tokio::fs::remove_file(&tmp).await;
    }
    finished
}

async fn sftp_get(
    conn: &SshConnection,
    s: &Sftp,
    src: &str,
    mut file: tokio::fs::File,
) -> SftpOutcome {
    let fail = |what: &str, e: SftpError| {
        let transport = is_transport_error(&e);
        (sftp_err(conn, what, src, e), transport)
    };
    let local = |e: std::io::Error| {
        (
            ConnError::failed(format!("writing the local file: {e}")),
            false,
        )
    };
    let handle = s
        .raw
        .open(src, OpenFlags::READ, FileAttributes::empty())
        .await
        .map_err(|e| fail("cannot open", e))?
        .handle;
    let h = handle.as_str();
    let is_eof =
        |e: &SftpError| matches!(e, SftpError::Status(st) if st.status_code == StatusCode::Eof);

    let body = async {
        let mut pending = FuturesOrdered::new();
        let mut next = 0u64;
        let mut eof = false;
        loop {
            while !eof && pending.len() < IN_FLIGHT {
                let off = next;
                next += CHUNK as u64;
                pending.push_back(async move { (off, s.raw.read(h, off, CHUNK as u32).await) });
            }
            let Some((off, res)) = pending.next().await else {
                return Ok(());
            };
            if eof {
                // Replies for offsets past the end: nothing to write.
                continue;
            }
            match res {
                Ok(d) => {
                    file.write_all(&d.data).await.map_err(local)?;
                    // A short reply before the end leaves a gap: fill it before moving on, so
                    // the local file is written strictly in order.
                    let mut pos = off + d.data.len() as u64;
                    let end = off + CHUNK as u64;
                    while pos < end {
                        match s.raw.read(h, pos, (end - pos) as u32).await {
                            Ok(d) if !d.data.is_empty() => {
                                file.write_all(&d.data).await.map_err(local)?;
                                pos += d.data.len() as u64;
                            }
                            Ok(_) => {
                                eof = true;
                                break;
                            }
                            Err(e) if is_eof(&e) => {
                                eof = true;
                                break;
                            }
                            Err(e) => return Err(fail("cannot read", e)),
                        }
                    }
                }
                Err(e) if is_eof(&e) => eof = true,
                Err(e) => return Err(fail("cannot read", e)),
            }
        }
    };
    let r: SftpOutcome = body.await;
    let _ = s.raw.close(h).await;
    r?;
    file.flush().await.map_err(local)?;
    file.sync_all().await.map_err(local)?;
    Ok(())
}

async fn exec_get(
    conn: &SshConnection,
    sess: &Session,
    src: &str,
    file: tokio::fs::File,
) -> Result<(), ConnError> {
    let cmd = shell_words::join(["/bin/sh", "-c", &format!("cat -- {}", sq(src))]);
    let sink_file = file
        .try_clone()
        .await
        .map_err(|e| ConnError::failed(format!("local file: {e}")))?;
    let out = conn
        .run(
            sess,
            &cmd,
            Input::None,
            Sink::File(sink_file),
            None,
            None,
            None,
            None,
        )
        .await?;
    if out.rc != 0 {
        return Err(ConnError::failed(format!(
            "cannot read {src} on {}: {}",
            conn.opts.target(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    file.sync_all()
        .await
        .map_err(|e| ConnError::failed(format!("local file: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_stay_in_the_destination_directory() {
        let t = temp_beside("/etc/app/conf.yml");
        assert!(t.starts_with("/etc/app/.conf.yml.mixop-"), "{t}");
        assert!(t.ends_with(".tmp"));
        let t = temp_beside("rel.txt");
        assert!(t.starts_with(".rel.txt.mixop-"), "{t}");
        assert_ne!(temp_beside("/x"), temp_beside("/x"));
    }

    #[test]
    fn long_names_give_link_counts() {
        let l = "-rw-r--r--    2 root     root           12 Dec  3 15:00 a b";
        assert_eq!(longname_nlink(l), Some(2));
        assert_eq!(longname_nlink("a"), None);
    }

    #[test]
    fn users_groups_messages_round_trip() {
        let req = users_groups_request(&[0, 1000], &[5]);
        assert_eq!(
            req,
            [
                &[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 3, 232][..],
                &[0, 0, 0, 4, 0, 0, 0, 5]
            ]
            .concat()
        );
        // "root", "" (no name) / "tty"
        let mut reply = Vec::new();
        let inner = |names: &[&str]| {
            let mut v = Vec::new();
            for n in names {
                v.extend_from_slice(&(n.len() as u32).to_be_bytes());
                v.extend_from_slice(n.as_bytes());
            }
            v
        };
        for list in [inner(&["root", ""]), inner(&["tty"])] {
            reply.extend_from_slice(&(list.len() as u32).to_be_bytes());
            reply.extend_from_slice(&list);
        }
        let (u, g) = parse_users_groups(&reply).unwrap();
        assert_eq!(u, vec![Some("root".to_string()), None]);
        assert_eq!(g, vec![Some("tty".to_string())]);
        assert!(parse_users_groups(&reply[..reply.len() - 1]).is_none());
    }

    #[tokio::test]
    async fn sources_yield_full_chunks() {
        let data = vec![7u8; CHUNK * 2 + 10];
        let mut s = Source::Bytes(&data);
        let mut sizes = vec![];
        loop {
            let c = s.next_chunk().await.unwrap();
            if c.is_empty() {
                break;
            }
            sizes.push(c.len());
        }
        assert_eq!(sizes, vec![CHUNK, CHUNK, 10]);
    }
}
