//! Secrets in configuration: a reference to where the value lives, never the value itself.
//!
//! A config key holding a secret is written `{ env = "NAME" }` or `{ file = "/path" }`. The
//! value is read only when a sink or source needs it ([`Secret::expose`]), so it never sits in
//! the `Config`, and `Debug`, `Display`, `Serialize` (hence logs and `check-config`) can only
//! show the reference.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

/// Where a secret value comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// An environment variable of the process.
    Env(String),
    /// A file (e.g. a mounted Kubernetes Secret); one trailing newline is not part of the value.
    File(PathBuf),
}

/// A secret could not be resolved. Messages name the variable or file, never a value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    /// The environment variable is not set.
    #[error("secret {{ env = \"{name}\" }}: environment variable {name} is not set")]
    EnvMissing {
        /// The variable.
        name: String,
    },
    /// The environment variable is not valid UTF-8.
    #[error("secret {{ env = \"{name}\" }}: environment variable {name} is not valid UTF-8")]
    EnvNotUnicode {
        /// The variable.
        name: String,
    },
    /// The file could not be read.
    #[error("secret {{ file = \"{path}\" }}: cannot read {path}: {error}")]
    File {
        /// The file.
        path: String,
        /// The OS error, as text.
        error: String,
    },
    /// The variable or file is present but empty.
    #[error("secret {reference} is empty: set a value there")]
    Empty {
        /// The reference, as written in the config.
        reference: String,
    },
}

/// The TOML shape: exactly one of `env` and `file`.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct SecretRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file: Option<PathBuf>,
}

impl TryFrom<SecretRef> for Secret {
    type Error = String;

    fn try_from(r: SecretRef) -> Result<Self, Self::Error> {
        match (r.env, r.file) {
            (Some(name), None) if !name.trim().is_empty() => Ok(Secret::Env(name)),
            (None, Some(path)) if !path.as_os_str().is_empty() => Ok(Secret::File(path)),
            (Some(_), Some(_)) => Err(
                "a secret takes exactly one of `env` and `file`, not both: { env = \"NAME\" } or { file = \"/path\" }"
                    .to_string(),
            ),
            _ => Err(
                "a secret is { env = \"NAME\" } or { file = \"/path\" } with a non-empty name or path; secret values are never written in the config"
                    .to_string(),
            ),
        }
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SecretVisitor)
    }
}

/// Accepts only the `{ env | file }` table. Serde's stock "invalid type" error quotes the
/// value, which here would be a secret written into the config: it is refused unquoted.
struct SecretVisitor;

const SHAPE: &str = "a secret reference { env = \"NAME\" } or { file = \"/path\" }";

impl<'de> serde::de::Visitor<'de> for SecretVisitor {
    type Value = Secret;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SHAPE)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Secret, A::Error> {
        let r = SecretRef::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        Secret::try_from(r).map_err(serde::de::Error::custom)
    }

    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Secret, E> {
        Err(E::custom(format!(
            "expected {SHAPE}, found a plain string: secret values are never written in the config (the string is not repeated here)"
        )))
    }
}

impl Secret {
    /// Reads the value now. Callers keep it only as long as they need it, and never log it.
    pub fn expose(&self) -> Result<String, SecretError> {
        let value = match self {
            Secret::Env(name) => match std::env::var(name) {
                Ok(v) => v,
                Err(std::env::VarError::NotPresent) => {
                    return Err(SecretError::EnvMissing { name: name.clone() })
                }
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(SecretError::EnvNotUnicode { name: name.clone() })
                }
            },
            Secret::File(path) => {
                let mut v = std::fs::read_to_string(path).map_err(|e| SecretError::File {
                    path: path.display().to_string(),
                    error: e.to_string(),
                })?;
                // Editors and `echo` add one; the secret itself never ends with it.
                if v.ends_with('\n') {
                    v.pop();
                    if v.ends_with('\r') {
                        v.pop();
                    }
                }
                v
            }
        };
        if value.is_empty() {
            return Err(SecretError::Empty {
                reference: self.to_string(),
            });
        }
        Ok(value)
    }
}

