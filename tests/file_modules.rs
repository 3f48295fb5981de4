//! The file modules run through the library against a local connection in a temp dir.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use mixop::modules::{ModError, Outcome};

mod common;

struct Harness {
    direct: common::Direct,
    dir: tempfile::TempDir,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().unwrap();
        Harness {
            direct: common::Direct::new(&dir.path().join("pb")),
            dir,
        }
    }
    fn p(&self, rel: &str) -> String {
        self.dir.path().join(rel).display().to_string()
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    /// Runs a module; `args` may mention `@/` for the temp dir.
    async fn try_run(
        &self,
        module: &str,
        args: Value,
        check: bool,
        diff: bool,
    ) -> Result<Outcome, ModError> {
        let base = self.dir.path().display().to_string();
        let text = args.to_string().replace("@/", &format!("{base}/"));
        let args: Value = serde_json::from_str(&text).unwrap();
        self.direct.run(module, args, check, diff).await
    }
    async fn run(&self, module: &str, args: Value) -> Outcome {
        self.run_with(module, args, false, false).await
    }
    async fn run_with(&self, module: &str, args: Value, check: bool, diff: bool) -> Outcome {
        match self.try_run(module, args.clone(), check, diff).await {
            Ok(r) => r,
            Err(ModError::Failed { msg, result }) => {
                panic!("{module} {args} failed: {msg} {result:?}")
            }
            Err(ModError::Conn(e)) => panic!("{module} {args}: connection error {e}"),
        }
    }
    async fn fail(&self, module: &str, args: Value) -> String {
        match self.try_run(module, args, false, false).await {
            Ok(r) => panic!("{module} should have failed: {r:?}"),
            Err(ModError::Failed { msg, .. }) => msg,
            Err(ModError::Conn(e)) => panic!("connection error {e}"),
        }
    }
    fn write(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }
    fn mode(&self, rel: &str) -> u32 {
        std::fs::symlink_metadata(self.path(rel))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }
}

fn changed(r: &Outcome) -> bool {
    r["changed"].as_bool().unwrap()
}

/// Every file name below `dir` (to find leftover temporaries).
fn names(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let n = e.file_name().to_string_lossy().into_owned();
        if e.file_type().unwrap().is_dir() {
            for sub in names(&e.path()) {
                out.push(format!("{n}/{sub}"));
            }
        }
        out.push(n);
    }
    out.sort();
    out
}

fn no_temporaries(dir: &Path) {
    let left: Vec<_> = names(dir)
        .into_iter()
        .filter(|n| n.contains("mixop"))
        .collect();
    assert!(left.is_empty(), "temporary files left behind: {left:?}");
}

