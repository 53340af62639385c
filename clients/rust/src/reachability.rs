//! Why the hub cannot be reached, told from evidence: errors whose words match
//! the cause, as the Python client's `statehub.reachability` says them.
//!
//! "Not running" is said only on evidence: no `hub.json`, a `hub.json` whose
//! pid has exited, or a refused connection. A hub that runs but does not answer
//! is silent (busy or stopped), never "not running"; a refused CURVE handshake
//! names its cause. Each message ends with what to do, after a `;`.

use std::io;
use std::time::Duration;

use crate::discovery::{HubInfo, Layout};
use crate::error::Error;
use crate::remote::Remote;

pub const START_HINT: &str = "start it with `statehub serve`";
pub const SILENT_HINT: &str = "it may be busy or stopped: try again, or with a longer --timeout; \
                               if it stays silent, check its log and restart it";

/// The data dir's `hub.json`; `HubUnavailable` when there is none, or when this user may not read it.
/// Its pid may have exited (a SIGKILLed hub leaves `hub.json`): that alone does not say the
/// endpoint is dead, since a restarting hub binds before it rewrites `hub.json`; a refused
/// connection does (see [`refused`]).
pub fn announced_hub(layout: &Layout) -> Result<HubInfo, Error> {
    let path = layout.hub_file();
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            return Err(not_running(&format!("no {}", path.display())))
        }
        Err(err) if err.kind() == io::ErrorKind::PermissionDenied => {
            return Err(Error::HubUnavailable(format!(
                "this user may not use the hub's data dir: {}: permission denied; run the command as the \
                 hub's user, or see docs/security.md (File permissions) to share the mirror",
                path.display()
            )))
        }
        Err(err) => {
            return Err(Error::HubUnavailable(format!(
                "cannot read {}: {err}; check the data dir (--data-dir)",
                path.display()
            )))
        }
    };
    let info: HubInfo = serde_json::from_slice(&text).map_err(|err| {
        Error::HubUnavailable(format!(
            "{} is damaged ({err}); if the hub runs, restart it (it rewrites the file); else {START_HINT}",
            path.display()
        ))
    })?;
    Ok(info)
}

/// Is `pid` a live process (of any user)? Always true where that cannot be asked.
pub fn process_exists(pid: u64) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        // SAFETY: kill with signal 0 only checks that the process exists and may be signalled.
        if unsafe { libc::kill(pid, 0) } == 0 {
            return true;
        }
        io::Error::last_os_error().raw_os_error() == Some(libc::EPERM) // alive, and another user's
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

pub fn not_running(evidence: &str) -> Error {
    Error::HubUnavailable(format!("the hub is not running ({evidence}); {START_HINT}"))
}

/// How a message names the hub: its pid, when `hub.json` gave one, and its endpoint.
pub fn hub_at(endpoint: &str, pid: Option<u64>) -> String {
    match pid {
        Some(pid) => format!("the hub (pid {pid}) at {endpoint}"),
        None => format!("the hub at {endpoint}"),
    }
}

/// Connecting failed: nothing listens there (the evidence that no hub runs), named with
/// `hub.json`'s pid when that has exited.
pub fn refused(endpoint: &str, local: bool, announced: Option<(u64, &Layout)>) -> Error {
    if let Some((pid, layout)) = announced.filter(|(pid, _)| !process_exists(*pid)) {
        return not_running(&format!(
            "{} names pid {pid}, which has exited",
            layout.hub_file().display()
        ));
    }
    if local {
        return not_running(&format!("nothing accepts connections at {endpoint}"));
    }
    Error::HubUnavailable(format!(
        "nothing accepts connections at {endpoint} (refused, or the host is unreachable); check the endpoint \
         (--hub, $STATEHUB_HUB or client.toml) and that a hub serves it there"
    ))
}

