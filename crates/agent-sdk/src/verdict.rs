//! [`Verdict`]: what a handler returns. It says what to do with the request (allow, continue,
//! block, redirect, or "I could not decide"), which headers to change, an optional replacement
//! for a body chunk, and an audit record. The runner turns it into the wire reply (a Decision
//! or a RequestError) with the event's `request_id`; authors never build wire messages.

use std::fmt;

use bytes::Bytes;
use sentinel_agent_protocol::{
    Action, Audit, Decision, HeaderOp, RequestError, DEFAULT_BLOCK_STATUS, DEFAULT_REDIRECT_STATUS,
};

/// A handler's answer to one event. Build one with [`Verdict::allow`], [`Verdict::block`],
/// [`Verdict::redirect`], [`Verdict::continue_`] or [`Verdict::error`], then chain header
/// operations and audit details:
///
/// ```
/// use sentinel_agent_sdk::Verdict;
///
/// let verdict = Verdict::block(403)
///     .with_body("forbidden")
///     .rule("sqli-union-select")
///     .tag("sqli")
///     .reason("SQL injection in query");
/// assert!(verdict.is_block());
/// ```
///
/// Conversions make other values verdicts too: an [`Action`], and a `Result` whose `Ok`
/// converts into a verdict (an `Err` becomes [`Verdict::error`] with code `internal`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    outcome: Outcome,
    request_headers: Vec<HeaderOp>,
    response_headers: Vec<HeaderOp>,
    chunk: Option<Bytes>,
    audit: Audit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Action(Action),
    Error { code: String, message: String },
}

/// The wire reply a verdict becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A Decision (0x20).
    Decision(Decision),
    /// A RequestError (0x22).
    Error(RequestError),
}

impl Verdict {
    fn of(action: Action) -> Verdict {
        Verdict {
            outcome: Outcome::Action(action),
            request_headers: Vec::new(),
            response_headers: Vec::new(),
            chunk: None,
            audit: Audit::default(),
        }
    }

    /// Let the request proceed; this agent is done with the current phase.
    pub fn allow() -> Verdict {
        Verdict::of(Action::Allow)
    }

    /// No verdict yet: send the next event of this phase (counts as allow on the last one).
    pub fn continue_() -> Verdict {
        Verdict::of(Action::Continue)
    }

    /// Answer the client directly with `status` (403 is the usual choice).
    pub fn block(status: u16) -> Verdict {
        Verdict::of(Action::Block {
            status,
            body: None,
            headers: Vec::new(),
        })
    }

    /// Block with the default status, 403.
    pub fn deny() -> Verdict {
        Verdict::block(DEFAULT_BLOCK_STATUS)
    }

    /// Send the client to `location` with 302.
    pub fn redirect(location: impl Into<String>) -> Verdict {
        Verdict::of(Action::Redirect {
            location: location.into(),
            status: DEFAULT_REDIRECT_STATUS,
        })
    }

    /// The agent could not process the event; the proxy applies the agent's failure mode.
    /// `code` is short and machine-readable (`internal`, `bad_config`, …).
    pub fn error(code: impl Into<String>, message: impl Into<String>) -> Verdict {
        Verdict {
            outcome: Outcome::Error {
                code: code.into(),
                message: message.into(),
            },
            ..Verdict::allow()
        }
    }

    /// On a block: the response body. On a redirect: ignored.
    pub fn with_body(mut self, text: impl Into<String>) -> Verdict {
        if let Outcome::Action(Action::Block { body, .. }) = &mut self.outcome {
            *body = Some(text.into());
        }
        self
    }

