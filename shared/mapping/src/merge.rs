//! The three-way field merge (sync rule 3 in `docs/sync-rules.md`) and the conflict rules.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::config::{Direction, Side, WinnerRule};

/// What one side holds for a field this run. `None` means the record was not read this run
/// (it did not change since the last one), so it still holds the snapshot value.
#[derive(Debug, Clone, Copy)]
pub struct MergeInput<'a> {
    pub snapshot: Option<&'a Value>,
    pub prm: Option<&'a Value>,
    pub crm: Option<&'a Value>,
}

/// When each side's record last changed, for the `newest` rule.
#[derive(Debug, Clone, Copy, Default)]
pub struct Recency {
    pub prm: Option<DateTime<Utc>>,
    pub crm: Option<DateTime<Utc>>,
}

/// The rule set a field merges under.
#[derive(Debug, Clone, Copy)]
pub struct FieldRule {
    pub direction: Direction,
    pub conflict: WinnerRule,
    /// Who wins where two existing records are linked for the first time (no snapshot).
    pub initial_winner: Side,
}

/// Both values of a field changed differently on the two sides.
#[derive(Debug, Clone, PartialEq)]
pub struct Conflict {
    pub prm: Value,
    pub crm: Value,
    pub winner: Side,
}

/// The outcome for one field.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldMerge {
    /// The value both sides hold after the writes: the new snapshot.
    pub value: Value,
    pub write_crm: bool,
    pub write_prm: bool,
    pub conflict: Option<Conflict>,
}

impl FieldMerge {
    fn keep(value: Value) -> Self {
        Self {
            value,
            write_crm: false,
            write_prm: false,
            conflict: None,
        }
    }

    fn take(side: Side, value: Value) -> Self {
        Self {
            value,
            write_crm: side == Side::Prm,
            write_prm: side == Side::Crm,
            conflict: None,
        }
    }
}

/// Merges one field: only P changed → P goes to Salesforce; only C changed → C goes to the
/// PRM; both changed to one value → nothing; both changed differently → the conflict rule.
/// `to_crm` / `to_prm` fields keep the target equal to their owner; `on_create` fields are
/// never written after the create.
#[inline]
pub fn merge_field(rule: FieldRule, input: MergeInput<'_>, recency: Recency) -> FieldMerge {
    static NULL: Value = Value::Null;
    let s = input.snapshot;
    // Decided on borrowed values; only the value kept (and a conflict's two values) is copied.
    let p = input.prm.or(s).unwrap_or(&NULL);
    let c = input.crm.or(s).unwrap_or(&NULL);
    match rule.direction {
        Direction::OnCreate => FieldMerge::keep(s.unwrap_or(p).clone()),
        Direction::ToCrm => FieldMerge {
            value: p.clone(),
            write_crm: c != p,
            write_prm: false,
            conflict: None,
        },
        Direction::ToPrm => FieldMerge {
            value: c.clone(),
            write_crm: false,
            write_prm: c != p,
            conflict: None,
        },
        Direction::Both => {
            if p == c {
                return FieldMerge::keep(p.clone());
            }
            let Some(s) = s else {
                return match rule.initial_winner {
                    Side::Prm => FieldMerge::take(Side::Prm, p.clone()),
                    Side::Crm => FieldMerge::take(Side::Crm, c.clone()),
                };
            };
            match (p != s, c != s) {
                (true, false) => FieldMerge::take(Side::Prm, p.clone()),
                (false, true) => FieldMerge::take(Side::Crm, c.clone()),
                // p != c, so at least one side moved; both moved to different values:
                _ => {
                    let winner = conflict_winner(rule.conflict, recency);
                    let value = if winner == Side::Prm {
                        p.clone()
                    } else {
                        c.clone()
                    };
                    FieldMerge {
                        write_crm: winner == Side::Prm,
                        write_prm: winner == Side::Crm,
                        conflict: Some(Conflict {
                            prm: p.clone(),
                            crm: c.clone(),
                            winner,
                        }),
                        value,
                    }
                }
            }
        }
    }
}

