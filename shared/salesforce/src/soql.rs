//! A small SOQL builder that always escapes values.
//!
//! ```
//! use prmsync_salesforce::soql::{Soql, Cond, Dir};
//! let q = Soql::select(&["Id", "Name"])
//!     .from("Account")
//!     .where_(Cond::and(vec![
//!         Cond::eq("PRM_Sync__c", true),
//!         Cond::ne("Name", "Bob's"),
//!     ]))
//!     .order_by("SystemModstamp", Dir::Asc)
//!     .order_by("Id", Dir::Asc)
//!     .limit(10)
//!     .build()
//!     .unwrap();
//! assert_eq!(
//!     q,
//!     "SELECT Id, Name FROM Account WHERE (PRM_Sync__c = true AND Name != 'Bob\\'s') \
//!      ORDER BY SystemModstamp ASC, Id ASC LIMIT 10"
//! );
//! ```
//!
//! Field and object names are identifiers, not values: a name with a character other than
//! ASCII letters, digits, `_` and `.` (between names) is refused with
//! [`SoqlError::Identifier`] naming it, so it can never inject SOQL (use [`is_identifier`]
//! to validate names from configuration up front).

use std::fmt::{self, Write as _};

use chrono::{DateTime, NaiveDate, Utc};

/// Escape a string for use inside a single-quoted SOQL literal (without the quotes).
///
/// Escapes `\ ' " \n \r \t \b \f`; other control characters become `\uXXXX`.
pub fn escape_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        push_escaped(&mut out, c);
    }
    out
}

/// Escape a string for a LIKE pattern so that it matches literally: like
/// [`escape_literal`], plus `%` → `\%` and `_` → `\_`.
pub fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        match c {
            '%' => out.push_str("\\%"),
            '_' => out.push_str("\\_"),
            c => push_escaped(&mut out, c),
        }
    }
    out
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\\' => out.push_str("\\\\"),
        '\'' => out.push_str("\\'"),
        '"' => out.push_str("\\\""),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        // Control characters are all below U+00A0, so four hex digits suffice.
        c if c.is_control() => {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
        c => out.push(c),
    }
}

/// True when `s` is a plain SOQL identifier (`Name`, `PRM_Id__c`, `Account.Name`): API
/// names (the mapping's rule) joined by `.` between relationship names.
pub fn is_identifier(s: &str) -> bool {
    s.split('.').all(prmsync_mapping::config::is_field_api_name)
}

/// Why a query could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SoqlError {
    /// A field or object name outside the API-name alphabet.
    #[error(
        "{name:?} is not a Salesforce API name (ASCII letters, digits and `_`, with `.` \
         between relationship names, e.g. PRM_Id__c or Account.Name): fix the field or \
         object name in the mapping file"
    )]
    Identifier { name: String },
}

/// `s` when it is a plain identifier ([`is_identifier`]), else the error naming it.
fn ident(s: &str) -> Result<&str, SoqlError> {
    if is_identifier(s) {
        Ok(s)
    } else {
        Err(SoqlError::Identifier {
            name: s.to_string(),
        })
    }
}

