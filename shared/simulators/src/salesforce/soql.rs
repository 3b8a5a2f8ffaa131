//! SOQL subset: lexer, parser, validation against the schema and evaluation on records.
//!
//! `SELECT f1, f2 | COUNT() FROM Obj [WHERE cond] [ORDER BY f [ASC|DESC] [NULLS FIRST|LAST], ...]
//! [LIMIT n] [OFFSET n]` with `=, !=, <>, <, <=, >, >=, IN, NOT IN, LIKE, AND, OR, NOT`.

use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Map, Value};

use super::error::ApiError;
use super::schema::{FieldDef, FieldType, ObjectDef, Schema};
use super::store::id_key;
use super::time::{parse_date, parse_datetime};

/// A SOQL error; converts to a 400 REST error.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SoqlError {
    #[error("{0}")]
    Malformed(String),
    #[error("No such column '{field}' on entity '{object}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.")]
    NoSuchColumn { field: String, object: String },
    #[error("sObject type '{0}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.")]
    NoSuchObject(String),
    #[error("{0}")]
    InvalidFilter(String),
}

impl From<SoqlError> for ApiError {
    fn from(e: SoqlError) -> Self {
        let code = match &e {
            SoqlError::Malformed(_) => "MALFORMED_QUERY",
            SoqlError::NoSuchColumn { .. } | SoqlError::InvalidFilter(_) => "INVALID_FIELD",
            SoqlError::NoSuchObject(_) => "INVALID_TYPE",
        };
        ApiError::new(400, code, e.to_string())
    }
}

type Result<T> = std::result::Result<T, SoqlError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A literal value in a condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    Str(String),
    Num(f64),
    DateTime(DateTime<Utc>),
    Date(NaiveDate),
}

/// One element of a LIKE pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum LikeTok {
    Char(char),
    /// `_`
    One,
    /// `%`
    Many,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
    Cmp {
        field: String,
        op: CmpOp,
        value: Literal,
    },
    In {
        field: String,
        negated: bool,
        values: Vec<Literal>,
    },
    Like {
        field: String,
        pattern: Vec<LikeTok>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Select {
    Count,
    Fields(Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrderItem {
    pub field: String,
    pub descending: bool,
    pub nulls_last: bool,
}

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub select: Select,
    pub from: String,
    pub filter: Option<Cond>,
    pub order: Vec<OrderItem>,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
}

// ---------------------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    /// Characters with a flag telling whether they were backslash-escaped.
    Str(Vec<(char, bool)>),
    Num(f64),
    DateTime(DateTime<Utc>),
    Date(NaiveDate),
    LParen,
    RParen,
    Comma,
    Op(CmpOp),
}

fn lex(input: &str) -> Result<Vec<Tok>> {
    let chars: Vec<char> = input.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                toks.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                toks.push(Tok::RParen);
                i += 1;
            }
            ',' => {
                toks.push(Tok::Comma);
                i += 1;
            }
            '=' => {
                toks.push(Tok::Op(CmpOp::Eq));
                i += 1;
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                toks.push(Tok::Op(CmpOp::Ne));
                i += 2;
            }
            '<' => match chars.get(i + 1) {
                Some('=') => {
                    toks.push(Tok::Op(CmpOp::Le));
                    i += 2;
                }
                Some('>') => {
                    toks.push(Tok::Op(CmpOp::Ne));
                    i += 2;
                }
                _ => {
                    toks.push(Tok::Op(CmpOp::Lt));
                    i += 1;
                }
            },
            '>' => {
                if chars.get(i + 1) == Some(&'=') {
                    toks.push(Tok::Op(CmpOp::Ge));
                    i += 2;
                } else {
                    toks.push(Tok::Op(CmpOp::Gt));
                    i += 1;
                }
            }
            '\'' => {
                let (s, next) = lex_string(&chars, i + 1)?;
                toks.push(Tok::Str(s));
                i = next;
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                let start = i;
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric()
                        || matches!(chars[i], ':' | '.' | '+' | '-'))
                {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                toks.push(classify_number(&text)?);
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.')
                {
                    i += 1;
                }
                toks.push(Tok::Ident(chars[start..i].iter().collect()));
            }
            other => return Err(SoqlError::Malformed(format!("unexpected token: '{other}'"))),
        }
    }
    Ok(toks)
}

