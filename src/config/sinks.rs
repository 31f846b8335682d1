//! `[[sinks]]`: where alerts go (SMTP relays, webhooks) and which alerts each one gets.

use super::Secret;
use crate::domain::Severity;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// One `[[sinks]]` entry. One flat table per sink: keys that do not belong to its `type` are
/// refused by name in validation, which reads better than serde's untagged-enum errors.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Unique name; outbox rows are queued per name.
    pub name: String,
    /// `smtp` or `webhook`.
    #[serde(rename = "type")]
    pub kind: SinkType,

    // Routing.
    /// Only alerts at or above this severity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_severity: Option<Severity>,
    /// Only these finding kinds (`drift`, `policy`, `activity`); empty: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kinds: Vec<String>,
    /// Only these rule ids; an entry ending in `.` or `*` is a prefix. Empty: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
    /// Only alerts concerning these clusters (`[[clusters]]` names); empty: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<String>,
    /// Send resolve notices too.
    #[serde(default = "yes")]
    pub resolved: bool,

    // Both types.
    /// Give up on one attempt after this long.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// Extra trust root (PEM) for private relays and receivers; system roots stay trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,

    // SMTP.
    /// Relay host name (also the name its certificate must carry).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Relay port; default 587 (`starttls`), 465 (`tls`), 25 (`none`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `starttls` (default, required, never opportunistic), `tls` (implicit) or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsMode>,
    /// AUTH user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// AUTH password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// Sender address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Recipients.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,

    // Webhook.
    /// `cloudevents` (default), `slack` or `teams`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<WebhookFormat>,
    /// Receiver URL: a plain string, or a secret reference (required for Slack and Teams,
    /// whose URL is the credential).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<UrlValue>,
    /// Standard Webhooks signing key (`whsec_…`), for `cloudevents`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<Secret>,
    /// Extra static request headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// CloudEvents `source` attribute; default `accessdrift`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

fn yes() -> bool {
    true
}

/// Sink types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkType {
    /// Email through an SMTP relay.
    Smtp,
    /// HTTP POST.
    Webhook,
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain connection upgraded with STARTTLS; a relay that does not offer it is an error.
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
    /// No encryption: only for a relay on localhost or a trusted segment.
    None,
}

/// Webhook body formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// CloudEvents 1.0 structured JSON, Standard Webhooks signature.
    Cloudevents,
    /// Slack incoming webhook with blocks.
    Slack,
    /// Microsoft Teams Workflows webhook carrying an Adaptive Card.
    Teams,
}

/// A URL written in the config, or a reference to one kept secret.
#[derive(Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum UrlValue {
    /// Written in the config (fine for a SIEM endpoint that checks signatures).
    Plain(String),
    /// In the environment or a file.
    Secret(Secret),
}

impl std::fmt::Debug for UrlValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UrlValue::Plain(u) => write!(f, "{u:?}"),
            UrlValue::Secret(s) => write!(f, "{s:?}"),
        }
    }
}

impl<'de> Deserialize<'de> for UrlValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = UrlValue;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a URL string or { env = \"NAME\" } / { file = \"/path\" }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<UrlValue, E> {
                Ok(UrlValue::Plain(v.to_string()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<UrlValue, A::Error> {
                Secret::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(UrlValue::Secret)
            }
        }
        d.deserialize_any(V)
    }
}

impl UrlValue {
    /// The URL now (reads the secret). Never log the result of a secret URL.
    pub fn expose(&self) -> Result<String, super::SecretError> {
        match self {
            UrlValue::Plain(u) => Ok(u.clone()),
            UrlValue::Secret(s) => s.expose(),
        }
    }

    /// What may be shown in messages: the plain URL without user info, query or fragment
    /// (tokens live there), or the reference.
    pub fn shown(&self) -> String {
        match self {
            UrlValue::Plain(u) => match reqwest::Url::parse(u) {
                Ok(mut url) => {
                    let _ = url.set_username("");
                    let _ = url.set_password(None);
                    url.set_query(None);
                    url.set_fragment(None);
                    url.to_string()
                }
                Err(_) => "(invalid URL)".to_string(),
            },
            UrlValue::Secret(s) => s.to_string(),
        }
    }
}

/// Finding kinds a route may name.
const KINDS: [&str; 3] = ["drift", "policy", "activity"];

