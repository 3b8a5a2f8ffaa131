//! Plan.

use prmsync_mapping::config::Side;
use prmsync_mapping::merge::{merge_field, FieldRule, MergeInput, Recency};
use prmsync_mapping::transform::{read_crm_cow, read_prm_cow, write_crm, write_prm};
use prmsync_mapping::{rules, Fields, LogCode, ObjectKind};
use serde_json::{json, Value};

use super::*;
use crate::objects::keys;
use crate::store::LinkState;

impl<'a> Pass<'a> {
    /// Works out what a linked pair needs: the three-way merge of every mapped field, the
    /// reference, and the values the sync rules keep (PRM Id, Record Status, crm_id).
    pub(super) fn plan_item(&mut self, item: &mut WorkPair) {
        if item.link.state != LinkState::Linked || item.marks_deleted {
            return;
        }
        if item.crm.is_none() && item.prm.is_none() {
            return;
        }
        let kind = self.spec.kind;
        if kind == ObjectKind::Person {
            // A person syncs while its organization does.
            let org_ok = match (&item.crm, &item.prm) {
                (Some(c), _) if c.str_field("AccountId").is_some() => {
                    self.person_org_linked_crm(c).is_some()
                }
                (_, Some(p)) => self.person_org_linked_prm(p).is_some(),
                _ => true,
            };
            if !org_ok {
                return;
            }
        }
        // A retry is served by this merge; the reference may ask for another one.
        let was_retry = std::mem::take(&mut item.link.retry);
        if was_retry {
            item.dirty = true;
        }
        let rule_base = FieldRule {
            direction: Default::default(),
            conflict: self.ctx.mapping.sync.default_conflict,
            initial_winner: self.ctx.mapping.sync.initial_link_winner,
        };
        let recency = Recency {
            prm: item.prm.as_ref().map(|p| p.updated_at),
            crm: item.crm.as_ref().and_then(|c| c.modstamp),
        };
        let crm_id = item.link.crm_id.clone();
        let prm_id = item.link.prm_id.clone();
        let fields = std::sync::Arc::clone(&self.spec.fields);
        for f in fields.iter() {
            if f.fixed.is_some() {
                continue;
            }
            let key = f.key();
            let crm_value = match item.crm.as_ref().map(|c| read_crm_cow(f, &c.fields)) {
                Some(Ok(v)) => Some(v),
                Some(Err(e)) => {
                    self.unmapped(&e, Some(&crm_id), Some(&prm_id));
                    item.rejected = true;
                    continue;
                }
                None => None,
            };
            let prm_value = item.prm.as_ref().map(|p| read_prm_cow(f, &p.fields));
            let rule = FieldRule {
                direction: f.direction,
                conflict: self.ctx.mapping.conflict_rule(f),
                ..rule_base
            };
            let m = merge_field(
                rule,
                MergeInput {
                    snapshot: item.link.snapshot.get(&key),
                    prm: prm_value.as_deref(),
                    crm: crm_value.as_deref(),
                },
                recency,
            );
            if m.write_crm {
                if let Err(e) = write_crm(f, &m.value, &mut item.crm_patch) {
                    self.unmapped(&e, Some(&crm_id), Some(&prm_id));
                    item.rejected = true;
                    continue;
                }
                item.crm_snapshot_keys.push(key.clone());
            }
            if m.write_prm {
                write_prm(f, &m.value, &mut item.prm_patch);
                item.prm_snapshot_keys.push(key.clone());
            }
            if let Some(c) = &m.conflict {
                self.out.counts.conflicts += 1;
                self.log(
                    LogCode::Conflict,
                    Some(&crm_id),
                    Some(&prm_id),
                    format!(
                        "{} changed on both sides: PRM `{}` = {}, Salesforce `{}` = {}; the {} value was kept",
                        key,
                        f.prm.as_deref().unwrap_or("-"),
                        c.prm,
                        f.crm.as_deref().unwrap_or("-"),
                        c.crm,
                        if c.winner == Side::Prm { "PRM" } else { "Salesforce" }
                    ),
                    json!({"field": key, "prm": c.prm, "crm": c.crm, "winner": c.winner.as_str()}),
                );
            }
            if item.link.snapshot.get(&key) != Some(&m.value) {
                item.link.snapshot.insert(key, m.value);
                item.dirty = true;
            }
        }
        self.plan_reference(item, was_retry);
        self.plan_setup_values(item);
        // Versions seen.
        if let Some(ms) = item.crm.as_ref().and_then(|c| c.modstamp) {
            if item.link.crm_modstamp != Some(ms) {
                item.link.crm_modstamp = Some(ms);
                item.dirty = true;
            }
        }
        if let Some(v) = item.prm.as_ref().map(|p| p.version) {
            if item.link.prm_version != Some(v) {
                item.link.prm_version = Some(v);
                item.dirty = true;
            }
        }
    }

