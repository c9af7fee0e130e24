//! `io/xenbus.h`: the xenbus device states both ends publish in their
//! `state` node.

use core::fmt;
use core::str::FromStr;

use crate::UnknownValue;

xen_enum! {
    /// `enum xenbus_state`: a device end's state.
    ///
    /// In xenstore the state is written as a decimal string; [`fmt::Display`]
    /// and [`FromStr`] use that form, [`XenbusState::name`] gives the name.
    ///
    /// ```
    /// use xenpv_sys::io::xenbus::XenbusState;
    /// let s: XenbusState = "4".parse().unwrap();
    /// assert_eq!(s, XenbusState::Connected);
    /// assert_eq!(s.to_string(), "4");
    /// assert_eq!(s.name(), "Connected");
    /// assert!("9".parse::<XenbusState>().is_err());
    /// assert!("four".parse::<XenbusState>().is_err());
    /// ```
    #[doc(alias = "xenbus_state")]
    pub enum XenbusState: u32 {
        /// `XenbusStateUnknown`: no state yet (node absent or unset).
        Unknown = 0,
        /// `XenbusStateInitialising`.
        Initialising = 1,
        /// `XenbusStateInitWait`: early setup done, waiting for the peer or hotplug.
        InitWait = 2,
        /// `XenbusStateInitialised`: waiting for the peer to connect.
        Initialised = 3,
        /// `XenbusStateConnected`.
        Connected = 4,
        /// `XenbusStateClosing`: shutting down (error or unplug).
        Closing = 5,
        /// `XenbusStateClosed`.
        Closed = 6,
        /// `XenbusStateReconfiguring`.
        Reconfiguring = 7,
        /// `XenbusStateReconfigured`.
        Reconfigured = 8,
    }
}

impl XenbusState {
    /// The state's name, e.g. `"InitWait"`.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Unknown => "Unknown",
            Self::Initialising => "Initialising",
            Self::InitWait => "InitWait",
            Self::Initialised => "Initialised",
            Self::Connected => "Connected",
            Self::Closing => "Closing",
            Self::Closed => "Closed",
            Self::Reconfiguring => "Reconfiguring",
            Self::Reconfigured => "Reconfigured",
        }
    }

    /// The decimal string written to xenstore, e.g. `"4"`.
    #[must_use]
    pub const fn as_decimal_str(self) -> &'static str {
        match self {
            Self::Unknown => "0",
            Self::Initialising => "1",
            Self::InitWait => "2",
            Self::Initialised => "3",
            Self::Connected => "4",
            Self::Closing => "5",
            Self::Closed => "6",
            Self::Reconfiguring => "7",
            Self::Reconfigured => "8",
        }
    }

    /// Parses the decimal form from raw bytes (e.g. a xenstore value).
    ///
    /// Accepts ASCII digits only (leading zeros allowed), no sign or spaces.
    pub fn parse_decimal(bytes: &[u8]) -> Result<Self, ParseXenbusStateError> {
        if bytes.is_empty() {
            return Err(ParseXenbusStateError::NotDecimal);
        }
        let mut v: u32 = 0;
        for &b in bytes {
            if !b.is_ascii_digit() {
                return Err(ParseXenbusStateError::NotDecimal);
            }
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(u32::from(b - b'0')))
                .ok_or(ParseXenbusStateError::NotDecimal)?;
        }
        Self::try_from(v).map_err(ParseXenbusStateError::Unknown)
    }
}

impl fmt::Display for XenbusState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_decimal_str())
    }
}

impl FromStr for XenbusState {
    type Err = ParseXenbusStateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse_decimal(s.as_bytes())
    }
}

/// Why a string is not a [`XenbusState`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseXenbusStateError {
    /// Not a decimal number that fits in a `u32`.
    NotDecimal,
    /// A number that names no state.
    Unknown(UnknownValue<u32>),
}

impl fmt::Display for ParseXenbusStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotDecimal => f.write_str("xenbus state is not a decimal number"),
            Self::Unknown(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for ParseXenbusStateError {}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

    #[test]
    fn round_trips() {
        for &s in XenbusState::ALL {
            assert_eq!(XenbusState::try_from(s.raw()), Ok(s));
            assert_eq!(s.to_string().parse::<XenbusState>(), Ok(s));
            assert_eq!(s.as_decimal_str(), s.raw().to_string());
        }
        assert_eq!(XenbusState::ALL.len(), 9);
    }

    #[test]
    fn rejects() {
        assert!(XenbusState::try_from(9).is_err());
        assert!(XenbusState::try_from(u32::MAX).is_err());
        for bad in [
            "",
            " 4",
            "4 ",
            "+4",
            "-1",
            "4\0",
            "0x4",
            "99999999999",
            "Connected",
        ] {
            assert!(bad.parse::<XenbusState>().is_err(), "{bad:?}");
        }
        assert_eq!(
            "9".parse::<XenbusState>(),
            Err(ParseXenbusStateError::Unknown(UnknownValue::new(
                "XenbusState",
                9
            )))
        );
        assert_eq!("004".parse::<XenbusState>(), Ok(XenbusState::Connected));
    }
}
