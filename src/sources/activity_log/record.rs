//! Full decoding of one Activity Log record (Event Hubs or REST schema) into an observation.

use super::fields::{body, get_ci, looks_like_guid, normalize_guid, path, text};
use super::map::candidate;
use super::prefilter::{AzureOp, Verdict};
use crate::domain::{canonical_id, Actor, EventTime, Location, Observation, Phase, Provenance};
use crate::sources::{Decoded, SkipReason};
use serde_json::Value;

/// Source name recorded in provenance.
pub const SOURCE: &str = "activity-log";

const CLAIM_UPN: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn";
const CLAIM_NAME: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name";
const CLAIM_OID: &str = "http://schemas.microsoft.com/identity/claims/objectidentifier";

/// Decodes a record the prefilter found relevant (or could not judge).
/// The caller fills in `prov.location`.
pub fn decode(rec: &[u8], verdict: Verdict) -> Decoded {
    let v: Value = match serde_json::from_slice(rec) {
        Ok(v) => v,
        Err(e) => {
            return Decoded::Malformed(format!(
                "invalid JSON at line {} column {} of the record: {e}",
                e.line(),
                e.column()
            ))
        }
    };
    if !v.is_object() {
        return Decoded::Malformed("record is not a JSON object".into());
    }
    let op = match verdict {
        Verdict::Relevant(op) => op,
        _ => match operation_name(&v) {
            None => return Decoded::Skipped(SkipReason::NoOperation),
            Some(name) => match AzureOp::from_name(name) {
                Some(op) => op,
                None => return Decoded::Skipped(SkipReason::IrrelevantOperation),
            },
        },
    };
    let time_field = text(get_ci(&v, "time")).or_else(|| text(get_ci(&v, "eventTimestamp")));
    let Some(raw_time) = time_field else {
        return Decoded::Malformed("field `time` (or `eventTimestamp`) is missing".into());
    };
    let Some(event_time) = EventTime::parse(raw_time) else {
        return Decoded::Malformed(format!(
            "field `time` has {raw_time:?}, which is not a timestamp (expected ISO 8601 or M/D/YYYY h:mm:ss)"
        ));
    };
    let resource_id = text(get_ci(&v, "resourceId"))
        .or_else(|| text(path(&v, &["authorization", "scope"])))
        .or_else(|| text(path(&v, &["identity", "authorization", "scope"])))
        .or_else(|| text(path(&v, &["properties", "entity"])));
    let Some(resource_id) = resource_id else {
        return Decoded::Malformed("field `resourceId` is missing".into());
    };
    let props = get_ci(&v, "properties");
    if matches!(op, AzureOp::PimActivated | AzureOp::PimExpired) {
        return pim(&v, op, props, event_time, resource_id);
    }
    let response = props.and_then(|p| body(get_ci(p, "responseBody")));
    let request = props.and_then(|p| body(get_ci(p, "requestbody")));
    // The response describes the resulting state; the request what was asked.
    let candidate = response
        .as_ref()
        .and_then(|b| candidate(op, resource_id, Some(b)))
        .or_else(|| {
            request
                .as_ref()
                .and_then(|b| candidate(op, resource_id, Some(b)))
        })
        .or_else(|| {
            if op.needs_body() {
                None
            } else {
                candidate(op, resource_id, None)
            }
        });
    // Exports that dropped the status (az CLI `--query` output) still show the request
    // phase by its body; anything else without a phase cannot be judged.
    let Some(phase) = phase(&v).or(request.as_ref().map(|_| Phase::Start)) else {
        return Decoded::Skipped(SkipReason::UnknownResult);
    };
    let correlation_id = text(get_ci(&v, "correlationId")).map(|c| c.to_ascii_lowercase());
    // Without a correlation id the resource id alone joins phases: role assignment and
    // credential ids are unique per object, so this pairs the right records in practice.
    let operation_id = Some(format!(
        "{}|{}",
        correlation_id
            .as_deref()
            .unwrap_or(crate::domain::NO_CORRELATION),
        canonical_id(resource_id)
    ));
    Decoded::Observation(Observation {
        phase,
        operation_id,
        candidate,
        prov: Provenance {
            source: SOURCE.to_string(),
            event_time,
            correlation_id,
            resource_version: None,
            operation: op.as_str().to_string(),
            actor: actor(&v),
            location: Location::default(),
        },
    })
}

