//! Exec sender against a real `/bin/sh` script in a tempdir.

mod common;

use push_senders::{SenderConfig, Senders};
use sip_push::PushError;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// One script for the whole binary, written before any test spawns it (a
/// script written while another thread forks can fail with ETXTBSY).
/// `$1`: output dir; `$2`: exit code, or `sleep`.
fn script() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hook.sh");
        std::fs::write(
            &path,
            r#"#!/bin/sh
env | grep '^SIPWAKE_' | sort > "$1/env"
cat > "$1/stdin"
printf '%s\n' "$@" > "$1/args"
echo "hook says no" >&2
if [ "$2" = sleep ]; then sleep 5; fi
exit "$2"
"#,
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        dir
    });
    Box::leak(dir.path().join("hook.sh").into_boxed_path())
}

fn exec(out: &Path, mode: &str, timeout: Duration) -> Senders {
    assert!(Path::new("/bin/sh").exists());
    Senders::new(vec![(
        "*".into(),
        SenderConfig::Exec {
            program: PathBuf::from(script()),
            args: vec![out.display().to_string(), mode.into()],
            timeout,
        },
    )])
    .unwrap()
}

fn env_of(out: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(out.join("env"))
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

#[tokio::test]
async fn exit_0_is_ok_with_env_and_stdin() {
    let out = tempfile::tempdir().unwrap();
    let s = exec(out.path(), "0", Duration::from_secs(5));
    assert_eq!(s.send(&common::initial("apns")).await, Ok(()));
    let env = env_of(out.path());
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("SIPWAKE_PROVIDER"), Some("apns"));
    assert_eq!(get("SIPWAKE_PRID"), Some("00fc13adff78512"));
    assert_eq!(get("SIPWAKE_PARAM"), Some("DEF123GHIJ.com.example.app.voip"));
    assert_eq!(get("SIPWAKE_REASON"), Some("ini-INVITE"));
    assert_eq!(get("SIPWAKE_REASON_KIND"), Some("initial"));
    assert_eq!(get("SIPWAKE_CALL_ID"), Some("a84b4c76e66710@pc33"));
    assert_eq!(get("SIPWAKE_METHOD"), Some("INVITE"));
    assert_eq!(get("SIPWAKE_BINDING"), Some("b-42"));
    assert_eq!(get("SIPWAKE_ATTEMPT"), Some("1"));
    assert_eq!(get("SIPWAKE_TTL"), Some("30"));
    assert_eq!(get("SIPWAKE_PUSH_ID"), Some("7"));
    assert!(get("SIPWAKE_DEADLINE_UNIX_MS").unwrap().parse::<u64>().unwrap() > 0);

    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(out.path().join("stdin")).unwrap()).unwrap();
    assert_eq!(v["event"], "push");
    assert_eq!(v["prid"], "00fc13adff78512");
    assert_eq!(v["reason"], "ini-INVITE");
    assert_eq!(v["binding"], "b-42");
}

#[tokio::test]
async fn hostile_values_stay_data() {
    let out = tempfile::tempdir().unwrap();
    let s = exec(out.path(), "0", Duration::from_secs(5));
    let req = common::refresh("webpush");
    assert_eq!(s.send(&req).await, Ok(()));
    let env = env_of(out.path());
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(get("SIPWAKE_PRID"), Some("tok; rm -rf / $(id) `x`"));
    assert_eq!(get("SIPWAKE_PARAM"), Some(""));
    assert_eq!(get("SIPWAKE_REASON"), Some("reg-refresh"));
    assert_eq!(get("SIPWAKE_METHOD"), Some(""));
    assert_eq!(get("SIPWAKE_CALL_ID"), Some(""));
    assert_eq!(get("SIPWAKE_ATTEMPT"), Some("3"));
    // args are passed as-is, never through a shell
    let args = std::fs::read_to_string(out.path().join("args")).unwrap();
    assert_eq!(args, format!("{}\n0\n", out.path().display()));
}

#[tokio::test]
async fn exit_2_is_rejected() {
    let out = tempfile::tempdir().unwrap();
    let s = exec(out.path(), "2", Duration::from_secs(5));
    assert_eq!(s.send(&common::initial("apns")).await, Err(PushError::Rejected));
}

#[tokio::test]
async fn other_exits_fail() {
    for code in ["1", "3", "255"] {
        let out = tempfile::tempdir().unwrap();
        let s = exec(out.path(), code, Duration::from_secs(5));
        assert_eq!(s.send(&common::initial("apns")).await, Err(PushError::Failed), "exit {code}");
    }
}

#[tokio::test]
async fn timeout_kills() {
    let out = tempfile::tempdir().unwrap();
    let s = exec(out.path(), "sleep", Duration::from_millis(300));
    let t0 = Instant::now();
    assert_eq!(s.send(&common::initial("apns")).await, Err(PushError::Failed));
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(290) && took < Duration::from_millis(1500), "{took:?}");
}

#[tokio::test]
async fn missing_program_on_path_fails() {
    let s = Senders::new(vec![(
        "*".into(),
        SenderConfig::Exec {
            program: "sipwake-no-such-hook-xyz".into(),
            args: vec![],
            timeout: Duration::from_secs(1),
        },
    )])
    .unwrap();
    assert_eq!(s.send(&common::initial("apns")).await, Err(PushError::Failed));
}

#[tokio::test]
async fn nul_in_value_fails_without_running() {
    let out = tempfile::tempdir().unwrap();
    let s = exec(out.path(), "0", Duration::from_secs(5));
    let mut req = common::initial("apns");
    req.prid = "a\0b".into();
    assert_eq!(s.send(&req).await, Err(PushError::Failed));
    assert!(!out.path().join("env").exists());
}
