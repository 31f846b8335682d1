//! Tolerant field access for Activity Log JSON: any key case, strings that hold JSON, masks.

use serde_json::Value;

/// `obj[key]`, trying the exact key first and then any casing.
pub fn get_ci<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    let obj = v.as_object()?;
    obj.get(key).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// A path of case-insensitive keys.
pub fn path<'a>(v: &'a Value, keys: &[&str]) -> Option<&'a Value> {
    keys.iter().try_fold(v, |cur, k| get_ci(cur, k))
}

/// A non-empty trimmed string at `v`, also accepting the REST `{value, localizedValue}` form.
pub fn text(v: Option<&Value>) -> Option<&str> {
    match v? {
        Value::String(s) => Some(s.trim()).filter(|s| !s.is_empty()),
        o @ Value::Object(_) => text(get_ci(o, "value")),
        _ => None,
    }
}

/// A JSON body that may be an object, a string holding JSON (possibly twice encoded), empty,
/// truncated or `"******"`-masked. Returns an object or nothing.
pub fn body(v: Option<&Value>) -> Option<Value> {
    match v? {
        o @ Value::Object(m) if !m.is_empty() => Some(o.clone()),
        Value::String(s) => {
            let t = s.trim();
            if t.is_empty() || t.bytes().all(|c| c == b'*') {
                return None;
            }
            match serde_json::from_str::<Value>(t).ok()? {
                o @ Value::Object(_) => Some(o),
                inner @ Value::String(_) => body(Some(&inner)),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Lower-cases a GUID and adds dashes to the 32-hex form; other text is returned trimmed.
pub fn normalize_guid(s: &str) -> String {
    let t = s.trim();
    if t.len() == 32 && t.bytes().all(|c| c.is_ascii_hexdigit()) {
        let l = t.to_ascii_lowercase();
        format!(
            "{}-{}-{}-{}-{}",
            &l[0..8],
            &l[8..12],
            &l[12..16],
            &l[16..20],
            &l[20..]
        )
    } else if looks_like_guid(t) {
        t.to_ascii_lowercase()
    } else {
        t.to_string()
    }
}

/// True for the 8-4-4-4-12 hex form.
pub fn looks_like_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn body_table() {
        let obj = json!({"properties": {"a": 1}});
        for (input, want) in [
            (json!("{\"properties\":{\"a\":1}}"), Some(obj.clone())),
            (obj.clone(), Some(obj.clone())),
            (
                json!("\"{\\\"properties\\\":{\\\"a\\\":1}}\""),
                Some(obj.clone()),
            ),
            (json!("******"), None),
            (json!(""), None),
            (json!("{\"properties\":{\"a\""), None),
            (json!({}), None),
            (json!(7), None),
        ] {
            assert_eq!(body(Some(&input)), want, "{input}");
        }
    }

    #[test]
    fn guid_and_case_helpers() {
        assert_eq!(
            normalize_guid("5C6AFC93F94942B38DF879B1ED60ACA2"),
            "5c6afc93-f949-42b3-8df8-79b1ed60aca2"
        );
        assert_eq!(
            normalize_guid(" ABCDEF00-1111-2222-3333-444455556666 "),
            "abcdef00-1111-2222-3333-444455556666"
        );
        assert_eq!(normalize_guid("Alice"), "Alice");
        let v = json!({"Properties": {"PrincipalId": "x"}, "op": {"value": " W ", "localizedValue": "w"}});
        assert_eq!(text(path(&v, &["properties", "principalId"])), Some("x"));
        assert_eq!(text(get_ci(&v, "op")), Some("W"));
    }
}