impl fmt::Display for Secret {
    /// The reference as written in TOML: `{ env = "NAME" }` or `{ file = "/path" }`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Env(name) => write!(f, "{{ env = {name:?} }}"),
            Secret::File(path) => write!(f, "{{ file = {:?} }}", path.display().to_string()),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({self} = ***)")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = match self {
            Secret::Env(name) => SecretRef {
                env: Some(name.clone()),
                file: None,
            },
            Secret::File(path) => SecretRef {
                env: None,
                file: Some(path.clone()),
            },
        };
        r.serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, Serialize, PartialEq)]
    struct Holder {
        password: Secret,
    }

    /// The error as `Config::parse` reports it (message and position, no source line).
    fn parse(text: &str) -> Result<Holder, String> {
        toml::from_str(text).map_err(|e| e.message().to_string())
    }

    #[test]
    fn parses_exactly_one_reference() {
        for (text, want) in [
            (
                "password = { env = \"SMTP_PASSWORD\" }",
                Ok(Secret::Env("SMTP_PASSWORD".into())),
            ),
            (
                "password = { file = \"/run/secrets/smtp\" }",
                Ok(Secret::File("/run/secrets/smtp".into())),
            ),
            ("password = { env = \"A\", file = \"/b\" }", Err("not both")),
            ("password = {}", Err("{ env = \"NAME\" } or { file")),
            ("password = { env = \"\" }", Err("non-empty")),
            ("password = { value = \"hunter2\" }", Err("unknown field")),
            ("password = \"hunter2\"", Err("found a plain string")),
        ] {
            let got = parse(text).map(|h| h.password);
            match (got, want) {
                (Ok(g), Ok(w)) => assert_eq!(g, w, "{text}"),
                (Err(e), Err(w)) => {
                    assert!(e.contains(w), "{text}: {e}");
                    assert!(
                        !e.contains("hunter2"),
                        "a rejected value is not echoed: {e}"
                    );
                }
                (g, w) => panic!("{text}: got {g:?}, want {w:?}"),
            }
        }
    }

    #[test]
    fn resolves_from_env_and_file_and_names_the_source_on_failure() {
        // A variable name unique to this test: tests run in parallel in one process.
        let name = "ACCESSDRIFT_TEST_SECRET_5F3A";
        let env = Secret::Env(name.into());
        assert_eq!(
            env.expose(),
            Err(SecretError::EnvMissing { name: name.into() })
        );
        std::env::set_var(name, "s3cr3t-env");
        assert_eq!(env.expose().unwrap(), "s3cr3t-env");
        std::env::set_var(name, "");
        let err = env.expose().unwrap_err().to_string();
        assert!(err.contains(name) && err.contains("empty"), "{err}");
        std::env::remove_var(name);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cr3t-file\n").unwrap();
        let file = Secret::File(path.clone());
        assert_eq!(file.expose().unwrap(), "s3cr3t-file");
        let missing = Secret::File(dir.path().join("nope"));
        let err = missing.expose().unwrap_err().to_string();
        assert!(
            err.contains("nope") && err.contains("No such file"),
            "{err}"
        );
    }

    #[test]
    fn never_prints_the_value() {
        let name = "ACCESSDRIFT_TEST_SECRET_9C1D";
        std::env::set_var(name, "s3cr3t-value");
        let h = Holder {
            password: Secret::Env(name.into()),
        };
        assert_eq!(h.password.expose().unwrap(), "s3cr3t-value");
        let shown = [
            format!("{h:?}"),
            format!("{:#?}", h),
            h.password.to_string(),
            toml::to_string(&h).unwrap(),
            serde_json::to_string(&h).unwrap(),
        ];
        for s in &shown {
            assert!(!s.contains("s3cr3t-value"), "value leaked: {s}");
            assert!(s.contains(name), "the reference is shown: {s}");
        }
        assert!(shown[0].contains("***"), "{}", shown[0]);
        assert_eq!(h.password.to_string(), format!("{{ env = \"{name}\" }}"));
        std::env::remove_var(name);
        // What is printed parses back to the same reference.
        assert_eq!(parse(&shown[3]).unwrap(), h);
    }
}
