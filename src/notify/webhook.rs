//! `type = "webhook"`: CloudEvents 1.0 structured JSON signed per Standard Webhooks, or a
//! Slack / Teams payload. 2xx accepted; 408, 429, 5xx and transport errors are temporary
//! (with `Retry-After` honoured); any other status is permanent. Redirects are not followed.

use super::{render, Alert, Digest, Peer, Receipt, Sink, SinkError, SinkFuture};
use crate::config::WebhookFormat;
use crate::domain::error_chain;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use std::time::{Duration, SystemTime};

/// The longest `Retry-After` honoured: a receiver cannot park alerts for days.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(3600);

/// CloudEvents `type` prefix: `io.accessdrift.finding.opened` and so on.
const TYPE_PREFIX: &str = "io.accessdrift.finding.";

/// An HTTP endpoint.
pub struct WebhookSink {
    name: String,
    client: reqwest::Client,
    url: String,
    /// What may appear in messages: the URL for a plain one, the reference for a secret one.
    shown: String,
    format: WebhookFormat,
    signer: Option<standardwebhooks::Webhook>,
    headers: HeaderMap,
    source: String,
    timeout: Duration,
    /// The endpoint as the `notify` span names it (path redacted where the URL is a secret).
    peer: Peer,
}

/// The pieces [`WebhookSink::new`] needs, all resolved (secrets read, CA parsed).
pub struct WebhookParts {
    /// `[[sinks]] name`.
    pub name: String,
    /// The URL (may itself be a secret).
    pub url: String,
    /// How to name the URL in messages.
    pub shown: String,
    /// The URL was given as a secret reference: its path is never shown, not even in spans.
    pub url_is_secret: bool,
    /// Body format.
    pub format: WebhookFormat,
    /// The `whsec_…` signing secret, for CloudEvents.
    pub secret: Option<String>,
    /// Extra static headers.
    pub headers: Vec<(String, String)>,
    /// CloudEvents `source`.
    pub source: String,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Extra trust root, PEM.
    pub ca_pem: Option<Vec<u8>>,
}

