//! Kernel errors that keep the errno and say which operation on which object failed.

use cni_spec::error::{Failed, FromConfig};
use cni_spec::{CniError, Code};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel refused `op` (e.g. "add rule from 10.1.0.2/32 table 100").
    #[error("{op}: {}", errno_text(*errno))]
    Kernel { op: String, errno: i32 },
    #[error("{op}: {source}")]
    Io { op: String, source: std::io::Error },
    /// A reply we could not decode or did not expect.
    #[error("{op}: {msg}")]
    Protocol { op: String, msg: String },
    #[error("{0}")]
    Netns(CniError),
}

pub use cni_spec::error::errno_text;

impl Error {
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Kernel { errno, .. } => Some(*errno),
            Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// "No such device" for `op`: a link a step needs is not there.
    pub fn no_device(op: impl Into<String>) -> Error {
        Error::Kernel {
            op: op.into(),
            errno: libc::ENODEV,
        }
    }

    /// EINVAL: the kernel refused the request's values.
    pub fn is_invalid(&self) -> bool {
        self.errno() == Some(libc::EINVAL)
    }

    /// EEXIST: the object is already there.
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(libc::EEXIST)
    }

    /// ENOENT, ESRCH, ENODEV, EADDRNOTAVAIL: the object is not there.
    pub fn is_not_found(&self) -> bool {
        matches!(self.errno(), Some(e) if e == libc::ENOENT || e == libc::ESRCH || e == libc::ENODEV || e == libc::EADDRNOTAVAIL)
    }
}

impl Error {
    /// The spec code, by [`Code::of_errno`]: `from_config` says what of the
    /// request came from the config (a plugin knows, nl-ops does not).
    pub fn code(&self, from_config: FromConfig) -> Code {
        match self {
            Error::Netns(c) => c.code,
            Error::Kernel { errno, .. } => Code::of_errno(*errno, Failed::Request, from_config),
            Error::Io { source, .. } => source
                .raw_os_error()
                .map_or(Code::Io, |n| Code::of_errno(n, Failed::Transport, from_config)),
            Error::Protocol { .. } => Code::Internal,
        }
    }

    /// The CNI error, coded by [`Error::code`].
    pub fn into_cni(self, from_config: FromConfig) -> CniError {
        match self {
            Error::Netns(c) => c,
            e => CniError::new(e.code(from_config), e.to_string()),
        }
    }
}

impl From<Error> for CniError {
    fn from(e: Error) -> CniError {
        e.into_cni(FromConfig::NOTHING)
    }
}

pub type Result<T> = std::result::Result<T, Error>;
