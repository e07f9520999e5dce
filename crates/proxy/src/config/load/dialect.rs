//! KDL dialects. The original design writes `require-auth true` (KDL v1) while the rest of the
//! documented file uses one-line blocks such as `listener "http" { address "…" }` that only
//! KDL v2 accepts, so a file pasted from both parses under neither. Before falling back to the
//! v1 parser we therefore retry v2 with v1's bare `true`/`false`/`null` written as `#true`,
//! `#false`, `#null`, remembering where `#` was inserted so error positions still point into
//! the file as the user wrote it.

/// The text with bare v1 keywords upgraded, and the offsets (in the new text) of each `#`.
pub(crate) struct Upgraded {
    pub text: String,
    pub insertions: Vec<usize>,
}

impl Upgraded {
    /// Maps an offset in the upgraded text back to the original text.
    pub(crate) fn original_offset(&self, offset: usize) -> usize {
        offset - self.insertions.iter().filter(|&&i| i < offset).count()
    }
}

/// Rewrites bare `true`, `false` and `null` tokens outside strings and comments, or `None` if
/// there are none.
pub(crate) fn upgrade_v1_keywords(text: &str) -> Option<Upgraded> {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len() + 16);
    let mut insertions = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        let skip = if rest.starts_with("//") {
            rest.find('\n').unwrap_or(rest.len())
        } else if rest.starts_with("/*") {
            rest.find("*/").map_or(rest.len(), |end| end + 2)
        } else if rest.starts_with('"') {
            quoted_len(rest)
        } else if let Some(word) = ["true", "false", "null"]
            .into_iter()
            .find(|w| rest.starts_with(w) && is_token_boundary(text, i, w.len()))
        {
            insertions.push(out.len());
            out.push('#');
            word.len()
        } else {
            rest.chars().next().map_or(1, char::len_utf8)
        };
        out.push_str(&text[i..i + skip]);
        i += skip;
    }
    (!insertions.is_empty()).then_some(Upgraded {
        text: out,
        insertions,
    })
}

/// Length of a `"…"` string including its quotes, honouring backslash escapes.
fn quoted_len(rest: &str) -> usize {
    let mut escaped = false;
    for (i, c) in rest.char_indices().skip(1) {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return i + 1,
            _ => {}
        }
    }
    rest.len()
}

fn is_token_boundary(text: &str, start: usize, len: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[start + len..].chars().next();
    let before_ok = before.is_some_and(|c| c == ' ' || c == '\t' || c == '=');
    let after_ok = after.is_none_or(|c| c.is_whitespace() || c == ';' || c == '}');
    before_ok && after_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrades_only_bare_keywords() {
        let text = "a true\nb \"true\" // true\nc x=false; d truer\ne null}";
        let up = upgrade_v1_keywords(text).unwrap();
        assert_eq!(
            up.text,
            "a #true\nb \"true\" // true\nc x=#false; d truer\ne #null}"
        );
        let at = up.text.find("#false").unwrap() + 1;
        assert_eq!(up.original_offset(at), text.find("false").unwrap());
        assert!(upgrade_v1_keywords("node #true \"true\"").is_none());
    }
}