impl WebhookSink {
    /// Builds the client. Errors name the problem, never the URL of a secret URL or the key.
    pub fn new(p: WebhookParts) -> Result<WebhookSink, String> {
        let mut b = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .no_proxy()
            .timeout(p.timeout)
            .user_agent(concat!("accessdrift/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &p.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                format!(
                    "ca_file is not a PEM certificate bundle: {}",
                    e.without_url()
                )
            })?;
            if certs.is_empty() {
                return Err("ca_file holds no PEM certificate".to_string());
            }
            b = b.tls_certs_merge(certs);
        }
        let client = b
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {}", e.without_url()))?;
        let signer = match &p.secret {
            None => None,
            Some(s) if !s.starts_with("whsec_") => {
                return Err("secret must be a Standard Webhooks key: `whsec_` followed by base64".to_string())
            }
            Some(s) => Some(standardwebhooks::Webhook::new(s).map_err(|_| {
                "secret must be a Standard Webhooks key: `whsec_` followed by base64 (it does not decode)"
                    .to_string()
            })?),
        };
        let mut headers = HeaderMap::new();
        for (k, v) in &p.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| format!("headers: {k:?} is not a valid header name"))?;
            let value = HeaderValue::from_str(v)
                .map_err(|_| format!("headers: the value of {k:?} is not a valid header value"))?;
            headers.insert(name, value);
        }
        let Ok(parsed) = reqwest::Url::parse(&p.url) else {
            return Err(format!("url {} is not a valid URL", p.shown));
        };
        // Slack and Teams URLs are credentials whatever way they were written.
        let secret_path = p.url_is_secret || p.format != WebhookFormat::Cloudevents;
        let peer = Peer::Http {
            method: "POST",
            address: parsed.host_str().unwrap_or_default().to_string(),
            port: parsed.port_or_known_default().unwrap_or(0),
            url: span_url(&parsed, secret_path),
        };
        Ok(WebhookSink {
            name: p.name,
            client,
            url: p.url,
            shown: p.shown,
            format: p.format,
            signer,
            headers,
            source: p.source,
            timeout: p.timeout,
            peer,
        })
    }

    /// The CloudEvent of one alert.
    pub fn cloudevent(&self, a: &Alert) -> serde_json::Value {
        serde_json::json!({
            "specversion": "1.0",
            "id": a.idempotency_key,
            "source": self.source,
            "type": format!("{TYPE_PREFIX}{}", a.transition.as_str()),
            "subject": a.finding_id,
            "time": a.last_seen.to_string(),
            "datacontenttype": "application/json",
            "data": a,
        })
    }

    /// Body, content type and message id of a request for these alerts.
    fn body(&self, alerts: &[&Alert], digest: Option<&Digest>) -> (Vec<u8>, &'static str, String) {
        let id = digest.map_or_else(|| alerts[0].idempotency_key.clone(), |d| d.key.clone());
        let headline = digest.map_or_else(|| render::headline(alerts[0]), render::digest_headline);
        let (value, ctype) = match (self.format, digest) {
            (WebhookFormat::Cloudevents, None) => {
                (self.cloudevent(alerts[0]), "application/cloudevents+json")
            }
            // Batch mode: every alert stays its own event with its own id.
            (WebhookFormat::Cloudevents, Some(_)) => (
                serde_json::Value::Array(alerts.iter().map(|a| self.cloudevent(a)).collect()),
                "application/cloudevents-batch+json",
            ),
            (WebhookFormat::Slack, _) => (render::slack(alerts, &headline), "application/json"),
            (WebhookFormat::Teams, _) => (render::teams(alerts, &headline), "application/json"),
        };
        (serde_json::to_vec(&value).unwrap_or_default(), ctype, id)
    }

    async fn post(
        &self,
        body: Vec<u8>,
        ctype: &'static str,
        id: &str,
        traceparent: Option<String>,
    ) -> Result<Receipt, SinkError> {
        let mut req = self
            .client
            .post(&self.url)
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, ctype);
        // W3C trace context of the batch that opened the finding: the receiver (or the SRE)
        // can jump from the alert to the trace of the event that caused it.
        if let Some(tp) = traceparent {
            req = req.header("traceparent", tp);
        }
        if let Some(signer) = &self.signer {
            let ts = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            let sig = signer
                .sign(id, ts, &body)
                .map_err(|e| SinkError::Permanent(format!("cannot sign the body: {e}")))?;
            req = req
                .header("webhook-id", id)
                .header("webhook-timestamp", ts.to_string())
                .header("webhook-signature", sig);
        }
        // Runs inside the delivery's `notify` span: the status (or the failure) goes on it.
        let span = tracing::Span::current();
        let resp = req.body(body).send().await.map_err(|e| {
            // Without the URL: for Slack and Teams the URL is the credential.
            let (kind, error_type) = if e.is_timeout() {
                (
                    format!("no answer within {}s", self.timeout.as_secs()),
                    "timeout",
                )
            } else if e.is_connect() {
                ("cannot connect".to_string(), "connect_error")
            } else {
                ("request failed".to_string(), "request_error")
            };
            span.record("error.type", error_type);
            SinkError::Temporary(format!(
                "webhook {} ({}): {kind}: {}",
                self.name,
                self.shown,
                error_chain(&e.without_url())
            ))
        })?;
        let status = resp.status();
        span.record("http.response.status_code", status.as_u16());
        if !status.is_success() {
            // HTTP semantic conventions: the status code is the error type of an error response.
            span.record("error.type", status.as_str());
        }
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let text = resp.text().await.unwrap_or_default();
        let answer = format!("HTTP {status}{}", snippet(&text));
        if status.is_success() {
            return Ok(Receipt(answer));
        }
        let what = format!("webhook {} ({}) answered {answer}", self.name, self.shown);
        let code = status.as_u16();
        if code == 408 || code == 429 || status.is_server_error() {
            return Err(match retry_after {
                Some(after) => SinkError::RetryAfter {
                    reason: what,
                    after,
                },
                None => SinkError::Temporary(what),
            });
        }
        Err(SinkError::Permanent(what))
    }
}

