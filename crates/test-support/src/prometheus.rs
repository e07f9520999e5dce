//! Reading the Prometheus text exposition format that the proxy's `/metrics` serves: samples
//! with their labels (quoted values unescaped, commas inside quotes respected) and the sums
//! tests and harnesses assert on. Comments (`# HELP`, `# TYPE`) and timestamps are ignored.
//! Fetching the page is the caller's business.

use std::collections::BTreeMap;

/// One sample line: `name{label="value",…} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The metric name (with any `_total`/`_bucket` suffix as written).
    pub name: String,
    /// The labels in the order written.
    pub labels: Vec<(String, String)>,
    /// The value.
    pub value: f64,
}

impl Sample {
    /// The value of label `key`, if present.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn has_labels(&self, wanted: &[(&str, &str)]) -> bool {
        wanted.iter().all(|(k, v)| self.label(k) == Some(*v))
    }
}

/// Every sample of `text`; lines that are not samples are skipped.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = line[..name_end].to_string();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        let (parsed, remainder) = parse_labels(after_brace)?;
        labels = parsed;
        rest = remainder;
    }
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// Parses `key="value",…}` and returns the labels and what follows the closing brace.
fn parse_labels(mut text: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        text = text.trim_start_matches([',', ' ']);
        if let Some(rest) = text.strip_prefix('}') {
            return Some((labels, rest));
        }
        let (key, after_key) = text.split_once('=')?;
        let quoted = after_key.strip_prefix('"')?;
        let (value, after_value) = unescape_until_quote(quoted)?;
        labels.push((key.trim().to_string(), value));
        text = after_value;
    }
}

fn unescape_until_quote(text: &str) -> Option<(String, &str)> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((value, &text[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => value.push('\n'),
                other => value.push(other),
            },
            c => value.push(c),
        }
    }
    None
}

/// The sum of every sample of `metric` whose labels include all of `labels` (0 when there is
/// none: a counter that was never incremented is not exported).
pub fn metric_sum(text: &str, metric: &str, labels: &[(&str, &str)]) -> f64 {
    parse(text)
        .iter()
        .filter(|s| s.name == metric && s.has_labels(labels))
        .map(|s| s.value)
        .sum()
}

/// Every `(label value, sum)` of `metric` grouped by the value of `label`, sorted by value;
/// samples without that label are left out.
pub fn metric_by_label(text: &str, metric: &str, label: &str) -> Vec<(String, f64)> {
    let mut sums: BTreeMap<String, f64> = BTreeMap::new();
    for sample in parse(text).iter().filter(|s| s.name == metric) {
        if let Some(value) = sample.label(label) {
            *sums.entry(value.to_string()).or_default() += sample.value;
        }
    }
    sums.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = r#"# HELP sentinel_requests_total Requests.
# TYPE sentinel_requests_total counter
sentinel_requests_total{route="api",code="200"} 3
sentinel_requests_total{route="api",code="503"} 2
sentinel_requests_total{route="a,b \"q\"",code="200"} 5 1700000000
sentinel_up 1
sentinel_requests_total_other{route="api"} 100
"#;

    #[test]
    fn sums_by_labels() {
        assert_eq!(metric_sum(PAGE, "sentinel_requests_total", &[]), 10.0);
        assert_eq!(
            metric_sum(PAGE, "sentinel_requests_total", &[("route", "api")]),
            5.0
        );
        assert_eq!(
            metric_sum(
                PAGE,
                "sentinel_requests_total",
                &[("route", "api"), ("code", "503")]
            ),
            2.0
        );
        assert_eq!(
            metric_sum(PAGE, "sentinel_requests_total", &[("route", "a,b \"q\"")]),
            5.0
        );
        assert_eq!(metric_sum(PAGE, "sentinel_up", &[]), 1.0);
        assert_eq!(metric_sum(PAGE, "absent", &[]), 0.0);
    }

    #[test]
    fn groups_by_label() {
        assert_eq!(
            metric_by_label(PAGE, "sentinel_requests_total", "code"),
            [("200".to_string(), 8.0), ("503".to_string(), 2.0)]
        );
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let samples = parse("x{a=\"unterminated} 1\ny 2\nz{a=\"1\"} notanumber\n");
        assert_eq!(samples.len(), 1);
        assert_eq!(samples[0].name, "y");
    }
}
