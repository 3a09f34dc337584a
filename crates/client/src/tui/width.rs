//! Display widths that agree with the terminal's (issue 12, bug 7).
//!
//! ratatui places text by grapheme cluster, giving each the width `unicode-width`
//! computes for the whole cluster: a flag (🇯🇵), an emoji ZWJ sequence (👨‍👩‍👧), a
//! skin-tone modifier sequence (👍🏽) and an emoji presentation sequence (❤️) are two
//! columns each. Terminals disagree: tmux 3.3 and many older emulators draw such a
//! cluster as its parts (two letters, three faces, a hand and a colour swatch, a
//! narrow heart), so what ratatui believes is on screen and what is there drift
//! apart, and cells ratatui never rewrites keep stray glyphs (in other buffers too,
//! since a buffer switch only rewrites the cells that changed).
//!
//! No width table can be right for every terminal, so we ask the terminal instead:
//! at start-up [`probe`] prints one sample of each kind and reads the cursor back
//! ([`Joins`] records which kinds the terminal joins into one glyph). Text is then
//! drawn through [`displayable`], which rewrites each kind the terminal does *not*
//! join into parts whose width nobody disputes (flags into their two letters, ZWJ
//! sequences into their emoji, modifier and presentation selectors dropped). After
//! that, `unicode-width` per cluster, which ratatui uses and so does [`text_width`],
//! is what the terminal does. Without an answer from the terminal, we assume it joins
//! nothing: a flag shown as `JP` is less pretty than 🇯🇵 but never corrupts the screen.

use std::borrow::Cow;
use std::io::{self, Write};

use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

/// Which multi-character emoji clusters the terminal draws in the two columns
/// ratatui gives them (as one glyph, or as parts that happen to fill two columns:
/// either way the screen stays consistent, which is all that matters here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Joins {
    /// A pair of regional indicators is one flag (🇯🇵).
    pub flags: bool,
    /// Emoji joined by U+200D are one glyph (👨‍👩‍👧).
    pub zwj: bool,
    /// A skin-tone modifier merges into the emoji before it (👍🏽).
    pub modifiers: bool,
    /// U+FE0F makes a narrow symbol a two-column emoji (❤️).
    pub presentation: bool,
}

impl Joins {
    /// Joins nothing: safe on every terminal, the choice when probing fails.
    pub const NONE: Self = Self {
        flags: false,
        zwj: false,
        modifiers: false,
        presentation: false,
    };

    /// What Unicode (and `unicode-width`) says: every kind joined.
    pub const ALL: Self = Self {
        flags: true,
        zwj: true,
        modifiers: true,
        presentation: true,
    };
}

/// The samples [`probe`] prints, with the width each has when the terminal joins it.
const SAMPLES: [&str; 4] = [
    "\u{1F1EF}\u{1F1F5}",                          // 🇯🇵
    "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}", // 👨‍👩‍👧
    "\u{1F44D}\u{1F3FD}",                          // 👍🏽
    "\u{2764}\u{FE0F}",                            // ❤️
];

fn is_regional_indicator(c: char) -> bool {
    ('\u{1F1E6}'..='\u{1F1FF}').contains(&c)
}

fn is_skin_tone(c: char) -> bool {
    ('\u{1F3FB}'..='\u{1F3FF}').contains(&c)
}

/// Emoji blocks (pictographs, symbols, dingbats): where a ZWJ joins emoji rather
/// than shaping a script (Indic and Arabic text use ZWJ too, and keep it).
fn is_emoji_block(c: char) -> bool {
    matches!(c, '\u{1F000}'..='\u{1FAFF}' | '\u{2600}'..='\u{27BF}' | '\u{2B00}'..='\u{2BFF}')
}

/// `text` rewritten so that every cluster the terminal does not join is drawn as
/// parts of undisputed width. Borrowed when nothing needs rewriting (plain text).
pub fn displayable(text: &str, joins: Joins) -> Cow<'_, str> {
    if joins == Joins::ALL || text.is_ascii() {
        return Cow::Borrowed(text);
    }
    let mut out: Option<String> = None;
    for (at, cluster) in text.grapheme_indices(true) {
        let rewritten = rewrite(cluster, joins);
        match (&mut out, rewritten) {
            (Some(out), Some(parts)) => out.push_str(&parts),
            (Some(out), None) => out.push_str(cluster),
            (None, Some(parts)) => {
                let mut s = String::with_capacity(text.len());
                s.push_str(&text[..at]);
                s.push_str(&parts);
                out = Some(s);
            }
            (None, None) => {}
        }
    }
    match out {
        Some(s) => Cow::Owned(s),
        None => Cow::Borrowed(text),
    }
}