fn lex_string(chars: &[char], mut i: usize) -> Result<(Vec<(char, bool)>, usize)> {
    let mut out = Vec::new();
    while i < chars.len() {
        match chars[i] {
            '\'' => return Ok((out, i + 1)),
            '\\' => {
                let Some(&e) = chars.get(i + 1) else { break };
                let decoded = match e {
                    '\'' => '\'',
                    '"' => '"',
                    '\\' => '\\',
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    '_' => '_',
                    '%' => '%',
                    other => {
                        return Err(SoqlError::Malformed(format!(
                            "Invalid string literal: illegal escape sequence '\\{other}'"
                        )))
                    }
                };
                out.push((decoded, true));
                i += 2;
            }
            c => {
                out.push((c, false));
                i += 1;
            }
        }
    }
    Err(SoqlError::Malformed(
        "unterminated string literal".to_string(),
    ))
}

fn classify_number(text: &str) -> Result<Tok> {
    let bytes = text.as_bytes();
    let looks_like_date = bytes.len() >= 10 && bytes[4] == b'-' && bytes[7] == b'-';
    if looks_like_date {
        if text.len() == 10 {
            return parse_date(text)
                .map(Tok::Date)
                .ok_or_else(|| SoqlError::Malformed(format!("invalid date: {text}")));
        }
        return parse_datetime(text)
            .map(Tok::DateTime)
            .ok_or_else(|| SoqlError::Malformed(format!("invalid date/time: {text}")));
    }
    text.parse::<f64>()
        .map(Tok::Num)
        .map_err(|_| SoqlError::Malformed(format!("invalid number: {text}")))
}

