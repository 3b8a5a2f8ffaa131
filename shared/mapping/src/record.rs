//! Records as the engine sees them, one shape per side.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Field values of one record, by API name (Salesforce) or field path (PRM).
pub type Fields = serde_json::Map<String, serde_json::Value>;

/// The integrations prmsync runs; each has its own cursor, lease and pause flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Integration {
    Organizations,
    People,
    Deals,
}

impl Integration {
    pub const ALL: [Integration; 3] = [Self::Organizations, Self::People, Self::Deals];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Organizations => "organizations",
            Self::People => "people",
            Self::Deals => "deals",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|i| i.as_str() == s)
    }

    /// The kind of record pair this integration links.
    pub fn object(self) -> ObjectKind {
        match self {
            Self::Organizations => ObjectKind::Organization,
            Self::People => ObjectKind::Person,
            Self::Deals => ObjectKind::Deal,
        }
    }
}

impl std::fmt::Display for Integration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kind of linked record pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    Organization,
    Person,
    Deal,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Organization => "organization",
            Self::Person => "person",
            Self::Deal => "deal",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Organization, Self::Person, Self::Deal]
            .into_iter()
            .find(|o| o.as_str() == s)
    }

    /// The Salesforce object this kind syncs with.
    pub fn crm_object(self) -> &'static str {
        match self {
            Self::Organization => "Account",
            Self::Person => "Contact",
            Self::Deal => "Opportunity",
        }
    }

    /// The PRM collection this kind lives in.
    pub fn prm_collection(self) -> &'static str {
        match self {
            Self::Organization => "organizations",
            Self::Person => "people",
            Self::Deal => "deals",
        }
    }
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Salesforce record as read by a query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CrmRecord {
    pub id: String,
    /// Every selected field by API name (including `Id`).
    pub fields: Fields,
    /// `SystemModstamp`: moves on every update.
    pub modstamp: Option<DateTime<Utc>>,
    /// Read by `queryAll` with `IsDeleted = true`.
    pub deleted: bool,
    /// Set on a record deleted by a merge: the surviving record.
    pub master_id: Option<String>,
}

impl CrmRecord {
    pub fn str_field(&self, name: &str) -> Option<&str> {
        self.fields
            .get(name)
            .and_then(|v| v.as_str())
            .filter(|s| !s.trim().is_empty())
    }

    pub fn bool_field(&self, name: &str) -> bool {
        self.fields
            .get(name)
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
    }
}

/// A PRM record as read from the PRM API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrmRecord {
    pub id: String,
    pub version: i64,
    pub updated_at: DateTime<Utc>,
    pub deleted: bool,
    pub crm_id: Option<String>,
    /// Every other field (`name`, `kind`, `custom`, ...), as the PRM sent it.
    pub fields: Fields,
}

impl PrmRecord {
    pub fn str_field(&self, name: &str) -> Option<&str> {
        self.fields
            .get(name)
            .and_then(|v| v.as_str())
            .filter(|s| !s.trim().is_empty())
    }
}
