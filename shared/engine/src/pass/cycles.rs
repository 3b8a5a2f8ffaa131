//! Parent cycles: an organization's parent written by this pass must not close a loop (A's
//! parent is B and B's parent is A, or longer). Each side alone may hold no loop while the
//! merge of both does (A's parent set in Salesforce, B's in the PRM), and neither system
//! accepts one. Sync rule 9 (hierarchy: cycles are logged) of `docs/sync-rules.md`.
//!
//! [`parent_cycles`] decides over the parents in PRM-id space, without any I/O;
//! `Pass::hold_parent_cycles` reads the stored parents the chains climb through, takes the
//! parent writes of a loop out of its pairs (their other fields still sync), logs
//! `parent_cycle` once and remembers the pairs as rejected, so they wait until a record
//! changes. A parent held back this way stays in the link's snapshot
//! ([`keys::PARENT_HELD`]): one side still holds it, so later checks climb through it too.

use std::collections::{BTreeMap, HashMap, HashSet};

use prmsync_mapping::{LogCode, ObjectKind};
use serde_json::{json, Value};

use super::{Pass, PassError, WorkPair};
use crate::objects::keys;

/// Rounds of link reads to climb the stored parents in one pass: deeper hierarchies are
/// not followed further (no loop is reported through them).
const MAX_CLIMB: usize = 32;

/// The loops that the parents this pass writes (`new`: organization → parent, PRM ids)
/// would close, each as the PRM ids around it from the first record of `new` in it.
/// `parents` holds the parents every other organization has on either side as far as
/// known (the synced one, and one held back). A loop made only of parents already there
/// is not this pass's doing and is not reported. No I/O.
pub fn parent_cycles<'a>(
    new: &'a [(String, String)],
    parents: &'a HashMap<String, Vec<String>>,
) -> Vec<Vec<String>> {
    let new_parent: HashMap<&'a str, &'a str> = new
        .iter()
        .map(|(id, p)| (id.as_str(), p.as_str()))
        .collect();
    let parents_of = |id: &'a str| -> Vec<&'a str> {
        match new_parent.get(id) {
            Some(p) => vec![*p],
            None => parents
                .get(id)
                .map(|ps| ps.iter().map(String::as_str).collect())
                .unwrap_or_default(),
        }
    };
    let mut in_cycle: HashSet<&'a str> = HashSet::new();
    let mut cycles = Vec::new();
    for (start, parent) in new {
        if in_cycle.contains(start.as_str()) {
            continue;
        }
        // Depth-first from the new parent, back to `start`; `came_from` rebuilds the path.
        let mut came_from: HashMap<&'a str, &'a str> = HashMap::new();
        let mut stack = vec![parent.as_str()];
        let mut seen: HashSet<&'a str> = HashSet::from([parent.as_str()]);
        let mut found = parent == start;
        while let Some(at) = stack.pop() {
            if found {
                break;
            }
            for up in parents_of(at) {
                if up == start {
                    came_from.insert(up, at);
                    found = true;
                    break;
                }
                if seen.insert(up) {
                    came_from.insert(up, at);
                    stack.push(up);
                }
            }
        }
        if !found {
            continue;
        }
        // start -> parent -> ... -> start, read backwards from start.
        let mut path = vec![start.as_str()];
        let mut at = start.as_str();
        if parent != start {
            while let Some(&prev) = came_from.get(at) {
                path.push(prev);
                if prev == parent {
                    break;
                }
                at = prev;
            }
            path[1..].reverse();
        }
        in_cycle.extend(path.iter().copied());
        cycles.push(path.into_iter().map(str::to_string).collect());
    }
    cycles
}

