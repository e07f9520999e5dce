//! A tiny KDL v2 document model for *writing* configuration files: nodes with arguments,
//! properties and children, rendered with correct string escaping and identifier quoting.
//! It owns the lexical side of the grammar (how a value is spelled); which directives exist
//! is the business of the typed builders in the sibling modules. Parsing is not done here:
//! the proxy's own loader is the judge of what it wrote.

use std::fmt::{self, Display, Write as _};

/// One KDL value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// A string, always rendered quoted.
    String(String),
    /// An integer.
    Integer(i128),
    /// A boolean, rendered `#true` / `#false` (KDL v2).
    Bool(bool),
}

impl From<&str> for Value {
    fn from(value: &str) -> Value {
        Value::String(value.to_string())
    }
}

impl From<String> for Value {
    fn from(value: String) -> Value {
        Value::String(value)
    }
}

impl From<bool> for Value {
    fn from(value: bool) -> Value {
        Value::Bool(value)
    }
}

macro_rules! integer_values {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(value: $t) -> Value {
                Value::Integer(value as i128)
            }
        }
    )*};
}
integer_values!(u8, u16, u32, u64, usize, i32, i64);

impl Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::String(s) => write_quoted(f, s),
            Value::Integer(n) => write!(f, "{n}"),
            Value::Bool(b) => write!(f, "#{b}"),
        }
    }
}

/// One node: `name arg… key=value… { children }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    name: String,
    args: Vec<Value>,
    props: Vec<(String, Value)>,
    children: Option<Vec<Node>>,
}

impl Node {
    /// A node with no arguments.
    pub fn new(name: impl Into<String>) -> Node {
        Node {
            name: name.into(),
            args: Vec::new(),
            props: Vec::new(),
            children: None,
        }
    }

    /// Appends an argument.
    pub fn arg(mut self, value: impl Into<Value>) -> Node {
        self.args.push(value.into());
        self
    }

    /// Appends every value of `values` as arguments.
    pub fn args<V: Into<Value>>(mut self, values: impl IntoIterator<Item = V>) -> Node {
        self.args.extend(values.into_iter().map(Into::into));
        self
    }

    /// Appends a property `key=value`.
    pub fn prop(mut self, key: impl Into<String>, value: impl Into<Value>) -> Node {
        self.props.push((key.into(), value.into()));
        self
    }

    /// Appends a child node (the node then has a `{ … }` block, even if empty).
    pub fn child(mut self, child: Node) -> Node {
        self.children.get_or_insert_with(Vec::new).push(child);
        self
    }

    /// Appends every node of `children`.
    pub fn children(mut self, children: impl IntoIterator<Item = Node>) -> Node {
        self.children.get_or_insert_with(Vec::new).extend(children);
        self
    }

    /// An empty `{ }` block, so `name {}` is written even without children.
    pub fn with_block(mut self) -> Node {
        self.children.get_or_insert_with(Vec::new);
        self
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn render(&self, out: &mut String, depth: usize) {
        let indent = "    ".repeat(depth);
        out.push_str(&indent);
        // `write!` into a String cannot fail.
        let _ = write!(out, "{}", Identifier(&self.name));
        for arg in &self.args {
            let _ = write!(out, " {arg}");
        }
        for (key, value) in &self.props {
            let _ = write!(out, " {}={value}", Identifier(key));
        }
        if let Some(children) = &self.children {
            out.push_str(" {\n");
            for child in children {
                child.render(out, depth + 1);
            }
            out.push_str(&indent);
            out.push('}');
        }
        out.push('\n');
    }
}

/// Renders `nodes` as a KDL document.
pub fn render(nodes: &[Node]) -> String {
    let mut out = String::new();
    for node in nodes {
        node.render(&mut out, 0);
    }
    out
}

/// A node or property name: bare when KDL allows it, quoted otherwise.
struct Identifier<'a>(&'a str);

impl Display for Identifier<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if is_bare_identifier(self.0) {
            f.write_str(self.0)
        } else {
            write_quoted(f, self.0)
        }
    }
}

/// Conservative: letters, digits, `_` and `-`, not starting with a digit or `-` followed by
/// a digit, and none of the keywords a bare word may not be.
fn is_bare_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let starts_well = first.is_ascii_alphabetic() || first == '_' || first == '-';
    let looks_numeric = first == '-' && name[1..].starts_with(|c: char| c.is_ascii_digit());
    let keyword = matches!(name, "true" | "false" | "null" | "inf" | "nan" | "-inf");
    starts_well
        && !looks_numeric
        && !keyword
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn write_quoted(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in text.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\r' => f.write_str("\\r")?,
            '\t' => f.write_str("\\t")?,
            '\u{8}' => f.write_str("\\b")?,
            '\u{c}' => f.write_str("\\f")?,
            c if c.is_control() => write!(f, "\\u{{{:x}}}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_and_odd_names_quoted() {
        let node = Node::new("say")
            .arg("a \"quote\" and \\ back\nslash\u{1}")
            .prop("true", 1u32)
            .prop("key", true);
        assert_eq!(
            render(&[node]),
            "say \"a \\\"quote\\\" and \\\\ back\\nslash\\u{1}\" \"true\"=1 key=#true\n"
        );
    }

    #[test]
    fn children_are_indented_and_empty_blocks_kept() {
        let node = Node::new("outer")
            .child(Node::new("inner").arg(-3i64))
            .child(Node::new("empty").with_block());
        assert_eq!(
            render(&[node]),
            "outer {\n    inner -3\n    empty {\n    }\n}\n"
        );
    }

    #[test]
    fn bare_identifiers() {
        for good in ["a", "max-fails", "_x", "rules_version", "-"] {
            assert!(is_bare_identifier(good), "{good}");
        }
        for bad in ["", "1a", "-1", "a b", "true", "a=b", "a\"", "null"] {
            assert!(!is_bare_identifier(bad), "{bad}");
        }
    }
}
