//! [`Waf`]: the agent. It checks the path, query and header values of each request against the
//! rule set (raw and percent-decoded, so `%27` cannot hide a quote), buffers the body per
//! request up to a limit and checks it at its last chunk, and blocks with 403 naming the rule
//! in the audit record. Pushed configuration replaces the rule set; a bad one is refused and
//! the previous rules stay.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use sentinel_agent_sdk::prelude::*;
use sentinel_agent_sdk::{decode_form_component, percent_decode};
use serde::Deserialize;
use serde_json::Value;

use crate::rules::{Hit, RuleError, RuleSet, RuleSource, RuleSpec, Target};

/// Body bytes inspected per request by default.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// The text a blocked client receives.
pub const BLOCK_BODY: &str = "Forbidden: the request was blocked by the web application firewall\n";

/// How the WAF starts.
#[derive(Debug, Clone)]
pub struct WafSettings {
    /// Rules at start-up, and whenever pushed config says nothing about rules.
    pub source: RuleSource,
    /// Body bytes inspected per request; the rest passes unchecked.
    pub max_body_bytes: usize,
    /// Whether to ask for request bodies at all.
    pub inspect_body: bool,
}

impl Default for WafSettings {
    fn default() -> WafSettings {
        WafSettings {
            source: RuleSource::default(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            inspect_body: true,
        }
    }
}

/// The WAF agent.
pub struct Waf {
    settings: WafSettings,
    rules: RwLock<Arc<RuleSet>>,
}

/// The WAF's part of the pushed configuration; other keys (e.g. `rules_version`) are ignored.
#[derive(Debug, Deserialize)]
struct PushedConfig {
    /// Inline rules (one rule or a list).
    #[serde(default, deserialize_with = "sentinel_agent_sdk::optional_one_or_many")]
    rules: Option<Vec<RuleSpec>>,
    /// A rules file on the agent's host, read when the config arrives.
    rules_file: Option<PathBuf>,
    /// Whether the built-in rules come first (default true).
    default_rules: Option<bool>,
}

/// The body seen so far of one request.
#[derive(Default)]
struct BodyBuffer {
    bytes: Vec<u8>,
    truncated: bool,
}

impl Waf {
    /// Loads the start-up rules.
    pub fn new(settings: WafSettings) -> Result<Waf, RuleError> {
        let rules = settings.source.load()?;
        Ok(Waf {
            settings,
            rules: RwLock::new(Arc::new(rules)),
        })
    }

    /// The rules in force.
    pub fn rules(&self) -> Arc<RuleSet> {
        self.rules
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Applies pushed configuration: `rules`, `rules_file` and `default_rules` describe a new
    /// rule set; a config with none of them (or null) returns to the start-up rules.
    /// Returns the number of rules now in force.
    pub fn apply_config(&self, config: &Value) -> Result<usize, RuleError> {
        let source = match config {
            Value::Null => self.settings.source.clone(),
            Value::Object(_) => {
                let pushed = PushedConfig::deserialize(config).map_err(|e| RuleError::Format {
                    origin: "pushed config".into(),
                    reason: e.to_string(),
                })?;
                if pushed.rules.is_none()
                    && pushed.rules_file.is_none()
                    && pushed.default_rules.is_none()
                {
                    self.settings.source.clone()
                } else {
                    RuleSource {
                        default_rules: pushed.default_rules.unwrap_or(true),
                        file: pushed.rules_file,
                        inline: pushed.rules.unwrap_or_default(),
                    }
                }
            }
            _ => {
                return Err(RuleError::Format {
                    origin: "pushed config".into(),
                    reason: "expected an object".into(),
                })
            }
        };
        let rules = source.load()?;
        let count = rules.rules().len();
        *self
            .rules
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(rules);
        Ok(count)
    }

    /// Checks path, query and headers.
    pub fn check_request(&self, request: &RequestHeaders) -> Option<Hit> {
        let rules = self.rules();
        let path = decoded_forms(request.path(), percent_decode);
        if let Some(hit) = rules.check(Target::Path, &path) {
            return Some(hit);
        }
        if let Some(query) = request.query() {
            let query = decoded_forms(query, decode_form_component);
            if let Some(hit) = rules.check(Target::Query, &query) {
                return Some(hit);
            }
        }
        let headers: Vec<String> = request
            .headers
            .iter()
            .flat_map(|(_, value)| decoded_forms(value, percent_decode))
            .collect();
        rules.check(Target::Headers, &headers)
    }

    /// Checks a (possibly truncated) body.
    pub fn check_body(&self, body: &[u8]) -> Option<Hit> {
        let text = String::from_utf8_lossy(body);
        self.rules()
            .check(Target::Body, &decoded_forms(&text, decode_form_component))
    }
}

/// `text` and its successive decodings (at most three rounds, so double encoding is seen
/// through), without duplicates.
fn decoded_forms(text: &str, decode: fn(&str) -> String) -> Vec<String> {
    let mut forms = vec![text.to_string()];
    for _ in 0..3 {
        let Some(last) = forms.last() else { break };
        let next = decode(last);
        if &next == last {
            break;
        }
        forms.push(next);
    }
    forms
}

fn block(hit: Hit) -> Verdict {
    tracing::info!(rule = %hit.rule_id, target = %hit.target, "request blocked");
    let reason = format!(
        "rule {} matched in the {}: {}",
        hit.rule_id, hit.target, hit.message
    );
    let mut verdict = Verdict::block(403)
        .with_body(BLOCK_BODY)
        .rule(hit.rule_id)
        .reason(reason);
    for tag in hit.tags {
        verdict = verdict.tag(tag);
    }
    verdict
}

impl Agent for Waf {
    fn events(&self) -> Events {
        if self.settings.inspect_body {
            Events::REQUEST_HEADERS | Events::REQUEST_BODY
        } else {
            Events::REQUEST_HEADERS
        }
    }

    async fn on_request_headers(&self, req: &RequestHeaders, _ctx: &mut RequestContext) -> Verdict {
        if let Some(hit) = self.check_request(req) {
            return block(hit);
        }
        if req.has_body && self.settings.inspect_body && self.rules().inspects(Target::Body) {
            Verdict::continue_()
        } else {
            Verdict::allow()
        }
    }

    async fn on_request_body_chunk(&self, chunk: &BodyChunk, ctx: &mut RequestContext) -> Verdict {
        let limit = self.settings.max_body_bytes;
        let buffer = ctx.state::<BodyBuffer>();
        let room = limit.saturating_sub(buffer.bytes.len());
        buffer
            .bytes
            .extend_from_slice(&chunk.data[..chunk.data.len().min(room)]);
        buffer.truncated |= chunk.data.len() > room;
        if !chunk.is_last && !buffer.truncated {
            return Verdict::continue_();
        }
        if buffer.truncated {
            tracing::debug!(
                limit,
                "body larger than the inspection limit; the rest is not inspected"
            );
        }
        let body = std::mem::take(&mut buffer.bytes);
        match self.check_body(&body) {
            Some(hit) => block(hit),
            None => Verdict::allow(),
        }
    }

    async fn on_config(&self, config: &Value) -> Result<(), BoxError> {
        let count = self.apply_config(config)?;
        tracing::info!(rules = count, "rules reloaded from pushed configuration");
        Ok(())
    }
}
