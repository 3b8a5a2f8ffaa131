//! `prmsync unlink` and `prmsync relink`: repair links by hand.

use std::process::ExitCode;

use anyhow::{bail, Result};
use prmsync_engine::relink;

use crate::connect::open_store;
use crate::Target;

pub use prmsync_engine::RecordRef;

/// Reads a record named on the command line: `prm:<organization|person|deal>:<id>` or a
/// Salesforce Id (the engine's rule, [`RecordRef::parse`]).
pub fn parse_ref(s: &str) -> Result<RecordRef> {
    Ok(RecordRef::parse(s)?)
}

pub async fn unlink(target: Target, record: String) -> Result<ExitCode> {
    let r = parse_ref(&record)?;
    let store = open_store(&target).await?;
    match relink::unlink(store.as_ref(), &r).await? {
        Some(link) => {
            println!(
                "unlinked {} {} from Salesforce {}; the next `prmsync sync --full` links them again by their ids, or matches anew",
                link.object, link.prm_id, link.crm_id
            );
            Ok(ExitCode::SUCCESS)
        }
        None => {
            bail!("no link found for {record}; `prmsync log --record {record}` shows its history")
        }
    }
}

pub async fn relink(target: Target, prm: String, crm: String) -> Result<ExitCode> {
    let (prm, crm) = (parse_ref(&prm)?, parse_ref(&crm)?);
    let store = open_store(&target).await?;
    let done = relink::relink(store.as_ref(), &prm, &crm).await?;
    for old in &done.removed {
        println!(
            "removed the old link {} {} ↔ {}",
            old.object, old.prm_id, old.crm_id
        );
    }
    let link = &done.link;
    println!(
        "linked {} {} ↔ Salesforce {}; the next `prmsync sync` merges them (first-link rule)",
        link.object, link.prm_id, link.crm_id
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prmsync_mapping::ObjectKind;

    #[test]
    fn references() {
        assert_eq!(
            parse_ref("prm:person:per_1").unwrap(),
            RecordRef::Prm(ObjectKind::Person, "per_1".into())
        );
        assert_eq!(
            parse_ref("001Sm0000000001IAA").unwrap(),
            RecordRef::Crm(ObjectKind::Organization, "001Sm0000000001IAA".into())
        );
        // The 15-character form, and an 18-character one whose case was lost.
        for typed in ["001Sm0000000001", "001sm0000000001iaa"] {
            assert_eq!(
                parse_ref(typed).unwrap(),
                RecordRef::Crm(ObjectKind::Organization, "001Sm0000000001IAA".into()),
                "{typed}"
            );
        }
        // A suffix that would make a digit upper case.
        assert!(parse_ref("001Sm0000000001BAA")
            .unwrap_err()
            .to_string()
            .contains("check"));
        assert!(parse_ref("prm:widget:1")
            .unwrap_err()
            .to_string()
            .contains("organization, person or deal"));
        assert!(parse_ref("hello")
            .unwrap_err()
            .to_string()
            .contains("Salesforce Id"));
        assert!(parse_ref("00QSm0000000001IAA")
            .unwrap_err()
            .to_string()
            .contains("Account (001)"));
    }
}