/// A parent (PRM id) of a snapshot under `key`.
fn parent_in(snapshot: &BTreeMap<String, Value>, key: &str) -> Option<String> {
    snapshot
        .get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The parents a snapshot says its organization has on either side.
fn parents_in(snapshot: &BTreeMap<String, Value>) -> Vec<String> {
    let mut out: Vec<String> = parent_in(snapshot, keys::REFERENCE).into_iter().collect();
    out.extend(parent_in(snapshot, keys::PARENT_HELD));
    out
}

impl<'a> Pass<'a> {
    /// Takes the parent writes that would close a loop out of their pairs ([`parent_cycles`]),
    /// logs `parent_cycle` for each such pair (once for one held parent) and marks it
    /// rejected: its other fields sync, and it is not merged again until one of its records
    /// changes. A pair merged without a loop drops the parent it held back.
    pub(super) async fn hold_parent_cycles(
        &mut self,
        pairs: &mut [WorkPair],
    ) -> Result<(), PassError> {
        let Some(reference) = self.spec.reference else {
            return Ok(());
        };
        if self.spec.kind != ObjectKind::Organization {
            return Ok(());
        }
        let writes_parent = |p: &WorkPair| {
            p.crm_patch.contains_key(reference.crm_field)
                || p.prm_patch.contains_key(reference.prm_field)
        };
        // A pair merged without a parent to write holds none back any more.
        for pair in pairs.iter_mut() {
            if pair.planned
                && !pair.rejected
                && !writes_parent(pair)
                && pair.link.snapshot.remove(keys::PARENT_HELD).is_some()
            {
                pair.dirty = true;
            }
        }
        // The parents this pass writes; those its other pairs and their links hold.
        let new: Vec<(String, String)> = pairs
            .iter()
            .filter(|p| writes_parent(p))
            .filter_map(|p| {
                parent_in(&p.link.snapshot, keys::REFERENCE).map(|to| (p.link.prm_id.clone(), to))
            })
            .collect();
        let mut names: HashMap<String, String> = HashMap::new();
        let mut parents: HashMap<String, Vec<String>> = HashMap::new();
        for p in pairs.iter() {
            names.insert(p.link.prm_id.clone(), p.link.crm_id.clone());
            // A pair that writes its parent has that one only (none, when it is cleared).
            let up = if writes_parent(p) {
                Vec::new()
            } else {
                parents_in(&p.link.snapshot)
            };
            parents.insert(p.link.prm_id.clone(), up);
        }
        let cycles = if new.is_empty() {
            Vec::new()
        } else {
            // Climb the stored parents above the new ones.
            let mut wanted: Vec<String> = new.iter().map(|(_, p)| p.clone()).collect();
            for _ in 0..MAX_CLIMB {
                wanted.retain(|id| !parents.contains_key(id));
                wanted.sort();
                wanted.dedup();
                if wanted.is_empty() {
                    break;
                }
                let links = self
                    .ctx
                    .store
                    .find_links(ObjectKind::Organization, &[], &wanted)
                    .await?;
                let mut next = Vec::new();
                for id in &wanted {
                    let up = match links.iter().find(|l| &l.prm_id == id) {
                        Some(l) => {
                            names.insert(l.prm_id.clone(), l.crm_id.clone());
                            parents_in(&l.snapshot)
                        }
                        None => Vec::new(),
                    };
                    next.extend(up.iter().cloned());
                    parents.insert(id.clone(), up);
                }
                wanted = next;
            }
            parent_cycles(&new, &parents)
        };
        let mut held: HashSet<usize> = HashSet::new();
        let by_id: HashMap<String, usize> = pairs
            .iter()
            .enumerate()
            .filter(|(_, p)| writes_parent(p))
            .map(|(i, p)| (p.link.prm_id.clone(), i))
            .collect();
        let obj = self.spec.crm_object();
        let kind = self.spec.kind;
        for cycle in cycles {
            let mut around: Vec<String> = cycle
                .iter()
                .map(|id| match names.get(id) {
                    Some(c) => format!("{kind} {id} ({obj} {c})"),
                    None => format!("{kind} {id}"),
                })
                .collect();
            around.push(around[0].clone());
            let loop_text = around.join(" → ");
            for id in &cycle {
                let Some(&i) = by_id.get(id) else { continue };
                held.insert(i);
                let pair = &mut pairs[i];
                let parent = pair.link.snapshot.get(keys::REFERENCE).cloned();
                pair.crm_patch.remove(reference.crm_field);
                pair.prm_patch.remove(reference.prm_field);
                pair.crm_snapshot_keys.retain(|k| k != keys::REFERENCE);
                pair.prm_snapshot_keys.retain(|k| k != keys::REFERENCE);
                match pair.old_snapshot.get(keys::REFERENCE) {
                    Some(v) => pair.link.snapshot.insert(keys::REFERENCE.into(), v.clone()),
                    None => pair.link.snapshot.remove(keys::REFERENCE),
                };
                let reported = pair.old_snapshot.get(keys::PARENT_HELD) == parent.as_ref();
                if let Some(parent) = parent {
                    pair.link.snapshot.insert(keys::PARENT_HELD.into(), parent);
                }
                pair.rejected = true;
                pair.dirty = true;
                if reported {
                    // Logged when this parent was first held back (a run reading its own
                    // writes back finds the loop again).
                    continue;
                }
                let (c, p) = (pair.link.crm_id.clone(), pair.link.prm_id.clone());
                self.out.counts.errors += 1;
                self.log(
                    LogCode::ParentCycle,
                    Some(&c),
                    Some(&p),
                    format!(
                        "The parent of {obj} {c} (PRM {kind} {p}) was not written: it would make a loop {loop_text}; its other fields synced"
                    ),
                    json!({"cycle": cycle}),
                );
            }
        }
        // A pair whose parent is written no longer holds one back (a rejected one keeps it
        // until it merges cleanly: a carried pair held by an earlier pass is one).
        for (i, pair) in pairs.iter_mut().enumerate() {
            if pair.planned
                && !pair.rejected
                && writes_parent(pair)
                && !held.contains(&i)
                && pair.link.snapshot.remove(keys::PARENT_HELD).is_some()
            {
                pair.dirty = true;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(edges: &[(&str, &str)]) -> Vec<(String, String)> {
        edges
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    fn stored(edges: &[(&str, &[&str])]) -> HashMap<String, Vec<String>> {
        edges
            .iter()
            .map(|(a, ps)| (a.to_string(), ps.iter().map(|p| p.to_string()).collect()))
            .collect()
    }

    #[test]
    fn two_organizations_each_the_others_parent_are_a_loop() {
        let cycles = parent_cycles(
            &new(&[("org_a", "org_b"), ("org_b", "org_a")]),
            &HashMap::new(),
        );
        assert_eq!(cycles, vec![vec!["org_a", "org_b"]]);
    }

    #[test]
    fn a_new_parent_that_closes_a_longer_loop_through_stored_parents_is_found() {
        // org_a -> org_b (new), org_b -> org_c -> org_d -> org_a (stored).
        let cycles = parent_cycles(
            &new(&[("org_a", "org_b")]),
            &stored(&[
                ("org_b", &["org_c"]),
                ("org_c", &["org_d"]),
                ("org_d", &["org_a"]),
            ]),
        );
        assert_eq!(cycles, vec![vec!["org_a", "org_b", "org_c", "org_d"]]);
    }

    #[test]
    fn an_organization_that_is_its_own_parent_is_a_loop() {
        let cycles = parent_cycles(&new(&[("org_a", "org_a")]), &HashMap::new());
        assert_eq!(cycles, vec![vec!["org_a"]]);
    }

    #[test]
    fn a_parent_held_back_on_one_side_still_closes_a_loop() {
        // org_b's parent in one system is org_a, held back: org_a -> org_b loops through it.
        let cycles = parent_cycles(
            &new(&[("org_a", "org_b")]),
            &stored(&[("org_b", &["org_x", "org_a"]), ("org_x", &[])]),
        );
        assert_eq!(cycles, vec![vec!["org_a", "org_b"]]);
    }

    #[test]
    fn a_new_parent_replaces_the_stored_one() {
        // Stored: org_b -> org_a; this pass moves org_b under org_c, so org_a -> org_b is
        // no loop.
        let cycles = parent_cycles(
            &new(&[("org_a", "org_b"), ("org_b", "org_c")]),
            &stored(&[("org_b", &["org_a"]), ("org_c", &[])]),
        );
        assert!(cycles.is_empty(), "{cycles:?}");
    }

    #[test]
    fn chains_and_loops_of_stored_parents_alone_are_not_reported() {
        // org_a -> org_b -> org_c -> top; org_x -> org_y -> org_x was there before.
        let cycles = parent_cycles(
            &new(&[("org_a", "org_b"), ("org_z", "org_x")]),
            &stored(&[
                ("org_b", &["org_c"]),
                ("org_c", &[]),
                ("org_x", &["org_y"]),
                ("org_y", &["org_x"]),
            ]),
        );
        assert!(cycles.is_empty(), "{cycles:?}");
    }

    #[test]
    fn each_loop_is_reported_once_from_its_first_new_parent() {
        let cycles = parent_cycles(
            &new(&[
                ("org_b", "org_c"),
                ("org_c", "org_b"),
                ("org_d", "org_b"),
                ("org_e", "org_f"),
                ("org_f", "org_e"),
            ]),
            &HashMap::new(),
        );
        assert_eq!(cycles, vec![vec!["org_b", "org_c"], vec!["org_e", "org_f"]]);
    }
}
