//! A client for the proxy's admin API: one plain HTTP/1.1 GET per call on a fresh loopback
//! connection, bounded by a timeout (the harness asks while the proxy is being killed and
//! restarted, so no pooled connection may outlive a proxy). Also the Prometheus text helper.
//! What the answers mean for a scenario is decided by [`crate::proxy`].

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::error::FaultError;

/// `GET path` on `address`; the status and the whole body, or an error after `limit`.
pub async fn get(
    address: SocketAddr,
    path: &str,
    limit: Duration,
) -> Result<(StatusCode, Bytes), FaultError> {
    get_with_headers(address, path, &[], limit)
        .await
        .map(|(status, _, body)| (status, body))
}

/// `GET path` with `headers` on `address`; the status, response headers and whole body, or
/// an error after `limit`.
pub async fn get_with_headers(
    address: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    limit: Duration,
) -> Result<(StatusCode, http::HeaderMap, Bytes), FaultError> {
    let what = format!("GET http://{address}{path}");
    let exchange = async {
        let stream = TcpStream::connect(address)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        let driver = tokio::spawn(connection);
        let mut request = Request::get(path).header("host", address.to_string());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        driver.abort();
        Ok::<_, String>((parts.status, parts.headers, body))
    };
    match tokio::time::timeout(limit, exchange).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(detail)) => Err(FaultError::Http { what, detail }),
        Err(_) => Err(FaultError::Http {
            what,
            detail: format!("no answer within {limit:?}"),
        }),
    }
}

/// The sum of every sample of `metric` whose labels include all of `labels`, from a
/// Prometheus text page (0 when there is none).
pub fn metric_sum(page: &str, metric: &str, labels: &[(&str, &str)]) -> f64 {
    page.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (name, rest) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let wanted = name == metric
                && labels
                    .iter()
                    .all(|(k, v)| rest.split(',').any(|l| l == format!("{k}=\"{v}\"")));
            wanted.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

/// Every `(label value, sum)` of `metric` grouped by the value of `label`, sorted by value.
pub fn metric_by_label(page: &str, metric: &str, label: &str) -> Vec<(String, f64)> {
    let mut sums: std::collections::BTreeMap<String, f64> = Default::default();
    for line in page.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Some((name, rest)) = series.split_once('{') else {
            continue;
        };
        if name != metric {
            continue;
        }
        let prefix = format!("{label}=\"");
        let Some(found) = rest
            .trim_end_matches('}')
            .split(',')
            .find_map(|l| l.strip_prefix(prefix.as_str()))
        else {
            continue;
        };
        if let Ok(value) = value.parse::<f64>() {
            *sums
                .entry(found.trim_end_matches('"').to_string())
                .or_default() += value;
        }
    }
    sums.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "# HELP x\n\
        sentinel_agent_failures_total{agent=\"waf\",reason=\"timeout\"} 3\n\
        sentinel_agent_failures_total{agent=\"waf\",reason=\"no_connection\"} 2\n\
        sentinel_agent_failures_total{agent=\"raw\",reason=\"timeout\"} 1\n";

    #[test]
    fn sums_and_groups_samples() {
        let failures = "sentinel_agent_failures_total";
        assert_eq!(metric_sum(PAGE, failures, &[("agent", "waf")]), 5.0);
        assert_eq!(metric_sum(PAGE, failures, &[("reason", "timeout")]), 4.0);
        assert_eq!(metric_sum(PAGE, "other", &[]), 0.0);
        assert_eq!(
            metric_by_label(PAGE, failures, "reason"),
            vec![
                ("no_connection".to_string(), 2.0),
                ("timeout".to_string(), 4.0)
            ]
        );
    }
}
