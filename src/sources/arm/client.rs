//! Azure Resource Manager over REST: a bearer token from `azure_identity`, one GET with
//! bounded retries (429 and 503 `Retry-After`, 5xx, connection failures, exponential backoff
//! with jitter), pacing when `x-ms-ratelimit-remaining-subscription-reads` runs low, and
//! `nextLink` paging. The token never leaves this file: not in logs, errors or spans.

use super::ArmError;
use azure_core::credentials::TokenCredential;
use reqwest::header::{HeaderMap, AUTHORIZATION, RETRY_AFTER};
use reqwest::StatusCode;
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Pages followed in one listing before it is declared broken (a `nextLink` loop).
const MAX_PAGES: usize = 100_000;
/// Longest wait between attempts, `Retry-After` included: a longer ask fails the part.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(120);
/// Below this many remaining reads, requests are spaced out (ARM's bucket refills ~ 20/s).
const READS_LOW: u64 = 250;

/// Retry policy and limits of a client.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Attempts per request, first included.
    pub max_attempts: u32,
    /// First backoff; doubles per attempt, with jitter.
    pub initial_backoff: Duration,
    /// Per-request timeout.
    pub request_timeout: Duration,
}

/// Who the client authenticates as, for messages (never a secret).
#[derive(Debug, Clone)]
pub struct IdentityLabel(pub String);

/// An ARM client bound to one endpoint and one credential.
#[derive(Clone)]
pub struct ArmClient {
    http: reqwest::Client,
    base: reqwest::Url,
    credential: Arc<dyn TokenCredential>,
    scope: &'static str,
    identity: IdentityLabel,
    limits: Limits,
    /// Milliseconds to wait before each request while ARM says reads are running low.
    pace_ms: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
}

impl std::fmt::Debug for ArmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArmClient")
            .field("base", &self.base.as_str())
            .field("identity", &self.identity.0)
            .finish_non_exhaustive()
    }
}

/// One page of a list.
#[derive(Debug)]
pub struct Page {
    /// `value[]` of the page.
    pub items: Vec<Value>,
    /// `nextLink`, when there is a next page.
    pub next: Option<String>,
}

impl ArmClient {
    /// A client for `base` (`https://management.azure.com`, or a loopback test server).
    pub fn new(
        base: &str,
        credential: Arc<dyn TokenCredential>,
        scope: &'static str,
        identity: IdentityLabel,
        limits: Limits,
    ) -> Result<ArmClient, ArmError> {
        let base = reqwest::Url::parse(base).map_err(|e| ArmError::Endpoint {
            endpoint: base.to_string(),
            problem: e.to_string(),
        })?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .timeout(limits.request_timeout)
            .connect_timeout(limits.request_timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("accessdrift/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ArmError::Endpoint {
                endpoint: base.to_string(),
                problem: crate::domain::error_chain(&e),
            })?;
        Ok(ArmClient {
            http,
            base,
            credential,
            scope,
            identity,
            limits,
            pace_ms: Arc::default(),
            requests: Arc::default(),
        })
    }

    /// The URL of an ARM path (`/subscriptions/…?api-version=…`) on this endpoint.
    pub fn url(&self, path_and_query: &str) -> String {
        format!(
            "{}{}",
            self.base.as_str().trim_end_matches('/'),
            path_and_query
        )
    }

    /// The endpoint, for messages.
    pub fn endpoint(&self) -> &str {
        self.base.as_str()
    }