impl SinkConfig {
    /// Checks one entry; `Err((key suffix, problem))`, the caller prefixes `sinks[i]`.
    pub(super) fn check(&self, clusters: &[String]) -> Result<(), (String, String)> {
        let bad = |k: &str, p: String| Err((k.to_string(), p));
        if self.name.trim().is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return bad(
                "name",
                "must be a non-empty name of letters, digits, '-', '_' or '.'".into(),
            );
        }
        if self.name == "stdout" {
            return bad("name", "`stdout` is reserved for the built-in terminal sink (used when no [[sinks]] are configured)".into());
        }
        for k in &self.kinds {
            if !KINDS.contains(&k.as_str()) {
                return bad(
                    "kinds",
                    format!("unknown finding kind {k:?}: use drift, policy or activity"),
                );
            }
        }
        for c in &self.clusters {
            if !clusters.contains(c) {
                return bad(
                    "clusters",
                    format!("{c:?} is not the name of a [[clusters]] entry"),
                );
            }
        }
        if self.rules.iter().any(|r| r.trim().is_empty()) {
            return bad("rules", "entries must not be empty".into());
        }
        if self.timeout.is_some_and(|t| t.is_zero()) {
            return bad("timeout", "must be more than 0s".into());
        }
        let smtp_keys = [
            ("host", self.host.is_some()),
            ("port", self.port.is_some()),
            ("tls", self.tls.is_some()),
            ("username", self.username.is_some()),
            ("password", self.password.is_some()),
            ("from", self.from.is_some()),
            ("to", !self.to.is_empty()),
        ];
        let webhook_keys = [
            ("format", self.format.is_some()),
            ("url", self.url.is_some()),
            ("secret", self.secret.is_some()),
            ("headers", !self.headers.is_empty()),
            ("source", self.source.is_some()),
        ];
        let (foreign, kind): (&[(&str, bool)], &str) = match self.kind {
            SinkType::Smtp => (&webhook_keys, "smtp"),
            SinkType::Webhook => (&smtp_keys, "webhook"),
        };
        if let Some((k, _)) = foreign.iter().find(|(_, set)| *set) {
            return bad(k, format!("is not a key of type = \"{kind}\" sinks"));
        }
        match self.kind {
            SinkType::Smtp => self.check_smtp(),
            SinkType::Webhook => self.check_webhook(),
        }
    }

    fn check_smtp(&self) -> Result<(), (String, String)> {
        let bad = |k: &str, p: &str| Err((k.to_string(), p.to_string()));
        match &self.host {
            Some(h) if !h.trim().is_empty() => {}
            _ => return bad("host", "is required: the SMTP relay's host name"),
        }
        let Some(from) = &self.from else {
            return bad(
                "from",
                "is required: the sender address, e.g. \"accessdrift@example.com\"",
            );
        };
        if from.parse::<lettre::message::Mailbox>().is_err() {
            return bad(
                "from",
                "is not an email address like \"Access Drift <accessdrift@example.com>\"",
            );
        }
        if self.to.is_empty() {
            return bad("to", "is required: a list of recipient addresses");
        }
        for t in &self.to {
            if t.parse::<lettre::message::Mailbox>().is_err() {
                return Err(("to".to_string(), format!("{t:?} is not an email address")));
            }
        }
        if self.password.is_some() && self.username.is_none() {
            return bad("username", "is required when password is set");
        }
        if self.username.is_some() && self.password.is_none() {
            return bad(
                "password",
                "is required when username is set: { env = \"NAME\" } or { file = \"/path\" }",
            );
        }
        if self.username.is_some() && self.tls == Some(TlsMode::None) {
            return bad("tls", "\"none\" would send the password in clear text: use \"starttls\" or \"tls\", or drop username/password");
        }
        Ok(())
    }

    fn check_webhook(&self) -> Result<(), (String, String)> {
        let bad = |k: &str, p: &str| Err((k.to_string(), p.to_string()));
        let format = self.format.unwrap_or(WebhookFormat::Cloudevents);
        match (&self.url, format) {
            (None, _) => return bad("url", "is required"),
            (Some(UrlValue::Plain(_)), WebhookFormat::Slack | WebhookFormat::Teams) => {
                return bad("url", "a Slack or Teams webhook URL is the credential itself: write url = { env = \"NAME\" } or { file = \"/path\" } (the URL is not repeated here)")
            }
            (Some(UrlValue::Plain(u)), _) => {
                let scheme_ok = u.starts_with("https://") || u.starts_with("http://");
                if !scheme_ok || reqwest::Url::parse(u).is_err() {
                    return bad("url", "must be an http:// or https:// URL");
                }
            }
            (Some(UrlValue::Secret(_)), _) => {}
        }
        if self.secret.is_some() && format != WebhookFormat::Cloudevents {
            return bad("secret", "signs CloudEvents only; Slack and Teams webhooks are unsigned (their URL is the secret)");
        }
        for (k, v) in &self.headers {
            if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err()
                || reqwest::header::HeaderValue::from_str(v).is_err()
            {
                return Err((
                    "headers".to_string(),
                    format!("{k:?} is not a valid HTTP header name and value"),
                ));
            }
            let lower = k.to_ascii_lowercase();
            if lower.starts_with("webhook-") || lower == "content-type" || lower == "content-length"
            {
                return Err((
                    "headers".to_string(),
                    format!("{k:?} is set by accessdrift itself"),
                ));
            }
        }
        Ok(())
    }

    /// The attempt timeout in effect.
    pub fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(Duration::from_secs(10))
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use std::path::Path;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("t.toml")).map_err(|e| e.to_string())
    }

    const SMTP: &str = "[[sinks]]\nname = \"mail\"\ntype = \"smtp\"\nhost = \"relay\"\nfrom = \"a@example.com\"\nto = [\"b@example.com\"]\n";
    const HOOK: &str =
        "[[sinks]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"https://siem.example.com/x\"\n";

    #[test]
    fn bad_sinks_are_named_by_key() {
        let cases = [
            (
                format!("{SMTP}url = \"https://x\"\n"),
                "sinks[0].url",
                "not a key of type = \"smtp\"",
            ),
            (
                format!("{HOOK}host = \"relay\"\n"),
                "sinks[0].host",
                "not a key of type = \"webhook\"",
            ),
            (
                SMTP.replace("host = \"relay\"\n", ""),
                "sinks[0].host",
                "required",
            ),
            (
                SMTP.replace("a@example.com", "not an address"),
                "sinks[0].from",
                "email address",
            ),
            (
                format!("{SMTP}username = \"u\"\n"),
                "sinks[0].password",
                "required when username",
            ),
            (
                format!("{SMTP}username = \"u\"\npassword = {{ env = \"P\" }}\ntls = \"none\"\n"),
                "sinks[0].tls",
                "clear text",
            ),
            (
                HOOK.replace("https://siem.example.com/x", "ftp://x"),
                "sinks[0].url",
                "http:// or https://",
            ),
            (
                format!("{HOOK}format = \"teams\"\nsecret = {{ env = \"S\" }}\n"),
                "sinks[0].url",
                "credential itself",
            ),
            (
                format!("{HOOK}headers = {{ \"webhook-id\" = \"x\" }}\n"),
                "sinks[0].headers",
                "set by accessdrift",
            ),
            (
                format!("{HOOK}kinds = [\"drfit\"]\n"),
                "sinks[0].kinds",
                "unknown finding kind",
            ),
            (
                format!("{HOOK}clusters = [\"nope\"]\n"),
                "sinks[0].clusters",
                "[[clusters]]",
            ),
            (
                format!("{HOOK}name = \"stdout\"\n").replacen("name = \"hook\"\n", "", 1),
                "sinks[0].name",
                "reserved",
            ),
            (format!("{HOOK}{HOOK}"), "sinks[1].name", "unique"),
            (
                format!("{HOOK}timeout = \"0s\"\n"),
                "sinks[0].timeout",
                "more than 0s",
            ),
            (
                "[notify]\nmax_per_minute = 1\n".to_string(),
                "notify.max_per_minute",
                "at least 2",
            ),
        ];
        for (text, key, problem) in cases {
            let err = parse(&text).expect_err(&text);
            assert!(
                err.contains(key) && err.contains(problem),
                "{text}\n=> {err}"
            );
        }
        let err = parse(&format!("{HOOK}secret = \"whsec_plainvalue\"\n")).unwrap_err();
        assert!(!err.contains("plainvalue"), "{err}");
    }

    #[test]
    fn plain_urls_are_shown_without_credentials_or_tokens() {
        use super::UrlValue;
        for (url, shown) in [
            (
                "https://u:pw@siem.example.com/in?token=abc#x",
                "https://siem.example.com/in",
            ),
            ("http://127.0.0.1:8080/hook", "http://127.0.0.1:8080/hook"),
            ("not a url", "(invalid URL)"),
        ] {
            assert_eq!(UrlValue::Plain(url.into()).shown(), shown);
        }
    }

    #[test]
    fn sinks_round_trip_through_check_config_without_secret_values() {
        let text = format!(
            "{SMTP}username = \"u\"\npassword = {{ env = \"ACCESSDRIFT_TEST_PW_7E\" }}\nmin_severity = \"high\"\nrules = [\"aks.\"]\nresolved = false\ntimeout = \"5s\"\n\
             [[sinks]]\nname = \"slack\"\ntype = \"webhook\"\nformat = \"slack\"\nurl = {{ file = \"/run/secrets/slack\" }}\n"
        );
        std::env::set_var("ACCESSDRIFT_TEST_PW_7E", "hunter2-value");
        let cfg = parse(&text).unwrap();
        let shown = cfg.to_toml().unwrap();
        assert!(!shown.contains("hunter2-value"), "{shown}");
        assert!(
            shown.contains("ACCESSDRIFT_TEST_PW_7E") && shown.contains("/run/secrets/slack"),
            "{shown}"
        );
        assert_eq!(parse(&shown).unwrap(), cfg);
        assert!(!format!("{cfg:?}").contains("hunter2-value"));
        std::env::remove_var("ACCESSDRIFT_TEST_PW_7E");
    }
}
