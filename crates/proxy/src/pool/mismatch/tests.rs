//! The findings' wording and the memory of what was reported, without a pool.

use super::*;

fn body_declaring() -> Capabilities {
    Capabilities {
        handles_request_headers: true,
        handles_request_body: true,
        ..Capabilities::default()
    }
}

fn headers_only(name: &str, pattern: &str) -> LogicalAgent {
    let mut agent = LogicalAgent::new(name, &[pattern]);
    agent.events = EventSet::REQUEST_HEADERS_ONLY;
    agent
}

#[test]
fn an_unmatched_id_names_the_patterns_it_missed() {
    let logical = [headers_only("admin-gate", "admin-gate-*")];
    let findings = registration_findings("admin-gte-1", &body_declaring(), &logical);
    assert_eq!(findings, [Finding::UnmatchedAgentId]);
    assert_eq!(
        findings[0].describe("admin-gte-1", &logical),
        "agent id admin-gte-1 matches no agent's agent-ids (admin-gate-*): start it with a \
         matching --agent-id, or add a pattern to agent-ids"
    );
}

#[test]
fn a_declared_body_the_agent_is_not_sent_is_found_and_cleared_by_a_reload() {
    let logical = [headers_only("admin-gate", "admin-gate-*")];
    let findings = registration_findings("admin-gate-1", &body_declaring(), &logical);
    let expected = Finding::CapabilityNotSent {
        agent: "admin-gate".into(),
        event: EventKind::RequestBody,
    };
    assert_eq!(findings, std::slice::from_ref(&expected));
    assert_eq!(
        expected.describe("admin-gate-1", &logical),
        "admin-gate-1 declares request bodies (handles_request_body) but agent \
         \"admin-gate\" is not sent them: add \"request_body\" to its events, or stop \
         declaring it"
    );
    let mismatches = Mismatches::default();
    mismatches.note("admin-gate-1", expected.clone(), &logical);
    mismatches.note("admin-gate-1", expected, &logical);
    assert_eq!(
        mismatches.counts(),
        [(
            "admin-gate".to_string(),
            MismatchCause::CapabilityNotSent,
            2
        )]
    );
    assert_eq!(mismatches.problems(&logical).len(), 1);
    let fixed = [LogicalAgent::new("admin-gate", &["admin-gate-*"])];
    mismatches.retain_holding(&fixed, &|_| true);
    assert!(mismatches.problems(&fixed).is_empty());
}

#[test]
fn findings_of_a_departed_agent_id_are_forgotten() {
    let logical = [headers_only("admin-gate", "admin-gate-*")];
    let mismatches = Mismatches::default();
    let finding = Finding::ContinueOnLastEvent {
        agent: "admin-gate".into(),
        headers: EventKind::RequestHeaders,
    };
    mismatches.note("admin-gate-1", finding, &logical);
    let problems = mismatches.problems(&logical);
    assert_eq!(
        problems["admin-gate-1"],
        [
            "admin-gate-1 answered continue to request_headers, the last event it is sent in \
          that phase (taken as allow): add \"request_body\" to the events of agent \
          \"admin-gate\", or answer allow"
        ]
    );
    mismatches.forget("admin-gate-1");
    assert!(mismatches.problems(&logical).is_empty());
}