/// A SOQL value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Null,
    DateTime(DateTime<Utc>),
    Date(NaiveDate),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => write!(f, "'{}'", escape_literal(s)),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) if x.is_finite() => write!(f, "{x}"),
            Value::Float(_) => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Null => f.write_str("null"),
            Value::DateTime(d) => write!(f, "{}", d.format("%Y-%m-%dT%H:%M:%S%.3fZ")),
            Value::Date(d) => write!(f, "{}", d.format("%Y-%m-%d")),
        }
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_string())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Str(v)
    }
}
impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Str(v.clone())
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(v.into())
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Int(v.into())
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<DateTime<Utc>> for Value {
    fn from(v: DateTime<Utc>) -> Self {
        Value::DateTime(v)
    }
}
impl From<NaiveDate> for Value {
    fn from(v: NaiveDate) -> Self {
        Value::Date(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map(Into::into).unwrap_or(Value::Null)
    }
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

/// A WHERE condition. AND/OR groups are always parenthesised.
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    Cmp {
        field: String,
        op: Op,
        value: Value,
    },
    In {
        field: String,
        values: Vec<Value>,
        negated: bool,
    },
    /// `pattern` is already escaped (see [`Cond::like`]).
    Like {
        field: String,
        escaped_pattern: String,
    },
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
}

impl Cond {
    pub fn cmp(field: &str, op: Op, value: impl Into<Value>) -> Self {
        Cond::Cmp {
            field: field.to_string(),
            op,
            value: value.into(),
        }
    }
    pub fn eq(field: &str, value: impl Into<Value>) -> Self {
        Self::cmp(field, Op::Eq, value)
    }
    pub fn ne(field: &str, value: impl Into<Value>) -> Self {
        Self::cmp(field, Op::Ne, value)
    }
    pub fn lt(field: &str, value: impl Into<Value>) -> Self {
        Self::cmp(field, Op::Lt, value)
    }
    pub fn le(field: &str, value: impl Into<Value>) -> Self {
        Self::cmp(field, Op::Le, value)
    }
    pub fn gt(field: &str, value: impl Into<Value>) -> Self {
        Self::cmp(field, Op::Gt, value)
    }
    pub fn ge(field: &str, value: impl Into<Value>) -> Self {
        Self::cmp(field, Op::Ge, value)
    }
    /// `field IN (...)`. An empty list matches nothing (rendered as `Id = null`).
    pub fn in_<V: Into<Value>>(field: &str, values: impl IntoIterator<Item = V>) -> Self {
        Cond::In {
            field: field.to_string(),
            values: values.into_iter().map(Into::into).collect(),
            negated: false,
        }
    }
    /// `field NOT IN (...)`. An empty list matches everything (rendered as `Id != null`).
    pub fn not_in<V: Into<Value>>(field: &str, values: impl IntoIterator<Item = V>) -> Self {
        Cond::In {
            field: field.to_string(),
            values: values.into_iter().map(Into::into).collect(),
            negated: true,
        }
    }
    /// `field LIKE 'pattern'` where `%` and `_` in `pattern` are wildcards; every other
    /// character (quotes, backslashes, ...) is escaped.
    pub fn like(field: &str, pattern: &str) -> Self {
        Cond::Like {
            field: field.to_string(),
            escaped_pattern: escape_literal(pattern),
        }
    }
    /// `field LIKE 'text%'`, with `text` matched literally.
    pub fn starts_with(field: &str, text: &str) -> Self {
        Cond::Like {
            field: field.to_string(),
            escaped_pattern: format!("{}%", escape_like(text)),
        }
    }
    /// `field LIKE '%text%'`, with `text` matched literally.
    pub fn contains(field: &str, text: &str) -> Self {
        Cond::Like {
            field: field.to_string(),
            escaped_pattern: format!("%{}%", escape_like(text)),
        }
    }
    /// `field LIKE 'text'` matched literally (case-insensitive equality).
    pub fn like_exact(field: &str, text: &str) -> Self {
        Cond::Like {
            field: field.to_string(),
            escaped_pattern: escape_like(text),
        }
    }
    /// All of. An empty list matches everything.
    pub fn and(conds: Vec<Cond>) -> Self {
        Cond::And(conds)
    }
    /// Any of. An empty list matches nothing.
    pub fn or(conds: Vec<Cond>) -> Self {
        Cond::Or(conds)
    }
    #[allow(clippy::should_implement_trait)]
    pub fn not(cond: Cond) -> Self {
        Cond::Not(Box::new(cond))
    }
}

impl Cond {
    /// The condition as SOQL; a field name outside the API-name alphabet is refused.
    pub fn build(&self) -> Result<String, SoqlError> {
        let mut out = String::new();
        self.write(&mut out)?;
        Ok(out)
    }

