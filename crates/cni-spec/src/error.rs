//! Typed CNI errors: the spec code is part of the type, so no failure can
//! leave a plugin without one.

use serde::Serialize;

/// Error codes from the CNI spec ("Error" section) plus the STATUS codes of 1.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    IncompatibleVersion,
    UnsupportedField,
    UnknownContainer,
    InvalidEnvironment,
    Io,
    Decode,
    InvalidConfig,
    TryAgainLater,
    PluginNotAvailable,
    LimitedConnectivity,
    /// CHECK found the attachment differs from what ADD made. The spec
    /// leaves codes from 100 to plugins; an expected outcome is no 999.
    CheckFailed,
    /// Only for failures nothing else describes.
    Internal,
}

impl Code {
    pub const fn number(self) -> u32 {
        match self {
            Code::IncompatibleVersion => 1,
            Code::UnsupportedField => 2,
            Code::UnknownContainer => 3,
            Code::InvalidEnvironment => 4,
            Code::Io => 5,
            Code::Decode => 6,
            Code::InvalidConfig => 7,
            Code::TryAgainLater => 11,
            Code::PluginNotAvailable => 50,
            Code::LimitedConnectivity => 51,
            Code::CheckFailed => 100,
            Code::Internal => 999,
        }
    }

    /// The code of a kernel refusal that nothing of the config caused:
    /// [`Code::of_errno`] for a request, nothing from the config.
    pub fn from_errno(errno: i32) -> Code {
        Code::of_errno(errno, Failed::Request, FromConfig::NOTHING)
    }

    /// The project's one errno -> spec code mapping. Busy and again are
    /// worth a retry (11); a refusal of what the config supplied is the
    /// config's fault (7); anything else is 999 for a kernel request
    /// (netlink, setns, flock) and 5 for a transport that broke.
    pub fn of_errno(errno: i32, failed: Failed, from_config: FromConfig) -> Code {
        match errno {
            libc::EBUSY | libc::EAGAIN => Code::TryAgainLater,
            libc::EINVAL if from_config.values => Code::InvalidConfig,
            libc::ENETUNREACH | libc::EHOSTUNREACH if from_config.gateway => Code::InvalidConfig,
            _ => match failed {
                Failed::Request => Code::Internal,
                Failed::Transport => Code::Io,
            },
        }
    }
}

/// What failed with an errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    /// The kernel refused a request (netlink, setns, flock).
    Request,
    /// Reading or writing a socket or file.
    Transport,
}

/// What of a failed request came from the network configuration or the
/// prevResult: the kernel refusing that is the config's fault (code 7).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FromConfig {
    /// Values the kernel checks (a TBF's rate and burst, a route's
    /// preferred source): EINVAL.
    pub values: bool,
    /// A gateway the kernel must reach: ENETUNREACH (IPv4), EHOSTUNREACH (IPv6).
    pub gateway: bool,
}

impl FromConfig {
    pub const NOTHING: FromConfig = FromConfig {
        values: false,
        gateway: false,
    };
}

/// What a plugin answers on failure. `msg` is lowercase and says what failed
/// and where; `details` may carry the underlying cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}")]
pub struct CniError {
    pub code: Code,
    pub msg: String,
    pub details: String,
}

impl CniError {
    pub fn new(code: Code, msg: impl Into<String>) -> Self {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    pub fn invalid_config(msg: impl Into<String>) -> Self {
        Self::new(Code::InvalidConfig, msg)
    }

    pub fn env(msg: impl Into<String>) -> Self {
        Self::new(Code::InvalidEnvironment, msg)
    }

    pub fn decode(msg: impl Into<String>) -> Self {
        Self::new(Code::Decode, msg)
    }

    pub fn check_failed(msg: impl Into<String>) -> Self {
        Self::new(Code::CheckFailed, msg)
    }

    pub fn internal(msg: impl Into<String>) -> Self {
        Self::new(Code::Internal, msg)
    }

    /// Prefixes the message with the step that failed, keeping the code.
    pub fn context(mut self, step: impl std::fmt::Display) -> Self {
        self.msg = format!("{step}: {}", self.msg);
        self
    }

    /// The JSON object the spec prescribes on stdout.
    pub fn to_json(&self, cni_version: &str) -> serde_json::Value {
        #[derive(Serialize)]
        struct Wire<'a> {
            #[serde(rename = "cniVersion")]
            cni_version: &'a str,
            code: u32,
            msg: &'a str,
            #[serde(skip_serializing_if = "str::is_empty")]
            details: &'a str,
        }
        serde_json::to_value(Wire {
            cni_version,
            code: self.code.number(),
            msg: &self.msg,
            details: &self.details,
        })
        .unwrap_or_else(
            |_| serde_json::json!({"cniVersion": cni_version, "code": 999, "msg": "failed to encode error"}),
        )
    }
}

impl From<std::io::Error> for CniError {
    fn from(e: std::io::Error) -> Self {
        CniError::new(Code::Io, e.to_string())
    }
}

pub type CniResult<T> = std::result::Result<T, CniError>;

/// "file exists", "no such device": strerror in lowercase without Rust's
/// "(os error N)" tail, as user-facing messages want it.
pub fn errno_text(errno: i32) -> String {
    let s = std::io::Error::from_raw_os_error(errno).to_string();
    let s = s.split(" (os error").next().unwrap_or(&s);
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_lowercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// An I/O error's text in the same form as [`errno_text`].
pub fn io_text(e: &std::io::Error) -> String {
    e.raw_os_error().map_or_else(|| e.to_string(), errno_text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_codes() {
        let values = FromConfig {
            values: true,
            gateway: false,
        };
        let gateway = FromConfig {
            values: false,
            gateway: true,
        };
        for failed in [Failed::Request, Failed::Transport] {
            for from in [FromConfig::NOTHING, values, gateway] {
                assert_eq!(Code::of_errno(libc::EBUSY, failed, from), Code::TryAgainLater);
                assert_eq!(Code::of_errno(libc::EAGAIN, failed, from), Code::TryAgainLater);
            }
        }
        assert_eq!(Code::from_errno(libc::EEXIST), Code::Internal);
        assert_eq!(Code::from_errno(libc::EINVAL), Code::Internal);
        assert_eq!(
            Code::of_errno(libc::EPIPE, Failed::Transport, FromConfig::NOTHING),
            Code::Io
        );
        assert_eq!(
            Code::of_errno(libc::EINVAL, Failed::Request, values),
            Code::InvalidConfig
        );
        assert_eq!(
            Code::of_errno(libc::ENETUNREACH, Failed::Request, values),
            Code::Internal
        );
        assert_eq!(
            Code::of_errno(libc::ENETUNREACH, Failed::Request, gateway),
            Code::InvalidConfig
        );
        assert_eq!(
            Code::of_errno(libc::EHOSTUNREACH, Failed::Transport, gateway),
            Code::InvalidConfig
        );
        assert_eq!(
            Code::of_errno(libc::EINVAL, Failed::Request, gateway),
            Code::Internal
        );
    }

    #[test]
    fn errno_text_is_lowercase_without_tail() {
        assert_eq!(errno_text(libc::EEXIST), "file exists");
        assert_eq!(errno_text(libc::ENODEV), "no such device");
        let e = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(io_text(&e), "no such file or directory");
    }
}
