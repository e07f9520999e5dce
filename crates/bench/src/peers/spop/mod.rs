//! A codec for SPOP, the Stream Processing Offload Protocol HAProxy's SPOE filter speaks to
//! its agents, written from HAProxy's SPOE documentation (doc/SPOE.txt, SPOP version 2.0):
//! varints, typed data and the HELLO, NOTIFY/ACK and DISCONNECT frames. It exists only for
//! the bench's minimal SPOA ([`crate::peers::spoa`]) and is never part of the product.
//! Sockets, timeouts and the agent's decisions are not here.

mod data;
mod frame;
#[cfg(test)]
mod tests;
mod varint;

pub use data::TypedData;
#[cfg(test)]
pub use frame::Message;
pub use frame::{
    Ack, Action, AgentHello, Disconnect, Frame, HaproxyHello, Notify, VarScope, MIN_FRAME_SIZE,
};

/// SPOE.txt section 3.5 status codes this bench uses.
pub mod status {
    /// Normal, no error.
    pub const NORMAL: u32 = 0;
    /// A timeout occurred.
    pub const TIMEOUT: u32 = 2;
    /// Frame is too big.
    pub const TOO_BIG: u32 = 3;
    /// Invalid frame received.
    pub const INVALID: u32 = 4;
    /// Version value not found.
    pub const NO_VERSION: u32 = 5;
    /// max-frame-size value not found.
    pub const NO_FRAME_SIZE: u32 = 6;
    /// Capabilities value not found.
    pub const NO_CAPABILITIES: u32 = 7;
    /// Unsupported version.
    pub const BAD_VERSION: u32 = 8;
    /// max-frame-size too big or too small.
    pub const BAD_FRAME_SIZE: u32 = 9;
    /// Payload fragmentation is not supported.
    pub const FRAGMENTATION: u32 = 10;
}

/// Why bytes from a peer are not a valid SPOP frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpopError {
    /// The input ended inside the named field.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// A varint longer than 64 bits.
    #[error("varint does not fit in 64 bits")]
    VarintOverflow,
    /// A length prefix above the negotiated maximum.
    #[error("frame of {size} bytes is larger than the maximum of {max}")]
    TooBig {
        /// Announced frame length.
        size: u32,
        /// Negotiated maximum.
        max: u32,
    },
    /// A typed-data type 10..=15.
    #[error("unknown data type {0}")]
    UnknownDataType(u8),
    /// An integer too large for its declared type or field.
    #[error("{0} out of range")]
    OutOfRange(&'static str),
    /// A fragment (FIN clear, or type UNSET): not announced, so not accepted.
    #[error("fragmented payloads are not supported")]
    Fragmented,
    /// A mandatory KV item is missing or has the wrong type.
    #[error("missing item {0:?}")]
    MissingItem(&'static str),
    /// Anything else the spec does not allow.
    #[error("invalid frame: {0}")]
    Invalid(String),
}

impl SpopError {
    /// The status code to put in the AGENT-DISCONNECT sent because of this error.
    pub fn status_code(&self) -> u32 {
        match self {
            SpopError::TooBig { .. } => status::TOO_BIG,
            SpopError::Fragmented => status::FRAGMENTATION,
            SpopError::MissingItem("supported-versions") | SpopError::MissingItem("version") => {
                status::NO_VERSION
            }
            SpopError::MissingItem("max-frame-size") => status::NO_FRAME_SIZE,
            SpopError::MissingItem("capabilities") => status::NO_CAPABILITIES,
            _ => status::INVALID,
        }
    }
}
