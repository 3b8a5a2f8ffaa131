//! How record values appear in log lines, Integration Log entries, error messages and CLI
//! output: masked by default, in full only when the mapping file says `[log] values = true`.
//!
//! The rule (one for every place that shows a value, `docs/integration-log.md`):
//!
//! - every text value of a record is masked, personal or not: an email keeps the first
//!   character of its local part and its whole domain (`z***@pii-seed.example`), a phone
//!   (digits with `+ - . ( ) /` and spaces, at least 5 digits) keeps its last two digits
//!   (`***21`), any other text keeps its first character (`Z***`); an empty text stays empty;
//! - numbers, `true`/`false` and null are shown: they name no one (amounts, flags, blanks);
//! - lists and objects are masked value by value; field names (object keys) are kept.
//!
//! Messages from the remote systems ([`LogValues::remote`]) may echo the values sent
//! (`data value too large: <value>`, `'<value>' is not an email address`): the values the
//! record carried, quoted spans, the text after the phrases that echo a value, and anything
//! shaped like an email or a phone are masked; codes, field names and the rest of the
//! message are kept.
//!
//! Pure functions, no I/O.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Whether values are shown in full or masked (`[log] values` of the mapping file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogValues {
    /// Values masked by [`mask_value`] (the default).
    #[default]
    Masked,
    /// Values in full (`[log] values = true`).
    Full,
}

impl LogValues {
    /// A record value (or a set of fields) as a log shows it.
    pub fn value(self, v: &Value) -> Value {
        match self {
            LogValues::Masked => mask_value(v),
            LogValues::Full => v.clone(),
        }
    }

    /// A record value as a message shows it: JSON (strings in quotes), masked.
    pub fn show(self, v: &Value) -> String {
        self.value(v).to_string()
    }

    /// A record's text value (a name) as a message shows it, without quotes.
    pub fn text(self, s: &str) -> String {
        match self {
            LogValues::Masked => mask_text(s),
            LogValues::Full => s.to_string(),
        }
    }

    /// A message of a remote system about a record (or a part of one), scrubbed of the
    /// values it may echo; `sent` are the values the record carried (the request body).
    pub fn remote<'v>(self, message: &str, sent: impl IntoIterator<Item = &'v Value>) -> String {
        match self {
            LogValues::Masked => scrub_message(message, &texts(sent)),
            LogValues::Full => message.to_string(),
        }
    }
}

/// The masked form of a value: see the module documentation.
pub fn mask_value(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(mask_text(s)),
        Value::Array(items) => Value::Array(items.iter().map(mask_value).collect()),
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), mask_value(v)))
                .collect(),
        ),
        Value::Null | Value::Bool(_) | Value::Number(_) => v.clone(),
    }
}

/// The masked form of a text value: an email as `j***@example.com`, a phone as `***12`,
/// other text as its first character and `***`.
pub fn mask_text(s: &str) -> String {
    let t = s.trim();
    if t.is_empty() {
        return String::new();
    }
    if let Some(masked) = mask_email(t) {
        return masked;
    }
    if is_phone(t, 5) {
        return mask_phone(t);
    }
    let first = t.chars().next().expect("not empty");
    format!("{first}***")
}

/// `j***@example.com` for `jane.doe@example.com`; None when `s` is not shaped like an email.
fn mask_email(s: &str) -> Option<String> {
    let (local, domain) = s.rsplit_once('@')?;
    let first = local.chars().next()?;
    if domain.is_empty() || local.contains('@') || s.chars().any(char::is_whitespace) {
        return None;
    }
    Some(format!("{first}***@{domain}"))
}

fn is_phone_char(c: char) -> bool {
    c.is_ascii_digit() || matches!(c, '+' | '-' | '.' | '(' | ')' | '/' | ' ')
}

/// Only phone characters, at least `min_digits` digits, and not a date (`2024-05-01`).
fn is_phone(s: &str, min_digits: usize) -> bool {
    s.chars().all(is_phone_char)
        && s.chars().filter(char::is_ascii_digit).count() >= min_digits
        && !is_date(s)
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

fn mask_phone(s: &str) -> String {
    let digits: Vec<char> = s.chars().filter(char::is_ascii_digit).collect();
    let last: String = digits[digits.len().saturating_sub(2)..].iter().collect();
    format!("***{last}")
}

/// An id (`003Sm0000000001AAA`, `per_01HZX5`): letters and digits (with `_` or `-`), both
/// present, at least 8 characters. A record's ids are kept in messages.
fn is_id(s: &str) -> bool {
    s.len() >= 8
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && s.chars().any(|c| c.is_ascii_digit())
        && s.chars().any(|c| c.is_ascii_alphabetic())
}

/// The text values (at least 3 characters, ids left out) inside `values`, longest first,
/// for [`scrub_known`].
pub fn known_values<'v>(values: impl IntoIterator<Item = &'v Value>) -> Vec<String> {
    texts(values)
}

