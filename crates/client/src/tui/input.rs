//! The input line: editing (via `tui-input`), history and Tab completion.
//!
//! Editing keys are `tui-input`'s (Left/Right, Ctrl+Left/Right by word, Home/End,
//! Ctrl+A/E, Ctrl+W and Alt+Backspace delete a word, Ctrl+U the line, Ctrl+K to the
//! end). History and completion are ours because they need the client's nick lists.

use std::collections::VecDeque;

use crossterm::event::Event;
use tui_input::backend::crossterm::EventHandler;
use tui_input::{Input, InputRequest};

/// Lines of input history kept.
pub const MAX_HISTORY: usize = 100;

/// An in-progress Tab completion, so repeated Tabs cycle through the candidates.
#[derive(Debug, Clone)]
struct Completion {
    /// The line and cursor (in chars) before the first Tab.
    original: String,
    cursor: usize,
    candidates: Vec<String>,
    index: usize,
    /// The line as the last Tab left it; any other edit ends the cycle.
    produced: String,
}

/// The input line with its history.
#[derive(Debug, Default)]
pub struct InputLine {
    input: Input,
    history: VecDeque<String>,
    /// Position while browsing history (0 = newest entry).
    browsing: Option<usize>,
    /// What was typed before browsing started, restored by going past the newest.
    draft: String,
    completion: Option<Completion>,
}

impl InputLine {
    /// The current text.
    pub fn value(&self) -> &str {
        self.input.value()
    }

    /// The underlying `tui-input` state (cursor and scroll for drawing).
    pub fn inner(&self) -> &Input {
        &self.input
    }

    /// Replaces the text, cursor at the end.
    pub fn set(&mut self, text: &str) {
        self.input = Input::new(text.to_owned());
    }

    /// Applies an editing key; returns whether anything changed.
    pub fn handle_event(&mut self, event: &Event) -> bool {
        self.completion = None;
        self.input.handle_event(event).is_some()
    }

    /// Applies one editing request (for tests and key bindings of our own).
    pub fn request(&mut self, request: InputRequest) {
        self.completion = None;
        self.input.handle(request);
    }

    /// Takes the line for sending, remembering it in the history unless it carries
    /// a password.
    pub fn submit(&mut self) -> String {
        let text = self.input.value_and_reset();
        self.browsing = None;
        self.completion = None;
        if !text.trim().is_empty()
            && self.history.front() != Some(&text)
            && !crate::commands::carries_secret(&text)
        {
            if self.history.len() >= MAX_HISTORY {
                self.history.pop_back();
            }
            self.history.push_front(text.clone());
        }
        text
    }

    /// Up: the previous (older) history entry.
    pub fn history_up(&mut self) {
        let next = match self.browsing {
            None if !self.history.is_empty() => {
                self.draft = self.input.value().to_owned();
                0
            }
            Some(pos) if pos + 1 < self.history.len() => pos + 1,
            _ => return,
        };
        self.browsing = Some(next);
        let text = self.history[next].clone();
        self.set(&text);
    }

    /// Down: the next (newer) entry, then back to the draft.
    pub fn history_down(&mut self) {
        match self.browsing {
            Some(0) => {
                self.browsing = None;
                let draft = std::mem::take(&mut self.draft);
                self.set(&draft);
            }
            Some(pos) => {
                self.browsing = Some(pos - 1);
                let text = self.history[pos - 1].clone();
                self.set(&text);
            }
            None => {}
        }
    }

    /// Tab: completes the word before the cursor from `candidates(word, at_start)`;
    /// pressed again, cycles to the next candidate.
    pub fn complete(&mut self, candidates: impl FnOnce(&str, bool) -> Vec<String>) {
        if let Some(completion) = &mut self.completion
            && completion.produced == self.input.value()
        {
            completion.index = (completion.index + 1) % completion.candidates.len();
        } else {
            let original = self.input.value().to_owned();
            let cursor = self.input.cursor();
            let (start, word) = word_before(&original, cursor);
            let found = candidates(word, start == 0);
            if found.is_empty() {
                self.completion = None;
                return;
            }
            self.completion = Some(Completion {
                original,
                cursor,
                candidates: found,
                index: 0,
                produced: String::new(),
            });
        }
        let Some(completion) = &mut self.completion else {
            return;
        };
        let (line, cursor) = apply_completion(
            &completion.original,
            completion.cursor,
            &completion.candidates[completion.index],
        );
        completion.produced = line.clone();
        self.input = Input::new(line).with_cursor(cursor);
    }
}

/// The byte offset where the word before char position `cursor` starts, and the word.
fn word_before(line: &str, cursor: usize) -> (usize, &str) {
    let end = line
        .char_indices()
        .nth(cursor)
        .map_or(line.len(), |(i, _)| i);
    let start = line[..end].rfind(' ').map_or(0, |i| i + 1);
    (start, &line[start..end])
}

/// Replaces the word before `cursor` with `candidate` (plus `": "` for a nick at the
/// start of the line, or a space otherwise); returns the line and the new cursor.
fn apply_completion(line: &str, cursor: usize, candidate: &str) -> (String, usize) {
    let (start, word) = word_before(line, cursor);
    let end = start + word.len();
    let suffix = if start == 0 && !candidate.starts_with('/') && !candidate.starts_with('#') {
        ": "
    } else {
        " "
    };
    let rest = line[end..].strip_prefix(' ').unwrap_or(&line[end..]);
    let head = format!("{}{candidate}{suffix}", &line[..start]);
    let cursor = head.chars().count();
    (format!("{head}{rest}"), cursor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(text: &str) -> InputLine {
        let mut input = InputLine::default();
        input.set(text);
        input
    }

    #[test]
    fn tab_completes_and_cycles_nicks() {
        let mut input = typed("al");
        let nicks = |word: &str, _| -> Vec<String> {
            ["alice", "alan", "bob"]
                .iter()
                .filter(|n| n.starts_with(word))
                .map(|n| (*n).to_owned())
                .collect()
        };
        input.complete(nicks);
        assert_eq!(input.value(), "alice: ");
        input.complete(nicks);
        assert_eq!(input.value(), "alan: ");
        input.complete(nicks);
        assert_eq!(input.value(), "alice: ");
        let mut input = typed("hi al");
        input.complete(nicks);
        assert_eq!(input.value(), "hi alice ");
    }

    #[test]
    fn history_recalls_and_restores_the_draft() {
        let mut input = typed("first");
        input.submit();
        input.set("second");
        input.submit();
        input.set("draft");
        input.history_up();
        assert_eq!(input.value(), "second");
        input.history_up();
        input.history_up();
        assert_eq!(input.value(), "first");
        input.history_down();
        input.history_down();
        assert_eq!(input.value(), "draft");
    }

    #[test]
    fn passwords_stay_out_of_the_history() {
        let mut input = typed("hello");
        input.submit();
        for secret in [
            "/password hunter2",
            "/PASS hunter2",
            "/quote OPER admin hunter2",
        ] {
            input.set(secret);
            assert_eq!(input.submit(), secret);
        }
        input.history_up();
        assert_eq!(input.value(), "hello");
        input.history_up();
        assert_eq!(input.value(), "hello");
        // Clearing the password carries no secret, and is remembered.
        input.set("/password");
        input.submit();
        input.history_up();
        assert_eq!(input.value(), "/password");
    }

    #[test]
    fn word_deletion_comes_from_tui_input() {
        let mut input = typed("hello big world");
        input.request(InputRequest::DeletePrevWord);
        assert_eq!(input.value(), "hello big ");
    }
}
