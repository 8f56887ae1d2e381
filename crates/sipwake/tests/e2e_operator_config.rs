//! An operator's configuration mistakes, through the real binary: each
//! file is refused by `--check-config` (exit code 2, the TOML key as
//! written in the file named) and by start-up, with the same message, so
//! the two can never disagree (issue 14).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// `sipwake --check-config FILE`: (exit code, stderr).
fn check(path: &Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sipwake")).arg("--check-config").arg(path).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// `sipwake --config FILE` on free ports: (exit code, stderr). A server
/// that starts anyway is killed (by its PID) and reported as `None`.
fn start(path: &Path, dir: &Path) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sipwake"))
        .arg("--config")
        .arg(path)
        .args(["--listen", "udp:127.0.0.1:0", "--management", "127.0.0.1:0", "--data-dir"])
        .arg(dir.join("data"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            return (st.code(), String::from_utf8_lossy(&out.stderr).into_owned());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return (None, "it started".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `s` cites an internal requirement number like `R12` (a word of
/// `R` and digits; `RFC 8599` is no such word).
fn has_requirement_number(s: &str) -> bool {
    s.split(|c: char| !c.is_ascii_alphanumeric())
        .any(|w| w.len() > 1 && w.starts_with('R') && w[1..].chars().all(|c| c.is_ascii_digit()))
}

/// Both refuse `text` with exit code 2, naming `key` (and each `also`).
fn refused(text: &str, key: &str, also: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "sipwake.toml", text);
    let (code, err) = check(&p);
    assert_eq!(code, Some(2), "--check-config accepted:\n{text}\n{err}");
    assert!(err.contains(key), "--check-config does not name {key}: {err}");
    for a in also {
        assert!(err.contains(a), "--check-config does not say {a:?}: {err}");
    }
    assert!(!has_requirement_number(&err), "internal requirement number in: {err}");
    let (code, serr) = start(&p, dir.path());
    assert_eq!(code, Some(2), "start-up did not refuse:\n{text}\n{serr}");
    assert!(serr.contains(key), "start-up does not name {key}: {serr}");
}

#[test]
fn an_exec_program_that_does_not_exist_is_refused_even_with_push_off() {
    refused(
        "[push.senders.gw]\nexec = [\"/nonexistent/sipwake-push-hook\"]\n",
        "push.senders.gw.exec[0] = \"/nonexistent/sipwake-push-hook\"",
        &["no such file"],
    );
}

#[test]
fn a_webhook_timeout_of_zero_is_refused() {
    refused(
        "[push]\nenable = true\n[push.senders.\"*\"]\nwebhook = \"http://127.0.0.1:9/x\"\ntimeout_ms = 0\n",
        "push.senders.\"*\".timeout_ms = 0",
        &["allowed 1..=60000"],
    );
}

#[test]
fn an_unknown_log_level_is_refused_with_the_allowed_values() {
    refused(
        "[log]\nlevel = \"verbose\"\n",
        "log.level = \"verbose\"",
        &["\"info\"", "\"debug\"", "sipwake=debug,info"],
    );
}

#[test]
fn push_keys_are_checked_when_push_is_off_and_named_as_written() {
    refused("[push]\nrefresh_lead_secs = 60\n", "push.refresh_lead_secs = 60", &["at least 120"]);
    refused("[push]\nnon_invite_hold_secs = 40\n", "push.non_invite_hold_secs = 40", &["below 32"]);
}

#[test]
fn a_provider_without_a_sender_is_refused() {
    refused(
        "[push]\nenable = true\nproviders = [\"apns\", \"fcm\"]\n[push.senders.fcm]\nwebhook = \"http://127.0.0.1:9/x\"\n",
        "push.providers[0] = \"apns\"",
        &["[push.senders.apns]", "remove \"apns\" from push.providers"],
    );
}

#[test]
fn an_apns_table_missing_its_team_id_names_the_keys() {
    refused(
        "[push.senders.apns]\nkey_file = \"AuthKey.p8\"\nkey_id = \"ABC123DEFG\"\n",
        "push.senders.apns",
        &["team_id"],
    );
}

#[test]
fn a_missing_tls_certificate_names_its_key() {
    refused(
        "[server]\nlisten = [\"tls:127.0.0.1:0\"]\n[tls]\ncertificate = \"/nonexistent/cert.pem\"\nprivate_key = \"/nonexistent/key.pem\"\n",
        "tls.certificate = \"/nonexistent/cert.pem\"",
        &[],
    );
}

#[test]
fn the_example_and_a_working_push_file_are_valid() {
    let dir = tempfile::tempdir().unwrap();
    let (code, err) = check(&common::repo().join("sipwake.example.toml"));
    assert_eq!(code, Some(0), "{err}");
    let p = write(
        dir.path(),
        "ok.toml",
        "[log]\nlevel = \"sipwake=debug,info\"\ntimestamps = false\n[push]\nenable = true\nproviders = [\"apns\"]\n\
         [push.senders.apns]\nexec = [\"/bin/true\"]\n",
    );
    let (code, err) = check(&p);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn sections_that_are_off_are_checked_too() {
    refused("[mid_registrar]\nthrottle = \"sometimes\"\n", "mid_registrar.throttle = \"sometimes\"", &["\"contact\""]);
    refused(
        "[management]\nenabled = false\nlisten = \"localhost\"\n",
        "management.listen = \"localhost\"",
        &["IP:PORT"],
    );
}