    fn write(&self, f: &mut String) -> Result<(), SoqlError> {
        match self {
            Cond::Cmp { field, op, value } => {
                let _ = write!(f, "{} {} {}", ident(field)?, op.as_str(), value);
            }
            Cond::In {
                field,
                values,
                negated,
            } => {
                let field = ident(field)?;
                if values.is_empty() {
                    f.push_str(if *negated { "Id != null" } else { "Id = null" });
                    return Ok(());
                }
                let _ = write!(f, "{field} {}IN (", if *negated { "NOT " } else { "" });
                for (i, v) in values.iter().enumerate() {
                    if i > 0 {
                        f.push_str(", ");
                    }
                    let _ = write!(f, "{v}");
                }
                f.push(')');
            }
            Cond::Like {
                field,
                escaped_pattern,
            } => {
                let _ = write!(f, "{} LIKE '{}'", ident(field)?, escaped_pattern);
            }
            Cond::And(cs) | Cond::Or(cs) => {
                let and = matches!(self, Cond::And(_));
                if cs.is_empty() {
                    f.push_str(if and { "(Id != null)" } else { "(Id = null)" });
                    return Ok(());
                }
                f.push('(');
                for (i, c) in cs.iter().enumerate() {
                    if i > 0 {
                        f.push_str(if and { " AND " } else { " OR " });
                    }
                    c.write(f)?;
                }
                f.push(')');
            }
            Cond::Not(c) => {
                let group = matches!(c.as_ref(), Cond::And(_) | Cond::Or(_));
                f.push_str(if group { "(NOT " } else { "(NOT (" });
                c.write(f)?;
                f.push_str(if group { ")" } else { "))" });
            }
        }
        Ok(())
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Asc,
    Desc,
}

pub use Dir::{Asc, Desc};

/// A SELECT statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Soql {
    fields: Vec<String>,
    object: String,
    conds: Vec<Cond>,
    order: Vec<(String, Dir)>,
    limit: Option<u64>,
}

impl Soql {
    pub fn select<S: AsRef<str>>(fields: &[S]) -> Self {
        Soql {
            fields: fields.iter().map(|s| s.as_ref().to_string()).collect(),
            object: String::new(),
            conds: Vec::new(),
            order: Vec::new(),
            limit: None,
        }
    }
    pub fn from(mut self, object: &str) -> Self {
        self.object = object.to_string();
        self
    }
    /// Add a condition; several calls are ANDed together.
    pub fn where_(mut self, cond: Cond) -> Self {
        self.conds.push(cond);
        self
    }
    pub fn order_by(mut self, field: &str, dir: Dir) -> Self {
        self.order.push((field.to_string(), dir));
        self
    }
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }
}

