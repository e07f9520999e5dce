//! Reading typed values out of KDL nodes: strings, integers, booleans, durations, sizes, and
//! nested `config { … }` blocks as JSON. Each failure names the node and where it is.

use std::time::Duration;

use kdl::{KdlNode, KdlValue};
use serde_json::{Map, Value};

use crate::config::error::{ConfigError, Source};

/// The longest duration any setting accepts: longer ones are typos, and deadlines computed
/// from them must not overflow.
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

pub(crate) struct Reader<'a> {
    pub source: Source<'a>,
}

impl Reader<'_> {
    pub(crate) fn fail(&self, node: &KdlNode, message: impl Into<String>) -> ConfigError {
        self.source.error_at(node.span().offset(), message)
    }

    pub(super) fn args<'n>(&self, node: &'n KdlNode) -> Vec<&'n KdlValue> {
        node.entries()
            .iter()
            .filter(|e| e.name().is_none())
            .map(|e| e.value())
            .collect()
    }

    fn single<'n>(&self, node: &'n KdlNode, what: &str) -> Result<&'n KdlValue, ConfigError> {
        match self.args(node).as_slice() {
            [value] => Ok(value),
            _ => Err(self.fail(
                node,
                format!("`{}` takes exactly one value: {what}", node.name().value()),
            )),
        }
    }

    pub(crate) fn string(&self, node: &KdlNode) -> Result<String, ConfigError> {
        match self.single(node, "a string")? {
            KdlValue::String(s) => Ok(s.clone()),
            other => Err(self.fail(
                node,
                format!("`{}` must be a string, found {other}", node.name().value()),
            )),
        }
    }

    pub(crate) fn strings(&self, node: &KdlNode) -> Result<Vec<String>, ConfigError> {
        let args = self.args(node);
        if args.is_empty() {
            return Err(self.fail(
                node,
                format!("`{}` needs at least one value", node.name().value()),
            ));
        }
        args.into_iter()
            .map(|v| match v {
                KdlValue::String(s) => Ok(s.clone()),
                other => Err(self.fail(
                    node,
                    format!("`{}` takes strings, found {other}", node.name().value()),
                )),
            })
            .collect()
    }

    pub(crate) fn integer(
        &self,
        node: &KdlNode,
        min: i128,
        max: i128,
    ) -> Result<i128, ConfigError> {
        match self.single(node, "a whole number")? {
            KdlValue::Integer(n) if (min..=max).contains(n) => Ok(*n),
            KdlValue::Integer(n) => Err(self.fail(
                node,
                format!(
                    "`{}` must be between {min} and {max}, found {n}",
                    node.name().value()
                ),
            )),
            other => Err(self.fail(
                node,
                format!(
                    "`{}` must be a whole number, found {other}",
                    node.name().value()
                ),
            )),
        }
    }

    pub(crate) fn usize(&self, node: &KdlNode, min: usize) -> Result<usize, ConfigError> {
        Ok(self.integer(node, min as i128, u32::MAX as i128)? as usize)
    }

    pub(crate) fn boolean(&self, node: &KdlNode) -> Result<bool, ConfigError> {
        match self.single(node, "true or false")? {
            KdlValue::Bool(b) => Ok(*b),
            other => Err(self.fail(
                node,
                format!(
                    "`{}` must be true or false, found {other}",
                    node.name().value()
                ),
            )),
        }
    }

    /// `"10s"`, `"250ms"`, `"2m"`, `"1h"`, `"500us"`, or a bare number of `default_unit`s.
    pub(crate) fn duration(
        &self,
        node: &KdlNode,
        default_unit: Duration,
    ) -> Result<Duration, ConfigError> {
        let parsed = match self.single(node, "a duration such as \"10s\" or \"250ms\"")? {
            KdlValue::Integer(n) if *n >= 0 && *n <= u32::MAX as i128 => {
                Some(default_unit * (*n as u32))
            }
            KdlValue::String(s) => parse_duration(s),
            _ => None,
        };
        match parsed {
            Some(d) if d <= MAX_DURATION => Ok(d),
            Some(_) => Err(self.fail(
                node,
                format!("`{}` must be at most 24h", node.name().value()),
            )),
            None => Err(self.fail(
                node,
                format!(
                    "`{}` must be a duration such as \"10s\", \"250ms\" or \"2m\"",
                    node.name().value()
                ),
            )),
        }
    }

    /// `"1MiB"`, `"64KiB"`, `"10MB"`, or a bare number of bytes.
    pub(crate) fn size(&self, node: &KdlNode) -> Result<usize, ConfigError> {
        let parsed = match self.single(node, "a size such as \"1MiB\"")? {
            KdlValue::Integer(n) if *n >= 0 && *n <= u32::MAX as i128 => Some(*n as usize),
            KdlValue::String(s) => parse_size(s),
            _ => None,
        };
        parsed.ok_or_else(|| {
            self.fail(
                node,
                format!(
                    "`{}` must be a size such as \"1MiB\", \"64KiB\" or 4096",
                    node.name().value()
                ),
            )
        })
    }

    pub(crate) fn property<'n>(&self, node: &'n KdlNode, name: &str) -> Option<&'n KdlValue> {
        node.entries()
            .iter()
            .find(|e| e.name().is_some_and(|n| n.value() == name))
            .map(|e| e.value())
    }

    /// A `config { … }` block as a JSON object.
    pub(crate) fn json_object(&self, node: &KdlNode) -> Result<Value, ConfigError> {
        let mut object = Map::new();
        // A key written several times collects its values into a list.
        let mut repeated = std::collections::HashSet::new();
        for child in node.children().map(|c| c.nodes()).unwrap_or_default() {
            let value = self.json_value(child)?;
            let key = child.name().value().to_string();
            match object.get_mut(&key) {
                Some(Value::Array(list)) if repeated.contains(&key) => list.push(value),
                Some(existing) => {
                    let first = existing.take();
                    *existing = Value::Array(vec![first, value]);
                    repeated.insert(key);
                }
                None => {
                    object.insert(key, value);
                }
            }
        }
        Ok(Value::Object(object))
    }

    fn json_value(&self, node: &KdlNode) -> Result<Value, ConfigError> {
        if node.children().is_some() {
            if !node.entries().is_empty() {
                return Err(self.fail(
                    node,
                    "a config entry has either values or a `{ … }` block, not both",
                ));
            }
            return self.json_object(node);
        }
        let args = self.args(node);
        let props: Vec<_> = node
            .entries()
            .iter()
            .filter(|e| e.name().is_some())
            .collect();
        if !props.is_empty() {
            if !args.is_empty() {
                return Err(self.fail(
                    node,
                    "a config entry has either values or key=value properties, not both",
                ));
            }
            let mut object = Map::new();
            for entry in props {
                let key = entry
                    .name()
                    .map(|n| n.value().to_string())
                    .unwrap_or_default();
                object.insert(key, self.scalar(node, entry.value())?);
            }
            return Ok(Value::Object(object));
        }
        match args.as_slice() {
            [] => Ok(Value::Null),
            [one] => self.scalar(node, one),
            many => many
                .iter()
                .map(|v| self.scalar(node, v))
                .collect::<Result<_, _>>()
                .map(Value::Array),
        }
    }

    fn scalar(&self, node: &KdlNode, value: &KdlValue) -> Result<Value, ConfigError> {
        Ok(match value {
            KdlValue::String(s) => Value::String(s.clone()),
            KdlValue::Bool(b) => Value::Bool(*b),
            KdlValue::Null => Value::Null,
            KdlValue::Integer(n) => {
                if let Ok(n) = i64::try_from(*n) {
                    Value::from(n)
                } else if let Ok(n) = u64::try_from(*n) {
                    Value::from(n)
                } else {
                    return Err(self.fail(node, format!("{n} is too large for a config value")));
                }
            }
            KdlValue::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .ok_or_else(|| {
                    self.fail(node, "infinite or NaN numbers cannot be pushed to agents")
                })?,
        })
    }
}

pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    match unit.trim() {
        "us" | "µs" => Some(Duration::from_micros(n)),
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
}

pub(crate) fn parse_size(text: &str) -> Option<usize> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: usize = number.parse().ok()?;
    let factor = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1024,
        "MiB" => 1024 * 1024,
        "GiB" => 1024 * 1024 * 1024,
        "KB" | "kB" => 1000,
        "MB" => 1000 * 1000,
        "GB" => 1000 * 1000 * 1000,
        _ => return None,
    };
    n.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("ten s"), None);
        assert_eq!(parse_size("1MiB"), Some(1 << 20));
        assert_eq!(parse_size("64KiB"), Some(65536));
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("1XB"), None);
    }
}