/// `url.full` of a delivery span: no user info, query values replaced, and the path too when
/// the URL is a credential (Slack, Teams, or any URL given as a secret reference).
fn span_url(url: &reqwest::Url, secret_path: bool) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_fragment(None);
    if secret_path {
        u.set_path("/REDACTED");
        u.set_query(None);
    } else if u.query().is_some() {
        let keys: Vec<String> = u.query_pairs().map(|(k, _)| k.into_owned()).collect();
        u.query_pairs_mut()
            .clear()
            .extend_pairs(keys.iter().map(|k| (k.as_str(), "REDACTED")));
    }
    u.to_string()
}

/// The start of a response body, for messages (receivers explain 4xx there).
fn snippet(body: &str) -> String {
    let t = body.trim();
    if t.is_empty() {
        return String::new();
    }
    let short: String = t.chars().take(200).collect();
    format!(": {}", short.replace(['\n', '\r'], " "))
}

/// `Retry-After`: delay-seconds or an HTTP-date, capped at [`RETRY_AFTER_CAP`].
pub fn parse_retry_after(v: &str, now: SystemTime) -> Option<Duration> {
    let v = v.trim();
    let d = if let Ok(secs) = v.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = httpdate::parse_http_date(v).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(d.min(RETRY_AFTER_CAP))
}

impl Sink for WebhookSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver<'a>(&'a mut self, alert: &'a Alert) -> SinkFuture<'a> {
        Box::pin(async move {
            let (body, ctype, id) = self.body(&[alert], None);
            self.post(body, ctype, &id, alert.traceparent()).await
        })
    }

    fn deliver_digest<'a>(&'a mut self, digest: &'a Digest) -> SinkFuture<'a> {
        Box::pin(async move {
            let alerts: Vec<&Alert> = digest.alerts.iter().collect();
            let (body, ctype, id) = self.body(&alerts, Some(digest));
            let tp = digest.alerts.first().and_then(Alert::traceparent);
            self.post(body, ctype, &id, tp).await
        })
    }

    fn groups_bursts(&self) -> bool {
        // A SIEM wants one event per alert; people want one message per operation.
        self.format != WebhookFormat::Cloudevents
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn peer(&self) -> Peer {
        self.peer.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_urls_carry_no_credential() {
        for (url, secret, want) in [
            ("https://siem.example.com/ingest/accessdrift", false, "https://siem.example.com/ingest/accessdrift"),
            ("https://u:pw@siem.example.com/in?token=abc&x=1", false, "https://siem.example.com/in?token=REDACTED&x=REDACTED"),
            ("https://hooks.slack.com/services/T000/B000/XXXX", true, "https://hooks.slack.com/REDACTED"),
            ("https://prod.westeurope.logic.azure.com:443/workflows/abc/triggers/manual/paths/invoke?sig=s3cret", true, "https://prod.westeurope.logic.azure.com/REDACTED"),
            ("http://127.0.0.1:8080/hook#frag", false, "http://127.0.0.1:8080/hook"),
        ] {
            let got = span_url(&reqwest::Url::parse(url).unwrap(), secret);
            assert_eq!(got, want, "{url}");
        }
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date_and_is_capped() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2026 07:28:00 GMT").unwrap();
        let cases = [
            ("3", Some(3)),
            (" 120 ", Some(120)),
            ("Wed, 21 Oct 2026 07:28:30 GMT", Some(30)),
            ("Wed, 21 Oct 2026 07:00:00 GMT", Some(0)),
            ("999999", Some(3600)),
            ("soon", None),
            ("-1", None),
        ];
        for (v, want) in cases {
            assert_eq!(parse_retry_after(v, now).map(|d| d.as_secs()), want, "{v}");
        }
    }
}
