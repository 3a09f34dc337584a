//! Wildcard masks (`*` any run, `?` any one character) as used by bans, WHO and LIST.
//!
//! Matching is case-insensitive under the server's casemapping, byte-wise (a `?`
//! matches one byte, which is one character for the ASCII that names are made of),
//! and linear in practice: the classic greedy algorithm backtracks only to the last
//! `*`, so a hostile mask costs at most O(mask × subject) on bounded-length strings.

use crate::CaseMapping;

/// Whether `subject` matches the wildcard `mask` under `mapping`.
pub fn matches(mapping: CaseMapping, mask: &str, subject: &str) -> bool {
    let mask = mask.as_bytes();
    let subject = subject.as_bytes();
    let (mut m, mut s) = (0, 0);
    // Position after the last `*` seen in the mask, and where in the subject it started.
    let mut star: Option<(usize, usize)> = None;
    while s < subject.len() {
        if m < mask.len() && mask[m] == b'*' {
            m += 1;
            star = Some((m, s));
        } else if m < mask.len()
            && (mask[m] == b'?' || mapping.fold_byte(mask[m]) == mapping.fold_byte(subject[s]))
        {
            m += 1;
            s += 1;
        } else if let Some((after_star, started)) = star {
            // Let the last `*` swallow one more byte and retry from there.
            m = after_star;
            s = started + 1;
            star = Some((after_star, started + 1));
        } else {
            return false;
        }
    }
    mask[m..].iter().all(|&b| b == b'*')
}

/// Whether `mask` contains wildcards (otherwise it names one thing exactly).
pub fn has_wildcards(mask: &str) -> bool {
    mask.contains(['*', '?'])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_and_questions() {
        let m = CaseMapping::Rfc1459;
        assert!(matches(m, "*", ""));
        assert!(matches(m, "*!*@*", "nick!user@host"));
        assert!(matches(m, "N?CK!*@*.example", "nick!u@a.b.example"));
        assert!(matches(m, "a*b*c", "aXXbYYc"));
        assert!(!matches(m, "a*b*c", "aXXbYY"));
        assert!(matches(m, "[x]*", "{X}yz"));
        assert!(!matches(m, "?", ""));
    }

    #[test]
    fn pathological_masks_stay_cheap() {
        let subject = "a".repeat(500);
        let mask = format!("{}b", "*a".repeat(100));
        assert!(!matches(CaseMapping::Ascii, &mask, &subject));
    }
}
