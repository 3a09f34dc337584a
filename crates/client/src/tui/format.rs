//! mIRC formatting codes drawn as styles (issue 12): bold (^B), italic (^]),
//! underline (^_), strikethrough (^^), reverse (^V), colours (^C fg[,bg] with the
//! 16 standard mIRC colours and 99 for "default", ^D RRGGBB[,RRGGBB] for any
//! colour) and reset (^O). Tabs become spaces up to the next multiple of
//! [`TAB_WIDTH`]; every other control character is dropped, since it would move
//! the terminal's cursor behind ratatui's back.
//!
//! The state keeps the text as it came; only drawing interprets it, so line mode
//! and logs see the codes unchanged.

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Span;

/// Columns between tab stops, counted from the start of the message text.
pub const TAB_WIDTH: usize = 4;

/// The 16 mIRC colours as terminal colours (the terminal's palette decides the
/// exact shades, as it does for nick colours).
const MIRC: [Color; 16] = [
    Color::White,
    Color::Black,
    Color::Blue,
    Color::Green,
    Color::LightRed,
    Color::Red,
    Color::Magenta,
    Color::Yellow,
    Color::LightYellow,
    Color::LightGreen,
    Color::Cyan,
    Color::LightCyan,
    Color::LightBlue,
    Color::LightMagenta,
    Color::DarkGray,
    Color::Gray,
];

/// `text` as spans: each run styled by `base` with its formatting patched on top.
pub fn styled(text: &str, base: Style) -> Vec<Span<'static>> {
    let mut spans = Vec::new();
    let mut run = String::new();
    let mut style = base;
    let mut column = 0;
    let mut chars = text.chars().peekable();
    // Starts a new run when the style is about to change.
    let flush = |run: &mut String, spans: &mut Vec<Span<'static>>, style: Style| {
        if !run.is_empty() {
            spans.push(Span::styled(std::mem::take(run), style));
        }
    };
    while let Some(c) = chars.next() {
        let toggle = match c {
            '\u{2}' => Some(Modifier::BOLD),
            '\u{1d}' => Some(Modifier::ITALIC),
            '\u{1f}' => Some(Modifier::UNDERLINED),
            '\u{1e}' => Some(Modifier::CROSSED_OUT),
            '\u{16}' => Some(Modifier::REVERSED),
            _ => None,
        };
        if let Some(modifier) = toggle {
            flush(&mut run, &mut spans, style);
            // A toggle: off again means back to the base, which may have it.
            if style.add_modifier.contains(modifier) {
                style.add_modifier.remove(modifier);
                if base.add_modifier.contains(modifier) {
                    style = style.remove_modifier(modifier);
                }
            } else {
                style.sub_modifier.remove(modifier);
                style = style.add_modifier(modifier);
            }
            continue;
        }
        match c {
            '\u{f}' => {
                flush(&mut run, &mut spans, style);
                style = base;
            }
            '\u{3}' => {
                flush(&mut run, &mut spans, style);
                let fg = number(&mut chars);
                let bg = if fg.is_some() && comma_then(&mut chars, |c| c.is_ascii_digit()) {
                    number(&mut chars)
                } else {
                    None
                };
                match fg {
                    // A bare ^C ends the colours.
                    None => {
                        style.fg = base.fg;
                        style.bg = base.bg;
                    }
                    Some(fg) => {
                        style.fg = mirc(fg).or(base.fg);
                        if let Some(bg) = bg {
                            style.bg = mirc(bg).or(base.bg);
                        }
                    }
                }
            }
            '\u{4}' => {
                flush(&mut run, &mut spans, style);
                let fg = hex(&mut chars);
                let bg = if fg.is_some() && comma_then(&mut chars, |c| c.is_ascii_hexdigit()) {
                    hex(&mut chars)
                } else {
                    None
                };
                match fg {
                    None => {
                        style.fg = base.fg;
                        style.bg = base.bg;
                    }
                    Some(fg) => {
                        style.fg = Some(fg);
                        if bg.is_some() {
                            style.bg = bg;
                        }
                    }
                }
            }
            '\t' => {
                let spaces = TAB_WIDTH - column % TAB_WIDTH;
                run.extend(std::iter::repeat_n(' ', spaces));
                column += spaces;
            }
            c if c.is_control() => {}
            c => {
                run.push(c);
                column += 1;
            }
        }
    }
    flush(&mut run, &mut spans, style);
    spans
}

/// `text` without formatting codes (tabs still become spaces).
pub fn plain(text: &str) -> String {
    styled(text, Style::new())
        .into_iter()
        .map(|span| span.content.into_owned())
        .collect()
}

fn mirc(code: u8) -> Option<Color> {
    MIRC.get(usize::from(code)).copied()
}

/// Up to two digits.
fn number(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<u8> {
    let mut value: Option<u8> = None;
    for _ in 0..2 {
        match chars.peek().and_then(|c| c.to_digit(10)) {
            Some(digit) => {
                value = Some(value.unwrap_or(0) * 10 + digit as u8);
                chars.next();
            }
            None => break,
        }
    }
    value
}

/// Six hex digits as a colour; consumes nothing unless all six are there.
fn hex(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<Color> {
    let digits: String = chars.clone().take(6).collect();
    if digits.len() != 6 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let value = u32::from_str_radix(&digits, 16).ok()?;
    chars.nth(5);
    let [_, r, g, b] = value.to_be_bytes();
    Some(Color::Rgb(r, g, b))
}

/// Consumes a comma when the character after it satisfies `next`.
fn comma_then(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    next: impl Fn(char) -> bool,
) -> bool {
    let mut look = chars.clone();
    if look.next() == Some(',') && look.next().is_some_and(next) {
        chars.next();
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(text: &str) -> Vec<(String, Style)> {
        styled(text, Style::new())
            .into_iter()
            .map(|s| (s.content.into_owned(), s.style))
            .collect()
    }

    #[test]
    fn codes_become_styles() {
        let base = Style::new();
        assert_eq!(
            runs("a \u{2}bold\u{2} \u{1d}it\u{f} \u{1f}u"),
            [
                ("a ".to_owned(), base),
                ("bold".to_owned(), base.add_modifier(Modifier::BOLD)),
                (" ".to_owned(), base),
                ("it".to_owned(), base.add_modifier(Modifier::ITALIC)),
                (" ".to_owned(), base),
                ("u".to_owned(), base.add_modifier(Modifier::UNDERLINED)),
            ]
        );
        assert_eq!(
            runs("\u{3}4,12red on blue\u{3} plain"),
            [
                (
                    "red on blue".to_owned(),
                    base.fg(Color::LightRed).bg(Color::LightBlue)
                ),
                (" plain".to_owned(), base),
            ]
        );
        // "^C5,x": the comma is text, not a background.
        assert_eq!(runs("\u{3}5,x")[0].0, ",x");
        assert_eq!(
            runs("\u{4}ff8000orange")[0],
            ("orange".to_owned(), base.fg(Color::Rgb(255, 128, 0)))
        );
        // Colour 99 is "default": the base colour.
        assert_eq!(runs("\u{3}99x")[0], ("x".to_owned(), base));
    }

    #[test]
    fn tabs_are_spaces_and_other_controls_vanish() {
        assert_eq!(plain("a\tb\u{7}c\tdone"), "a   bc  done");
        assert_eq!(
            plain("\u{2}bold\u{2} \u{3}4,12red\u{3} \u{3}5x"),
            "bold red x"
        );
    }
}