    /// Requests sent so far (every attempt counts).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// GETs `url` as JSON, retrying what ARM says is worth retrying. `part` labels metrics.
    pub async fn get(
        &self,
        url: &str,
        part: &str,
        cancel: &CancellationToken,
    ) -> Result<Value, ArmError> {
        self.check_origin(url)?;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let pace = Duration::from_millis(self.pace_ms.load(Ordering::Relaxed));
            if !pace.is_zero() {
                sleep(pace, cancel).await?;
            }
            let outcome = self.once(url, cancel).await;
            let (reason, wait) = match outcome {
                Ok(Reply::Json(v)) => {
                    crate::metrics::global().arm_request(part, "ok");
                    return Ok(v);
                }
                Ok(Reply::Status {
                    status,
                    headers,
                    body,
                    claims,
                }) => match self.classify(url, status, &headers, &body, claims) {
                    Retry::No(e) => {
                        crate::metrics::global().arm_request(part, e.outcome());
                        return Err(e);
                    }
                    Retry::After(reason, wait) => (reason, wait.or(Some(self.backoff(attempt)))),
                },
                Err(Attempt::Fatal(e)) => {
                    crate::metrics::global().arm_request(part, e.outcome());
                    return Err(e);
                }
                Err(Attempt::Transport(e)) => {
                    if attempt >= self.limits.max_attempts {
                        crate::metrics::global().arm_request(part, "failed");
                        return Err(ArmError::Transport {
                            url: url.to_string(),
                            attempts: attempt,
                            source: e,
                        });
                    }
                    ("transport", Some(self.backoff(attempt)))
                }
            };
            let wait = wait.unwrap_or_default();
            if attempt >= self.limits.max_attempts || wait > MAX_RETRY_WAIT {
                crate::metrics::global().arm_request(part, "failed");
                return Err(ArmError::GaveUp {
                    url: url.to_string(),
                    attempts: attempt,
                    reason,
                    retry_after: wait,
                });
            }
            crate::metrics::global().arm_request(part, "retried");
            crate::metrics::global().arm_retry(reason);
            tracing::warn!(
                url,
                attempt,
                reason,
                wait_ms = wait.as_millis() as u64,
                "ARM request will be retried"
            );
            sleep(wait, cancel).await?;
        }
    }

    /// GETs one page of a list.
    pub async fn page(
        &self,
        url: &str,
        part: &str,
        cancel: &CancellationToken,
    ) -> Result<Page, ArmError> {
        let v = self.get(url, part, cancel).await?;
        let items = match v.get("value") {
            Some(Value::Array(a)) => a.clone(),
            None | Some(Value::Null) => Vec::new(),
            Some(_) => {
                return Err(ArmError::Shape {
                    url: url.to_string(),
                    problem: "`value` is not an array".into(),
                })
            }
        };
        let next = v
            .get("nextLink")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        Ok(Page { items, next })
    }

    /// Every item of a list, following `nextLink` to the end. `on_page` sees each page's
    /// items as they arrive (the caller maps them without holding every page).
    pub async fn list(
        &self,
        url: &str,
        part: &str,
        cancel: &CancellationToken,
        mut on_page: impl FnMut(Vec<Value>),
    ) -> Result<usize, ArmError> {
        let mut next = Some(url.to_string());
        let mut pages = 0usize;
        let mut seen = std::collections::HashSet::new();
        while let Some(u) = next.take() {
            pages += 1;
            if pages > MAX_PAGES || !seen.insert(u.clone()) {
                return Err(ArmError::Shape {
                    url: u,
                    problem: format!("nextLink loops or exceeds {MAX_PAGES} pages"),
                });
            }
            let page = self
                .page(&u, part, cancel)
                .await
                .map_err(|e| e.at_page(pages))?;
            on_page(page.items);
            next = page.next;
        }
        Ok(pages)
    }

    /// The bearer token goes only to the configured endpoint: a `nextLink` elsewhere is refused.
    fn check_origin(&self, url: &str) -> Result<(), ArmError> {
        let u = reqwest::Url::parse(url).map_err(|e| ArmError::Shape {
            url: url.to_string(),
            problem: format!("not a URL: {e}"),
        })?;
        if u.origin() != self.base.origin() {
            return Err(ArmError::Shape {
                url: url.to_string(),
                problem: format!(
                    "points outside the ARM endpoint {} (the token is sent only there)",
                    self.base.as_str()
                ),
            });
        }
        Ok(())
    }

    async fn once(&self, url: &str, cancel: &CancellationToken) -> Result<Reply, Attempt> {
        let scopes = [self.scope];
        let token = tokio::select! {
            t = self.credential.get_token(&scopes, None) => t,
            _ = cancel.cancelled() => return Err(Attempt::Fatal(ArmError::Cancelled)),
        }
        .map_err(|e| {
            Attempt::Fatal(ArmError::Token {
                identity: self.identity.0.clone(),
                scope: self.scope,
                source: Box::new(e),
            })
        })?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let send = self
            .http
            .get(url)
            .header(AUTHORIZATION, format!("Bearer {}", token.token.secret()))
            .header("accept", "application/json")
            .send();
        let resp = tokio::select! {
            r = send => r,
            _ = cancel.cancelled() => return Err(Attempt::Fatal(ArmError::Cancelled)),
        }
        .map_err(|e| Attempt::Transport(e.without_url()))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        self.pace(&headers);
        let body = tokio::select! {
            b = resp.bytes() => b,
            _ = cancel.cancelled() => return Err(Attempt::Fatal(ArmError::Cancelled)),
        }
        .map_err(|e| Attempt::Transport(e.without_url()))?;
        tracing::debug!(
            url,
            status = status.as_u16(),
            took_ms = started.elapsed().as_millis() as u64,
            "ARM GET"
        );
        if status.is_success() {
            let v = serde_json::from_slice(&body).map_err(|e| {
                Attempt::Fatal(ArmError::Shape {
                    url: url.to_string(),
                    problem: format!("response is not JSON: {e}"),
                })
            })?;
            return Ok(Reply::Json(v));
        }
        Ok(Reply::Status {
            status,
            headers,
            body: String::from_utf8_lossy(&body[..body.len().min(4096)]).into_owned(),
            claims: (status == StatusCode::UNAUTHORIZED)
                .then(|| token_claims(token.token.secret()))
                .flatten(),
        })
    }

    fn classify(
        &self,
        url: &str,
        status: StatusCode,
        headers: &HeaderMap,
        body: &str,
        claims: Option<String>,
    ) -> Retry {
        let (code, message) = error_body(body);
        match status.as_u16() {
            401 => Retry::No(ArmError::Unauthorized {
                endpoint: self.base.to_string(),
                identity: match claims {
                    Some(c) => format!("{} ({c})", self.identity.0),
                    None => self.identity.0.clone(),
                },
                message,
            }),
            403 => {
                let (action, scope) = authorization_failed(&message);
                Retry::No(ArmError::Forbidden {
                    url: url.to_string(),
                    identity: self.identity.0.clone(),
                    code,
                    action,
                    scope,
                })
            }
            404 => Retry::No(ArmError::NotFound {
                url: url.to_string(),
            }),
            429 => Retry::After("throttled", retry_after(headers)),
            408 | 500..=599 => Retry::After("server_error", retry_after(headers)),
            s => Retry::No(ArmError::Status {
                url: url.to_string(),
                status: s,
                code,
                message,
            }),
        }
    }

    /// Exponential backoff with full jitter: 1x, 2x, 4x … the initial backoff, capped.
    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .limits
            .initial_backoff
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(10))
            .min(Duration::from_secs(30));
        let mut b = [0u8; 4];
        let _ = getrandom::fill(&mut b);
        let jitter = f64::from(u32::from_le_bytes(b)) / f64::from(u32::MAX);
        exp.mul_f64(0.5 + jitter / 2.0)
    }

    fn pace(&self, headers: &HeaderMap) {
        let remaining = headers
            .get("x-ms-ratelimit-remaining-subscription-reads")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let Some(r) = remaining else { return };
        // Spread what is left over the refill: the fewer left, the longer the gap.
        let ms = if r >= READS_LOW {
            0
        } else {
            (READS_LOW - r) * 4
        };
        let before = self.pace_ms.swap(ms, Ordering::Relaxed);
        if ms > 0 && before == 0 {
            tracing::warn!(
                remaining_reads = r,
                gap_ms = ms,
                "ARM read quota running low: slowing down"
            );
        }
    }
}

