//! Links repaired by hand (`prmsync unlink` / `relink`, the console's record page): the
//! link of a named record, removing it, and linking a PRM record to a Salesforce record
//! of the same kind. A relinked pair is merged on the next run as a first link.

use prmsync_mapping::ObjectKind;

use crate::run::RecordRef;
use crate::store::{Link, Links, StoreError};

/// Why a relink was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum RelinkError {
    #[error("relink takes a PRM reference (prm:organization:<id>) then a Salesforce Id; got `{prm}` and `{crm}`")]
    Sides { prm: String, crm: String },
    #[error("{prm} is a {prm_kind} but {crm} is a Salesforce {crm_object}: link records of the same kind")]
    Kinds {
        prm: String,
        prm_kind: ObjectKind,
        crm: String,
        crm_object: &'static str,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a relink did.
#[derive(Debug, Clone, PartialEq)]
pub struct Relinked {
    /// Links either record had before, now removed.
    pub removed: Vec<Link>,
    /// The new link (merged on the next run).
    pub link: Link,
}

/// The link of a record, if it has one.
pub async fn find_link(store: &dyn Links, record: &RecordRef) -> Result<Option<Link>, StoreError> {
    let links = match record {
        RecordRef::Prm(k, id) => store.find_links(*k, &[], std::slice::from_ref(id)).await?,
        RecordRef::Crm(k, id) => store.find_links(*k, std::slice::from_ref(id), &[]).await?,
    };
    Ok(links.into_iter().next())
}

/// Removes the link of a record; returns it, or None when it had none.
pub async fn unlink(store: &dyn Links, record: &RecordRef) -> Result<Option<Link>, StoreError> {
    let Some(link) = find_link(store, record).await? else {
        return Ok(None);
    };
    store.delete_link(link.object, &link.prm_id).await?;
    Ok(Some(link))
}

/// Links `prm` to `crm` by hand: any link either had is removed first, and the new link
/// is marked for a re-read, so the next run reads both records and merges them as a
/// first link (sync rule: first link, no snapshot).
pub async fn relink(
    store: &dyn Links,
    prm: &RecordRef,
    crm: &RecordRef,
) -> Result<Relinked, RelinkError> {
    let (RecordRef::Prm(kind, prm_id), RecordRef::Crm(crm_kind, crm_id)) = (prm, crm) else {
        return Err(RelinkError::Sides {
            prm: prm.text(),
            crm: crm.text(),
        });
    };
    if kind != crm_kind {
        return Err(RelinkError::Kinds {
            prm: prm.text(),
            prm_kind: *kind,
            crm: crm.text(),
            crm_object: crm_kind.crm_object(),
        });
    }
    let mut removed = Vec::new();
    for r in [prm, crm] {
        if let Some(old) = unlink(store, r).await? {
            removed.push(old);
        }
    }
    let mut link = Link::new(*kind, prm_id, crm_id);
    link.retry = true;
    let link = store.save_link(&link).await?;
    Ok(Relinked { removed, link })
}