// ---------------------------------------------------------------------------------------
// Parser

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Ident(s)) if s.eq_ignore_ascii_case(kw))
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.is_kw(kw) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_kw(&mut self, kw: &str) -> Result<()> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("expecting '{kw}'")))
        }
    }

    fn expect(&mut self, tok: Tok) -> Result<()> {
        if self.peek() == Some(&tok) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected(&format!("expecting {tok:?}")))
        }
    }

    fn unexpected(&self, what: &str) -> SoqlError {
        match self.peek() {
            Some(t) => SoqlError::Malformed(format!("unexpected token: {t:?}, {what}")),
            None => SoqlError::Malformed(format!("unexpected end of query, {what}")),
        }
    }

    fn ident(&mut self) -> Result<String> {
        match self.next() {
            Some(Tok::Ident(s)) => Ok(s),
            _ => {
                self.pos -= 1;
                Err(self.unexpected("expecting a field or object name"))
            }
        }
    }

    fn query(&mut self) -> Result<Query> {
        self.expect_kw("SELECT")?;
        let select = if self.is_kw("COUNT") && self.toks.get(self.pos + 1) == Some(&Tok::LParen) {
            self.pos += 1;
            self.expect(Tok::LParen)?;
            self.expect(Tok::RParen)?;
            Select::Count
        } else {
            let mut fields = vec![self.ident()?];
            while self.peek() == Some(&Tok::Comma) {
                self.pos += 1;
                fields.push(self.ident()?);
            }
            Select::Fields(fields)
        };
        self.expect_kw("FROM")?;
        let from = self.ident()?;
        let filter = if self.eat_kw("WHERE") {
            Some(self.condition()?)
        } else {
            None
        };
        let mut order = Vec::new();
        if self.eat_kw("ORDER") {
            self.expect_kw("BY")?;
            loop {
                let field = self.ident()?;
                let descending = if self.eat_kw("DESC") {
                    true
                } else {
                    self.eat_kw("ASC");
                    false
                };
                let mut nulls_last = descending;
                if self.eat_kw("NULLS") {
                    if self.eat_kw("LAST") {
                        nulls_last = true;
                    } else {
                        self.expect_kw("FIRST")?;
                        nulls_last = false;
                    }
                }
                order.push(OrderItem {
                    field,
                    descending,
                    nulls_last,
                });
                if self.peek() == Some(&Tok::Comma) {
                    self.pos += 1;
                } else {
                    break;
                }
            }
        }
        let limit = if self.eat_kw("LIMIT") {
            Some(self.count()?)
        } else {
            None
        };
        let offset = if self.eat_kw("OFFSET") {
            Some(self.count()?)
        } else {
            None
        };
        if self.peek().is_some() {
            return Err(self.unexpected("expecting end of query"));
        }
        Ok(Query {
            select,
            from,
            filter,
            order,
            limit,
            offset,
        })
    }

    fn count(&mut self) -> Result<usize> {
        match self.next() {
            Some(Tok::Num(n)) if n >= 0.0 && n.fract() == 0.0 => Ok(n as usize),
            _ => {
                self.pos -= 1;
                Err(self.unexpected("expecting a non-negative integer"))
            }
        }
    }

    /// A sequence of terms joined by only AND or only OR.
    fn condition(&mut self) -> Result<Cond> {
        let mut items = vec![self.unary()?];
        let mut conj: Option<bool> = None; // Some(true) = AND
        loop {
            let is_and = if self.is_kw("AND") {
                true
            } else if self.is_kw("OR") {
                false
            } else {
                break;
            };
            if conj.is_some_and(|c| c != is_and) {
                return Err(SoqlError::Malformed(
                    "unexpected token: mixing AND and OR without parentheses".to_string(),
                ));
            }
            conj = Some(is_and);
            self.pos += 1;
            items.push(self.unary()?);
        }
        Ok(match conj {
            None => items.pop().unwrap_or(Cond::And(Vec::new())),
            Some(true) => Cond::And(items),
            Some(false) => Cond::Or(items),
        })
    }

    fn unary(&mut self) -> Result<Cond> {
        if self.eat_kw("NOT") {
            return Ok(Cond::Not(Box::new(self.unary()?)));
        }
        if self.peek() == Some(&Tok::LParen) {
            self.pos += 1;
            let inner = self.condition()?;
            self.expect(Tok::RParen)?;
            return Ok(inner);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Cond> {
        let field = self.ident()?;
        if let Some(Tok::Op(op)) = self.peek().cloned() {
            self.pos += 1;
            let value = self.literal()?;
            return Ok(Cond::Cmp { field, op, value });
        }
        if self.eat_kw("LIKE") {
            return match self.next() {
                Some(Tok::Str(chars)) => Ok(Cond::Like {
                    field,
                    pattern: like_pattern(&chars),
                }),
                _ => {
                    self.pos -= 1;
                    Err(self.unexpected("LIKE needs a quoted string"))
                }
            };
        }
        let negated = self.eat_kw("NOT");
        if self.eat_kw("IN") {
            self.expect(Tok::LParen)?;
            let mut values = vec![self.literal()?];
            while self.peek() == Some(&Tok::Comma) {
                self.pos += 1;
                values.push(self.literal()?);
            }
            self.expect(Tok::RParen)?;
            return Ok(Cond::In {
                field,
                negated,
                values,
            });
        }
        Err(self.unexpected("expecting a comparison operator"))
    }

    fn literal(&mut self) -> Result<Literal> {
        let lit = match self.next() {
            Some(Tok::Str(chars)) => Literal::Str(chars.into_iter().map(|(c, _)| c).collect()),
            Some(Tok::Num(n)) => Literal::Num(n),
            Some(Tok::DateTime(t)) => Literal::DateTime(t),
            Some(Tok::Date(d)) => Literal::Date(d),
            Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("null") => Literal::Null,
            Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("true") => Literal::Bool(true),
            Some(Tok::Ident(s)) if s.eq_ignore_ascii_case("false") => Literal::Bool(false),
            _ => {
                self.pos -= 1;
                return Err(self.unexpected("expecting a value"));
            }
        };
        Ok(lit)
    }
}

fn like_pattern(chars: &[(char, bool)]) -> Vec<LikeTok> {
    chars
        .iter()
        .map(|&(c, escaped)| match (c, escaped) {
            ('%', false) => LikeTok::Many,
            ('_', false) => LikeTok::One,
            (c, _) => LikeTok::Char(c),
        })
        .collect()
}

/// Parses a query without looking at the schema.
pub fn parse(soql: &str) -> Result<Query> {
    let toks = lex(soql)?;
    Parser { toks, pos: 0 }.query()
}

// ---------------------------------------------------------------------------------------
// Validation

impl Query {
    /// Checks object, fields and literal types; returns the object definition.
    pub fn validate<'a>(&self, schema: &'a Schema) -> Result<&'a ObjectDef> {
        let obj = schema
            .object(&self.from)
            .ok_or_else(|| SoqlError::NoSuchObject(self.from.clone()))?;
        if let Select::Fields(fields) = &self.select {
            for f in fields {
                field_def(obj, f)?;
            }
        }
        for item in &self.order {
            field_def(obj, &item.field)?;
        }
        if let Some(cond) = &self.filter {
            validate_cond(obj, cond)?;
        }
        Ok(obj)
    }
}