    /// Merges the reference (parent organization or a person's organization) in PRM-id
    /// space, translating through the organization links.
    /// `was_retry`: the link was marked for a retry already, so its entry was written.
    pub(super) fn plan_reference(&mut self, item: &mut WorkPair, was_retry: bool) {
        let Some(reference) = self.spec.reference else {
            return;
        };
        let crm_id = item.link.crm_id.clone();
        let prm_id = item.link.prm_id.clone();
        let mut unresolved = None;
        let crm_value = item
            .crm
            .as_ref()
            .and_then(|c| match c.str_field(reference.crm_field) {
                None => Some(Value::Null),
                Some(raw) => match self.ref_to_prm(raw) {
                    Some(p) => Some(json!(p)),
                    None => {
                        unresolved = Some(raw.to_string());
                        None
                    }
                },
            });
        let prm_value = item.prm.as_ref().map(|p| {
            p.str_field(reference.prm_field)
                .map(|s| json!(s))
                .unwrap_or(Value::Null)
        });
        let snapshot = item.link.snapshot.get(keys::REFERENCE).cloned();
        let m = merge_field(
            FieldRule {
                direction: Default::default(),
                conflict: self.ctx.mapping.sync.default_conflict,
                initial_winner: self.ctx.mapping.sync.initial_link_winner,
            },
            MergeInput {
                snapshot: snapshot.as_ref(),
                prm: prm_value.as_ref(),
                crm: crm_value.as_ref(),
            },
            Recency {
                prm: item.prm.as_ref().map(|p| p.updated_at),
                crm: item.crm.as_ref().and_then(|c| c.modstamp),
            },
        );
        let mut value = m.value.clone();
        if m.write_crm {
            let target = match &m.value {
                Value::String(p) => self.ref_to_crm(p).map(|c| json!(c)),
                _ if reference.required => None,
                _ => Some(Value::Null),
            };
            match target {
                Some(t) => {
                    item.crm_patch.insert(reference.crm_field.into(), t);
                    item.crm_snapshot_keys.push(keys::REFERENCE.into());
                }
                None => {
                    value = snapshot.clone().unwrap_or(Value::Null);
                    unresolved = m.value.as_str().map(str::to_string);
                }
            }
        }
        if m.write_prm && !(reference.required && m.value.is_null()) {
            item.prm_patch
                .insert(reference.prm_field.into(), m.value.clone());
            item.prm_snapshot_keys.push(keys::REFERENCE.into());
        }
        if snapshot.as_ref() != Some(&value) {
            item.link.snapshot.insert(keys::REFERENCE.into(), value);
            item.dirty = true;
        }
        if let Some(raw) = unresolved {
            if !was_retry {
                let code = if reference.required {
                    LogCode::AccountNotLinked
                } else {
                    LogCode::ParentNotLinked
                };
                self.log(
                    code,
                    Some(&crm_id),
                    Some(&prm_id),
                    format!(
                        "{} {crm_id} refers to {raw} in `{}`, which does not sync with the PRM yet; the reference is set once it does",
                        self.spec.crm_object(),
                        reference.crm_field
                    ),
                    json!({"reference": raw}),
                );
                if self.hold_unresolved {
                    if let Some(held) = self.out.log.pop() {
                        self.out.held.push(held);
                    }
                }
            }
            // Retried later, without counting the retry flag as a change of the record.
            item.link.retry = true;
            item.dirty = true;
        }
    }

    /// The values the sync rules keep: Salesforce's PRM Id and Record Status, the PRM's
    /// crm_id, a person's kind.
    pub(super) fn plan_setup_values(&mut self, item: &mut WorkPair) {
        let setup = self.spec.setup.clone();
        if let Some(kind) = item.prm.as_ref().and_then(|p| p.str_field("kind")) {
            if self.spec.kind == ObjectKind::Person
                && item.link.snapshot.get(keys::KIND) != Some(&json!(kind))
            {
                item.link.snapshot.insert(keys::KIND.into(), json!(kind));
                item.dirty = true;
            }
        }
        let merged: Fields = item.link.snapshot.clone().into_iter().collect();
        let expected_status = self
            .spec
            .status_label(&merged)
            .map(|label| rules::record_status(&label, false));
        let mut want_crm = vec![(
            keys::PRM_ID,
            self.spec.prm_id_field().to_string(),
            json!(item.link.prm_id),
        )];
        if let Some(status) = expected_status {
            want_crm.push((
                keys::RECORD_STATUS,
                setup.record_status.clone(),
                json!(status),
            ));
        }
        for (key, field, expected) in want_crm {
            let current = match &item.crm {
                Some(c) => c.fields.get(&field).cloned().unwrap_or(Value::Null),
                None => item.link.snapshot.get(key).cloned().unwrap_or(Value::Null),
            };
            if current != expected && !item.crm_patch.contains_key(&field) {
                item.crm_patch.insert(field, expected.clone());
                item.crm_snapshot_keys.push(key.into());
            }
            if item.link.snapshot.get(key) != Some(&expected) {
                item.link.snapshot.insert(key.into(), expected);
                item.dirty = true;
            }
        }
        let expected = json!(item.link.crm_id);
        let current = match &item.prm {
            Some(p) => json!(p.crm_id),
            None => item
                .link
                .snapshot
                .get(keys::CRM_ID)
                .cloned()
                .unwrap_or(Value::Null),
        };
        if current != expected {
            item.prm_patch.insert("crm_id".into(), expected.clone());
            item.prm_snapshot_keys.push(keys::CRM_ID.into());
        }
        if item.link.snapshot.get(keys::CRM_ID) != Some(&expected) {
            item.link.snapshot.insert(keys::CRM_ID.into(), expected);
            item.dirty = true;
        }
    }
}
