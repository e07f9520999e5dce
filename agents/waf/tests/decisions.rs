//! The WAF's decisions on real attack and benign inputs, through its Agent handlers, and rule
//! reloading from pushed configuration (inline rules, a rules file, back to the start-up
//! rules, a broken config refused).
#![allow(
    clippy::disallowed_methods,
    reason = "test set-up writes and reads fixture files; no proxy runtime is blocked"
)]

use std::sync::Arc;

use sentinel_agent_sdk::prelude::*;
use sentinel_agent_sdk::protocol::Action;
use sentinel_agent_testkit::request_headers;
use sentinel_agent_waf::{RuleSource, Waf, WafSettings, BLOCK_BODY};
use serde_json::json;

type Headers<'a> = &'a [(&'a str, &'a str)];

fn request(uri: &str, headers: &[(&str, &str)], has_body: bool) -> RequestHeaders {
    let method = if has_body { "POST" } else { "GET" };
    RequestHeaders {
        request_id: 1,
        client_addr: "198.51.100.7:5000".into(),
        has_body,
        ..request_headers(method, uri, headers)
    }
}

fn chunk(index: u64, data: &str, is_last: bool) -> BodyChunk {
    BodyChunk {
        request_id: 1,
        chunk_index: index,
        data: data.as_bytes().to_vec().into(),
        is_last,
    }
}

fn ctx() -> RequestContext {
    RequestContext::new(1, "waf-1-conn-1")
}

fn waf() -> Waf {
    Waf::new(WafSettings::default()).expect("default rules compile")
}

