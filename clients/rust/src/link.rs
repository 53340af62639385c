//! One REQ socket to one endpoint, and what its monitor tells about the
//! connection: the evidence behind every answer a request gets (docs/protocol.md
//! section 6), as in the Python client's `statehub.connection`.
//!
//! With IMMEDIATE a REQ socket queues a message only on a connection whose
//! handshake is complete, so a send that cannot go out leaves nothing behind
//! once the socket is dropped (LINGER 0): "not delivered" is exact. The monitor
//! tells a refused connection, a refused handshake and a dropped connection
//! apart, so a new connection to a busy hub is waited for as long as an old one.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::reachability;
use crate::remote::{self, Remote};
use crate::util::new_request_id;

const WATCHED: [zmq::SocketEvent; 6] = [
    zmq::SocketEvent::CONNECTED,
    zmq::SocketEvent::CLOSED,
    zmq::SocketEvent::DISCONNECTED,
    zmq::SocketEvent::HANDSHAKE_FAILED_NO_DETAIL,
    zmq::SocketEvent::HANDSHAKE_FAILED_PROTOCOL,
    zmq::SocketEvent::HANDSHAKE_FAILED_AUTH,
];

/// What waiting for a connection that can take a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    Yes,
    /// Connecting failed: nothing listens there.
    Refused,
    /// The hub's process answered but refused the handshake (see `handshake_error`).
    HandshakeRefused,
    TimedOut,
}

pub struct Link {
    socket: zmq::Socket,
    monitor: zmq::Socket,
    pub endpoint: String,
    /// The hub process `hub.json` named; None for an explicit endpoint.
    pub pid: Option<u64>,
    remote: Option<Remote>,
    connected: bool,
    pub was_connected: bool,
    refused: bool,
    pub dropped: bool,
    pub handshake_error: Option<Error>,
}

impl Link {
    pub fn open(
        context: &zmq::Context,
        endpoint: &str,
        pid: Option<u64>,
        remote: Option<&Remote>,
    ) -> Result<Link> {
        let socket = context.socket(zmq::REQ)?;
        socket.set_linger(0)?; // never hang at exit on a request queued to a dead hub
        socket.set_immediate(true)?; // queue only to a completed connection
        remote::secure(&socket, remote)?;
        // A name no other monitor in this context has: the request id generator's randomness.
        let address = format!("inproc://statehub-monitor-{}", new_request_id());
        let events = WATCHED
            .iter()
            .fold(0, |all, event| all | i32::from(event.to_raw()));
        socket.monitor(&address, events)?;
        let monitor = context.socket(zmq::PAIR)?;
        monitor.set_linger(0)?;
        monitor.connect(&address)?;
        socket
            .connect(endpoint)
            .map_err(|e| Error::HubUnavailable(format!("cannot connect to {endpoint}: {e}")))?;
        Ok(Link {
            socket,
            monitor,
            endpoint: endpoint.to_string(),
            pid,
            remote: remote.cloned(),
            connected: false,
            was_connected: false,
            refused: false,
            dropped: false,
            handshake_error: None,
        })
    }

    /// Send `body` once a connection can take it; else say why not by `deadline`.
    pub fn send(&mut self, body: &[u8], deadline: Instant) -> Result<Ready> {
        loop {
            match self.socket.send(body, zmq::DONTWAIT) {
                Ok(()) => return Ok(Ready::Yes),
                Err(zmq::Error::EAGAIN) => {}
                Err(err) => return Err(err.into()),
            }
            let ready = self.wait_writable(deadline)?;
            if ready != Ready::Yes {
                return Ok(ready);
            }
        }
    }

    /// The reply; None at `deadline`, or as soon as the connection drops (the reply is lost then).
    pub fn receive(&mut self, deadline: Instant) -> Result<Option<Vec<u8>>> {
        loop {
            let (socket_ready, monitor_ready) = self.poll(zmq::POLLIN, deadline)?;
            if socket_ready {
                return Ok(Some(self.socket.recv_bytes(0)?));
            }
            if monitor_ready {
                self.read_events()?;
                if self.dropped {
                    let waiting = self.socket.poll(zmq::POLLIN, 0)? > 0;
                    return Ok(if waiting {
                        Some(self.socket.recv_bytes(0)?)
                    } else {
                        None
                    });
                }
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
        }
    }

    /// Take in what the monitor has reported since the last look.
    pub fn read_events(&mut self) -> Result<()> {
        while self.monitor.get_events()?.contains(zmq::POLLIN) {
            let frames = self.monitor.recv_multipart(0)?;
            let Some(head) = frames.first().filter(|head| head.len() >= 6) else {
                continue;
            };
            let event = zmq::SocketEvent::from_raw(u16::from_le_bytes([head[0], head[1]]));
            let value = u32::from_le_bytes([head[2], head[3], head[4], head[5]]);
            match event {
                zmq::SocketEvent::CONNECTED => {
                    self.connected = true;
                    self.was_connected = true;
                    self.refused = false;
                }
                zmq::SocketEvent::CLOSED if !self.connected => self.refused = true,
                zmq::SocketEvent::DISCONNECTED => {
                    self.dropped = self.dropped || self.connected;
                    self.connected = false;
                }
                zmq::SocketEvent::HANDSHAKE_FAILED_NO_DETAIL
                | zmq::SocketEvent::HANDSHAKE_FAILED_PROTOCOL
                | zmq::SocketEvent::HANDSHAKE_FAILED_AUTH => {
                    let refusal =
                        reachability::handshake_refused(&self.endpoint, self.remote.as_ref(), event, value);
                    self.handshake_error = refusal.or(self.handshake_error.take());
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn wait_writable(&mut self, deadline: Instant) -> Result<Ready> {
        loop {
            let (socket_ready, monitor_ready) = self.poll(zmq::POLLOUT, deadline)?;
            if monitor_ready {
                self.read_events()?;
                if self.handshake_error.is_some() {
                    return Ok(Ready::HandshakeRefused);
                }
                if self.refused {
                    return Ok(Ready::Refused);
                }
            }
            if socket_ready {
                return Ok(Ready::Yes);
            }
            if Instant::now() >= deadline {
                return Ok(Ready::TimedOut);
            }
        }
    }

    /// Wait for `events` on the socket or anything from the monitor, at most until `deadline`.
    fn poll(&self, events: zmq::PollEvents, deadline: Instant) -> Result<(bool, bool)> {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let mut items = [
            self.socket.as_poll_item(events),
            self.monitor.as_poll_item(zmq::POLLIN),
        ];
        zmq::poll(&mut items, millis(remaining) + 1)?;
        Ok((items[0].get_revents().intersects(events), items[1].is_readable()))
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