/// The parts to draw for one cluster, or `None` to draw it as it is.
fn rewrite(cluster: &str, joins: Joins) -> Option<String> {
    if cluster.len() == 1 {
        return None;
    }
    let emoji = cluster.chars().any(is_emoji_block);
    let several = cluster.chars().nth(1).is_some();
    let drop = |c: char| {
        (!joins.zwj && emoji && c == '\u{200D}')
            || (!joins.modifiers && several && is_skin_tone(c))
            || (!joins.presentation && c == '\u{FE0F}')
    };
    let flag = !joins.flags && cluster.chars().any(is_regional_indicator);
    let changes = flag || cluster.chars().any(drop);
    if !changes {
        return None;
    }
    let mut parts = String::with_capacity(cluster.len());
    for c in cluster.chars() {
        if flag && is_regional_indicator(c) {
            // U+1F1E6 is REGIONAL INDICATOR SYMBOL LETTER A.
            let letter = u32::from(c) - 0x1F1E6 + u32::from(b'A');
            parts.push(char::from_u32(letter).unwrap_or('?'));
        } else if !drop(c) {
            parts.push(c);
        }
    }
    Some(parts)
}

/// The columns one cluster takes, as ratatui counts them (so wrapping here and
/// drawing there agree): one for a single non-control byte, else `unicode-width`.
pub fn cluster_width(cluster: &str) -> usize {
    if cluster.len() == 1 {
        usize::from(!cluster.as_bytes()[0].is_ascii_control())
    } else {
        cluster.width()
    }
}

/// The columns `text` (already [`displayable`]) takes.
pub fn text_width(text: &str) -> usize {
    text.graphemes(true).map(cluster_width).sum()
}

/// Asks the terminal which clusters it joins: prints each sample at the top left of
/// the (alternate, raw-mode) screen and reads back where the cursor went. Any
/// failure (no answer within crossterm's 2 s, an odd position) ends the probe with
/// the kinds not yet confirmed taken as not joined. The screen is cleared after.
pub fn probe(out: &mut impl Write) -> io::Result<Joins> {
    use crossterm::{cursor, terminal};
    let mut joined = [false; 4];
    let result = (|| -> io::Result<()> {
        for (sample, joined) in SAMPLES.iter().zip(joined.iter_mut()) {
            crossterm::queue!(
                out,
                terminal::Clear(terminal::ClearType::All),
                cursor::MoveTo(0, 0)
            )?;
            out.write_all(sample.as_bytes())?;
            out.flush()?;
            let (column, row) = cursor::position()?;
            *joined = row == 0 && column == 2;
        }
        Ok(())
    })();
    crossterm::queue!(
        out,
        terminal::Clear(terminal::ClearType::All),
        cursor::MoveTo(0, 0)
    )?;
    out.flush()?;
    if let Err(error) = result {
        tracing::info!("terminal did not answer the width probe ({error}): joining no emoji");
    }
    let [flags, zwj, modifiers, presentation] = joined;
    Ok(Joins {
        flags,
        zwj,
        modifiers,
        presentation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unjoined_clusters_become_parts_of_undisputed_width() {
        let none = Joins::NONE;
        assert_eq!(displayable("to \u{1F1EF}\u{1F1F5}!", none), "to JP!");
        assert_eq!(displayable(SAMPLES[1], none), "\u{1F468}\u{1F469}\u{1F467}");
        assert_eq!(displayable(SAMPLES[2], none), "\u{1F44D}");
        assert_eq!(displayable(SAMPLES[3], none), "\u{2764}");
        assert_eq!(text_width(&displayable(SAMPLES[1], none)), 6);
        assert_eq!(text_width(&displayable(SAMPLES[3], none)), 1);
        // Joined, each is one two-column cluster, as ratatui counts it.
        for sample in SAMPLES {
            assert_eq!(displayable(sample, Joins::ALL), sample);
            assert_eq!(text_width(sample), 2, "{sample}");
        }
        // A lone modifier is kept; script ZWJs are not emoji and are kept.
        assert_eq!(displayable("\u{1F3FD}", none), "\u{1F3FD}");
        assert_eq!(
            displayable("\u{915}\u{94D}\u{200D}", none),
            "\u{915}\u{94D}\u{200D}"
        );
        assert!(matches!(
            displayable("plain é 日本", none),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn kinds_are_rewritten_separately() {
        let only_flags = Joins {
            flags: true,
            ..Joins::NONE
        };
        let text = "\u{1F1EF}\u{1F1F5}\u{1F44D}\u{1F3FD}";
        assert_eq!(displayable(text, only_flags), "\u{1F1EF}\u{1F1F5}\u{1F44D}");
        // 👩🏽‍💻 on a terminal that joins modifiers but not ZWJ: two emoji.
        let modifiers = Joins {
            modifiers: true,
            ..Joins::NONE
        };
        let coder = "\u{1F469}\u{1F3FD}\u{200D}\u{1F4BB}";
        assert_eq!(displayable(coder, modifiers), "\u{1F469}\u{1F3FD}\u{1F4BB}");
        assert_eq!(text_width(&displayable(coder, modifiers)), 4);
    }
}