fn sha1(data: &[u8]) -> String {
    use sha1::Digest;
    hex::encode(sha1::Sha1::digest(data))
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

#[tokio::test]
async fn copy_content_is_idempotent_and_atomic() {
    let h = Harness::new();
    let args = json!({"content": "hello\n", "dest": "@/out/a.txt", "mode": "0640"});
    std::fs::create_dir(h.path("out")).unwrap();
    let r = h.run("copy", args.clone()).await;
    assert!(changed(&r));
    assert_eq!(h.read("out/a.txt"), "hello\n");
    assert_eq!(h.mode("out/a.txt"), 0o640);
    assert_eq!(r["checksum"], sha1(b"hello\n"));
    assert_eq!(r["mode"], "0640");
    assert_eq!(r["size"], 6);
    assert_eq!(r["state"], "file");
    assert_eq!(r["dest"], h.p("out/a.txt"));
    let ino = std::fs::metadata(h.path("out/a.txt")).unwrap().ino();
    let r = h.run("ansible.builtin.copy", args.clone()).await;
    assert!(!changed(&r), "{r:?}");
    assert_eq!(r["checksum"], sha1(b"hello\n"));
    // Unchanged content is not rewritten.
    assert_eq!(std::fs::metadata(h.path("out/a.txt")).unwrap().ino(), ino);
    // Only the mode differs: changed, no transfer.
    let r = h
        .run(
            "copy",
            json!({"content": "hello\n", "dest": "@/out/a.txt", "mode": "0600"}),
        )
        .await;
    assert!(changed(&r));
    assert_eq!(h.mode("out/a.txt"), 0o600);
    assert_eq!(std::fs::metadata(h.path("out/a.txt")).unwrap().ino(), ino);
    // New content replaces the file by rename (new inode) and keeps the old mode.
    let r = h
        .run("copy", json!({"content": "bye\n", "dest": "@/out/a.txt"}))
        .await;
    assert!(changed(&r));
    assert_eq!(h.read("out/a.txt"), "bye\n");
    assert_eq!(h.mode("out/a.txt"), 0o600);
    assert_ne!(std::fs::metadata(h.path("out/a.txt")).unwrap().ino(), ino);
    no_temporaries(h.dir.path());
}

#[tokio::test]
async fn copy_check_mode_and_diff_change_nothing() {
    let h = Harness::new();
    h.write("a.txt", "one\n");
    let r = h
        .run_with(
            "copy",
            json!({"content": "two\n", "dest": "@/a.txt", "mode": "0600"}),
            true,
            true,
        )
        .await;
    assert!(changed(&r));
    assert_eq!(r["diff"]["before"], "one\n");
    assert_eq!(r["diff"]["after"], "two\n");
    assert_eq!(h.read("a.txt"), "one\n");
    assert_ne!(h.mode("a.txt"), 0o600);
    let r = h
        .run_with(
            "copy",
            json!({"content": "x", "dest": "@/new.txt"}),
            true,
            false,
        )
        .await;
    assert!(changed(&r));
    assert!(!h.path("new.txt").exists());
    // Binary content is not diffed as text.
    let r = h
        .run_with(
            "copy",
            json!({"content": "a\u{0}b", "dest": "@/a.txt"}),
            true,
            true,
        )
        .await;
    assert_eq!(r["diff"]["src_binary"], 1);
    no_temporaries(h.dir.path());
}

#[tokio::test]
async fn copy_src_file_dest_rules_force_and_backup() {
    let h = Harness::new();
    h.write("pb/files/app.conf", "port=1\n");
    // Relative src is found under files/; dest ending in / is a directory (created).
    let r = h
        .run("copy", json!({"src": "app.conf", "dest": "@/etc/app/"}))
        .await;
    assert!(changed(&r));
    assert_eq!(h.read("etc/app/app.conf"), "port=1\n");
    // An existing directory as dest gets dest/basename.
    let r = h
        .run("copy", json!({"src": "app.conf", "dest": "@/etc/app"}))
        .await;
    assert!(!changed(&r), "{r:?}");
    // Missing parent without a trailing slash is an error.
    let msg = h
        .fail("copy", json!({"src": "app.conf", "dest": "@/nope/x.conf"}))
        .await;
    assert!(msg.contains("does not exist"), "{msg}");
    // force: false never overwrites.
    h.write("pb/files/app.conf", "port=2\n");
    let r = h
        .run(
            "copy",
            json!({"src": "app.conf", "dest": "@/etc/app/app.conf", "force": false}),
        )
        .await;
    assert!(!changed(&r));
    assert_eq!(h.read("etc/app/app.conf"), "port=1\n");
    // backup keeps the old content under a timestamped name.
    let r = h
        .run(
            "copy",
            json!({"src": "app.conf", "dest": "@/etc/app/app.conf", "backup": true}),
        )
        .await;
    assert!(changed(&r));
    let backup = r["backup_file"].as_str().unwrap().to_string();
    assert!(
        backup.starts_with(&h.p("etc/app/app.conf.")) && backup.ends_with('~'),
        "{backup}"
    );
    assert_eq!(std::fs::read_to_string(&backup).unwrap(), "port=1\n");
    assert_eq!(h.read("etc/app/app.conf"), "port=2\n");
    // Content into a directory is refused.
    let msg = h
        .fail("copy", json!({"content": "x", "dest": "@/etc/app"}))
        .await;
    assert!(msg.contains("dir as dest"), "{msg}");
    no_temporaries(h.dir.path());
}

#[tokio::test]
async fn copy_validate_runs_on_the_temporary_file() {
    let h = Harness::new();
    h.write("conf", "good\n");
    let msg = h
        .fail(
            "copy",
            json!({"content": "bad\n", "dest": "@/conf", "validate": "grep -q good %s"}),
        )
        .await;
    assert!(msg.contains("failed to validate"), "{msg}");
    assert_eq!(h.read("conf"), "good\n");
    no_temporaries(h.dir.path());
    let r = h
        .run(
            "copy",
            json!({"content": "good too\n", "dest": "@/conf", "validate": "grep -q good %s"}),
        )
        .await;
    assert!(changed(&r));
    assert_eq!(h.read("conf"), "good too\n");
    no_temporaries(h.dir.path());
}

#[tokio::test]
async fn copy_recursive_with_and_without_trailing_slash() {
    let h = Harness::new();
    h.write("pb/files/site/index.html", "<h1>hi</h1>\n");
    h.write("pb/files/site/css/main.css", "body{}\n");
    std::fs::create_dir_all(h.path("pb/files/site/empty")).unwrap();
    std::fs::create_dir(h.path("www")).unwrap();
    let args = json!({"src": "site", "dest": "@/www", "mode": "0644", "directory_mode": "0750"});
    let r = h.run("copy", args.clone()).await;
    assert!(changed(&r));
    assert_eq!(h.read("www/site/index.html"), "<h1>hi</h1>\n");
    assert_eq!(h.read("www/site/css/main.css"), "body{}\n");
    assert!(h.path("www/site/empty").is_dir());
    assert_eq!(h.mode("www/site/css"), 0o750);
    assert_eq!(h.mode("www/site/index.html"), 0o644);
    assert!(!changed(&h.run("copy", args.clone()).await));
    // One file changes: only it is rewritten.
    h.write("pb/files/site/css/main.css", "body{color:red}\n");
    let ino = std::fs::metadata(h.path("www/site/index.html"))
        .unwrap()
        .ino();
    assert!(changed(&h.run("copy", args.clone()).await));
    assert_eq!(h.read("www/site/css/main.css"), "body{color:red}\n");
    assert_eq!(
        std::fs::metadata(h.path("www/site/index.html"))
            .unwrap()
            .ino(),
        ino
    );
    // `site/` copies the contents.
    let r = h
        .run("copy", json!({"src": "site/", "dest": "@/flat"}))
        .await;
    assert!(changed(&r));
    assert_eq!(h.read("flat/index.html"), "<h1>hi</h1>\n");
    assert!(!changed(
        &h.run("copy", json!({"src": "site/", "dest": "@/flat"}))
            .await
    ));
    // Check mode on a fresh destination creates nothing.
    let r = h
        .run_with("copy", json!({"src": "site", "dest": "@/dry"}), true, false)
        .await;
    assert!(changed(&r));
    assert!(!h.path("dry").exists());
    no_temporaries(h.dir.path());
}

#[tokio::test]
async fn copy_remote_src_file_and_directory() {
    let h = Harness::new();
    h.write("remote/a.txt", "A\n");
    h.write("remote/tree/x/y.txt", "Y\n");
    std::fs::set_permissions(
        h.path("remote/a.txt"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let args = json!({"src": "@/remote/a.txt", "dest": "@/b.txt", "remote_src": true});
    assert!(changed(&h.run("copy", args.clone()).await));
    assert_eq!(h.read("b.txt"), "A\n");
    // remote_src keeps the source's mode.
    assert_eq!(h.mode("b.txt"), 0o600);
    assert!(!changed(&h.run("copy", args).await));
    let args = json!({"src": "@/remote/tree", "dest": "@/copy", "remote_src": true});
    assert!(changed(&h.run("copy", args.clone()).await));
    assert_eq!(h.read("copy/tree/x/y.txt"), "Y\n");
    assert!(!changed(&h.run("copy", args.clone()).await));
    h.write("remote/tree/x/y.txt", "Z\n");
    assert!(changed(
        &h.run_with("copy", args.clone(), true, false).await
    ));
    assert_eq!(h.read("copy/tree/x/y.txt"), "Y\n");
    assert!(changed(&h.run("copy", args).await));
    assert_eq!(h.read("copy/tree/x/y.txt"), "Z\n");
    no_temporaries(h.dir.path());
}

#[tokio::test]
async fn owner_and_group_are_applied() {
    // CI runs the suite as root; a test that cannot run fails with the reason instead of
    // passing without checking anything.
    assert!(
        is_root(),
        "owner_and_group_are_applied needs root (it chowns files to nobody/nogroup and back): \
         run the suite as root, as CI does (.ci/run)"
    );
    let h = Harness::new();
    let args = json!({"content": "x", "dest": "@/owned", "owner": "nobody", "group": "nogroup", "mode": "0604"});
    let r = h.run("copy", args.clone()).await;
    assert!(changed(&r));
    assert_eq!(
        (r["owner"].as_str(), r["group"].as_str()),
        (Some("nobody"), Some("nogroup"))
    );
    let md = std::fs::metadata(h.path("owned")).unwrap();
    assert_eq!(md.uid(), 65534);
    assert!(!changed(&h.run("copy", args).await));
    // Replacing content keeps the existing owner when none is asked for.
    let r = h
        .run("copy", json!({"content": "y", "dest": "@/owned"}))
        .await;
    assert!(changed(&r));
    assert_eq!(r["owner"], "nobody");
    // file: owner change alone.
    let r = h
        .run("file", json!({"path": "@/owned", "owner": "root"}))
        .await;
    assert!(changed(&r));
    assert_eq!(std::fs::metadata(h.path("owned")).unwrap().uid(), 0);
    // Recursive ownership.
    h.write("tree/a/b", "1");
    let args = json!({"path": "@/tree", "state": "directory", "recurse": true, "owner": "nobody"});
    assert!(changed(&h.run("file", args.clone()).await));
    assert_eq!(std::fs::metadata(h.path("tree/a/b")).unwrap().uid(), 65534);
    assert!(!changed(&h.run("file", args).await));
    let msg = h
        .fail(
            "file",
            json!({"path": "@/owned", "owner": "no-such-user-xyz"}),
        )
        .await;
    assert!(msg.contains("chown"), "{msg}");
}

#[tokio::test]
async fn template_renders_then_copies() {
    let h = Harness::new();
    h.write("pb/templates/motd.j2", "Welcome\n");
    let args = json!({"src": "motd.j2", "dest": "@/motd", "mode": "0644"});
    let r = h.run("template", args.clone()).await;
    assert!(changed(&r));
    let expected = h.direct.render_file(&h.path("pb/templates/motd.j2"));
    assert_eq!(h.read("motd"), expected);
    assert_eq!(r["checksum"], sha1(expected.as_bytes()));
    assert!(!changed(&h.run("template", args).await));
    // A directory dest takes the template's name.
    std::fs::create_dir(h.path("etc")).unwrap();
    h.run("template", json!({"src": "motd.j2", "dest": "@/etc"}))
        .await;
    assert!(h.path("etc/motd.j2").is_file());
}

#[tokio::test]
async fn file_directories_modes_and_absent() {
    let h = Harness::new();
    let args = json!({"path": "@/a/b/c", "state": "directory", "mode": "0750"});
    let r = h.run("file", args.clone()).await;
    assert!(changed(&r));
    assert_eq!(r["state"], "directory");
    assert_eq!(r["mode"], "0750");
    // Every created component gets the mode, like Ansible.
    assert_eq!(h.mode("a"), 0o750);
    assert_eq!(h.mode("a/b/c"), 0o750);
    assert!(!changed(&h.run("file", args).await));
    // Symbolic modes.
    let r = h
        .run("file", json!({"path": "@/a/b/c", "mode": "g+w,o+rx"}))
        .await;
    assert!(changed(&r));
    assert_eq!(h.mode("a/b/c"), 0o775);
    assert!(!changed(
        &h.run("file", json!({"path": "@/a/b/c", "mode": "g+w,o+rx"}))
            .await
    ));
    // Recursion applies to everything below.
    h.write("a/b/c/f1", "1");
    h.write("a/b/c/d/f2", "2");
    let args =
        json!({"path": "@/a", "state": "directory", "recurse": true, "mode": "u=rwX,g=rX,o="});
    assert!(changed(&h.run("file", args.clone()).await));
    assert_eq!(h.mode("a/b/c/f1"), 0o640);
    assert_eq!(h.mode("a/b/c/d"), 0o750);
    assert!(!changed(&h.run("file", args).await));
    // A file where a directory is wanted.
    let msg = h
        .fail("file", json!({"path": "@/a/b/c/f1", "state": "directory"}))
        .await;
    assert!(msg.contains("already exists as a file"), "{msg}");
    // state=file on a missing path fails; check mode changes nothing.
    let msg = h
        .fail("file", json!({"path": "@/missing", "state": "file"}))
        .await;
    assert!(msg.contains("is absent, cannot continue"), "{msg}");
    let r = h
        .run_with(
            "file",
            json!({"path": "@/a", "state": "absent"}),
            true,
            false,
        )
        .await;
    assert!(changed(&r));
    assert!(h.path("a").is_dir());
    let r = h
        .run("file", json!({"path": "@/a", "state": "absent"}))
        .await;
    assert!(changed(&r));
    assert!(!h.path("a").exists());
    assert!(!changed(
        &h.run("file", json!({"path": "@/a", "state": "absent"}))
            .await
    ));
}

#[tokio::test]
async fn file_links_and_touch() {
    let h = Harness::new();
    h.write("target.txt", "t");
    h.write("other.txt", "o");
    let args = json!({"path": "@/lnk", "src": "target.txt", "state": "link"});
    let r = h.run("file", args.clone()).await;
    assert!(changed(&r));
    assert_eq!(r["state"], "link");
    assert_eq!(
        std::fs::read_link(h.path("lnk")).unwrap(),
        PathBuf::from("target.txt")
    );
    assert!(!changed(&h.run("file", args).await));
    // Retarget.
    let r = h
        .run(
            "file",
            json!({"path": "@/lnk", "src": "other.txt", "state": "link"}),
        )
        .await;
    assert!(changed(&r));
    assert_eq!(h.read("lnk"), "o");
    // A missing src needs force.
    let msg = h
        .fail(
            "file",
            json!({"path": "@/l2", "src": "nope", "state": "link"}),
        )
        .await;
    assert!(msg.contains("src file does not exist"), "{msg}");
    assert!(changed(
        &h.run(
            "file",
            json!({"path": "@/l2", "src": "nope", "state": "link", "force": true})
        )
        .await
    ));
    // A regular file is not replaced by a link without force.
    let msg = h
        .fail(
            "file",
            json!({"path": "@/other.txt", "src": "target.txt", "state": "link"}),
        )
        .await;
    assert!(
        msg.contains("refusing to convert from file to symlink"),
        "{msg}"
    );
    // Hard links.
    let args = json!({"path": "@/hard", "src": "@/target.txt", "state": "hard"});
    assert!(changed(&h.run("file", args.clone()).await));
    assert_eq!(
        std::fs::metadata(h.path("hard")).unwrap().ino(),
        std::fs::metadata(h.path("target.txt")).unwrap().ino()
    );
    assert!(!changed(&h.run("file", args).await));
    // touch creates, and is always changed (it updates the times).
    let r = h
        .run(
            "file",
            json!({"path": "@/t", "state": "touch", "mode": "0600"}),
        )
        .await;
    assert!(changed(&r));
    assert_eq!(h.mode("t"), 0o600);
    assert!(changed(
        &h.run("file", json!({"path": "@/t", "state": "touch"}))
            .await
    ));
    // ...unless the times are preserved.
    let keep = json!({"path": "@/t", "state": "touch", "modification_time": "preserve", "access_time": "preserve"});
    assert!(!changed(&h.run("file", keep).await));
    let stamp = json!({"path": "@/t", "state": "file", "modification_time": "202001021530.45"});
    assert!(changed(&h.run("file", stamp.clone()).await));
    assert!(!changed(&h.run("file", stamp).await));
    let mtime = std::fs::metadata(h.path("t")).unwrap().mtime();
    let expect = chrono::NaiveDateTime::parse_from_str("202001021530.45", "%Y%m%d%H%M.%S")
        .unwrap()
        .and_local_timezone(chrono::Local)
        .unwrap()
        .timestamp();
    assert_eq!(mtime, expect);
}

#[tokio::test]
async fn stat_slurp_fetch() {
    let h = Harness::new();
    h.write("data.txt", "payload\n");
    std::os::unix::fs::symlink(h.path("data.txt"), h.path("ln")).unwrap();
    let r = h.run("stat", json!({"path": "@/data.txt"})).await;
    let st = &r["stat"];
    assert_eq!(st["exists"], true);
    assert_eq!(st["isreg"], true);
    assert_eq!(st["size"], 8);
    assert_eq!(st["checksum"], sha1(b"payload\n"));
    assert_eq!(st["mode"], format!("{:04o}", h.mode("data.txt")));
    assert_eq!(st["mimetype"], "text/plain");
    let r = h
        .run(
            "stat",
            json!({"path": "@/data.txt", "checksum_algorithm": "sha256"}),
        )
        .await;
    assert_eq!(r["stat"]["checksum"].as_str().unwrap().len(), 64);
    let r = h
        .run("stat", json!({"path": "@/ln", "get_mime": false}))
        .await;
    assert_eq!(r["stat"]["islnk"], true);
    assert_eq!(r["stat"]["lnk_target"], h.p("data.txt"));
    assert!(r["stat"].get("checksum").is_none());
    let r = h.run("stat", json!({"path": "@/ln", "follow": true})).await;
    assert_eq!(r["stat"]["isreg"], true);
    let r = h.run("stat", json!({"path": "@/nothing"})).await;
    assert_eq!(r["stat"], json!({"exists": false}));
    assert!(!changed(&r));

    let r = h.run("slurp", json!({"src": "@/data.txt"})).await;
    assert_eq!(r["content"], "cGF5bG9hZAo=");
    assert_eq!(r["encoding"], "base64");
    let msg = h.fail("slurp", json!({"src": "@/nothing"})).await;
    assert!(msg.starts_with("File not found"), "{msg}");

    let args = json!({"src": "@/data.txt", "dest": "@/fetched"});
    let r = h.run("fetch", args.clone()).await;
    assert!(changed(&r));
    let local = h
        .path("fetched/localhost")
        .join(h.p("data.txt").trim_start_matches('/'));
    assert_eq!(r["dest"], local.display().to_string());
    assert_eq!(std::fs::read_to_string(&local).unwrap(), "payload\n");
    assert!(!changed(&h.run("fetch", args).await));
    let r = h
        .run(
            "fetch",
            json!({"src": "@/data.txt", "dest": "@/flat/", "flat": true}),
        )
        .await;
    assert!(changed(&r));
    assert_eq!(h.read("flat/data.txt"), "payload\n");
    let r = h
        .run(
            "fetch",
            json!({"src": "@/nothing", "dest": "@/f", "fail_on_missing": false}),
        )
        .await;
    assert!(!changed(&r));
    let msg = h
        .fail("fetch", json!({"src": "@/nothing", "dest": "@/f"}))
        .await;
    assert!(msg.contains("does not exist"), "{msg}");
    // A large file goes through the connection's get_file instead of the probe.
    let big = "x".repeat(200_000);
    h.write("big", &big);
    h.run(
        "fetch",
        json!({"src": "@/big", "dest": "@/b/", "flat": true}),
    )
    .await;
    assert_eq!(h.read("b/big"), big);
}

#[tokio::test]
async fn lineinfile_edits() {
    let h = Harness::new();
    h.write("sshd_config", "#Port 22\nPermitRootLogin yes\n");
    let args = json!({"path": "@/sshd_config", "regexp": "^#?Port ", "line": "Port 2222"});
    let r = h.run("lineinfile", args.clone()).await;
    assert!(changed(&r));
    assert_eq!(r["msg"], "line replaced");
    assert_eq!(h.read("sshd_config"), "Port 2222\nPermitRootLogin yes\n");
    assert!(!changed(&h.run("lineinfile", args).await));
    // Check mode and diff.
    let r = h
        .run_with(
            "lineinfile",
            json!({"path": "@/sshd_config", "line": "UseDNS no"}),
            true,
            true,
        )
        .await;
    assert!(changed(&r));
    assert_eq!(
        r["diff"]["after"],
        "Port 2222\nPermitRootLogin yes\nUseDNS no\n"
    );
    assert_eq!(h.read("sshd_config"), "Port 2222\nPermitRootLogin yes\n");
    // insertbefore, backrefs, absent.
    h.run(
        "lineinfile",
        json!({"path": "@/sshd_config", "line": "# managed", "insertbefore": "BOF"}),
    )
    .await;
    h.run("lineinfile", json!({"path": "@/sshd_config", "regexp": "^(PermitRootLogin) yes$", "line": "\\1 no", "backrefs": true})).await;
    assert_eq!(
        h.read("sshd_config"),
        "# managed\nPort 2222\nPermitRootLogin no\n"
    );
    let r = h
        .run(
            "lineinfile",
            json!({"path": "@/sshd_config", "regexp": "^#", "state": "absent"}),
        )
        .await;
    assert_eq!(
        (r["found"].as_u64(), r["msg"].as_str()),
        (Some(1), Some("1 line(s) removed"))
    );
    assert_eq!(h.read("sshd_config"), "Port 2222\nPermitRootLogin no\n");
    // create, mode, missing file.
    let msg = h
        .fail("lineinfile", json!({"path": "@/new/conf", "line": "a=1"}))
        .await;
    assert!(msg.contains("does not exist"), "{msg}");
    let r = h
        .run(
            "lineinfile",
            json!({"path": "@/new/conf", "line": "a=1", "create": true, "mode": "0600"}),
        )
        .await;
    assert!(changed(&r));
    assert_eq!(h.read("new/conf"), "a=1\n");
    assert_eq!(h.mode("new/conf"), 0o600);
    // Only the mode changes.
    let r = h
        .run(
            "lineinfile",
            json!({"path": "@/new/conf", "line": "a=1", "mode": "0644"}),
        )
        .await;
    assert!(changed(&r));
    assert_eq!(r["msg"], "ownership, perms or SE linux context changed");
    // A symlinked path is edited through the link; the link stays.
    std::os::unix::fs::symlink(h.path("new/conf"), h.path("conf-link")).unwrap();
    h.run(
        "lineinfile",
        json!({"path": "@/conf-link", "line": "b=2", "backup": true}),
    )
    .await;
    assert!(
        std::fs::symlink_metadata(h.path("conf-link"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(h.read("new/conf"), "a=1\nb=2\n");
    let msg = h
        .fail("lineinfile", json!({"path": "@/new", "line": "x"}))
        .await;
    assert!(msg.contains("is a directory"), "{msg}");
    let msg = h
        .fail(
            "lineinfile",
            json!({"path": "@/new/conf", "regexp": "(?=x)", "line": "x"}),
        )
        .await;
    assert!(msg.contains("look-around"), "{msg}");
    no_temporaries(h.dir.path());
}
