//! `type = "smtp"`: one mail per alert through a relay (lettre, rustls on aws-lc-rs).
//! 4xx replies are temporary, 5xx permanent (dead-lettered with the relay's words); a refused
//! login is a sink problem, not the alert's, so it is retried and names the sink and user.

use super::{render, Alert, Digest, Receipt, Sink, SinkError, SinkFuture};
use crate::config::TlsMode;
use crate::domain::error_chain;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use std::time::Duration;

/// An SMTP relay and the envelope used for every alert.
pub struct SmtpSink {
    name: String,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    host: String,
    port: u16,
    username: Option<String>,
    timeout: Duration,
}

/// The pieces [`SmtpSink::new`] needs, resolved (password read, CA loaded).
pub struct SmtpParts {
    /// `[[sinks]] name`.
    pub name: String,
    /// Relay host.
    pub host: String,
    /// Relay port (defaulted by the caller from `tls`).
    pub port: u16,
    /// Connection security.
    pub tls: TlsMode,
    /// Extra trust root, PEM.
    pub ca_pem: Option<Vec<u8>>,
    /// AUTH user and password.
    pub auth: Option<(String, String)>,
    /// Sender.
    pub from: String,
    /// Recipients.
    pub to: Vec<String>,
    /// Per-attempt timeout.
    pub timeout: Duration,
}

impl SmtpSink {
    /// Sets up the transport (no connection yet). Errors never contain the password.
    pub fn new(p: SmtpParts) -> Result<SmtpSink, String> {
        let tls = if p.tls == TlsMode::None {
            Tls::None
        } else {
            let mut params = TlsParameters::builder(p.host.clone());
            if let Some(pem) = &p.ca_pem {
                let cert = Certificate::from_pem(pem)
                    .map_err(|e| format!("ca_file is not a PEM certificate: {e}"))?;
                params = params.add_root_certificate(cert);
            }
            let params = params
                .build_rustls()
                .map_err(|e| format!("cannot set up TLS for {}: {e}", p.host))?;
            match p.tls {
                // Required, never opportunistic: a relay (or a man in the middle) that does
                // not offer STARTTLS gets no mail rather than a clear-text one.
                TlsMode::Starttls => Tls::Required(params),
                _ => Tls::Wrapper(params),
            }
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&p.host)
            .port(p.port)
            .tls(tls)
            .timeout(Some(p.timeout));
        let username = p.auth.as_ref().map(|(u, _)| u.clone());
        if let Some((user, pass)) = p.auth {
            b = b.credentials(Credentials::new(user, pass));
        }
        let from: Mailbox = p
            .from
            .parse()
            .map_err(|e| format!("from {:?} is not an email address: {e}", p.from))?;
        let to =
            p.to.iter()
                .map(|t| {
                    t.parse::<Mailbox>()
                        .map_err(|e| format!("to {t:?} is not an email address: {e}"))
                })
                .collect::<Result<Vec<_>, _>>()?;
        Ok(SmtpSink {
            name: p.name,
            transport: b.build(),
            from,
            to,
            host: p.host,
            port: p.port,
            username,
            timeout: p.timeout,
        })
    }

    /// The mail for one alert: both parts, a Message-ID from its key, threading headers on
    /// follow-ups (resolve, severity change) pointing at the alert that opened the finding.
    pub fn message(&self, a: &Alert) -> Result<Message, SinkError> {
        let mut b = self.builder(render::headline(a), &a.idempotency_key);
        if let Some(thread) = a.thread.as_deref().filter(|t| *t != a.idempotency_key) {
            let parent = message_id(thread);
            b = b.in_reply_to(parent.clone()).references(parent);
        }
        b.multipart(MultiPart::alternative_plain_html(
            render::text(a),
            render::html(a),
        ))
        .map_err(|e| SinkError::Permanent(format!("cannot build the mail: {e}")))
    }

    fn digest_message(&self, d: &Digest) -> Result<Message, SinkError> {
        self.builder(render::digest_headline(d), &d.key)
            .multipart(MultiPart::alternative_plain_html(
                render::digest_text(d),
                render::digest_html(d),
            ))
            .map_err(|e| SinkError::Permanent(format!("cannot build the mail: {e}")))
    }

    fn builder(&self, subject: String, key: &str) -> lettre::message::MessageBuilder {
        let mut b = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .message_id(Some(message_id(key)))
            .date_now()
            .user_agent(concat!("accessdrift/", env!("CARGO_PKG_VERSION")).to_string());
        for t in &self.to {
            b = b.to(t.clone());
        }
        b
    }

    async fn send(&self, m: Message) -> Result<Receipt, SinkError> {
        match self.transport.send(m).await {
            Ok(r) => {
                let text: Vec<&str> = r.message().collect();
                Ok(Receipt(format!("{} {}", r.code(), text.join(" "))))
            }
            Err(e) => Err(self.classify(&e)),
        }
    }

    fn classify(&self, e: &lettre::transport::smtp::Error) -> SinkError {
        let at = format!("smtp sink {} ({}:{})", self.name, self.host, self.port);
        let code = e.status().map(u16::from);
        if let (Some(c @ (530 | 534 | 535 | 538)), Some(user)) = (code, &self.username) {
            return SinkError::Temporary(format!(
                "{at}: the relay refused the login of user {user:?} ({c}): check username and password; {}",
                error_chain(e)
            ));
        }
        if e.is_permanent() {
            SinkError::Permanent(format!("{at}: {}", error_chain(e)))
        } else if e.is_timeout() {
            SinkError::Temporary(format!(
                "{at}: no answer within {}s",
                self.timeout.as_secs()
            ))
        } else {
            SinkError::Temporary(format!("{at}: {}", error_chain(e)))
        }
    }
}

/// `<key@accessdrift>` with `:` (not allowed in a Message-ID's left part) as `.`.
pub fn message_id(key: &str) -> String {
    let left: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c) {
                c
            } else {
                '.'
            }
        })
        .collect();
    format!("<{left}@accessdrift>")
}

impl Sink for SmtpSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn deliver<'a>(&'a mut self, alert: &'a Alert) -> SinkFuture<'a> {
        Box::pin(async move { self.send(self.message(alert)?).await })
    }

    fn deliver_digest<'a>(&'a mut self, digest: &'a Digest) -> SinkFuture<'a> {
        Box::pin(async move { self.send(self.digest_message(digest)?).await })
    }

    fn peer(&self) -> super::Peer {
        super::Peer::Smtp {
            address: self.host.clone(),
            port: self.port,
        }
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn message_ids_are_valid_and_stable() {
        assert_eq!(
            super::message_id("0a1b:f00d:3"),
            "<0a1b.f00d.3@accessdrift>"
        );
        assert_eq!(super::message_id("a b<c>"), "<a.b.c.@accessdrift>");
    }
}