/// Who wins a conflict: the fixed side, or the record changed most recently (a tie or an
/// unknown time goes to Salesforce).
pub fn conflict_winner(rule: WinnerRule, recency: Recency) -> Side {
    match rule {
        WinnerRule::Prm => Side::Prm,
        WinnerRule::Crm => Side::Crm,
        WinnerRule::Newest => match (recency.prm, recency.crm) {
            (Some(p), Some(c)) if p > c => Side::Prm,
            (Some(_), None) => Side::Prm,
            _ => Side::Crm,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn both() -> FieldRule {
        FieldRule {
            direction: Direction::Both,
            conflict: WinnerRule::Newest,
            initial_winner: Side::Crm,
        }
    }

    fn input<'a>(s: &'a Value, p: &'a Value, c: &'a Value) -> MergeInput<'a> {
        MergeInput {
            snapshot: Some(s),
            prm: Some(p),
            crm: Some(c),
        }
    }

    #[test]
    fn one_sided_changes_flow_to_the_other_side() {
        let (s, p, c) = (json!("a"), json!("b"), json!("a"));
        let m = merge_field(both(), input(&s, &p, &c), Recency::default());
        assert_eq!(
            (m.value, m.write_crm, m.write_prm),
            (json!("b"), true, false)
        );
        let m = merge_field(both(), input(&s, &c, &p), Recency::default());
        assert_eq!(
            (m.value, m.write_crm, m.write_prm),
            (json!("b"), false, true)
        );
    }

    #[test]
    fn unread_side_counts_as_the_snapshot() {
        let (s, c) = (json!("a"), json!("z"));
        let m = merge_field(
            both(),
            MergeInput {
                snapshot: Some(&s),
                prm: None,
                crm: Some(&c),
            },
            Recency::default(),
        );
        assert!(m.write_prm && !m.write_crm);
    }

    #[test]
    fn conflicts_follow_the_rule_and_report_both_values() {
        let (s, p, c) = (json!("a"), json!("p"), json!("c"));
        let now = Utc::now();
        let newer_prm = Recency {
            prm: Some(now),
            crm: Some(now - chrono::Duration::seconds(5)),
        };
        let m = merge_field(both(), input(&s, &p, &c), newer_prm);
        let conflict = m.conflict.unwrap();
        assert_eq!(
            (conflict.prm, conflict.crm, conflict.winner),
            (p.clone(), c.clone(), Side::Prm)
        );
        assert_eq!(m.value, p);
        assert!(m.write_crm);
        let crm_rule = FieldRule {
            conflict: WinnerRule::Crm,
            ..both()
        };
        let m = merge_field(crm_rule, input(&s, &p, &c), newer_prm);
        assert_eq!(m.value, c);
        assert!(m.write_prm && !m.write_crm);
    }

    #[test]
    fn first_link_follows_the_initial_winner() {
        let (p, c) = (json!("p"), json!("c"));
        let m = merge_field(
            both(),
            MergeInput {
                snapshot: None,
                prm: Some(&p),
                crm: Some(&c),
            },
            Recency::default(),
        );
        assert_eq!((m.value, m.write_prm), (c, true));
    }

    #[test]
    fn one_way_fields_keep_the_target_equal_to_the_owner() {
        let (s, p, c) = (json!("a"), json!("a"), json!("edited in crm"));
        let rule = FieldRule {
            direction: Direction::ToCrm,
            ..both()
        };
        let m = merge_field(rule, input(&s, &p, &c), Recency::default());
        assert_eq!(
            (m.value, m.write_crm, m.write_prm),
            (json!("a"), true, false)
        );
        let rule = FieldRule {
            direction: Direction::OnCreate,
            ..both()
        };
        let m = merge_field(
            rule,
            input(&s, &json!("x"), &json!("y")),
            Recency::default(),
        );
        assert!(!m.write_crm && !m.write_prm);
    }

    fn small_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            Just(json!("a")),
            Just(json!("b")),
            Just(json!(1))
        ]
    }

    proptest! {
        #[test]
        fn merge_converges(s in small_value(), p in small_value(), c in small_value(), prm_newer in any::<bool>(), rule_ix in 0usize..3, dir_ix in 0usize..3) {
            let rule = FieldRule {
                direction: [Direction::Both, Direction::ToCrm, Direction::ToPrm][dir_ix],
                conflict: [WinnerRule::Newest, WinnerRule::Prm, WinnerRule::Crm][rule_ix],
                initial_winner: Side::Crm,
            };
            let now = Utc::now();
            let recency = if prm_newer { Recency { prm: Some(now), crm: None } } else { Recency::default() };
            let m = merge_field(rule, input(&s, &p, &c), recency);
            // After the writes both sides hold the merged value.
            let p_after = if m.write_prm { m.value.clone() } else { p.clone() };
            let c_after = if m.write_crm { m.value.clone() } else { c.clone() };
            prop_assert_eq!(&p_after, &m.value);
            prop_assert_eq!(&c_after, &m.value);
            // The merged value is one of the two sides' values.
            prop_assert!(m.value == p || m.value == c);
            // Nothing changed → nothing written (no echoes).
            if p == s && c == s {
                prop_assert!(!m.write_crm && !m.write_prm && m.conflict.is_none());
            }
            // A second merge against the new snapshot writes nothing.
            let again = merge_field(rule, input(&m.value, &p_after, &c_after), recency);
            prop_assert!(!again.write_crm && !again.write_prm);
        }
    }
}