fn field_def<'a>(obj: &'a ObjectDef, name: &str) -> Result<&'a FieldDef> {
    obj.field(name).ok_or_else(|| SoqlError::NoSuchColumn {
        field: name.to_string(),
        object: obj.name.clone(),
    })
}

fn validate_cond(obj: &ObjectDef, cond: &Cond) -> Result<()> {
    match cond {
        Cond::And(items) | Cond::Or(items) => items.iter().try_for_each(|c| validate_cond(obj, c)),
        Cond::Not(inner) => validate_cond(obj, inner),
        Cond::Cmp { field, value, .. } => check_literal(field_def(obj, field)?, value),
        Cond::In { field, values, .. } => {
            let def = field_def(obj, field)?;
            values.iter().try_for_each(|v| check_literal(def, v))
        }
        Cond::Like { field, .. } => {
            let def = field_def(obj, field)?;
            if def.field_type.is_text() {
                Ok(())
            } else {
                Err(SoqlError::InvalidFilter(format!(
                    "invalid operator on {} field: LIKE {}",
                    def.field_type.api_name(),
                    def.name
                )))
            }
        }
    }
}

fn check_literal(def: &FieldDef, lit: &Literal) -> Result<()> {
    let t = def.field_type;
    let ok = match lit {
        Literal::Null => true,
        Literal::Bool(_) => t == FieldType::Boolean,
        Literal::Str(_) => t.is_text(),
        Literal::Num(_) => t.is_number(),
        Literal::DateTime(_) => t == FieldType::Datetime,
        Literal::Date(_) => t == FieldType::Date,
    };
    if ok {
        return Ok(());
    }
    let quoting = if t.is_text() {
        "should be enclosed in quotes"
    } else {
        "should not be enclosed in quotes"
    };
    Err(SoqlError::InvalidFilter(format!(
        "value of filter criterion for field '{}' must be of type {} and {quoting}",
        def.name,
        t.api_name()
    )))
}

// ---------------------------------------------------------------------------------------
// Evaluation

/// Normalised text for comparisons: lower case; Ids on their 15-character form, whose case
/// matters ([`id_key`]).
fn norm_text(t: FieldType, s: &str) -> String {
    if t.is_id() {
        return id_key(s);
    }
    s.to_lowercase()
}

/// Compares a stored value with a literal of a checked type. `None` when either is null or
/// they cannot be compared.
fn compare(t: FieldType, v: &Value, lit: &Literal) -> Option<Ordering> {
    match (v, lit) {
        (Value::String(a), Literal::Str(b)) => Some(norm_text(t, a).cmp(&norm_text(t, b))),
        (Value::Number(a), Literal::Num(b)) => a.as_f64()?.partial_cmp(b),
        (Value::Bool(a), Literal::Bool(b)) => Some(a.cmp(b)),
        (Value::String(a), Literal::DateTime(b)) => Some(parse_datetime(a)?.cmp(b)),
        (Value::String(a), Literal::Date(b)) => Some(parse_date(a)?.cmp(b)),
        _ => None,
    }
}

fn is_null(t: FieldType, v: &Value) -> bool {
    // On a checkbox, `= null` means false.
    v.is_null() || (t == FieldType::Boolean && v == &Value::Bool(false))
}