/// The hub's process answered but refused the handshake: say why, or None when it may pass.
pub fn handshake_refused(
    endpoint: &str,
    remote: Option<&Remote>,
    event: zmq::SocketEvent,
    value: u32,
) -> Option<Error> {
    let public = remote.and_then(Remote::client_public_key);
    let message = match (event, public) {
        (zmq::SocketEvent::HANDSHAKE_FAILED_PROTOCOL, None) if value == MECHANISM_MISMATCH => format!(
            "the hub at {endpoint} requires CURVE (it is a `statehub serve --listen` endpoint), and this client \
             has no server key for it; give the hub's public key with --server-key, $STATEHUB_SERVER_KEY or \
             server_key in client.toml (print it on the hub with `statehub keys show-server`)"
        ),
        (zmq::SocketEvent::HANDSHAKE_FAILED_PROTOCOL, Some(_)) if value == MECHANISM_MISMATCH => format!(
            "the hub at {endpoint} does not use CURVE, but this client was given a server key for it; for a \
             hub's local `serve --tcp` endpoint give no server key; remote clients use its --listen endpoint"
        ),
        (zmq::SocketEvent::HANDSHAKE_FAILED_AUTH, Some(public)) if value == 400 => format!(
            "the hub at {endpoint} refused this client's key {public}: it is not on the hub's allow-list; \
             allow it on the hub, as the hub's user: statehub keys add NAME -- '{public}'"
        ),
        (zmq::SocketEvent::HANDSHAKE_FAILED_AUTH, _) if value == 300 => return None, // temporary
        (zmq::SocketEvent::HANDSHAKE_FAILED_AUTH, _) => format!(
            "the hub at {endpoint} refused the connection (authentication status {value}); the hub logs every \
             refusal with its reason"
        ),
        (zmq::SocketEvent::HANDSHAKE_FAILED_NO_DETAIL, Some(_)) => format!(
            "the CURVE handshake with the hub at {endpoint} failed: the server key given is most likely not \
             this hub's; compare it with `statehub keys show-server` on the hub (the hub logs this as a wrong \
             server key)"
        ),
        (zmq::SocketEvent::HANDSHAKE_FAILED_PROTOCOL, _) => format!(
            "the handshake with {endpoint} failed (ZeroMQ protocol error {value:#x}); check that the endpoint \
             is a statehub hub's request endpoint"
        ),
        _ => return None,
    };
    Some(Error::HubUnavailable(message))
}

/// Nothing was sent: no connection became ready within the whole timeout.
pub fn silent(endpoint: &str, pid: Option<u64>, timeout: Duration, connected: bool, local: bool) -> Error {
    if connected || local {
        return Error::HubUnavailable(format!(
            "{} is running but did not take the request within {} s; {SILENT_HINT}",
            hub_at(endpoint, pid),
            seconds(timeout)
        ));
    }
    Error::HubUnavailable(format!(
        "no connection to the hub at {endpoint} within {} s; check the endpoint, and that its host is up and \
         reachable (network, firewall)",
        seconds(timeout)
    ))
}

pub fn unanswered_read(endpoint: &str, pid: Option<u64>, timeout: Duration) -> Error {
    Error::HubUnavailable(format!(
        "{} did not answer within {} s; {SILENT_HINT}",
        hub_at(endpoint, pid),
        seconds(timeout)
    ))
}

/// The write reached the hub and no answer came in time: it may be applied, or not.
pub fn unanswered_write(endpoint: &str, pid: Option<u64>, timeout: Duration, dropped: bool) -> Error {
    let happened = if dropped {
        format!(
            "{} went away after it received the write, and no hub answered it again",
            hub_at(endpoint, pid)
        )
    } else {
        format!("{} received the write but did not answer", hub_at(endpoint, pid))
    };
    Error::OutcomeUnknown(format!(
        "{happened} within {} s; the write may or may not have been applied; repeating the same command is \
         safe (check with `statehub-rs get` or `statehub history`)",
        seconds(timeout)
    ))
}

/// ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH: one side speaks CURVE, the other not.
const MECHANISM_MISMATCH: u32 = 0x1100_0002;

/// Seconds as Python's `{:g}` prints them (0.5, 1, 1.5), so both clients word a timeout alike.
fn seconds(duration: Duration) -> String {
    let text = format!("{:.3}", duration.as_secs_f64());
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_read_like_pythons() {
        assert_eq!(seconds(Duration::from_millis(500)), "0.5");
        assert_eq!(seconds(Duration::from_secs(1)), "1");
        assert_eq!(seconds(Duration::from_millis(1500)), "1.5");
    }

    #[test]
    fn this_process_exists_and_an_unused_pid_does_not() {
        assert!(process_exists(u64::from(std::process::id())));
        assert!(!process_exists(u64::from(u32::MAX)));
    }
}
