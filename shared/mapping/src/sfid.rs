//! Salesforce record Ids in their two forms.
//!
//! A Salesforce Id has a 15-character form, case-sensitive, and an 18-character form: the
//! same 15 characters and a 3-character suffix that encodes their case, so the 18-character
//! form can be compared ignoring case. Salesforce accepts both and always answers with the
//! 18-character form. prmsync keeps only the 18-character form: every Id that comes from a
//! person (a PRM `crm_id` typed by hand, a CLI argument) goes through [`normalise_id`].

/// The letters of the suffix: one per 5-character block, indexed by the block's case bits.
const SUFFIX: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";

/// Whether `s` has the shape of a 15-character Id.
fn is_id15(s: &str) -> bool {
    s.len() == 15 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// The 3-character suffix of a 15-character Id: for each block of 5 characters, bit `i` is
/// set when character `i` of the block is an upper-case letter.
fn suffix(id15: &[u8]) -> [u8; 3] {
    let mut out = [0u8; 3];
    for (block, letter) in id15.chunks(5).zip(out.iter_mut()) {
        let bits = block
            .iter()
            .enumerate()
            .filter(|(_, b)| b.is_ascii_uppercase())
            .fold(0usize, |acc, (i, _)| acc | (1 << i));
        *letter = SUFFIX[bits];
    }
    out
}

/// The 18-character form of a 15-character Id; `None` when `id` is not 15 letters and
/// digits.
pub fn to_18(id15: &str) -> Option<String> {
    if !is_id15(id15) {
        return None;
    }
    let mut out = String::with_capacity(18);
    out.push_str(id15);
    out.extend(suffix(id15.as_bytes()).iter().map(|&b| b as char));
    Some(out)
}

/// The 18-character Id as Salesforce writes it: a 15-character Id gets its suffix; an
/// 18-character Id whose case was lost (`001a0000006vm9ric`) gets it back from its suffix.
/// `None` when `id` is neither: not letters and digits, or an 18-character string whose
/// suffix cannot be a case suffix of its first 15 characters.
pub fn canonical_id(id: &str) -> Option<String> {
    match id.len() {
        15 => to_18(id),
        18 if id.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            let (head, tail) = id.split_at(15);
            let mut restored = head.as_bytes().to_vec();
            for (block, letter) in restored.chunks_mut(5).zip(tail.bytes()) {
                let bits = SUFFIX
                    .iter()
                    .position(|&s| s == letter.to_ascii_uppercase())?;
                for (i, c) in block.iter_mut().enumerate() {
                    let upper = bits & (1 << i) != 0;
                    if upper && !c.is_ascii_alphabetic() {
                        return None;
                    }
                    *c = if upper {
                        c.to_ascii_uppercase()
                    } else {
                        c.to_ascii_lowercase()
                    };
                }
            }
            let head = String::from_utf8(restored).ok()?;
            to_18(&head)
        }
        _ => None,
    }
}

/// An Id in its canonical 18-character form when it is a Salesforce Id in either form
/// ([`canonical_id`]); anything else unchanged (an id the engine does not recognise is not
/// an id to repair).
pub fn normalise_id(id: &str) -> String {
    canonical_id(id).unwrap_or_else(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifteen_characters_get_the_checksum_suffix() {
        // Known pairs.
        assert_eq!(
            to_18("001000000000001").as_deref(),
            Some("001000000000001AAA")
        );
        assert_eq!(
            to_18("001A0000006Vm9r").as_deref(),
            Some("001A0000006Vm9rIAC")
        );
        // By hand: blocks `00150` and `00000` have no upper case (A, A); `AbCdE` has it at
        // positions 0, 2 and 4 (1 + 4 + 16 = 21: V).
        assert_eq!(
            to_18("0015000000AbCdE").as_deref(),
            Some("0015000000AbCdEAAV")
        );
        // Every letter upper case: 31 in each block, the last suffix letter.
        assert_eq!(
            to_18("ABCDEFGHIJKLMNO").as_deref(),
            Some("ABCDEFGHIJKLMNO555")
        );
        // Ids the simulator makes: `001Sm`: S at position 3 (bit 8: I).
        assert_eq!(
            to_18("001Sm0000000001").as_deref(),
            Some("001Sm0000000001IAA")
        );
    }

    #[test]
    fn the_case_of_a_fifteen_character_id_is_part_of_it() {
        let upper = to_18("001A0000006Vm9r").unwrap();
        let lower = to_18("001a0000006vm9r").unwrap();
        assert_ne!(upper.to_ascii_lowercase(), lower.to_ascii_lowercase());
        assert_eq!(lower, "001a0000006vm9rAAA");
    }

    #[test]
    fn only_ids_are_converted() {
        for not_an_id in [
            "",
            "001",
            "001A0000006Vm9",
            "001A0000006Vm9r1",
            "001A0000006Vm9-",
        ] {
            assert_eq!(to_18(not_an_id), None, "{not_an_id}");
            assert_eq!(canonical_id(not_an_id), None, "{not_an_id}");
            assert_eq!(normalise_id(not_an_id), not_an_id);
        }
        assert_eq!(normalise_id("org_12"), "org_12");
    }

    #[test]
    fn eighteen_characters_keep_or_regain_their_case() {
        assert_eq!(normalise_id("001A0000006Vm9rIAC"), "001A0000006Vm9rIAC");
        assert_eq!(normalise_id("001A0000006Vm9r"), "001A0000006Vm9rIAC");
        assert_eq!(normalise_id("001a0000006vm9riac"), "001A0000006Vm9rIAC");
        assert_eq!(normalise_id("001A0000006VM9RIAC"), "001A0000006Vm9rIAC");
        // A suffix letter outside the alphabet, or one that makes a digit upper case.
        assert_eq!(canonical_id("001A0000006Vm9rIA9"), None);
        assert_eq!(canonical_id("001A0000006Vm9rBAC"), None);
        assert_eq!(normalise_id("001A0000006Vm9rIA9"), "001A0000006Vm9rIA9");
    }

    #[test]
    fn both_forms_of_every_id_normalise_alike() {
        let alphabet = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..500 {
            let id15: String = (0..15)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    alphabet[(seed % alphabet.len() as u64) as usize] as char
                })
                .collect();
            let id18 = to_18(&id15).unwrap();
            assert_eq!(&id18[..15], id15);
            assert_eq!(normalise_id(&id15), id18);
            assert_eq!(normalise_id(&id18), id18);
            assert_eq!(normalise_id(&id18.to_ascii_lowercase()), id18);
        }
    }
}