enum Reply {
    Json(Value),
    Status {
        status: StatusCode,
        headers: HeaderMap,
        body: String,
        /// Who the refused token was issued to (401 only).
        claims: Option<String>,
    },
}

enum Attempt {
    Fatal(ArmError),
    Transport(reqwest::Error),
}

enum Retry {
    No(ArmError),
    After(&'static str, Option<Duration>),
}

async fn sleep(d: Duration, cancel: &CancellationToken) -> Result<(), ArmError> {
    tokio::select! {
        _ = tokio::time::sleep(d) => Ok(()),
        _ = cancel.cancelled() => Err(ArmError::Cancelled),
    }
}

/// `Retry-After` as seconds or as an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// `{"error": {"code", "message"}}`, ARM's error shape; otherwise the text itself.
fn error_body(body: &str) -> (Option<String>, String) {
    match serde_json::from_str::<Value>(body) {
        Ok(v) => {
            let e = v.get("error").unwrap_or(&v);
            (
                e.get("code").and_then(Value::as_str).map(str::to_string),
                e.get("message")
                    .and_then(Value::as_str)
                    .unwrap_or(body)
                    .to_string(),
            )
        }
        Err(_) => (None, body.trim().to_string()),
    }
}

/// The action and scope an `AuthorizationFailed` message names: "… does not have
/// authorization to perform action 'A' over scope 'S' …".
fn authorization_failed(message: &str) -> (Option<String>, Option<String>) {
    let quoted = |after: &str| {
        let i = message.find(after)? + after.len();
        let rest = message[i..].trim_start().strip_prefix('\'')?;
        Some(rest[..rest.find('\'')?].to_string())
    };
    (quoted("perform action"), quoted("over scope"))
}

/// The identity a token was issued to (`oid`, `appid`, `tid` claims), for a 401 message.
/// Only the claims are read, never the signature, and the token itself is never kept.
pub fn token_claims(token: &str) -> Option<String> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    let claim = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let parts: Vec<String> = [
        ("object id", "oid"),
        ("client id", "appid"),
        ("tenant", "tid"),
    ]
    .into_iter()
    .filter_map(|(label, k)| claim(k).map(|c| format!("{label} {c}")))
    .collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorization_failed_names_action_and_scope() {
        let m = "The client 'x' with object id 'y' does not have authorization to perform action 'Microsoft.Authorization/roleDefinitions/read' over scope '/subscriptions/s' or the scope is invalid.";
        let (a, s) = authorization_failed(m);
        assert_eq!(
            a.as_deref(),
            Some("Microsoft.Authorization/roleDefinitions/read")
        );
        assert_eq!(s.as_deref(), Some("/subscriptions/s"));
        assert_eq!(authorization_failed("nope"), (None, None));
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        let later = std::time::SystemTime::now() + Duration::from_secs(30);
        h.insert(RETRY_AFTER, httpdate::fmt_http_date(later).parse().unwrap());
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(25) && d <= Duration::from_secs(30),
            "{d:?}"
        );
        h.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn token_claims_name_the_identity_not_the_token() {
        use base64::Engine as _;
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"oid":"o-1","appid":"a-2","tid":"t-3"}"#);
        let token = format!("eyJhbGciOiJub25lIn0.{claims}.sig");
        let s = token_claims(&token).unwrap();
        assert_eq!(s, "object id o-1, client id a-2, tenant t-3");
        assert!(token_claims("opaque").is_none());
    }
}
