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

    /// The code a kernel errno maps to: busy and again are worth a retry.
    pub fn from_errno(errno: i32) -> Code {
        if errno == libc::EBUSY || errno == libc::EAGAIN {
            Code::TryAgainLater
        } else {
            Code::Internal
        }
    }
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
    fn errno_text_is_lowercase_without_tail() {
        assert_eq!(errno_text(libc::EEXIST), "file exists");
        assert_eq!(errno_text(libc::ENODEV), "no such device");
        let e = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert_eq!(io_text(&e), "no such file or directory");
    }
}
