//! The exec sender: runs an operator-configured program once per push and
//! maps its exit status onto [`PushError`]. Delivery only: no retries, no
//! schedule (the engine decides whether and when to push again).
//!
//! The program is started directly (never through a shell): `args` are
//! passed as-is, push data travels only in the `SIPWAKE_*` environment
//! ([`crate::payload::env_vars`]) and as the [`crate::Payload`] JSON on
//! stdin, so client-chosen values (`pn-prid`, Call-ID…) cannot inject
//! commands. The inherited environment is kept (e.g. `PATH`).
//!
//! Exit status contract:
//! * `0` → `Ok` (the PNS accepted the push);
//! * `2` → [`PushError::Rejected`] (the PNS says the token is dead, e.g.
//!   APNs 410 / FCM `UNREGISTERED`);
//! * anything else, death by signal, failure to start →
//!   [`PushError::Failed`].
//!
//! On timeout the program is killed (SIGKILL) and the push is `Failed`.
//! Only the direct child is killed: processes it spawned itself (a shell
//! script's `sleep`, say) are not; hooks should `exec` long-running tools.
//! stdout is discarded; at most [`STDERR_EXCERPT`] bytes of stderr are kept
//! for the log.

use crate::payload::{Payload, env_vars, excerpt};
use sip_push::{PushError, PushRequest};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

/// How many bytes of the program's stderr are logged at most.
pub const STDERR_EXCERPT: usize = 256;

/// The exit status meaning "token rejected".
pub const EXIT_REJECTED: i32 = 2;

#[derive(Debug)]
pub(crate) struct Exec {
    program: PathBuf,
    args: Vec<String>,
    timeout: Duration,
}

impl Exec {
    pub(crate) fn new(program: PathBuf, args: Vec<String>, timeout: Duration) -> Result<Exec, String> {
        if program.as_os_str().is_empty() {
            return Err("exec program must not be empty".into());
        }
        if program.components().count() > 1 && !program.is_file() {
            return Err(format!("exec program {} does not exist", program.display()));
        }
        if timeout.is_zero() {
            return Err("exec timeout must be > 0".into());
        }
        if args.iter().any(|a| a.contains('\0')) {
            return Err("exec args must not contain NUL".into());
        }
        Ok(Exec { program, args, timeout })
    }

    pub(crate) async fn send(&self, req: &PushRequest, payload: &Payload<'_>, body: Vec<u8>) -> Result<(), PushError> {
        let env = env_vars(payload);
        if env.iter().any(|(_, v)| v.contains('\0')) {
            tracing::warn!(push = req.id.0, provider = %req.provider, "exec push failed: NUL in a value");
            return Err(PushError::Failed);
        }
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .envs(env)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(
                    push = req.id.0, provider = %req.provider, program = %self.program.display(),
                    error = %e, "exec push failed: cannot start program"
                );
                return Err(PushError::Failed);
            }
        };
        // Drain stderr concurrently (keeping an excerpt) so the child never
        // blocks on a full pipe.
        let stderr = child.stderr.take().map(|mut err| {
            tokio::spawn(async move {
                let mut keep = Vec::new();
                let mut buf = [0u8; 1024];
                while let Ok(n) = err.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let room = (STDERR_EXCERPT + 1).saturating_sub(keep.len());
                    keep.extend_from_slice(&buf[..n.min(room)]);
                }
                keep
            })
        });
        let mut stdin = child.stdin.take();
        let run = async {
            if let Some(w) = stdin.as_mut() {
                // A program that ignores stdin may exit first: EPIPE is fine.
                let _ = w.write_all(&body).await;
                let _ = w.shutdown().await;
            }
            drop(stdin.take());
            child.wait().await
        };
        let status = match tokio::time::timeout(self.timeout, run).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::warn!(push = req.id.0, provider = %req.provider, error = %e, "exec push failed: wait");
                let _ = child.kill().await;
                return Err(PushError::Failed);
            }
            Err(_) => {
                let _ = child.kill().await;
                if let Some(h) = stderr {
                    h.abort();
                }
                tracing::warn!(
                    push = req.id.0, provider = %req.provider, program = %self.program.display(),
                    timeout_ms = self.timeout.as_millis() as u64, "exec push failed: timeout, killed"
                );
                return Err(PushError::Failed);
            }
        };
        if status.success() {
            if let Some(h) = stderr {
                h.abort();
            }
            tracing::debug!(push = req.id.0, provider = %req.provider, "exec push delivered");
            return Ok(());
        }
        // A grandchild may still hold stderr open: don't wait for it long.
        let err = match stderr {
            Some(h) => {
                let abort = h.abort_handle();
                match tokio::time::timeout(Duration::from_millis(100), h).await {
                    Ok(Ok(v)) => v,
                    _ => {
                        abort.abort();
                        Vec::new()
                    }
                }
            }
            None => Vec::new(),
        };
        let rejected = status.code() == Some(EXIT_REJECTED);
        tracing::warn!(
            push = req.id.0, provider = %req.provider, binding = %req.binding,
            program = %self.program.display(), status = %status, stderr = %excerpt(&err, STDERR_EXCERPT),
            rejected, "exec push failed"
        );
        Err(if rejected { PushError::Rejected } else { PushError::Failed })
    }
}
