//! The sync rules that are not field mappings, each under its own name.

use crate::config::SetupFields;
use crate::record::{CrmRecord, PrmRecord};

/// Suffix Salesforce's Record Status carries once the PRM record is deleted.
pub const DELETED_SUFFIX: &str = " (Deleted)";

/// Selection: an Account syncs when Sync with PRM is ticked and it has an Organization
/// Status (sync rule 6).
pub fn account_selected(account: &CrmRecord, setup: &SetupFields) -> bool {
    !account.deleted
        && account.bool_field(&setup.sync_flag)
        && account.str_field(&setup.organization_status).is_some()
}

/// Record Status of a linked record: the organization's status label (`Active Partner`) or
/// the person's kind (`User`, `Contact`), with ` (Deleted)` once the PRM record is deleted.
pub fn record_status(label: &str, deleted_in_prm: bool) -> String {
    if deleted_in_prm {
        format!("{label}{DELETED_SUFFIX}")
    } else {
        label.to_string()
    }
}

/// The Record Status label of a PRM person: `User` with portal access, else `Contact`.
pub fn person_status_label(person: &PrmRecord) -> &'static str {
    match person.str_field("kind") {
        Some("user") => "User",
        _ => "Contact",
    }
}

/// Organization names compared for first-import matching: case, punctuation, spacing and
/// legal-form suffixes do not count (`ACME, Inc.` = `Acme`).
pub fn normalised_name(name: &str) -> String {
    const SUFFIXES: &[&str] = &[
        "inc",
        "incorporated",
        "llc",
        "ltd",
        "limited",
        "gmbh",
        "ag",
        "sa",
        "sas",
        "bv",
        "corp",
        "corporation",
        "co",
        "plc",
        "srl",
        "oy",
        "ab",
        "as",
        "pty",
    ];
    let mut words: Vec<String> = name
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect();
    while words.len() > 1 && words.last().is_some_and(|w| SUFFIXES.contains(&w.as_str())) {
        words.pop();
    }
    words.join(" ")
}

/// The domain of a website (`https://www.Acme.com/about` → `acme.com`), or None when blank.
pub fn website_domain(website: &str) -> Option<String> {
    let s = website.trim().to_lowercase();
    let s = s
        .split_once("://")
        .map(|(_, rest)| rest.to_string())
        .unwrap_or(s);
    let host = s.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit_once('@').map(|(_, h)| h).unwrap_or(host);
    let host = host.split(':').next().unwrap_or("");
    let host = host
        .strip_prefix("www.")
        .unwrap_or(host)
        .trim_end_matches('.');
    (!host.is_empty()).then(|| host.to_string())
}

/// First-import match key of an organization: normalised name and website domain.
pub fn organization_match_key(
    name: Option<&str>,
    website: Option<&str>,
) -> Option<(String, Option<String>)> {
    let name = normalised_name(name?);
    if name.is_empty() {
        return None;
    }
    Some((name, website.and_then(website_domain)))
}

/// First-import match key of a person: the email, case-insensitive, within its organization.
pub fn person_match_key(email: Option<&str>) -> Option<String> {
    email
        .map(|e| e.trim().to_lowercase())
        .filter(|e| e.contains('@'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selection_needs_flag_and_status() {
        let setup = SetupFields::default();
        let mut acc = CrmRecord {
            id: "001".into(),
            fields: json!({"PRM_Sync__c": true, "PRM_Organization_Status__c": "Active Partner"})
                .as_object()
                .unwrap()
                .clone(),
            modstamp: None,
            deleted: false,
            master_id: None,
        };
        assert!(account_selected(&acc, &setup));
        acc.fields
            .insert("PRM_Organization_Status__c".into(), json!(null));
        assert!(!account_selected(&acc, &setup));
        acc.fields
            .insert("PRM_Organization_Status__c".into(), json!("Active Partner"));
        acc.fields.insert("PRM_Sync__c".into(), json!(false));
        assert!(!account_selected(&acc, &setup));
    }

    #[test]
    fn deleted_record_status() {
        assert_eq!(
            record_status("Active Partner", true),
            "Active Partner (Deleted)"
        );
        assert_eq!(record_status("Contact", true), "Contact (Deleted)");
        assert_eq!(record_status("User", false), "User");
    }

    #[test]
    fn names_and_domains_normalise() {
        assert_eq!(normalised_name("ACME, Inc."), "acme");
        assert_eq!(
            normalised_name("  Blue   Sky  Systems GmbH"),
            "blue sky systems"
        );
        assert_eq!(
            website_domain("https://www.Acme.com/about?x=1"),
            Some("acme.com".into())
        );
        assert_eq!(website_domain("acme.com"), Some("acme.com".into()));
        assert_eq!(website_domain("  "), None);
        assert_eq!(
            organization_match_key(Some("Acme Corp"), Some("http://acme.com")),
            Some(("acme".into(), Some("acme.com".into())))
        );
        assert_eq!(
            person_match_key(Some(" Ann@X.com ")),
            Some("ann@x.com".into())
        );
    }
}
