//! Turns a `[[sinks]]` entry into a sink: reads its secrets and CA file now, so a bad
//! reference fails at start-up naming the sink and key, not on the first alert.

use super::smtp::{SmtpParts, SmtpSink};
use super::webhook::{WebhookParts, WebhookSink};
use super::{NotifyError, Sink};
use crate::config::{SinkConfig, SinkType, TlsMode, WebhookFormat};

/// The sink for one `[[sinks]]` entry.
pub fn build_sink(cfg: &SinkConfig) -> Result<Box<dyn Sink>, NotifyError> {
    let err = |problem: String| NotifyError::Sink {
        sink: cfg.name.clone(),
        problem,
    };
    let ca_pem = match &cfg.ca_file {
        Some(p) => Some(
            std::fs::read(p)
                .map_err(|e| err(format!("ca_file: cannot read {}: {e}", p.display())))?,
        ),
        None => None,
    };
    match cfg.kind {
        SinkType::Smtp => {
            let tls = cfg.tls.unwrap_or(TlsMode::Starttls);
            let auth = match (&cfg.username, &cfg.password) {
                (Some(u), Some(p)) => Some((
                    u.clone(),
                    p.expose().map_err(|e| err(format!("password: {e}")))?,
                )),
                _ => None,
            };
            let sink = SmtpSink::new(SmtpParts {
                name: cfg.name.clone(),
                host: cfg.host.clone().unwrap_or_default(),
                port: cfg.port.unwrap_or(match tls {
                    TlsMode::Starttls => 587,
                    TlsMode::Tls => 465,
                    TlsMode::None => 25,
                }),
                tls,
                ca_pem,
                auth,
                from: cfg.from.clone().unwrap_or_default(),
                to: cfg.to.clone(),
                timeout: cfg.timeout(),
            })
            .map_err(err)?;
            Ok(Box::new(sink))
        }
        SinkType::Webhook => {
            let url_value = cfg
                .url
                .as_ref()
                .ok_or_else(|| err("url is required".to_string()))?;
            let url = url_value.expose().map_err(|e| err(format!("url: {e}")))?;
            let secret = match &cfg.secret {
                Some(s) => Some(s.expose().map_err(|e| err(format!("secret: {e}")))?),
                None => None,
            };
            let sink = WebhookSink::new(WebhookParts {
                name: cfg.name.clone(),
                url,
                shown: url_value.shown(),
                url_is_secret: matches!(url_value, crate::config::UrlValue::Secret(_)),
                format: cfg.format.unwrap_or(WebhookFormat::Cloudevents),
                secret,
                headers: cfg.headers.clone().into_iter().collect(),
                source: cfg
                    .source
                    .clone()
                    .unwrap_or_else(|| "accessdrift".to_string()),
                timeout: cfg.timeout(),
                ca_pem,
            })
            .map_err(err)?;
            Ok(Box::new(sink))
        }
    }
}