/// A PIM record: no phases to join (PIM logs the outcome), the change is in its `properties`,
/// the caller in the `CallerInfo` JSON string.
fn pim(
    v: &Value,
    op: AzureOp,
    props: Option<&Value>,
    event_time: EventTime,
    resource_id: &str,
) -> Decoded {
    match phase(v) {
        Some(Phase::Success) => {}
        Some(_) => return Decoded::Skipped(SkipReason::Failed),
        None => return Decoded::Skipped(SkipReason::UnknownResult),
    }
    let Some(candidate) = super::map::candidate(op, resource_id, props) else {
        return Decoded::Malformed(
            "PIM record: `properties` needs `OriginRoleAssignmentId`, `SubjectID` and `RoleDefinitionOriginId`".into(),
        );
    };
    let mut who = actor(v);
    let info = props
        .and_then(|p| text(get_ci(p, "CallerInfo")))
        .and_then(|s| serde_json::from_str::<Vec<Value>>(s).ok())
        .unwrap_or_default();
    for i in &info {
        let value = text(get_ci(i, "CallerIdentityValue")).filter(|s| !s.is_empty());
        match (text(get_ci(i, "CallerIdentityType")), value) {
            (Some("UPN"), Some(u)) => {
                who.upn.get_or_insert_with(|| u.to_string());
            }
            (Some("ObjectID"), Some(o)) => {
                who.object_id
                    .get_or_insert_with(|| normalize_guid(o).to_ascii_lowercase());
            }
            _ => {}
        }
    }
    Decoded::Observation(Observation::immediate(
        candidate,
        Provenance {
            source: SOURCE.to_string(),
            event_time,
            correlation_id: text(get_ci(v, "correlationId")).map(|c| c.to_ascii_lowercase()),
            resource_version: None,
            operation: op.as_str().to_string(),
            actor: who,
            location: Location::default(),
        },
    ))
}

/// The operation, wherever this record's schema keeps it.
fn operation_name(v: &Value) -> Option<&str> {
    text(get_ci(v, "operationName"))
        .or_else(|| text(path(v, &["authorization", "action"])))
        .or_else(|| text(path(v, &["identity", "authorization", "action"])))
        .or_else(|| text(path(v, &["properties", "message"])))
}

/// The phase from `resultType`, else REST `status`, else the HTTP status name.
fn phase(v: &Value) -> Option<Phase> {
    let word = text(get_ci(v, "resultType")).or_else(|| text(get_ci(v, "status")));
    if let Some(w) = word {
        let w = w.to_ascii_lowercase();
        return match w.as_str() {
            "start" | "started" => Some(Phase::Start),
            "accept" | "accepted" => Some(Phase::Accept),
            "success" | "succeeded" => Some(Phase::Success),
            "failure" | "failed" | "canceled" | "cancelled" => Some(Phase::Failure),
            _ => None,
        };
    }
    let code = text(path(v, &["properties", "statusCode"]))?.to_ascii_lowercase();
    match code.as_str() {
        "ok" | "created" | "nocontent" => Some(Phase::Success),
        "accepted" => Some(Phase::Accept),
        c if c.starts_with(|ch: char| ch.is_ascii_alphabetic()) => Some(Phase::Failure),
        _ => None,
    }
}