impl Soql {
    /// The statement as SOQL. Every field and object name must be an API name
    /// ([`is_identifier`]): one with any other character is refused, naming it.
    pub fn build(&self) -> Result<String, SoqlError> {
        let mut f = String::from("SELECT ");
        let mut seen: Vec<&str> = Vec::new();
        for field in &self.fields {
            let field = ident(field)?;
            if !seen.iter().any(|s| s.eq_ignore_ascii_case(field)) {
                seen.push(field);
            }
        }
        if seen.is_empty() {
            seen.push("Id");
        }
        f.push_str(&seen.join(", "));
        let _ = write!(f, " FROM {}", ident(&self.object)?);
        match self.conds.len() {
            0 => {}
            1 => {
                f.push_str(" WHERE ");
                self.conds[0].write(&mut f)?;
            }
            _ => {
                f.push_str(" WHERE ");
                Cond::And(self.conds.clone()).write(&mut f)?;
            }
        }
        if !self.order.is_empty() {
            f.push_str(" ORDER BY ");
            for (i, (field, dir)) in self.order.iter().enumerate() {
                if i > 0 {
                    f.push_str(", ");
                }
                let dir = match dir {
                    Dir::Asc => "ASC",
                    Dir::Desc => "DESC",
                };
                let _ = write!(f, "{} {dir}", ident(field)?);
            }
        }
        if let Some(n) = self.limit {
            let _ = write!(f, " LIMIT {n}");
        }
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    #[test]
    fn escapes() {
        assert_eq!(escape_literal(r"a'b\c"), r"a\'b\\c");
        assert_eq!(escape_literal("\"\n\r\t\u{8}\u{c}"), r#"\"\n\r\t\b\f"#);
        assert_eq!(escape_literal("\u{0}"), r"\u0000");
        assert_eq!(escape_like("50%_off"), r"50\%\_off");
        assert_eq!(escape_literal("50%_off"), "50%_off");
        assert_eq!(escape_literal("Zoë 株式会社"), "Zoë 株式会社");
    }

    #[test]
    fn hostile_value_stays_in_literal() {
        let q = Soql::select(&["Id"])
            .from("Account")
            .where_(Cond::eq("Name", "' OR Name != '"))
            .build()
            .unwrap();
        assert_eq!(q, r"SELECT Id FROM Account WHERE Name = '\' OR Name != \''");
    }

    #[test]
    fn builds_full_query() {
        let t = Utc.with_ymd_and_hms(2026, 11, 22, 10, 0, 0).unwrap();
        let q = Soql::select(&["Id", "Name", "SystemModstamp"])
            .from("Account")
            .where_(Cond::eq("PRM_Sync__c", true))
            .where_(Cond::or(vec![
                Cond::gt("SystemModstamp", t),
                Cond::and(vec![
                    Cond::eq("SystemModstamp", t),
                    Cond::gt("Id", "001000000000001"),
                ]),
            ]))
            .order_by("SystemModstamp", Asc)
            .order_by("Id", Asc)
            .limit(2000)
            .build()
            .unwrap();
        assert_eq!(
            q,
            "SELECT Id, Name, SystemModstamp FROM Account WHERE (PRM_Sync__c = true AND \
             (SystemModstamp > 2026-11-22T10:00:00.000Z OR (SystemModstamp = \
             2026-11-22T10:00:00.000Z AND Id > '001000000000001'))) ORDER BY SystemModstamp \
             ASC, Id ASC LIMIT 2000"
        );
    }

    #[test]
    fn other_conditions() {
        let d = NaiveDate::from_ymd_opt(2026, 1, 2).unwrap();
        assert_eq!(
            Cond::ge("CloseDate", d).build().unwrap(),
            "CloseDate >= 2026-01-02"
        );
        assert_eq!(Cond::le("Amount", 1.5).build().unwrap(), "Amount <= 1.5");
        assert_eq!(Cond::lt("N__c", 3).build().unwrap(), "N__c < 3");
        assert_eq!(
            Cond::ne("Email", Value::Null).build().unwrap(),
            "Email != null"
        );
        assert_eq!(
            Cond::eq("Email", None::<String>).build().unwrap(),
            "Email = null"
        );
        assert_eq!(
            Cond::in_("Id", ["a", "b'"]).build().unwrap(),
            r"Id IN ('a', 'b\'')"
        );
        assert_eq!(
            Cond::not_in("Id", ["a"]).build().unwrap(),
            "Id NOT IN ('a')"
        );
        assert_eq!(
            Cond::in_("Id", Vec::<String>::new()).build().unwrap(),
            "Id = null"
        );
        assert_eq!(
            Cond::not(Cond::eq("Name", "x")).build().unwrap(),
            "(NOT (Name = 'x'))"
        );
        assert_eq!(
            Cond::not(Cond::or(vec![Cond::eq("A", 1), Cond::eq("B", 2)]))
                .build()
                .unwrap(),
            "(NOT (A = 1 OR B = 2))"
        );
        assert_eq!(
            Cond::like("Name", "Ter%").build().unwrap(),
            "Name LIKE 'Ter%'"
        );
        assert_eq!(
            Cond::starts_with("Name", "50%'").build().unwrap(),
            r"Name LIKE '50\%\'%'"
        );
        assert_eq!(
            Cond::contains("Name", "a_b").build().unwrap(),
            r"Name LIKE '%a\_b%'"
        );
        assert_eq!(Cond::and(vec![]).build().unwrap(), "(Id != null)");
    }

    #[test]
    fn identifiers_cannot_inject() {
        let refused = |q: &Soql| match q.build() {
            Err(SoqlError::Identifier { name }) => name,
            other => panic!("expected a refused identifier, got {other:?}"),
        };
        let q = Soql::select(&["Id", "Name) FROM User--"]).from("Account");
        assert_eq!(refused(&q), "Name) FROM User--");
        let q = Soql::select(&["Id"]).from("Account; DELETE");
        assert_eq!(refused(&q), "Account; DELETE");
        let q = Soql::select(&["Id"])
            .from("Account")
            .where_(Cond::eq("Name' OR '1'='1", 1));
        assert_eq!(refused(&q), "Name' OR '1'='1");
        let q = Soql::select(&["Id"])
            .from("Account")
            .where_(Cond::not(Cond::in_("Id IN (SELECT", ["a"])));
        assert_eq!(refused(&q), "Id IN (SELECT");
        let q = Soql::select(&["Id"])
            .from("Account")
            .order_by("Name DESC, Id", Asc);
        assert_eq!(refused(&q), "Name DESC, Id");
        let q = Soql::select(&[""]).from("Account");
        assert_eq!(refused(&q), "");
        // the error names the identifier and the fix
        let text = Soql::select(&["Name) FROM User--"])
            .from("Account")
            .build()
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("\"Name) FROM User--\"") && text.contains("mapping file"),
            "{text}"
        );
        // nothing was dropped from a name: a valid one is kept as given
        assert_eq!(
            Soql::select(&["Account.PRM_Id__c"])
                .from("Contact")
                .build()
                .unwrap(),
            "SELECT Account.PRM_Id__c FROM Contact"
        );
        assert!(is_identifier("Account.PRM_Id__c"));
        assert!(!is_identifier("Name FROM"));
        assert!(!is_identifier("Account..Name"));
        assert!(!is_identifier(""));
    }

    /// Decode a single-quoted SOQL literal starting at `s[0] == '\''`; returns the decoded
    /// text and the rest of the input after the closing quote.
    fn read_literal(s: &str) -> Option<(String, &str)> {
        let mut chars = s.char_indices();
        assert_eq!(chars.next()?.1, '\'');
        let mut out = String::new();
        while let Some((i, c)) = chars.next() {
            match c {
                '\'' => return Some((out, &s[i + 1..])),
                '\\' => {
                    let (_, e) = chars.next()?;
                    match e {
                        'n' => out.push('\n'),
                        'r' => out.push('\r'),
                        't' => out.push('\t'),
                        'b' => out.push('\u{8}'),
                        'f' => out.push('\u{c}'),
                        'u' => {
                            let hex: String =
                                (0..4).filter_map(|_| chars.next().map(|x| x.1)).collect();
                            out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                        }
                        '\\' | '\'' | '"' | '%' | '_' => out.push(e),
                        _ => return None,
                    }
                }
                c => out.push(c),
            }
        }
        None
    }

    proptest! {
        #[test]
        fn any_string_round_trips_inside_its_literal(s in any::<String>()) {
            let q = Cond::eq("Name", s.as_str()).build().unwrap();
            let rest = q.strip_prefix("Name = ").unwrap();
            let (decoded, tail) = read_literal(rest).expect("well-formed literal");
            prop_assert_eq!(tail, "");
            prop_assert_eq!(decoded, s);
        }

        #[test]
        fn hostile_fragments_never_break_out(parts in proptest::collection::vec(
            prop_oneof![
                Just("'".to_string()), Just("\\".to_string()), Just("\"".to_string()),
                Just("' OR Name != '".to_string()), Just("%".to_string()), Just("_".to_string()),
                Just("\\'".to_string()), Just("\n".to_string()), "[a-z ]{0,4}".prop_map(|s| s),
            ], 0..12)) {
            let s: String = parts.concat();
            for (q, prefix) in [
                (Cond::eq("Name", s.as_str()).build().unwrap(), "Name = "),
                (Cond::starts_with("Name", &s).build().unwrap(), "Name LIKE "),
                (Cond::like("Name", &s).build().unwrap(), "Name LIKE "),
            ] {
                let rest = q.strip_prefix(prefix).unwrap();
                let (_, tail) = read_literal(rest).expect("well-formed literal");
                prop_assert!(tail.is_empty(), "broke out: {}", q);
            }
            let q = Cond::in_("Id", [s.clone(), s.clone()]).build().unwrap();
            let rest = q.strip_prefix("Id IN (").unwrap();
            let (_, tail) = read_literal(rest).expect("first literal");
            let tail = tail.strip_prefix(", ").expect("separator");
            let (_, tail) = read_literal(tail).expect("second literal");
            prop_assert_eq!(tail, ")");
        }
    }
}