/// The borrowing merge against the original, always-copying one.
#[cfg(test)]
mod fast_path_tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// `merge_field` as it was before it decided on borrowed values, kept as the reference.
    fn reference(rule: FieldRule, input: MergeInput<'_>, recency: Recency) -> FieldMerge {
        let null = Value::Null;
        let s = input.snapshot;
        let p = input.prm.or(s).unwrap_or(&null).clone();
        let c = input.crm.or(s).unwrap_or(&null).clone();
        match rule.direction {
            Direction::OnCreate => FieldMerge::keep(s.cloned().unwrap_or(p)),
            Direction::ToCrm => {
                let write = c != p;
                FieldMerge {
                    value: p,
                    write_crm: write,
                    write_prm: false,
                    conflict: None,
                }
            }
            Direction::ToPrm => {
                let write = c != p;
                FieldMerge {
                    value: c,
                    write_crm: false,
                    write_prm: write,
                    conflict: None,
                }
            }
            Direction::Both => {
                if p == c {
                    return FieldMerge::keep(p);
                }
                let Some(s) = s else {
                    return match rule.initial_winner {
                        Side::Prm => FieldMerge::take(Side::Prm, p),
                        Side::Crm => FieldMerge::take(Side::Crm, c),
                    };
                };
                match (p != *s, c != *s) {
                    (true, false) => FieldMerge::take(Side::Prm, p),
                    (false, true) => FieldMerge::take(Side::Crm, c),
                    _ => {
                        let winner = conflict_winner(rule.conflict, recency);
                        let value = if winner == Side::Prm {
                            p.clone()
                        } else {
                            c.clone()
                        };
                        FieldMerge {
                            write_crm: winner == Side::Prm,
                            write_prm: winner == Side::Crm,
                            conflict: Some(Conflict {
                                prm: p,
                                crm: c,
                                winner,
                            }),
                            value,
                        }
                    }
                }
            }
        }
    }

    fn value() -> impl Strategy<Value = Option<Value>> {
        proptest::option::of(prop_oneof![
            Just(Value::Null),
            Just(json!("a")),
            Just(json!("b")),
            Just(json!(1)),
            Just(json!(false)),
        ])
    }

    proptest! {
        #[test]
        fn borrowing_merge_agrees_with_the_reference(
            s in value(), p in value(), c in value(),
            dir_ix in 0usize..4, rule_ix in 0usize..3, prm_first in any::<bool>(),
            prm_time in proptest::option::of(0i64..3), crm_time in proptest::option::of(0i64..3),
        ) {
            let rule = FieldRule {
                direction: [Direction::Both, Direction::ToCrm, Direction::ToPrm, Direction::OnCreate][dir_ix],
                conflict: [WinnerRule::Newest, WinnerRule::Prm, WinnerRule::Crm][rule_ix],
                initial_winner: if prm_first { Side::Prm } else { Side::Crm },
            };
            let at = |secs: i64| DateTime::<Utc>::from_timestamp(1_800_000_000 + secs, 0).unwrap();
            let recency = Recency { prm: prm_time.map(at), crm: crm_time.map(at) };
            let input = MergeInput { snapshot: s.as_ref(), prm: p.as_ref(), crm: c.as_ref() };
            prop_assert_eq!(merge_field(rule, input, recency), reference(rule, input, recency));
        }
    }
}