fn eval(obj: &ObjectDef, cond: &Cond, rec: &Map<String, Value>) -> bool {
    let value_of = |field: &str| -> (FieldType, &Value) {
        let def = obj.field(field);
        let t = def.map(|d| d.field_type).unwrap_or(FieldType::String);
        let name = def.map(|d| d.name.as_str()).unwrap_or(field);
        (t, rec.get(name).unwrap_or(&Value::Null))
    };
    match cond {
        Cond::And(items) => items.iter().all(|c| eval(obj, c, rec)),
        Cond::Or(items) => items.iter().any(|c| eval(obj, c, rec)),
        Cond::Not(inner) => !eval(obj, inner, rec),
        Cond::Cmp { field, op, value } => {
            let (t, v) = value_of(field);
            if *value == Literal::Null {
                return match op {
                    CmpOp::Eq => is_null(t, v),
                    CmpOp::Ne => !is_null(t, v),
                    _ => false,
                };
            }
            match compare(t, v, value) {
                Some(ord) => match op {
                    CmpOp::Eq => ord == Ordering::Equal,
                    CmpOp::Ne => ord != Ordering::Equal,
                    CmpOp::Lt => ord == Ordering::Less,
                    CmpOp::Le => ord != Ordering::Greater,
                    CmpOp::Gt => ord == Ordering::Greater,
                    CmpOp::Ge => ord != Ordering::Less,
                },
                None => *op == CmpOp::Ne,
            }
        }
        Cond::In {
            field,
            negated,
            values,
        } => {
            let (t, v) = value_of(field);
            let found = values.iter().any(|lit| match lit {
                Literal::Null => is_null(t, v),
                lit => compare(t, v, lit) == Some(Ordering::Equal),
            });
            found != *negated
        }
        Cond::Like { field, pattern } => {
            let (_, v) = value_of(field);
            match v {
                Value::String(s) => {
                    let text: Vec<char> = s.to_lowercase().chars().collect();
                    like_match(pattern, &text)
                }
                _ => false,
            }
        }
    }
}

fn like_match(pattern: &[LikeTok], text: &[char]) -> bool {
    // Dynamic programming over (pattern position, text position).
    let mut reachable = vec![false; text.len() + 1];
    reachable[0] = true;
    for tok in pattern {
        let mut next = vec![false; text.len() + 1];
        match tok {
            LikeTok::Many => {
                let mut seen = false;
                for i in 0..=text.len() {
                    seen |= reachable[i];
                    next[i] = seen;
                }
            }
            LikeTok::One => {
                next[1..].copy_from_slice(&reachable[..text.len()]);
            }
            LikeTok::Char(c) => {
                let lc: Vec<char> = c.to_lowercase().collect();
                for i in 0..text.len() {
                    if reachable[i] && lc.len() == 1 && text[i] == lc[0] {
                        next[i + 1] = true;
                    }
                }
            }
        }
        reachable = next;
    }
    reachable[text.len()]
}

/// A row's sort key: one [`SortKey`] per `ORDER BY` item, `None` for a null.
type RowKey = Vec<Option<SortKey>>;

/// What a non-null stored value sorts by in `ORDER BY`: a datetime as its instant, a text
/// folded as [`norm_text`] folds it, numbers and booleans as themselves. Values of
/// different kinds sort as equal.
#[derive(Debug)]
enum SortKey {
    Time(chrono::DateTime<chrono::Utc>),
    Text(String),
    Number(f64),
    Bool(bool),
    Other,
}

impl SortKey {
    /// `None` for a null.
    fn of(t: FieldType, v: &Value) -> Option<Self> {
        Some(match v {
            Value::Null => return None,
            Value::String(s) => match (t == FieldType::Datetime)
                .then(|| parse_datetime(s))
                .flatten()
            {
                Some(time) => SortKey::Time(time),
                None => SortKey::Text(norm_text(t, s)),
            },
            Value::Number(n) => n.as_f64().map_or(SortKey::Other, SortKey::Number),
            Value::Bool(b) => SortKey::Bool(*b),
            _ => SortKey::Other,
        })
    }

    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (SortKey::Time(a), SortKey::Time(b)) => a.cmp(b),
            (SortKey::Text(a), SortKey::Text(b)) => a.cmp(b),
            (SortKey::Number(a), SortKey::Number(b)) => a.partial_cmp(b).unwrap_or(Ordering::Equal),
            (SortKey::Bool(a), SortKey::Bool(b)) => a.cmp(b),
            _ => Ordering::Equal,
        }
    }
}

