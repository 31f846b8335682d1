//! Field-level difference between two canonical values.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One difference at a field path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffEntry {
    /// Dotted path (`aad.enable_azure_rbac`); list members are `subjects[+]` / `subjects[-]`.
    pub path: String,
    /// Value in the baseline (absent for an added list member).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<Value>,
    /// Value observed (absent for a removed list member).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actual: Option<Value>,
}

impl std::fmt::Display for DiffEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<Value>| v.as_ref().map_or_else(|| "∅".to_string(), Value::to_string);
        write!(
            f,
            "{}: {} → {}",
            self.path,
            show(&self.expected),
            show(&self.actual)
        )
    }
}

/// Differences from `expected` to `actual`, in path order. Lists are compared as sets,
/// since canonical values keep them sorted and order carries no access meaning.
pub fn diff(expected: &Value, actual: &Value) -> Vec<DiffEntry> {
    let mut out = Vec::new();
    walk("", expected, actual, &mut out);
    out
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

fn walk(path: &str, e: &Value, a: &Value, out: &mut Vec<DiffEntry>) {
    match (e, a) {
        (Value::Object(em), Value::Object(am)) => {
            let mut keys: Vec<&String> = em.keys().chain(am.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = join(path, k);
                match (em.get(k), am.get(k)) {
                    (Some(x), Some(y)) => walk(&p, x, y, out),
                    (x, y) => out.push(DiffEntry {
                        path: p,
                        expected: x.cloned(),
                        actual: y.cloned(),
                    }),
                }
            }
        }
        (Value::Array(ea), Value::Array(aa)) => {
            for x in ea.iter().filter(|x| !aa.contains(x)) {
                out.push(DiffEntry {
                    path: format!("{path}[-]"),
                    expected: Some(x.clone()),
                    actual: None,
                });
            }
            for y in aa.iter().filter(|y| !ea.contains(y)) {
                out.push(DiffEntry {
                    path: format!("{path}[+]"),
                    expected: None,
                    actual: Some(y.clone()),
                });
            }
        }
        _ if e != a => out.push(DiffEntry {
            path: if path.is_empty() {
                ".".into()
            } else {
                path.to_string()
            },
            expected: Some(e.clone()),
            actual: Some(a.clone()),
        }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diff_table() {
        for (e, a, want) in [
            (json!({"a": 1}), json!({"a": 1}), vec![]),
            (json!({"a": 1}), json!({"a": 2}), vec!["a: 1 → 2"]),
            (
                json!({"x": {"b": true}}),
                json!({"x": {"b": false}}),
                vec!["x.b: true → false"],
            ),
            (
                json!({"s": ["a", "b"]}),
                json!({"s": ["b", "c"]}),
                vec!["s[-]: \"a\" → ∅", "s[+]: ∅ → \"c\""],
            ),
            (
                json!({"a": 1}),
                json!({"b": 1}),
                vec!["a: 1 → ∅", "b: ∅ → 1"],
            ),
            (
                json!({"x": null}),
                json!({"x": {"m": 1}}),
                vec!["x: null → {\"m\":1}"],
            ),
        ] {
            let got: Vec<String> = diff(&e, &a).iter().map(ToString::to_string).collect();
            assert_eq!(got, want, "{e} vs {a}");
        }
    }
}