/// Who acted: claims (under `identity` or top-level), `caller`, `callerIpAddress`, evidence.
fn actor(v: &Value) -> Actor {
    let identity = get_ci(v, "identity");
    let parsed_claims;
    let claims = match identity
        .and_then(|i| get_ci(i, "claims"))
        .or_else(|| get_ci(v, "claims"))
    {
        Some(Value::String(s)) => {
            parsed_claims = serde_json::from_str::<Value>(s).ok();
            parsed_claims.as_ref()
        }
        other => other,
    };
    let claim = |k: &str| claims.and_then(|c| text(get_ci(c, k)));
    let mut a = Actor {
        upn: claim(CLAIM_UPN)
            .or_else(|| claim("upn"))
            .or_else(|| claim("unique_name"))
            .or_else(|| claim(CLAIM_NAME).filter(|n| n.contains('@')))
            .map(str::to_string),
        object_id: claim(CLAIM_OID)
            .or_else(|| claim("oid"))
            .map(|s| normalize_guid(s).to_ascii_lowercase()),
        app_id: claim("appid")
            .or_else(|| claim("azp"))
            .map(|s| normalize_guid(s).to_ascii_lowercase()),
        ip: text(get_ci(v, "callerIpAddress"))
            .or_else(|| claim("ipaddr"))
            .map(str::to_string),
        ..Actor::default()
    };
    if let Some(caller) = text(get_ci(v, "caller")) {
        if caller.contains('@') {
            a.upn.get_or_insert_with(|| caller.to_string());
        } else if looks_like_guid(&normalize_guid(caller)) {
            a.object_id
                .get_or_insert_with(|| normalize_guid(caller).to_ascii_lowercase());
        }
    }
    if let Some(Value::String(s)) = identity {
        if s.contains('@') {
            a.upn.get_or_insert_with(|| s.trim().to_string());
        }
    }
    if a.object_id.is_none() {
        let evidence =
            identity.and_then(|i| path(i, &["authorization", "evidence", "principalId"]));
        if let Some(p) = text(evidence)
            .map(normalize_guid)
            .filter(|p| looks_like_guid(p))
        {
            a.object_id = Some(p);
        }
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ChangeOp;
    use serde_json::json;

    fn dec(v: Value) -> Decoded {
        decode(v.to_string().as_bytes(), Verdict::Unsure)
    }

    #[test]
    fn phase_table() {
        for (rec, want) in [
            (json!({"resultType": "Start"}), Some(Phase::Start)),
            (json!({"resultType": "Accept"}), Some(Phase::Accept)),
            (json!({"resultType": "Success"}), Some(Phase::Success)),
            (json!({"resultType": "Succeeded"}), Some(Phase::Success)),
            (json!({"resultType": "Failure"}), Some(Phase::Failure)),
            (json!({"resultType": "Updated"}), None),
            (json!({"resultType": "0"}), None),
            (
                json!({"status": {"value": "Succeeded", "localizedValue": "x"}}),
                Some(Phase::Success),
            ),
            (
                json!({"properties": {"statusCode": "Created"}}),
                Some(Phase::Success),
            ),
            (
                json!({"properties": {"statusCode": "Forbidden"}}),
                Some(Phase::Failure),
            ),
            (json!({}), None),
        ] {
            assert_eq!(phase(&rec), want, "{rec}");
        }
    }

    #[test]
    fn actor_from_claims_caller_and_evidence() {
        let rec = json!({
            "callerIpAddress": "2001:db8::1",
            "identity": {"claims": {CLAIM_UPN: "alice@contoso.com ", CLAIM_OID: "C0FFEE00-1111-2222-3333-444455556666", "appid": "04b07795-8ddb-461a-bbee-02f9e1bf7b46"},
                          "authorization": {"evidence": {"principalId": "95fdefa0a7b847b969df046862c9a979"}}}
        });
        let a = actor(&rec);
        assert_eq!(a.upn.as_deref(), Some("alice@contoso.com"));
        assert_eq!(
            a.object_id.as_deref(),
            Some("c0ffee00-1111-2222-3333-444455556666")
        );
        assert_eq!(a.ip.as_deref(), Some("2001:db8::1"));
        let rest = json!({"caller": "rob@contoso.com", "claims": {"ipaddr": "111.111.1.111"}});
        let a = actor(&rest);
        assert_eq!(
            (a.upn.as_deref(), a.ip.as_deref()),
            (Some("rob@contoso.com"), Some("111.111.1.111"))
        );
        let ev = json!({"identity": {"authorization": {"evidence": {"principalId": "95fdefa0a7b847b969df046862c9a979"}}}});
        assert_eq!(
            actor(&ev).object_id.as_deref(),
            Some("95fdefa0-a7b8-47b9-69df-046862c9a979")
        );
    }

    #[test]
    fn decode_start_with_string_body_and_success_without() {
        let start = json!({
            "time": "2026-11-03T10:00:00.1234567Z", "resultType": "Start", "correlationId": "ABC",
            "operationName": "MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/WRITE",
            "resourceId": "/SUBSCRIPTIONS/S/PROVIDERS/MICROSOFT.AUTHORIZATION/ROLEASSIGNMENTS/X",
            "properties": {"requestbody": "{\"properties\":{\"principalId\":\"p\",\"roleDefinitionId\":\"/r/8e3af657-a8ff-443c-a75c-2fe8c4bcb635\",\"scope\":\"/subscriptions/s\"}}"}
        });
        let Decoded::Observation(o) = dec(start) else {
            panic!()
        };
        assert_eq!(o.phase, Phase::Start);
        assert_eq!(
            o.operation_id.as_deref(),
            Some("abc|/subscriptions/s/providers/microsoft.authorization/roleassignments/x")
        );
        assert!(matches!(o.candidate, Some(ChangeOp::Upsert(_))));
        let success = json!({"time": "2026-11-03T10:00:02Z", "resultType": "Success", "correlationId": "abc",
            "operationName": {"value": "Microsoft.Authorization/roleAssignments/write"}, "resourceId": "/subscriptions/s/providers/Microsoft.Authorization/roleAssignments/x",
            "properties": {"responseBody": "******"}});
        let Decoded::Observation(o) = dec(success) else {
            panic!()
        };
        assert_eq!((o.phase, o.candidate), (Phase::Success, None));
    }

    #[test]
    fn decode_errors_name_the_field() {
        let Decoded::Malformed(m) = dec(
            json!({"operationName": "Microsoft.Authorization/roleAssignments/delete", "resultType": "Success", "time": "yesterday", "resourceId": "/x"}),
        ) else {
            panic!()
        };
        assert!(m.contains("`time`") && m.contains("yesterday"), "{m}");
        let Decoded::Malformed(m) = dec(
            json!({"operationName": "Microsoft.Authorization/roleAssignments/delete", "resultType": "Success", "time": "2020-01-01T00:00:00Z"}),
        ) else {
            panic!()
        };
        assert!(m.contains("resourceId"), "{m}");
        assert!(matches!(
            decode(b"{\"a\":", Verdict::Unsure),
            Decoded::Malformed(_)
        ));
        assert!(matches!(
            dec(json!({"time": "1/9/2007 09:41:00"})),
            Decoded::Skipped(SkipReason::NoOperation)
        ));
    }
}
