//! The checks on a PRM person named by an Opportunity's partner or distributor email:
//! found once, a user (not a contact), active, in an organization and a group of the right
//! kind with Deal Registration.

use serde_json::{json, Value};

use super::{Checker, OwnerType, UserLookup, DEAL_REGISTRATION_MODULE};
use crate::codes::LogCode;

impl Checker<'_> {
    /// Checks the person named by `field` = `email` for the role `role`; returns their user
    /// and organization ids when they qualify.
    pub(super) fn check_user(
        &mut self,
        role: OwnerType,
        field: &str,
        email: &str,
        lookup: Option<&UserLookup>,
    ) -> Option<(String, String)> {
        let role_name = role.as_prm();
        let user = match lookup.unwrap_or(&UserLookup::NotFound) {
            UserLookup::NotFound => {
                self.reject(
                    LogCode::DealUserNotFound,
                    format!("names {email} in {field}, but no PRM person has that email"),
                    format!(
                        "In Salesforce, correct {field} on the Opportunity to the email of a PRM \
                         {role_name} user, or create a {role_name} user with the email {email} in \
                         the PRM."
                    ),
                    json!({ "field": field, "email": email, "role": role_name }),
                );
                return None;
            }
            UserLookup::Several(ids) => {
                self.reject(
                    LogCode::DealUserAmbiguous,
                    format!(
                        "names {email} in {field}, but {} PRM people have that email ({}), so \
                         the {role_name} user is ambiguous",
                        ids.len(),
                        ids.join(", ")
                    ),
                    format!(
                        "In the PRM, give the people {} distinct emails or delete the duplicates, \
                         or put another {role_name} user's email in {field} on the Opportunity.",
                        ids.join(", ")
                    ),
                    json!({ "field": field, "email": email, "role": role_name, "person_ids": ids }),
                );
                return None;
            }
            UserLookup::Found(u) => u,
        };
        let before = self.out.len();
        let who = format!("{field} = {email} (PRM person {})", user.id);
        let is_user = user.kind == "user";

        if !is_user {
            self.reject(
                LogCode::DealUserIsContact,
                format!(
                    "names {who}, who is a PRM {} without portal access, not a user, so they \
                     cannot register the deal",
                    user.kind
                ),
                format!(
                    "In the PRM, promote person {} to a user (active, in a {role_name} group with \
                     Deal Registration), or put a {role_name} user's email in {field} on the \
                     Opportunity.",
                    user.id
                ),
                json!({
                    "field": field, "email": email, "role": role_name,
                    "person_id": user.id, "kind": user.kind,
                }),
            );
        }

        let status = user.status.as_deref().map(str::trim).unwrap_or("");
        if user.deleted || (is_user && status != "active") {
            let state = if user.deleted {
                "has been deleted in the PRM".to_string()
            } else if status.is_empty() {
                "has no status in the PRM (only active users can register deals)".to_string()
            } else {
                format!("has status {status} in the PRM (only active users can register deals)")
            };
            self.reject(
                LogCode::DealUserInactive,
                format!("names {who}, who {state}"),
                if user.deleted {
                    format!(
                        "Restore person {} in the PRM, or put the email of an active {role_name} \
                         user in {field} on the Opportunity.",
                        user.id
                    )
                } else {
                    format!(
                        "In the PRM, set user {}'s status to active, or put the email of an \
                         active {role_name} user in {field} on the Opportunity.",
                        user.id
                    )
                },
                json!({
                    "field": field, "email": email, "role": role_name,
                    "person_id": user.id, "status": user.status, "deleted": user.deleted,
                }),
            );
        }

        // A user in the wrong kind of organization is reported for that alone: its groups
        // are of the other kind too, which says nothing more.
        let organization_fits = user.organization_kind.as_deref().map(str::trim) == Some(role_name);
        match user.organization_kind.as_deref().map(str::trim) {
            Some(k) if k == role_name => {}
            Some(k @ ("partner" | "distributor")) => {
                let (code, needed_field, fix) = match role {
                    OwnerType::Partner => (
                        LogCode::DealUserInDistributorOrg,
                        &self.facts.distributor_email_field,
                        format!(
                            "In Salesforce, put a partner user's email in {field}; if the deal \
                             belongs to this distributor, set {} to Distributor-Owned and move \
                             {email} to {}.",
                            self.facts.owner_type_field, self.facts.distributor_email_field
                        ),
                    ),
                    OwnerType::Distributor => (
                        LogCode::DealUserInPartnerOrg,
                        &self.facts.partner_email_field,
                        format!(
                            "In Salesforce, put a distributor user's email in {field}; if \
                             {email} is the partner registering the deal, move it to {}.",
                            self.facts.partner_email_field
                        ),
                    ),
                };
                self.reject(
                    code,
                    format!(
                        "names {who}, who belongs to {k} organization {}; {field} needs a \
                         {role_name} (a {k}'s email belongs in {needed_field})",
                        user.organization_id
                    ),
                    fix,
                    json!({
                        "field": field, "email": email, "role": role_name,
                        "person_id": user.id, "organization_id": user.organization_id,
                        "organization_kind": k,
                    }),
                );
            }
            other => {
                let state = match other {
                    None => "is missing or deleted in the PRM".to_string(),
                    Some(k) => format!("is of kind {k:?}, neither partner nor distributor"),
                };
                self.reject(
                    LogCode::DealUserOrganizationUnknown,
                    format!(
                        "names {who}, whose organization {} {state}",
                        user.organization_id
                    ),
                    format!(
                        "In the PRM, move person {} to an active {role_name} organization, or put \
                         another {role_name} user's email in {field} on the Opportunity.",
                        user.id
                    ),
                    json!({
                        "field": field, "email": email, "role": role_name,
                        "person_id": user.id, "organization_id": user.organization_id,
                        "organization_kind": other,
                    }),
                );
            }
        }

        if is_user && organization_fits {
            let qualifies = user.groups.iter().any(|g| {
                g.kind.trim() == role_name
                    && g.modules
                        .iter()
                        .any(|m| m.trim() == DEAL_REGISTRATION_MODULE)
            });
            if !qualifies {
                let groups: Vec<Value> = user
                    .groups
                    .iter()
                    .map(|g| json!({ "id": g.id, "kind": g.kind, "modules": g.modules }))
                    .collect();
                let listed = if user.groups.is_empty() {
                    "belongs to no group".to_string()
                } else {
                    format!(
                        "belongs to groups {}",
                        user.groups
                            .iter()
                            .map(|g| format!("{} ({})", g.id, g.kind))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                self.reject(
                    LogCode::DealUserLacksDealRegistration,
                    format!(
                        "names {who}, who {listed} but is in no {role_name} group with the Deal \
                         Registration module"
                    ),
                    format!(
                        "In the PRM, add user {} to a {role_name} group whose modules include \
                         deal_registration (or enable it on one of their {role_name} groups), or \
                         put another {role_name} user's email in {field} on the Opportunity.",
                        user.id
                    ),
                    json!({
                        "field": field, "email": email, "role": role_name,
                        "person_id": user.id, "groups": groups,
                    }),
                );
            }
        }

        (self.out.len() == before).then(|| (user.id.clone(), user.organization_id.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::super::*;
    use crate::codes::{Level, LogCode};
    use serde_json::json;

    #[test]
    fn user_not_found() {
        let mut f = valid();
        f.partner_user = Some(UserLookup::NotFound);
        let r = only(&f, OFF, LogCode::DealUserNotFound);
        assert!(r.message.contains("PRM_Partner_Email__c"));
        assert!(r.message.contains("pat@partner.example"));
        assert_eq!(r.details["email"], json!("pat@partner.example"));

        // The engine gave no lookup for a given email: treated as not found.
        f.partner_user = None;
        only(&f, OFF, LogCode::DealUserNotFound);

        let mut f = valid_distributor();
        f.distributor_user = Some(UserLookup::NotFound);
        let r = only(&f, ON, LogCode::DealUserNotFound);
        assert!(r.message.contains("PRM_Distributor_Email__c"));
        assert!(r.message.contains("dan@dist.example"));
    }

    #[test]
    fn user_ambiguous() {
        let mut f = valid();
        f.partner_user = Some(UserLookup::Several(vec!["per_a".into(), "per_b".into()]));
        let r = only(&f, OFF, LogCode::DealUserAmbiguous);
        assert!(r.message.contains("per_a") && r.message.contains("per_b"));
        assert_eq!(r.details["person_ids"], json!(["per_a", "per_b"]));
        assert_eq!(LogCode::DealUserAmbiguous.level(), Level::Error);
    }

    #[test]
    fn user_is_contact() {
        let mut u = partner_user();
        u.kind = "contact".into();
        u.status = None;
        u.groups = vec![];
        let mut f = valid();
        f.partner_user = Some(UserLookup::Found(u));
        let r = only(&f, OFF, LogCode::DealUserIsContact);
        assert!(r.fix.contains("promote"));
    }

    #[test]
    fn user_inactive() {
        for status in ["pending", "inactive", "disabled"] {
            let mut u = partner_user();
            u.status = Some(status.into());
            let mut f = valid();
            f.partner_user = Some(UserLookup::Found(u));
            let r = only(&f, OFF, LogCode::DealUserInactive);
            assert!(r.message.contains(status), "{}", r.message);
            assert_eq!(r.details["status"], json!(status));
        }
        let mut u = partner_user();
        u.deleted = true;
        let mut f = valid();
        f.partner_user = Some(UserLookup::Found(u));
        let r = only(&f, OFF, LogCode::DealUserInactive);
        assert!(r.message.contains("deleted"));
    }

    #[test]
    fn user_lacks_deal_registration() {
        let mut u = partner_user();
        u.groups = vec![
            group("grp_train", "partner", &["training"]),
            // Deal registration in a group of the wrong kind does not count.
            group("grp_x", "distributor", &["deal_registration"]),
        ];
        let mut f = valid();
        f.partner_user = Some(UserLookup::Found(u));
        let r = only(&f, OFF, LogCode::DealUserLacksDealRegistration);
        assert!(r.message.contains("grp_train"));

        let mut d = distributor_user();
        d.groups = vec![group("grp_p", "partner", &["deal_registration"])];
        let mut f = valid_distributor();
        f.distributor_user = Some(UserLookup::Found(d));
        only(&f, ON, LogCode::DealUserLacksDealRegistration);
    }

    #[test]
    fn user_in_distributor_org() {
        let mut f = valid();
        let mut u = distributor_user();
        // Give them a partner group with deal registration so only the organization is wrong.
        u.groups
            .push(group("grp_deals", "partner", &["deal_registration"]));
        f.partner_user = Some(UserLookup::Found(u));
        let r = only(&f, OFF, LogCode::DealUserInDistributorOrg);
        assert!(r.message.contains("org_d1"));
        assert_eq!(r.details["organization_kind"], json!("distributor"));
    }

    #[test]
    fn user_in_partner_org() {
        let mut f = valid_distributor();
        let mut u = partner_user();
        u.groups
            .push(group("grp_dist", "distributor", &["deal_registration"]));
        f.distributor_user = Some(UserLookup::Found(u));
        let r = only(&f, ON, LogCode::DealUserInPartnerOrg);
        assert!(r.message.contains("org_p1"));
    }

    #[test]
    fn user_organization_unknown() {
        let mut u = partner_user();
        u.organization_kind = None;
        let mut f = valid();
        f.partner_user = Some(UserLookup::Found(u));
        only(&f, OFF, LogCode::DealUserOrganizationUnknown);
    }
}
