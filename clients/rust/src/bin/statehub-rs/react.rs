//! `react`: run a shell command for each change, one at a time.
//!
//! The caller hands changes over in revision order and waits for each run to
//! finish, so commands never overlap and never see changes out of order. A
//! failing or hung command is logged and the next change still runs.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use statehub::Change;

use crate::output::Notice;

/// How often a running command is checked for exit, timeout or shutdown.
const POLL: Duration = Duration::from_millis(10);
/// After SIGTERM on shutdown, how long a command may take to exit before SIGKILL.
const GRACE: Duration = Duration::from_secs(2);

pub struct Reactor {
    command: String,
    timeout: Option<Duration>,
    data_dir: PathBuf,
    shutdown: Arc<AtomicBool>,
}

/// How one run ended.
enum Ending {
    Exited(ExitStatus),
    TimedOut,
    ShutDown,
}

impl Reactor {
    pub fn new(
        command: String,
        timeout: Option<Duration>,
        data_dir: PathBuf,
        shutdown: Arc<AtomicBool>,
    ) -> Reactor {
        Reactor {
            command,
            timeout,
            data_dir,
            shutdown,
        }
    }

    /// Run the command for one change and wait for it; log anything but success.
    pub fn run(&self, change: &Change) {
        let what = format!("{} {} at revision {}", change.op.as_str(), change.key, change.rev);
        let mut child = match self.spawn(change) {
            Ok(child) => child,
            Err(err) => {
                Notice::warn(&format!("cannot run the command for {what}: {err}"));
                return;
            }
        };
        match self.wait(&mut child) {
            Ok(Ending::Exited(status)) if status.success() => {}
            Ok(Ending::Exited(status)) => Notice::warn(&format!("command failed for {what}: {status}")),
            Ok(Ending::TimedOut) => Notice::warn(&format!(
                "command for {what} killed after {:.1} s",
                self.timeout.unwrap_or_default().as_secs_f64()
            )),
            Ok(Ending::ShutDown) => Notice::info(&format!("command for {what} stopped: shutting down")),
            Err(err) => Notice::warn(&format!("lost track of the command for {what}: {err}")),
        }
    }

    fn spawn(&self, change: &Change) -> std::io::Result<Child> {
        let json = serde_json::to_string(change).expect("changes serialize to JSON");
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(&self.command)
            .env("STATEHUB_KEY", &change.key)
            .env("STATEHUB_VALUE", change.value.to_string())
            .env("STATEHUB_REV", change.rev.to_string())
            .env("STATEHUB_OP", change.op.as_str())
            .env("STATEHUB_SOURCE", &change.source)
            .env("STATEHUB_USER", &change.user)
            .env("STATEHUB_EPOCH", &change.epoch)
            .env("STATEHUB_ORIGIN", change.origin.as_str())
            .env("STATEHUB_RESYNC", if change.resync { "1" } else { "0" })
            .env("STATEHUB_BACKFILL", if change.backfill { "1" } else { "0" })
            // So a command that calls statehub itself reaches the same hub.
            .env("STATEHUB_DATA_DIR", &self.data_dir)
            .stdin(Stdio::piped());
        own_process_group(&mut command);
        let mut child = command.spawn()?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        // Write from a thread: a command that never reads its stdin must not
        // block us past its timeout once the pipe buffer is full.
        thread::spawn(move || {
            let _ = stdin
                .write_all(json.as_bytes())
                .and_then(|()| stdin.write_all(b"\n"));
        });
        Ok(child)
    }

    fn wait(&self, child: &mut Child) -> std::io::Result<Ending> {
        let deadline = self.timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(Ending::Exited(status));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                kill_group(child);
                child.wait()?;
                return Ok(Ending::TimedOut);
            }
            if self.shutdown.load(Ordering::Relaxed) {
                stop_gently(child)?;
                return Ok(Ending::ShutDown);
            }
            thread::sleep(POLL);
        }
    }
}

/// On shutdown: SIGTERM, a grace period, then SIGKILL.
fn stop_gently(child: &mut Child) -> std::io::Result<()> {
    terminate_group(child);
    let give_up = Instant::now() + GRACE;
    while Instant::now() < give_up {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        thread::sleep(POLL);
    }
    kill_group(child);
    child.wait().map(|_| ())
}

#[cfg(unix)]
fn own_process_group(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // The command's own group: a timeout kills everything `sh -c` started, and a
    // Ctrl-C at the terminal reaches us (who stop it cleanly), not it directly.
    command.process_group(0);
}

#[cfg(not(unix))]
fn own_process_group(_command: &mut Command) {}

#[cfg(unix)]
fn signal_group(child: &Child, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(child.id()) {
        // SAFETY: kill(2) has no memory effects; a negative pid names the group
        // we created for this child, which has not been reaped yet.
        unsafe {
            libc::kill(-pid, signal);
        }
    }
}

#[cfg(unix)]
fn kill_group(child: &mut Child) {
    signal_group(child, libc::SIGKILL);
}

#[cfg(unix)]
fn terminate_group(child: &mut Child) {
    signal_group(child, libc::SIGTERM);
}

#[cfg(not(unix))]
fn kill_group(child: &mut Child) {
    let _ = child.kill();
}

#[cfg(not(unix))]
fn terminate_group(child: &mut Child) {
    let _ = child.kill();
}
