//! Pure data and rules of prmsync: no I/O, no async.
//!
//! - [`config`]: the mapping file (TOML) and its validation.
//! - [`value`]: canonical values, so both systems' spellings of one value compare equal.
//! - [`record`]: the records as the engine sees them on each side.
//! - [`transform`]: reading and writing mapped fields on each side.
//! - [`merge`]: the three-way field merge and the conflict rules.
//! - [`rules`]: selection, Record Status, matching keys and the other sync rules by name.
//! - [`deals`]: the conditions an Opportunity must meet to be imported as a deal.
//! - [`sfid`]: Salesforce Ids, their 15- and 18-character forms.
//! - [`mask`]: how record values appear in logs and messages (masked unless `[log] values`).
//! - [`codes`]: the catalogue of Integration Log codes with their messages and fixes.

pub mod codes;
pub mod config;
pub mod deals;
pub mod duration;
pub mod mask;
pub mod merge;
pub mod record;
pub mod rules;
pub mod sfid;
pub mod transform;
pub mod value;

pub use codes::{Level, LogCode};
pub use config::{
    is_field_api_name, Direction, FieldMapping, FieldType, MappingConfig, MappingError, Side,
    WinnerRule,
};
pub use mask::LogValues;
pub use record::{CrmRecord, Fields, Integration, ObjectKind, PrmRecord};
pub use sfid::normalise_id;