    /// On a block: adds a header to the response sent to the client.
    pub fn with_block_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        if let Outcome::Action(Action::Block { headers, .. }) = &mut self.outcome {
            headers.push((name.into(), value.into()));
        }
        self
    }

    /// On a redirect: the status (301, 302, 303, 307 or 308).
    pub fn with_status(mut self, new_status: u16) -> Verdict {
        match &mut self.outcome {
            Outcome::Action(Action::Block { status, .. })
            | Outcome::Action(Action::Redirect { status, .. }) => *status = new_status,
            _ => {}
        }
        self
    }

    /// Replaces every value of a request header sent upstream.
    pub fn set_request_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.request_headers.push(set(name, value));
        self
    }

    /// Appends a value to a request header sent upstream.
    pub fn add_request_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.request_headers.push(add(name, value));
        self
    }

    /// Removes a request header before the request goes upstream.
    pub fn remove_request_header(mut self, name: impl Into<String>) -> Verdict {
        self.request_headers
            .push(HeaderOp::Remove { name: name.into() });
        self
    }

    /// Replaces every value of a response header sent to the client.
    pub fn set_response_header(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        self.response_headers.push(set(name, value));
        self
    }

    /// Appends a value to a response header sent to the client.
    pub fn add_response_header(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Self {
        self.response_headers.push(add(name, value));
        self
    }

    /// Removes a response header before the response goes to the client.
    pub fn remove_response_header(mut self, name: impl Into<String>) -> Verdict {
        self.response_headers
            .push(HeaderOp::Remove { name: name.into() });
        self
    }

    /// On an allow/continue reply to a body-chunk event: the bytes that replace that chunk.
    pub fn replace_chunk(mut self, data: impl Into<Bytes>) -> Verdict {
        self.chunk = Some(data.into());
        self
    }

    /// Records the id of a rule that fired.
    pub fn rule(mut self, id: impl Into<String>) -> Verdict {
        self.audit.rule_ids.push(id.into());
        self
    }

    /// Records a classification tag, e.g. `sqli`.
    pub fn tag(mut self, tag: impl Into<String>) -> Verdict {
        self.audit.tags.push(tag.into());
        self
    }

    /// Records why, in one sentence.
    pub fn reason(mut self, reason: impl Into<String>) -> Verdict {
        self.audit.reason = Some(reason.into());
        self
    }

    /// The action, or `None` for [`Verdict::error`].
    pub fn action(&self) -> Option<&Action> {
        match &self.outcome {
            Outcome::Action(action) => Some(action),
            Outcome::Error { .. } => None,
        }
    }

    /// Whether this is an allow.
    pub fn is_allow(&self) -> bool {
        matches!(self.action(), Some(Action::Allow))
    }

    /// Whether this is a continue.
    pub fn is_continue(&self) -> bool {
        matches!(self.action(), Some(Action::Continue))
    }

    /// Whether this is a block.
    pub fn is_block(&self) -> bool {
        matches!(self.action(), Some(Action::Block { .. }))
    }

    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        matches!(self.outcome, Outcome::Error { .. })
    }

    /// The audit record built so far.
    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    /// The operations on request headers.
    pub fn request_header_ops(&self) -> &[HeaderOp] {
        &self.request_headers
    }

    /// The operations on response headers.
    pub fn response_header_ops(&self) -> &[HeaderOp] {
        &self.response_headers
    }

    /// The wire reply to the event `request_id`.
    pub fn into_reply(self, request_id: u64) -> Reply {
        let action = match self.outcome {
            Outcome::Error { code, message } => {
                return Reply::Error(RequestError {
                    request_id,
                    code,
                    message,
                })
            }
            Outcome::Action(action) => action,
        };
        let empty = self.audit == Audit::default();
        Reply::Decision(Decision {
            request_id,
            action,
            request_headers: self.request_headers,
            response_headers: self.response_headers,
            body: self.chunk,
            audit: (!empty).then_some(self.audit),
        })
    }
}

fn set(name: impl Into<String>, value: impl Into<String>) -> HeaderOp {
    HeaderOp::Set {
        name: name.into(),
        value: value.into(),
    }
}

fn add(name: impl Into<String>, value: impl Into<String>) -> HeaderOp {
    HeaderOp::Add {
        name: name.into(),
        value: value.into(),
    }
}

impl Default for Verdict {
    /// Allow.
    fn default() -> Verdict {
        Verdict::allow()
    }
}

impl From<Action> for Verdict {
    fn from(action: Action) -> Verdict {
        Verdict::of(action)
    }
}

impl<T: Into<Verdict>, E: fmt::Display> From<Result<T, E>> for Verdict {
    fn from(result: Result<T, E>) -> Verdict {
        match result {
            Ok(verdict) => verdict.into(),
            Err(e) => Verdict::error("internal", e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_carries_status_body_headers_and_audit() {
        let reply = Verdict::block(451)
            .with_body("gone")
            .with_block_header("retry-after", "60")
            .rule("r1")
            .tag("legal")
            .reason("takedown")
            .into_reply(7);
        let Reply::Decision(decision) = reply else {
            panic!("{reply:?}")
        };
        assert_eq!(decision.request_id, 7);
        assert_eq!(
            decision.action,
            Action::Block {
                status: 451,
                body: Some("gone".into()),
                headers: vec![("retry-after".into(), "60".into())],
            }
        );
        let audit = decision.audit.expect("audit");
        assert_eq!(audit.rule_ids, ["r1"]);
        assert_eq!(audit.tags, ["legal"]);
        assert_eq!(audit.reason.as_deref(), Some("takedown"));
    }

    #[test]
    fn allow_with_header_ops_and_no_audit() {
        let reply = Verdict::allow()
            .set_request_header("x-user", "alice")
            .remove_request_header("cookie")
            .add_response_header("x-waf", "checked")
            .into_reply(1);
        let Reply::Decision(decision) = reply else {
            panic!("{reply:?}")
        };
        assert_eq!(decision.action, Action::Allow);
        assert_eq!(decision.request_headers.len(), 2);
        assert_eq!(decision.response_headers.len(), 1);
        assert_eq!(decision.audit, None);
    }

    #[test]
    fn redirect_status_and_body_rules() {
        let verdict = Verdict::redirect("/login").with_status(303).with_body("x");
        assert_eq!(
            verdict.action(),
            Some(&Action::Redirect {
                location: "/login".into(),
                status: 303
            })
        );
        assert_eq!(
            Verdict::deny().action(),
            Some(&Action::Block {
                status: 403,
                body: None,
                headers: vec![]
            })
        );
    }

    #[test]
    fn results_and_errors_convert() {
        let ok: Result<Verdict, String> = Ok(Verdict::continue_());
        assert!(Verdict::from(ok).is_continue());
        let err: Result<Verdict, String> = Err("db down".into());
        match Verdict::from(err).into_reply(3) {
            Reply::Error(e) => {
                assert_eq!((e.request_id, e.code.as_str()), (3, "internal"));
                assert_eq!(e.message, "db down");
            }
            other => panic!("{other:?}"),
        }
        assert!(Verdict::from(Action::Allow).is_allow());
    }

    #[test]
    fn chunk_replacement_travels_in_the_decision() {
        let Reply::Decision(d) = Verdict::allow().replace_chunk("xyz").into_reply(2) else {
            panic!()
        };
        assert_eq!(d.body.as_deref(), Some(&b"xyz"[..]));
    }
}
