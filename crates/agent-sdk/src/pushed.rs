//! Helpers for reading pushed configuration. The proxy's KDL `config { … }` block turns a key
//! written once into a single value and a key written several times into a list, so a field
//! that holds a list must also accept one item: use [`one_or_many`] on it.

use serde::{Deserialize, Deserializer};

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    Many(Vec<T>),
    One(T),
}

impl<T> From<OneOrMany<T>> for Vec<T> {
    fn from(value: OneOrMany<T>) -> Vec<T> {
        match value {
            OneOrMany::Many(items) => items,
            OneOrMany::One(item) => vec![item],
        }
    }
}

/// `#[serde(deserialize_with = "sentinel_agent_sdk::one_or_many")]` on a `Vec<T>` field
/// accepts a list or a single item; on an `Option<Vec<T>>` field use [`optional_one_or_many`].
pub fn one_or_many<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    OneOrMany::deserialize(deserializer).map(Vec::from)
}

/// [`one_or_many`] for an optional field: absent or `null` is `None`.
pub fn optional_one_or_many<'de, D, T>(deserializer: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<OneOrMany<T>>::deserialize(deserializer)?.map(Vec::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Example {
        #[serde(default, deserialize_with = "one_or_many")]
        tags: Vec<String>,
        #[serde(default, deserialize_with = "optional_one_or_many")]
        rules: Option<Vec<serde_json::Value>>,
    }

    #[test]
    fn one_item_or_a_list() {
        let one: Example = serde_json::from_str(r#"{"tags": "a", "rules": {"id": "x"}}"#).unwrap();
        assert_eq!(one.tags, ["a"]);
        assert_eq!(one.rules.unwrap().len(), 1);
        let many: Example =
            serde_json::from_str(r#"{"tags": ["a", "b"], "rules": [{}, {}]}"#).unwrap();
        assert_eq!((many.tags.len(), many.rules.unwrap().len()), (2, 2));
        let none: Example = serde_json::from_str(r#"{"rules": null}"#).unwrap();
        assert!(none.tags.is_empty() && none.rules.is_none());
    }
}