/// The rule id of a block, `None` for allow; anything else fails the test.
fn rule_of(verdict: &Verdict) -> Option<String> {
    match verdict.action() {
        Some(Action::Allow) => None,
        Some(Action::Block {
            status: 403, body, ..
        }) => {
            assert_eq!(body.as_deref(), Some(BLOCK_BODY));
            let audit = verdict.audit();
            assert_eq!(audit.rule_ids.len(), 1, "{audit:?}");
            assert!(audit
                .reason
                .as_deref()
                .unwrap_or("")
                .contains(&audit.rule_ids[0]));
            Some(audit.rule_ids[0].clone())
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn attacks_in_path_query_and_headers_are_blocked_with_their_rule() {
    let waf = waf();
    let cases: &[(&str, Headers<'_>, &str)] = &[
        (
            "/items?id=1%20UNION%20SELECT%20password%20FROM%20users",
            &[],
            "sqli-union-select",
        ),
        (
            "/items?id=1+union/**/all/**/select+1",
            &[],
            "sqli-union-select",
        ),
        (
            "/login?user=%27%20OR%20%271%27%3D%271",
            &[],
            "sqli-tautology",
        ),
        ("/login?user=admin%27--", &[], "sqli-comment-terminator"),
        ("/q?x=1;%20DROP%20TABLE%20users", &[], "sqli-stacked-query"),
        ("/q?x=1%20AND%20SLEEP(5)", &[], "sqli-time-delay"),
        (
            "/search?q=%3Cscript%3Ealert(1)%3C/script%3E",
            &[],
            "xss-script-tag",
        ),
        ("/search?q=%253Cscript%253E", &[], "xss-script-tag"),
        (
            "/p?x=%3Cimg%20src=x%20onerror=alert(1)%3E",
            &[],
            "xss-event-handler",
        ),
        (
            "/go?url=javascript:alert(document.cookie)",
            &[],
            "xss-javascript-uri",
        ),
        ("/p?x=<iframe src=//evil>", &[], "xss-embedding-element"),
        ("/static/..%2f..%2fetc/config", &[], "traversal-dot-dot"),
        ("/download?file=../secret.txt", &[], "traversal-dot-dot"),
        (
            "/download?file=%2Fetc%2Fpasswd",
            &[],
            "traversal-sensitive-file",
        ),
        (
            "/",
            &[("user-agent", "<script>alert(1)</script>")],
            "xss-script-tag",
        ),
        (
            "/",
            &[("referer", "https://x/?q=1' or 'a'='a")],
            "sqli-tautology",
        ),
    ];
    for (uri, headers, expected) in cases {
        let verdict = waf
            .on_request_headers(&request(uri, headers, false), &mut ctx())
            .await;
        assert_eq!(
            rule_of(&verdict).as_deref(),
            Some(*expected),
            "{uri} {headers:?}"
        );
        assert!(verdict.audit().tags.len() == 1, "{verdict:?}");
    }
}

#[tokio::test]
async fn ordinary_traffic_passes() {
    let waf = waf();
    let cases: &[(&str, Headers<'_>)] = &[
        ("/", &[("host", "example.com"), ("accept", "*/*")]),
        (
            "/api/users?id=42&sort=name&order=desc",
            &[("cookie", "a=1; b=2")],
        ),
        ("/books?author=O%27Reilly&title=Learning+SQL", &[]),
        ("/search?q=union+station+opening+times+select+bus", &[]),
        ("/docs/v1.2/guide..html", &[]),
        ("/files/report.2024..final.pdf", &[]),
        (
            "/",
            &[(
                "authorization",
                "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig",
            )],
        ),
        (
            "/",
            &[(
                "user-agent",
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
            )],
        ),
    ];
    for (uri, headers) in cases {
        let verdict = waf
            .on_request_headers(&request(uri, headers, false), &mut ctx())
            .await;
        assert_eq!(rule_of(&verdict), None, "{uri} {headers:?}");
    }
}

#[tokio::test]
async fn bodies_are_checked_across_chunks_at_their_end() {
    let waf = waf();
    let mut context = ctx();
    let headers = request(
        "/comment",
        &[("content-type", "application/x-www-form-urlencoded")],
        true,
    );
    let first = waf.on_request_headers(&headers, &mut context).await;
    assert!(first.is_continue(), "{first:?}");
    // The attack is split over two chunks and percent-encoded.
    let middle = waf
        .on_request_body_chunk(&chunk(0, "text=hello%3Cscr", false), &mut context)
        .await;
    assert!(middle.is_continue());
    let last = waf
        .on_request_body_chunk(&chunk(1, "ipt%3E&x=1", true), &mut context)
        .await;
    assert_eq!(rule_of(&last).as_deref(), Some("xss-script-tag"));

    let mut context = ctx();
    let json_body =
        r##"{"color": "#fff", "path": "/*", "note": "it's fine -- really", "link": "../docs"}"##;
    waf.on_request_headers(&request("/save", &[], true), &mut context)
        .await;
    let verdict = waf
        .on_request_body_chunk(&chunk(0, json_body, true), &mut context)
        .await;
    assert_eq!(rule_of(&verdict), None, "benign JSON passes");
}

#[tokio::test]
async fn body_inspection_stops_at_the_limit() {
    let waf = Waf::new(WafSettings {
        max_body_bytes: 8,
        ..WafSettings::default()
    })
    .unwrap();
    let mut context = ctx();
    waf.on_request_headers(&request("/upload", &[], true), &mut context)
        .await;
    // The attack starts after the first 8 bytes: not inspected, and no further chunk is asked for.
    let verdict = waf
        .on_request_body_chunk(&chunk(0, "12345678<script>", false), &mut context)
        .await;
    assert!(verdict.is_allow(), "{verdict:?}");
}

#[tokio::test]
async fn pushed_config_replaces_rules_and_bad_config_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.json");
    std::fs::write(
        &file,
        r#"{"rules": [{"id": "file-1", "pattern": "from-file", "targets": ["path"]}]}"#,
    )
    .unwrap();
    let waf = Arc::new(waf());
    let defaults = waf.rules().rules().len();
    let probe = |uri: &'static str| {
        let waf = waf.clone();
        async move {
            rule_of(
                &waf.on_request_headers(&request(uri, &[], false), &mut ctx())
                    .await,
            )
        }
    };

    // Only the proxy's keys: start-up rules stay.
    waf.on_config(&json!({"rules_version": "3.4.0"}))
        .await
        .unwrap();
    assert_eq!(waf.rules().rules().len(), defaults);

    waf.on_config(&json!({"default_rules": false, "rules": [
        {"id": "cfg-1", "pattern": "(?i)forbidden", "targets": ["path"], "tags": ["custom"]}
    ]}))
    .await
    .unwrap();
    assert_eq!(probe("/Forbidden/area").await.as_deref(), Some("cfg-1"));
    assert_eq!(
        probe("/q?x=<script>").await,
        None,
        "defaults were switched off"
    );

    // One rule written once in the proxy's KDL `config` block arrives as an object, not a
    // list; its `targets` as a string.
    waf.on_config(&json!({"default_rules": false, "rules":
        {"id": "single-1", "pattern": "only-one", "targets": "path"}
    }))
    .await
    .unwrap();
    assert_eq!(probe("/only-one").await.as_deref(), Some("single-1"));

    waf.on_config(&json!({"rules_file": file})).await.unwrap();
    assert_eq!(probe("/from-file").await.as_deref(), Some("file-1"));
    assert_eq!(
        probe("/q?x=<script>").await.as_deref(),
        Some("xss-script-tag")
    );

    let broken = waf
        .on_config(&json!({"rules": [{"id": "x", "pattern": "(oops"}]}))
        .await;
    assert!(broken.unwrap_err().to_string().contains("invalid pattern"));
    assert_eq!(
        probe("/from-file").await.as_deref(),
        Some("file-1"),
        "previous rules kept"
    );

    waf.on_config(&serde_json::Value::Null).await.unwrap();
    assert_eq!(probe("/from-file").await, None);
    assert_eq!(waf.rules().rules().len(), defaults);
}

#[test]
fn the_agent_declares_body_inspection() {
    assert!(waf().events().contains(Events::REQUEST_BODY));
    let headers_only = Waf::new(WafSettings {
        inspect_body: false,
        source: RuleSource::default(),
        ..WafSettings::default()
    })
    .unwrap();
    assert!(!headers_only.events().contains(Events::REQUEST_BODY));
}
