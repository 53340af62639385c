//! Errors: one variant per wire error code (docs/protocol.md, "Error codes"),
//! plus the client-side ones (hub unavailable, mirror, unknown outcome, local I/O).
//! Codes and exit codes are the table in `tests/vectors/errors.json`, which the
//! Python client is held to as well.

use std::fmt;

use crate::protocol::{ConflictDetail, ErrorReply};

#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// `invalid`: bad key, value, name or a limit exceeded; fix the input.
    Invalid(String),
    /// `not_found`: the key does not exist.
    NotFound(String),
    /// `conflict`: a compare-and-set failed; one detail per failed condition.
    Conflict {
        message: String,
        conflicts: Vec<ConflictDetail>,
    },
    /// `protocol`: the hub could not understand us (or we it).
    Protocol(String),
    /// `storage`: the hub could not make the write durable; nothing was applied.
    Storage(String),
    /// `internal` or a code newer than this crate: a bug in the hub.
    Internal { code: String, message: String },
    /// No reply from the hub in time (and no usable mirror where one was allowed).
    HubUnavailable(String),
    /// The mirror file is missing, half-written or not in the expected format.
    Mirror(String),
    /// A write was delivered but not answered in time: it may be applied; repeating it is safe.
    OutcomeUnknown(String),
    /// A local failure: reading a file, a socket error.
    Io(String),
}

impl Error {
    /// The wire code of this error (`unavailable` and `io` are client-side only).
    pub fn code(&self) -> &str {
        match self {
            Error::Invalid(_) => "invalid",
            Error::NotFound(_) => "not_found",
            Error::Conflict { .. } => "conflict",
            Error::Protocol(_) => "protocol",
            Error::Storage(_) => "storage",
            Error::Internal { code, .. } => code,
            Error::HubUnavailable(_) => "unavailable",
            Error::Mirror(_) => "mirror",
            Error::OutcomeUnknown(_) => "unknown_outcome",
            Error::Io(_) => "io",
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Error::Invalid(m)
            | Error::NotFound(m)
            | Error::Protocol(m)
            | Error::Storage(m)
            | Error::HubUnavailable(m)
            | Error::Mirror(m)
            | Error::OutcomeUnknown(m)
            | Error::Io(m) => m,
            Error::Conflict { message, .. } | Error::Internal { message, .. } => message,
        }
    }

    /// The process exit code both CLIs use for this error (`tests/vectors/errors.json`).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Invalid(_) => 2,
            Error::NotFound(_) => 3,
            Error::Conflict { .. } => 4,
            Error::HubUnavailable(_) | Error::Mirror(_) => 5,
            Error::Storage(_) => 6,
            Error::OutcomeUnknown(_) => 7,
            Error::Protocol(_) | Error::Internal { .. } | Error::Io(_) => 1,
        }
    }

    /// The name of this variant, as `tests/vectors/errors.json` spells it.
    pub fn variant(&self) -> &'static str {
        match self {
            Error::Invalid(_) => "Invalid",
            Error::NotFound(_) => "NotFound",
            Error::Conflict { .. } => "Conflict",
            Error::Protocol(_) => "Protocol",
            Error::Storage(_) => "Storage",
            Error::Internal { .. } => "Internal",
            Error::HubUnavailable(_) => "HubUnavailable",
            Error::Mirror(_) => "Mirror",
            Error::OutcomeUnknown(_) => "OutcomeUnknown",
            Error::Io(_) => "Io",
        }
    }
}

impl From<ErrorReply> for Error {
    fn from(reply: ErrorReply) -> Error {
        let message = reply.message;
        match reply.code.as_str() {
            "invalid" => Error::Invalid(message),
            "not_found" => Error::NotFound(message),
            "conflict" => Error::Conflict {
                message,
                conflicts: reply.conflicts,
            },
            "protocol" => Error::Protocol(message),
            "storage" => Error::Storage(message),
            // Clients treat an unknown code like `internal`, keeping the code for the report.
            _ => Error::Internal {
                code: reply.code,
                message,
            },
        }
    }
}

impl From<zmq::Error> for Error {
    fn from(err: zmq::Error) -> Error {
        Error::Io(format!("zeromq: {err}"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::HubUnavailable(m) => write!(f, "hub unavailable: {m}"),
            other => f.write_str(other.message()),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;
