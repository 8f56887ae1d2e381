//! End-to-end tests of `sipwake ctl` and `sipwake user` as an operator
//! types them, against the real binary: global flags anywhere on the line,
//! one-line errors with documented exit codes, `ctl rm` answering "not
//! found" alike for a missing AoR and a missing binding, the push state in
//! `ctl aors`, `ctl users`, and `sipwake user`'s refusals.

mod common;

use common::phone::Phone;
use common::webhook::{config, push_contact, webhook};
use common::*;
use std::process::Output;

const NO_AUTH: &str = "[auth]\nenabled = false\n";

/// Runs `sipwake ARGS` with `stdin`.
fn sipwake(args: &[&str], stdin: &str) -> Output {
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    sipwake_cli(&args, stdin)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `ARGS` with `--url` of this server appended (after the subcommand, as an operator may type it).
fn ctl(server: &Server, args: &[&str]) -> Output {
    let url = format!("http://{}", server.mgmt);
    let mut all = vec!["ctl"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--url", &url]);
    sipwake(&all, "")
}

fn register(server: &Server, user: &str) -> Phone {
    let mut p = Phone::udp(server.udp, user, "127.0.0.1");
    let contact = format!("<sip:{user}@{}>", p.local());
    let r = p.register(&[&contact], &["Expires: 600"]);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
    p
}

#[test]
fn global_flags_go_anywhere_on_the_line() {
    let server = Server::start_with(&[], Some(NO_AUTH));
    let _jack = register(&server, "jack");
    let url = format!("http://{}", server.mgmt);
    // As the README writes it: the flag after the subcommand and its argument.
    for args in [
        vec!["ctl", "aor", "jack@127.0.0.1", "--json", "--url", &url],
        vec!["ctl", "--json", "aor", "jack@127.0.0.1", "--url", &url],
        vec!["ctl", "--url", &url, "aor", "--json", "jack@127.0.0.1"],
    ] {
        let out = sipwake(&args, "");
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        let v: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap_or_else(|e| panic!("{e}: {args:?}"));
        assert_eq!(v["aor"], "jack@127.0.0.1");
    }
    let out = ctl(&server, &["stats", "--json"]);
    assert!(text(&out.stdout).contains("\"bindings\":1"), "{}", text(&out.stdout));
    // The table without --json.
    let out = ctl(&server, &["aors"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("jack@127.0.0.1") && text(&out.stdout).contains("(1 of 1 AoRs)"));
}

#[test]
fn errors_are_one_line_with_documented_exit_codes() {
    let server = Server::start_with(&[], Some(NO_AUTH));
    let _jack = register(&server, "jack");
    // Not found: exit 1, the API's message on one line.
    let out = ctl(&server, &["aor", "nobody@127.0.0.1"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "error: no AoR nobody@127.0.0.1 (404)\n");
    assert!(out.stdout.is_empty());
    // ctl rm: a missing AoR and a missing binding are both "not found", exit 1.
    let out = ctl(&server, &["rm", "nobody@127.0.0.1"]);
    assert_eq!((out.status.code(), text(&out.stderr)), (Some(1), "error: no AoR nobody@127.0.0.1 (404)\n".into()));
    let out = ctl(&server, &["rm", "jack@127.0.0.1", "no-such-id"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "error: no binding no-such-id in AoR jack@127.0.0.1 (404)\n");
    let out = ctl(&server, &["rm", "nobody@127.0.0.1", "no-such-id"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    // The real removal, then the same again: not found.
    let out = ctl(&server, &["rm", "jack@127.0.0.1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "removed 1 binding(s)\n");
    assert_eq!(ctl(&server, &["rm", "jack@127.0.0.1"]).status.code(), Some(1));
    // Usage: a bad user name (the API's 400), a missing argument (clap): exit 2.
    let out = ctl(&server, &["users", "rm", "not-a-user"]);
    assert_eq!(out.status.code(), Some(2));
    let e = text(&out.stderr);
    assert!(e.starts_with("error: ") && e.ends_with("(400)\n") && e.lines().count() == 1, "{e}");
    assert_eq!(ctl(&server, &["aor"]).status.code(), Some(2));
    // Unreachable: exit 3.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let out = sipwake(&["ctl", "stats", "--url", &url], "");
    assert_eq!(out.status.code(), Some(3));
    let e = text(&out.stderr);
    assert!(e.starts_with("error: cannot reach the management API at") && e.lines().count() == 1, "{e}");
    // The codes are documented in the help.
    let out = sipwake(&["ctl", "--help"], "");
    let help = text(&out.stdout);
    assert!(help.contains("Exit codes") && help.contains("1  not found") && help.contains("3  the server"), "{help}");
}

#[test]
fn a_wrong_token_is_a_configuration_error() {
    let server = Server::start_with(&[], Some("[management]\ntoken = \"t0ken-right\"\n"));
    let out = ctl(&server, &["stats", "--token", "wrong"]);
    assert_eq!(out.status.code(), Some(2));
    let e = text(&out.stderr);
    assert!(e.contains("(401)") && e.contains("--token") && e.lines().count() == 1, "{e}");
    let out = ctl(&server, &["--token", "t0ken-right", "stats"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn ctl_aors_shows_push_state_only_when_push_is_on() {
    let (url, _pushes) = webhook(200);
    let on = Server::start_with(&[], Some(&config(&url, "")));
    let mut dev = Phone::udp(on.udp, "dev", "127.0.0.1");
    let contact = push_contact(&dev, "TOKEN-A");
    let r = dev.register(&[&contact], &["Expires: 600"]);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
    let out = ctl(&on, &["aors"]);
    let t = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let row = t.lines().find(|l| l.starts_with("dev@127.0.0.1")).unwrap_or_else(|| panic!("{t}"));
    assert_eq!(row.split_whitespace().nth(6), Some("apns"), "{t}");
    assert!(t.contains("push: next refresh in 7m") && t.contains("never pushed"), "{t}");
    let out = ctl(&on, &["aor", "dev@127.0.0.1"]);
    assert!(text(&out.stdout).contains("push: next refresh in"), "{}", text(&out.stdout));
    // Push off: the same Contact, no provider and no push state.
    let off = Server::start_with(&[], Some(NO_AUTH));
    let mut dev = Phone::udp(off.udp, "dev", "127.0.0.1");
    let contact = push_contact(&dev, "TOKEN-A");
    let r = dev.register(&[&contact], &["Expires: 600"]);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
    let t = text(&ctl(&off, &["aors"]).stdout);
    let row = t.lines().find(|l| l.starts_with("dev@127.0.0.1")).unwrap_or_else(|| panic!("{t}"));
    // The PUSH column (the Contact, last, still carries its pn-* parameters).
    assert_eq!(row.split_whitespace().nth(6), Some("-"), "{t}");
    assert!(!t.contains("push:"), "{t}");
}

#[test]
fn ctl_users_add_list_rm() {
    let server = Server::start();
    let url = format!("http://{}", server.mgmt);
    let out = sipwake(&["ctl", "users", "add", "erin@127.0.0.1", "--url", &url], "pw-erin\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "erin@127.0.0.1 added\n");
    let mut erin = Phone::udp(server.udp, "erin", "127.0.0.1");
    erin.password = Some("pw-erin".into());
    let contact = format!("<sip:erin@{}>", erin.local());
    let r = erin.register(&[&contact], &["Expires: 600"]);
    assert_eq!(status_of(r.as_bytes()), 200, "{r}");
    let out = ctl(&server, &["users"]);
    assert_eq!(text(&out.stdout), "erin@127.0.0.1\n(1 user(s))\n");
    let out = sipwake(&["ctl", "users", "add", "erin@elsewhere.example", "--url", &url], "pw\n");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("registrar.domains"), "{}", text(&out.stderr));
    assert!(ctl(&server, &["users", "rm", "erin@127.0.0.1"]).status.success());
    let out = ctl(&server, &["users", "rm", "erin@127.0.0.1"]);
    assert_eq!((out.status.code(), text(&out.stderr)), (Some(1), "error: no user erin@127.0.0.1 (404)\n".into()));
}

#[test]
fn user_add_refuses_a_domain_the_server_does_not_serve() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let out = sipwake(&["user", "add", "bob@elsewhere.example", "--data-dir", d], "pw\n");
    assert_eq!(out.status.code(), Some(2));
    let e = text(&out.stderr);
    assert!(e.contains("elsewhere.example") && e.contains("registrar.domains") && e.contains("localhost"), "{e}");
    assert!(!data.exists(), "the refusal created the data directory");
    // The same rule for an import: the whole file is refused, naming the line.
    let out = sipwake(&["user", "import", "-", "--data-dir", d], "amy@127.0.0.1 pw\nbob@elsewhere.example pw\n");
    assert_eq!(out.status.code(), Some(2));
    let e = text(&out.stderr);
    assert!(e.starts_with("error: -:2: elsewhere.example is not a domain") && e.contains("registrar.domains"), "{e}");
    assert!(!data.exists(), "the refused import created the data directory");
    // A domain listed in the configuration is accepted.
    let cfg = dir.path().join("sipwake.toml");
    std::fs::write(&cfg, "[registrar]\ndomains = [\"elsewhere.example\"]\n").unwrap();
    let out =
        sipwake(&["user", "add", "bob@elsewhere.example", "--config", cfg.to_str().unwrap(), "--data-dir", d], "pw\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The listener address is served too (registrar.serve_listen_addresses).
    let out = sipwake(&["user", "add", "amy@127.0.0.1", "--data-dir", d], "pw\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn user_list_on_a_missing_data_dir_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir");
    let m = missing.to_str().unwrap();
    for args in [vec!["user", "list", "--data-dir", m], vec!["user", "del", "a@localhost", "--data-dir", m]] {
        let out = sipwake(&args, "");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let e = text(&out.stderr);
        assert!(e.contains("no sipwake database") && e.contains("server.data_dir"), "{e}");
        assert!(!missing.exists(), "{args:?} created the data directory");
    }
}
