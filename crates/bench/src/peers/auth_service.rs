//! The bench's auth service for nginx `auth_request`: a keep-alive HTTP/1.1 server on a Unix
//! socket that answers 204 when the request's `Authorization: Bearer` token matches and 401
//! otherwise ([`super::check::BearerCheck`], the auth agent's decision). nginx sends it the
//! original request's headers without the body. Bench-only: never shipped.

use std::path::Path;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::check::BearerCheck;

/// `peers auth-service`: serves on the Unix socket `path` until killed.
pub fn run(path: &Path, bearer: BearerCheck) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::UnixListener::bind(path)
            .with_context(|| format!("binding the auth service socket {}", path.display()))?;
        loop {
            let (stream, _) = listener.accept().await?;
            let bearer = bearer.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let status = decide(&bearer, &request);
                    async move { Ok::<_, hyper::Error>(empty(status)) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

/// 204 for a matching bearer token, 401 for anything else.
pub fn decide<B>(bearer: &BearerCheck, request: &Request<B>) -> StatusCode {
    let allowed = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .is_some_and(|value| bearer.allows(value.as_bytes()));
    if allowed {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::UNAUTHORIZED
    }
}

fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(authorization: Option<&str>) -> Request<()> {
        let mut builder = Request::builder().uri("/check");
        if let Some(value) = authorization {
            builder = builder.header("authorization", value);
        }
        builder.body(()).expect("valid request")
    }

    #[test]
    fn answers_204_only_for_the_token() {
        let bearer = BearerCheck::new("t0ken");
        assert_eq!(
            decide(&bearer, &request(Some("Bearer t0ken"))),
            StatusCode::NO_CONTENT
        );
        assert_eq!(
            decide(&bearer, &request(Some("Bearer other"))),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(decide(&bearer, &request(None)), StatusCode::UNAUTHORIZED);
    }
}
