//! Privileged Identity Management in the inventory: the role eligibilities of a subscription
//! (`roleEligibilityScheduleInstances`), standing access one activation away, and the
//! activations in force (`roleAssignmentScheduleInstances`): their projections to facts.

use crate::config::roles::role_guid;
use crate::domain::{canonical_id, ChangeOp, EventTime, Fact, FactKind};
use crate::sources::activity_log::fields::{get_ci, normalize_guid, text};
use serde_json::{json, Value};

/// `Microsoft.Authorization` schedule instances (PIM).
pub const PIM_API: &str = "2020-10-01";

/// The fact of one eligibility schedule instance: key `scope|principal|role`, value the
/// scope, principal, role, member type (`Direct`, `Group`, `Inherited`), end (`null`:
/// permanent) and condition. `Ok(None)` for an instance that is not in force.
pub fn role_eligibility(item: &Value) -> Result<Option<(ChangeOp, String)>, String> {
    let p = get_ci(item, "properties").ok_or("field `properties` is missing")?;
    let field = |k: &str| text(get_ci(p, k));
    if field("status").is_some_and(|s| !s.eq_ignore_ascii_case("provisioned")) {
        return Ok(None);
    }
    let scope = canonical_id(field("scope").ok_or("field `properties.scope` is missing")?);
    let principal =
        normalize_guid(field("principalId").ok_or("field `properties.principalId` is missing")?)
            .to_ascii_lowercase();
    let role = role_guid(
        field("roleDefinitionId").ok_or("field `properties.roleDefinitionId` is missing")?,
    );
    let end = match field("endDateTime") {
        None => None,
        Some(t) => Some(
            EventTime::parse(t)
                .ok_or_else(|| format!("`properties.endDateTime` {t:?} is not a time"))?
                .to_string(),
        ),
    };
    let mut value = json!({
        "scope": scope,
        "principal_id": principal,
        "role_definition_id": role,
        "member_type": field("memberType").unwrap_or("Direct"),
        "end": end,
    });
    if let Some(c) = field("condition") {
        value["condition"] = json!(c);
    }
    let key = format!("{scope}|{principal}|{role}");
    let resource_id = text(get_ci(item, "id")).map(canonical_id);
    Ok(Some((
        ChangeOp::Upsert(Fact {
            kind: FactKind::RoleEligibility,
            key: key.clone(),
            value,
            resource_id,
        }),
        key,
    )))
}

/// The fact of one assignment schedule instance that an activation made (`assignmentType`
/// `Activated`): key `scope|principal|role`, value the scope, principal, role, member type, end
/// and the eligibility schedule it came from. `Ok(None)` for an assignment made without an
/// activation (`Assigned`: an ordinary role assignment) or one not in force.
pub fn role_activation(item: &Value) -> Result<Option<(ChangeOp, String)>, String> {
    let p = get_ci(item, "properties").ok_or("field `properties` is missing")?;
    let field = |k: &str| text(get_ci(p, k));
    if !field("assignmentType").is_some_and(|t| t.eq_ignore_ascii_case("activated"))
        || field("status").is_some_and(|s| !s.eq_ignore_ascii_case("provisioned"))
    {
        return Ok(None);
    }
    let Some((ChangeOp::Upsert(mut f), key)) = role_eligibility(item)? else {
        return Ok(None);
    };
    f.kind = FactKind::PimActivation;
    f.value["eligibility"] = json!(field("linkedRoleEligibilityScheduleId").map(canonical_id));
    if let Some(o) = field("originRoleAssignmentId") {
        f.resource_id = Some(canonical_id(o));
    }
    Ok(Some((ChangeOp::Upsert(f), key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The azure-rest-api-specs example (tests/fixtures/arm, see SOURCES.md).
    #[test]
    fn the_rest_api_example_is_an_eligibility() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/arm/arm-roleEligibilityScheduleInstances-list-azure-rest-api-specs.json"
        ))
        .unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        let item = &v["responses"]["200"]["body"]["value"][0];
        let (op, key) = role_eligibility(item).unwrap().unwrap();
        assert_eq!(key, "/subscriptions/dfa2a084-766f-4003-8ae1-c4aeb893a99f|a3bb8764-cb92-4276-9d2a-ca1e895e55ea|b24988ac-6180-42a0-ab88-20f7382dd24c");
        let ChangeOp::Upsert(f) = op else { panic!() };
        assert_eq!(f.value["member_type"], "Direct");
        assert_eq!(f.value["end"], "2021-09-10T00:31:41.477Z");
        assert!(f.value["condition"]
            .as_str()
            .unwrap()
            .contains("foo_storage_container"));
        // The canonical form a baseline file would hold is the same.
        assert_eq!(
            crate::sources::canonical::canonicalise(FactKind::RoleEligibility, &f.value).unwrap(),
            f.value
        );
        let mut revoked = item.clone();
        revoked["properties"]["status"] = json!("Revoked");
        assert_eq!(role_eligibility(&revoked).unwrap(), None);
        revoked["properties"]
            .as_object_mut()
            .unwrap()
            .remove("principalId");
        revoked["properties"]["status"] = json!("Provisioned");
        assert!(role_eligibility(&revoked)
            .unwrap_err()
            .contains("principalId"));
    }
}
