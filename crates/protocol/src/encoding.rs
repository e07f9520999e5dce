//! Payload encodings (JSON, MessagePack) and the negotiation rule of PROTOCOL.md §3.

use std::fmt;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// How the payload of a frame is encoded. Registration frames are always [`Encoding::Json`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Encoding {
    /// UTF-8 JSON; binary body data travels as base64 strings.
    #[default]
    #[serde(rename = "json")]
    Json,
    /// MessagePack with named fields (maps); binary body data travels as raw `bin` values.
    #[serde(rename = "msgpack")]
    MessagePack,
}

impl Encoding {
    /// Every encoding this implementation speaks, preferred first.
    pub const SUPPORTED: [Encoding; 2] = [Encoding::MessagePack, Encoding::Json];

    /// The wire name used in `encodings` / `encoding` fields.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Json => "json",
            Encoding::MessagePack => "msgpack",
        }
    }

    /// Parses a wire name; unknown names give `None` (an agent may list encodings we lack).
    pub fn from_name(name: &str) -> Option<Encoding> {
        match name {
            "json" => Some(Encoding::Json),
            "msgpack" => Some(Encoding::MessagePack),
            _ => None,
        }
    }

    /// Picks the first encoding of the agent's preference list that `offered` contains.
    /// JSON always works, so an empty, absent or unknown-only list yields JSON.
    pub fn negotiate<'a>(
        agent_preference: impl IntoIterator<Item = &'a str>,
        offered: &[Encoding],
    ) -> Encoding {
        agent_preference
            .into_iter()
            .filter_map(Encoding::from_name)
            .find(|e| offered.contains(e))
            .unwrap_or(Encoding::Json)
    }

    pub(crate) fn serialize<T: Serialize>(self, value: &T) -> Result<Vec<u8>, String> {
        match self {
            Encoding::Json => serde_json::to_vec(value).map_err(|e| e.to_string()),
            Encoding::MessagePack => rmp_serde::to_vec_named(value).map_err(|e| e.to_string()),
        }
    }

    pub(crate) fn deserialize<T: DeserializeOwned>(self, payload: &[u8]) -> Result<T, String> {
        match self {
            Encoding::Json => serde_json::from_slice(payload).map_err(|e| e.to_string()),
            Encoding::MessagePack => rmp_serde::from_slice(payload).map_err(|e| e.to_string()),
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