/// Filters, sorts, offsets and limits `rows` (already restricted to the queried object).
pub fn execute<'r>(
    query: &Query,
    obj: &ObjectDef,
    rows: impl Iterator<Item = &'r Map<String, Value>>,
) -> Vec<&'r Map<String, Value>> {
    let mut out: Vec<&Map<String, Value>> = rows
        .filter(|r| query.filter.as_ref().is_none_or(|c| eval(obj, c, r)))
        .collect();
    if !query.order.is_empty() {
        // Each row's sort key is read once (a datetime parsed, a text folded), not at
        // every comparison.
        let key = |r: &Map<String, Value>| -> RowKey {
            query
                .order
                .iter()
                .map(|item| {
                    let def = obj.field(&item.field)?;
                    SortKey::of(def.field_type, r.get(&def.name)?)
                })
                .collect()
        };
        let mut keyed: Vec<(RowKey, &Map<String, Value>)> =
            out.into_iter().map(|r| (key(r), r)).collect();
        keyed.sort_by(|(a, _), (b, _)| {
            for ((item, ka), kb) in query.order.iter().zip(a).zip(b) {
                if obj.field(&item.field).is_none() {
                    continue;
                }
                let ord = match (ka, kb) {
                    (None, None) => Ordering::Equal,
                    (None, Some(_)) => {
                        if item.nulls_last {
                            Ordering::Greater
                        } else {
                            Ordering::Less
                        }
                    }
                    (Some(_), None) => {
                        if item.nulls_last {
                            Ordering::Less
                        } else {
                            Ordering::Greater
                        }
                    }
                    (Some(x), Some(y)) => {
                        let o = x.cmp(y);
                        if item.descending {
                            o.reverse()
                        } else {
                            o
                        }
                    }
                };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            Ordering::Equal
        });
        out = keyed.into_iter().map(|(_, r)| r).collect();
    }
    let offset = query.offset.unwrap_or(0);
    let limit = query.limit.unwrap_or(usize::MAX);
    out.into_iter().skip(offset).take(limit).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Schema {
        Schema::default_org()
    }

    fn rows() -> Vec<Map<String, Value>> {
        let mk = |v: Value| v.as_object().cloned().unwrap();
        vec![
            mk(
                json!({"Id": "001Sm0000000001IAA", "Name": "Acme", "PRM_Sync__c": true,
                "SystemModstamp": "2026-11-22T10:00:00.000+0000", "PRM_Id__c": "org-1"}),
            ),
            mk(
                json!({"Id": "001Sm0000000002IAA", "Name": "O'Brien & Co", "PRM_Sync__c": false,
                "SystemModstamp": "2026-11-22T11:00:00.000+0000", "PRM_Id__c": null}),
            ),
            mk(
                json!({"Id": "001Sm0000000003IAA", "Name": "acme widgets", "PRM_Sync__c": true,
                "SystemModstamp": "2026-11-22T12:00:00.000+0000", "PRM_Id__c": "ORG-3",
                "Industry": "Technology"}),
            ),
        ]
    }

    fn run(soql: &str) -> std::result::Result<Vec<String>, SoqlError> {
        let s = schema();
        let q = parse(soql)?;
        let obj = q.validate(&s)?;
        let rows = rows();
        Ok(execute(&q, obj, rows.iter())
            .into_iter()
            .map(|r| r["Name"].as_str().unwrap().to_string())
            .collect())
    }

    #[test]
    fn string_escapes() {
        assert_eq!(
            run(r"SELECT Id FROM Account WHERE Name = 'O\'Brien & Co'").unwrap(),
            vec!["O'Brien & Co"]
        );
        let q = parse(r#"SELECT Id FROM Account WHERE Name = 'a\\b\n\t\"\_\%'"#).unwrap();
        match q.filter.unwrap() {
            Cond::Cmp { value, .. } => assert_eq!(value, Literal::Str("a\\b\n\t\"_%".into())),
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            parse(r"SELECT Id FROM Account WHERE Name = 'a\q'"),
            Err(SoqlError::Malformed(_))
        ));
    }

    #[test]
    fn equality_ignores_case() {
        assert_eq!(
            run("SELECT Id FROM Account WHERE Name = 'ACME'").unwrap(),
            vec!["Acme"]
        );
        assert_eq!(
            run("SELECT Id FROM Account WHERE PRM_Id__c = 'org-3'").unwrap(),
            vec!["acme widgets"]
        );
    }

    #[test]
    fn mixing_and_or_is_malformed() {
        let err = run("SELECT Id FROM Account WHERE Name = 'a' AND Name = 'b' OR Name = 'c'")
            .unwrap_err();
        assert!(matches!(err, SoqlError::Malformed(_)));
        assert_eq!(ApiError::from(err).code, "MALFORMED_QUERY");
        assert_eq!(
            run(
                "SELECT Id FROM Account WHERE (Name = 'Acme' OR Name = 'x') AND PRM_Sync__c = true"
            )
            .unwrap(),
            vec!["Acme"]
        );
        assert_eq!(
            run("SELECT Id FROM Account WHERE NOT Name = 'Acme' AND PRM_Sync__c = true").unwrap(),
            vec!["acme widgets"]
        );
    }

    #[test]
    fn in_and_not_in() {
        assert_eq!(
            run("SELECT Id FROM Account WHERE PRM_Id__c IN ('ORG-1', 'org-3') ORDER BY Name")
                .unwrap(),
            vec!["Acme", "acme widgets"]
        );
        assert_eq!(
            run("SELECT Id FROM Account WHERE Id NOT IN ('001Sm0000000001', '001Sm0000000003IAA')")
                .unwrap(),
            vec!["O'Brien & Co"]
        );
    }

    #[test]
    fn like_wildcards() {
        assert_eq!(
            run("SELECT Id FROM Account WHERE Name LIKE 'ACME%'").unwrap(),
            vec!["Acme", "acme widgets"]
        );
        assert_eq!(
            run("SELECT Id FROM Account WHERE Name LIKE '_cme'").unwrap(),
            vec!["Acme"]
        );
        assert!(run(r"SELECT Id FROM Account WHERE Name LIKE 'Acm\%'")
            .unwrap()
            .is_empty());
    }

    #[test]
    fn datetime_compare_as_instants() {
        assert_eq!(
            run("SELECT Id FROM Account WHERE SystemModstamp > 2026-11-22T10:00:00Z ORDER BY SystemModstamp DESC")
                .unwrap(),
            vec!["acme widgets", "O'Brien & Co"]
        );
        assert_eq!(
            run("SELECT Id FROM Account WHERE SystemModstamp >= 2026-11-22T12:00:00+01:00")
                .unwrap(),
            vec!["O'Brien & Co", "acme widgets"]
        );
        // Quoted datetimes are rejected, like Salesforce does.
        let err = run("SELECT Id FROM Account WHERE SystemModstamp > '2026-11-22T10:00:00Z'")
            .unwrap_err();
        assert_eq!(ApiError::from(err).code, "INVALID_FIELD");
    }

    #[test]
    fn null_checks() {
        assert_eq!(
            run("SELECT Id FROM Account WHERE PRM_Sync__c = null").unwrap(),
            vec!["O'Brien & Co"]
        );
        assert_eq!(
            run("SELECT Id FROM Account WHERE PRM_Id__c = null").unwrap(),
            vec!["O'Brien & Co"]
        );
        assert_eq!(
            run("SELECT Id FROM Account WHERE Industry != null").unwrap(),
            vec!["acme widgets"]
        );
    }

    #[test]
    fn order_limit_offset_and_count() {
        assert_eq!(
            run("SELECT Id FROM Account ORDER BY PRM_Id__c NULLS LAST, Name LIMIT 2").unwrap(),
            vec!["Acme", "acme widgets"]
        );
        assert_eq!(
            run("SELECT Id FROM Account ORDER BY Name DESC LIMIT 1 OFFSET 1").unwrap(),
            vec!["acme widgets"]
        );
        assert_eq!(
            parse("select count() from Account").unwrap().select,
            Select::Count
        );
    }

    #[test]
    fn unknown_names() {
        let err = run("SELECT Foo__c FROM Account").unwrap_err();
        let api = ApiError::from(err);
        assert_eq!(api.code, "INVALID_FIELD");
        assert!(api
            .message
            .contains("No such column 'Foo__c' on entity 'Account'"));
        let api = ApiError::from(run("SELECT Id FROM Nope").unwrap_err());
        assert_eq!(api.code, "INVALID_TYPE");
        assert_eq!(
            ApiError::from(run("SELECT Id FROM Account WHERE").unwrap_err()).code,
            "MALFORMED_QUERY"
        );
    }
}