/// `text` with every one of the `known` values masked, and every email- or phone-shaped
/// word: for messages prmsync writes itself, which quote names and lists of the mapping.
pub fn scrub_known(text: &str, known: &[String]) -> String {
    let mut out = text.to_string();
    for s in known {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), &mask_text(s));
        }
    }
    mask_shapes(&out)
}

/// The text values (at least 3 characters, ids left out) inside `values`, longest first.
fn texts<'v>(values: impl IntoIterator<Item = &'v Value>) -> Vec<String> {
    fn collect(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) if s.trim().chars().count() >= 3 && !is_id(s.trim()) => {
                out.push(s.trim().to_string())
            }
            Value::Array(items) => items.iter().for_each(|i| collect(i, out)),
            Value::Object(fields) => fields.values().for_each(|i| collect(i, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for v in values {
        collect(v, &mut out);
    }
    out.sort_by_key(|s| std::cmp::Reverse(s.chars().count()));
    out.dedup();
    out
}

/// Phrases after which Salesforce and the PRM echo the value they refused (to the end of
/// the message or to ` (`).
const ECHO_PHRASES: &[&str] = &[
    "data value too large: ",
    "invalid email address: ",
    "bad value for restricted picklist field: ",
    "value not of required type: ",
    "invalid phone number: ",
    "value: ",
];

/// A remote message with the values it may echo masked (see the module documentation).
pub fn scrub_message(message: &str, sent: &[String]) -> String {
    let out = mask_after_phrases(&scrub_known(message, sent));
    mask_shapes(&mask_quoted(&out))
}

fn mask_after_phrases(message: &str) -> String {
    let mut out = message.to_string();
    for phrase in ECHO_PHRASES {
        let mut from = 0;
        while let Some(i) = out[from..].to_ascii_lowercase().find(phrase) {
            let start = from + i + phrase.len();
            let end = out[start..].find(" (").map_or(out.len(), |e| start + e);
            let value = &out[start..end];
            let masked = if value.contains("***") {
                value.to_string()
            } else {
                mask_text(value)
            };
            out.replace_range(start..end, &masked);
            from = start + masked.len();
        }
    }
    out
}

/// Text between quotes that open after a space or the start and close before a space,
/// punctuation or the end: `'zed@x' is not ...` → `'z***@x' is not ...`.
fn mask_quoted(message: &str) -> String {
    let chars: Vec<char> = message.chars().collect();
    let mut out = String::with_capacity(message.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let opens = matches!(c, '\'' | '"')
            && (i == 0 || matches!(chars[i - 1], ' ' | '(' | ':' | '=' | '[' | ','));
        if opens {
            let close = (i + 1..chars.len()).find(|&j| {
                chars[j] == c
                    && chars
                        .get(j + 1)
                        .is_none_or(|n| !n.is_alphanumeric() && *n != '\'' && *n != '"')
            });
            if let Some(j) = close {
                let inner: String = chars[i + 1..j].iter().collect();
                out.push(c);
                if inner.contains("***") {
                    out.push_str(&inner);
                } else {
                    out.push_str(&mask_text(&inner));
                }
                out.push(c);
                i = j + 1;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Email-shaped words and phone-shaped runs (7 digits or more, standing on their own).
fn mask_shapes(message: &str) -> String {
    let chars: Vec<char> = message.chars().collect();
    let mut out = String::with_capacity(message.len());
    let mut i = 0;
    let word_char = |c: char| !c.is_whitespace() && !"'\"<>(),;[]{}`".contains(c);
    while i < chars.len() {
        let boundary = i == 0 || !chars[i - 1].is_alphanumeric();
        // An email: a word holding an `@`.
        if boundary && word_char(chars[i]) {
            let end = (i..chars.len())
                .find(|&j| !word_char(chars[j]))
                .unwrap_or(chars.len());
            let word: String = chars[i..end].iter().collect();
            let word = word.trim_end_matches(['.', ':']);
            if word.contains("***") {
                // Masked already.
                out.push_str(word);
                i += word.chars().count().max(1);
                continue;
            }
            if word.contains('@') {
                if let Some(masked) = mask_email(word) {
                    out.push_str(&masked);
                    i += word.chars().count();
                    continue;
                }
            }
        }
        // A phone: a run of phone characters with 7 digits or more.
        if boundary && (chars[i].is_ascii_digit() || chars[i] == '+' || chars[i] == '(') {
            let end = (i..chars.len())
                .find(|&j| !is_phone_char(chars[j]))
                .unwrap_or(chars.len());
            let run: String = chars[i..end].iter().collect();
            let run = run.trim_end_matches([' ', '.', '-', '(', '/']);
            let after = chars.get(i + run.chars().count());
            let ends_word = after.is_none_or(|c| !c.is_alphanumeric());
            let preceded_by_mask = out.ends_with("***");
            if ends_word && !preceded_by_mask && is_phone(run, 7) {
                out.push_str(&mask_phone(run));
                i += run.chars().count();
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_email_keeps_its_first_character_and_domain() {
        assert_eq!(
            mask_text("zed.secretperson@pii-seed.example"),
            "z***@pii-seed.example"
        );
        assert_eq!(mask_text("j@example.com"), "j***@example.com");
    }

    #[test]
    fn a_phone_keeps_its_last_two_digits() {
        assert_eq!(mask_text("+1 555 0199 4321"), "***21");
        assert_eq!(mask_text("(030) 1234-5612"), "***12");
    }

    #[test]
    fn other_text_keeps_its_first_character() {
        assert_eq!(mask_text("Zebulon"), "Z***");
        assert_eq!(mask_text("Active Partner"), "A***");
        assert_eq!(mask_text("2024-05-01"), "2***");
        assert_eq!(mask_text(""), "");
        assert_eq!(mask_text("  "), "");
    }

    #[test]
    fn numbers_flags_and_null_are_shown_and_objects_keep_their_field_names() {
        let v = json!({"Email": "ann@x.example", "Amount": 1200.5, "Active": true,
                       "Phone": null, "Tags": ["Gold", 3]});
        assert_eq!(
            mask_value(&v),
            json!({"Email": "a***@x.example", "Amount": 1200.5, "Active": true,
                   "Phone": null, "Tags": ["G***", 3]})
        );
    }

    #[test]
    fn the_setting_shows_values_in_full() {
        let v = json!("Zebulon");
        assert_eq!(LogValues::Full.value(&v), v);
        assert_eq!(LogValues::Full.show(&v), "\"Zebulon\"");
        assert_eq!(LogValues::Masked.show(&v), "\"Z***\"");
        assert_eq!(LogValues::Full.text("Zebulon"), "Zebulon");
        assert_eq!(LogValues::Masked.text("Zebulon"), "Z***");
        let m = "Name: data value too large: Zebulon (max length=3)";
        assert_eq!(LogValues::Full.remote(m, [&v]), m);
    }

    #[test]
    fn a_remote_message_keeps_codes_and_field_names_and_masks_echoed_values() {
        let sent = json!({"LastName": "Zebulon Quux", "Email": "zed@pii-seed.example"});
        let scrub = |m: &str| LogValues::Masked.remote(m, [&sent]);
        assert_eq!(
            scrub("Last Name: data value too large: Zebulon Quux (max length=5)"),
            "Last Name: data value too large: Z*** (max length=5)"
        );
        assert_eq!(
            scrub("Email: invalid email address: someone@else.example"),
            "Email: invalid email address: s***@else.example"
        );
        assert_eq!(
            scrub("email: 'not-an-email' is not an email address"),
            "email: 'n***' is not an email address"
        );
        assert_eq!(
            scrub("duplicate value found: Email__c duplicates value on record with id: 003000000000001AAA"),
            "duplicate value found: Email__c duplicates value on record with id: 003000000000001AAA"
        );
        assert_eq!(
            scrub("the owner Zebulon Quux cannot be reached at +1 555 0199 4321 or zed@pii-seed.example."),
            "the owner Z*** cannot be reached at ***21 or z***@pii-seed.example."
        );
    }

    #[test]
    fn the_ids_a_record_carries_are_kept_in_a_remote_message() {
        let sent = json!({"AccountId": "001Sm0000000007AAA", "LastName": "Quux"});
        assert_eq!(
            LogValues::Masked.remote("Quux of account 001Sm0000000007AAA is locked", [&sent]),
            "Q*** of account 001Sm0000000007AAA is locked"
        );
    }

    #[test]
    fn ids_dates_and_counts_in_a_remote_message_are_kept() {
        let m = "record 003000000000001AAA changed at 2026-12-06T19:56:16Z; 12 of 80 fields, \
                 max length=80, version 1234";
        assert_eq!(scrub_message(m, &[]), m);
    }

    #[test]
    fn a_quoted_apostrophe_inside_a_word_is_not_a_quote() {
        let m = "the PRM can't read it: field 'name' won't do";
        assert_eq!(
            scrub_message(m, &[]),
            "the PRM can't read it: field 'n***' won't do"
        );
    }
}
