//! Drawing the full-screen UI: a pure function of the client [`State`] and the
//! [`View`] (input line and scroll positions) into a ratatui [`Frame`].
//!
//! Nothing here reads the terminal or the clock, so the whole screen can be rendered
//! into ratatui's `TestBackend` and compared with a snapshot.
//!
//! Screen, top to bottom: one row of tabs, the message pane (with the topic on top
//! and the nick list on the right for channels), the status line, the input line.

use std::borrow::Cow;
use std::cell::Cell;
use std::collections::HashMap;

use palaver_proto::CaseKey;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line as TextLine, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use unicode_segmentation::UnicodeSegmentation;

use crate::state::{Buffer, BufferKind, ConnState, Delivery, Line, LineKind, State};
use crate::tui::format;
use crate::tui::input::InputLine;
use crate::tui::width::{Joins, cluster_width, displayable, text_width};

/// Width of the `HH:MM ` column; wrapped lines are indented by it.
const TIME_WIDTH: usize = 6;

/// What the UI shows beyond the client state: the input line and, per buffer, how
/// many rows the user scrolled up from the bottom.
#[derive(Debug, Default)]
pub struct View {
    /// The input line with its history and completion.
    pub input: InputLine,
    /// Rows scrolled up from the newest line, per buffer (absent means 0).
    pub scroll: HashMap<CaseKey, usize>,
    /// The most rows the active buffer could scroll up at the last draw, when the
    /// draw reached its oldest line (so PageUp stops at the top).
    pub max_scroll: Cell<Option<usize>>,
    /// While disconnected: the time left before the next attempt, as of this draw.
    /// The loop that owns the clock sets it and redraws every second, so the
    /// status line counts down; render itself reads no clock.
    pub retry_left: Option<std::time::Duration>,
    /// After Alt+J: the digits of the buffer number typed so far.
    pub jump: Option<String>,
    /// Which emoji clusters the terminal joins (probed at start): text is drawn
    /// through [`displayable`] so that ratatui's widths are the terminal's.
    pub joins: Joins,
    /// A scrollback search in progress (Ctrl+R or `/search`).
    pub search: Option<Search>,
    /// A paste of many lines, waiting for the user to say whether to send it.
    pub paste: Option<Vec<String>>,
    /// Lines typed or pasted that the connection has not written yet (its
    /// pacing holds them back); shown while more than one waits.
    pub sending: usize,
    /// The buffer the search runs in; switching away ends it.
    pub searched_in: Option<CaseKey>,
    /// Where the last draw scrolled to show the current search match, so that
    /// Enter can stay there.
    pub search_scroll: Cell<Option<usize>>,
}

/// A search through the active buffer's scrollback, newest match first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Search {
    /// The text looked for (ignoring case).
    pub query: String,
    /// Which match is shown: 0 is the newest, Ctrl+R steps to older ones.
    pub nth: usize,
}

impl View {
    /// Rows scrolled up in `buffer`.
    pub fn scroll_of(&self, buffer: &Buffer) -> usize {
        self.scroll.get(&buffer.key).copied().unwrap_or(0)
    }
}

/// The message pane's height for a terminal of `height` rows (for PageUp/PageDown).
pub fn pane_height(height: u16) -> usize {
    usize::from(height.saturating_sub(4)).max(1)
}

/// A stable colour for `nick`: the same nick has the same colour in every buffer and
/// every run (FNV-1a over the casefolded nick, not a randomly seeded hash).
pub fn nick_color(key: &str) -> Color {
    // No light yellow: that is the colour of highlighted text.
    const PALETTE: [Color; 11] = [
        Color::Red,
        Color::Green,
        Color::Yellow,
        Color::Blue,
        Color::Magenta,
        Color::Cyan,
        Color::LightRed,
        Color::LightGreen,
        Color::LightBlue,
        Color::LightMagenta,
        Color::LightCyan,
    ];
    let mut hash: u32 = 0x811c_9dc5;
    for byte in key.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    PALETTE[(hash % PALETTE.len() as u32) as usize]
}

/// Draws the whole screen.
pub fn render(frame: &mut Frame<'_>, state: &State, view: &View) {
    let [tabs, body, status, input] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    let buffer = state.active_buffer();
    render_tabs(frame, tabs, state, view.joins);
    let shown = render_body(frame, body, state, buffer, view);
    render_status(frame, status, state, view, buffer, &shown);
    render_input(frame, input, buffer, view);
}

fn tab_name(buffer: &Buffer) -> &str {
    match buffer.kind {
        BufferKind::Server => "status",
        BufferKind::List => "channels",
        BufferKind::Channel | BufferKind::Query => &buffer.name,
    }
}

/// One buffer's tab: its label and its unread or mention count.
fn tab_spans(state: &State, index: usize, buffer: &Buffer, joins: Joins) -> Vec<Span<'static>> {
    let label = format!(" {}:{} ", index + 1, displayable(tab_name(buffer), joins));
    let style = if index == state.active {
        Style::new().add_modifier(Modifier::REVERSED | Modifier::BOLD)
    } else if buffer.mentions > 0 {
        Style::new()
            .fg(Color::LightRed)
            .add_modifier(Modifier::BOLD)
    } else if buffer.unread > 0 {
        Style::new().fg(Color::Yellow)
    } else if buffer.kind == BufferKind::Channel && !buffer.joined {
        Style::new().fg(Color::DarkGray)
    } else {
        Style::new()
    };
    let mut spans = vec![Span::styled(label, style)];
    if index != state.active && buffer.mentions > 0 {
        spans.push(Span::styled(
            format!("({})", buffer.mentions),
            Style::new()
                .fg(Color::LightRed)
                .add_modifier(Modifier::BOLD),
        ));
    } else if index != state.active && buffer.unread > 0 {
        spans.push(Span::styled(
            format!("+{}", buffer.unread),
            Style::new().fg(Color::Yellow),
        ));
    }
    spans
}

fn spans_width(spans: &[Span<'_>]) -> usize {
    spans.iter().map(|s| text_width(&s.content)).sum()
}

/// The marker for `hidden` buffers off one end of the tab bar: how many, coloured
/// like the most urgent of them (a mention, then unread lines).
fn more_marker(hidden: &[Buffer], left: bool) -> Span<'static> {
    let count = hidden.len();
    let text = if left {
        format!("<{count} ")
    } else {
        format!(" {count}>")
    };
    let style = if hidden.iter().any(|b| b.mentions > 0) {
        Style::new()
            .fg(Color::LightRed)
            .add_modifier(Modifier::BOLD)
    } else if hidden.iter().any(|b| b.unread > 0) {
        Style::new().fg(Color::Yellow)
    } else {
        Style::new().fg(Color::DarkGray)
    };
    Span::styled(text, style)
}

/// The tab bar. When the tabs do not fit, it shows a window of them that always
/// contains the active one, with `<N` and `N>` for the buffers off each end
/// (coloured when one of those has unread lines or mentions).
fn render_tabs(frame: &mut Frame<'_>, area: Rect, state: &State, joins: Joins) {
    let (spans, _) = tab_bar(state, usize::from(area.width), joins);
    frame.render_widget(Paragraph::new(TextLine::from(spans)), area);
}

/// The buffer whose tab is drawn at `column` of a tab bar `width` columns wide
/// (for mouse clicks); `None` for a marker or the empty end of the bar.
pub fn tab_at(state: &State, width: u16, joins: Joins, column: u16) -> Option<usize> {
    let (_, places) = tab_bar(state, usize::from(width), joins);
    let column = usize::from(column);
    places
        .into_iter()
        .find(|&(start, end, _)| (start..end).contains(&column))
        .map(|(_, _, index)| index)
}

/// The tab bar's spans and where each shown tab is: (first column, end column,
/// buffer index).
fn tab_bar(
    state: &State,
    room: usize,
    joins: Joins,
) -> (Vec<Span<'static>>, Vec<(usize, usize, usize)>) {
    let tabs: Vec<Vec<Span<'static>>> = state
        .buffers
        .iter()
        .enumerate()
        .map(|(index, buffer)| tab_spans(state, index, buffer, joins))
        .collect();
    let widths: Vec<usize> = tabs.iter().map(|t| spans_width(t)).collect();
    let active = state.active.min(tabs.len().saturating_sub(1));
    let (mut first, mut end) = (0, tabs.len());
    if widths.iter().sum::<usize>() > room {
        // Room for both markers (" 99>" and "<99 "), then grow the window from the
        // active tab: rightwards first, so new buffers are seen, then leftwards.
        let markers = 8;
        let budget = room.saturating_sub(markers);
        (first, end) = (active, active + 1);
        let mut used = widths[active];
        loop {
            if end < tabs.len() && used + widths[end] <= budget {
                used += widths[end];
                end += 1;
            } else if first > 0 && used + widths[first - 1] <= budget {
                first -= 1;
                used += widths[first];
            } else {
                break;
            }
        }
    }
    let mut spans = Vec::new();
    let mut places = Vec::new();
    if first > 0 {
        spans.push(more_marker(&state.buffers[..first], true));
    }
    for (index, tab) in tabs.iter().enumerate().take(end).skip(first) {
        let start = spans_width(&spans);
        places.push((start, start + widths[index], index));
        spans.extend(tab.iter().cloned());
    }
    if end < tabs.len() {
        let used = spans_width(&spans);
        let marker = more_marker(&state.buffers[end..], false);
        // Right-align the marker so it is seen at the edge.
        let pad = room.saturating_sub(used + text_width(&marker.content));
        spans.push(Span::raw(" ".repeat(pad)));
        spans.push(marker);
    }
    (spans, places)
}

/// Draws the topic, messages and nick list; returns what the pane shows.
fn render_body(
    frame: &mut Frame<'_>,
    area: Rect,
    state: &State,
    buffer: &Buffer,
    view: &View,
) -> Shown {
    let scroll = view.scroll_of(buffer);
    let mut messages = area;
    if buffer.kind == BufferKind::Channel {
        let longest = buffer
            .members
            .values()
            .map(|m| m.nick.chars().count())
            .max()
            .unwrap_or(0);
        let width = (longest as u16 + 3).clamp(12, 20);
        if area.width >= width + 30 {
            let [left, right] =
                Layout::horizontal([Constraint::Min(1), Constraint::Length(width)]).areas(area);
            render_nicks(frame, right, state, buffer);
            messages = left;
        }
        let [topic, rest] =
            Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(messages);
        let text = match buffer.topic.as_deref() {
            _ if !buffer.joined => format!(" {} (not joined: /join {})", buffer.name, buffer.name),
            Some(topic) => format!(" {}: {}", buffer.name, format::plain(topic)),
            None => format!(" {}", buffer.name),
        };
        let text = displayable(&text, view.joins).into_owned();
        let topic_line =
            Paragraph::new(text).style(Style::new().fg(Color::White).bg(Color::DarkGray));
        frame.render_widget(topic_line, topic);
        messages = rest;
    }
    let height = usize::from(messages.height);
    // A search shows its match in the middle of the pane, drawn reversed.
    let found = view.search.as_ref().map(|search| {
        let matches = buffer.search(&search.query);
        let nth = search.nth.min(matches.len().saturating_sub(1));
        let hit = matches.iter().rev().nth(nth).copied();
        (hit, nth, matches.len())
    });
    let hit = found.and_then(|(hit, _, _)| hit);
    let (rows, hit_rows) = message_rows(
        state,
        view.joins,
        buffer,
        usize::from(messages.width),
        height + scroll,
        hit,
    );
    let scroll = match hit_rows {
        Some(below) => {
            let scroll = below.saturating_sub(height / 2 + 1);
            view.search_scroll.set(Some(scroll));
            scroll
        }
        None => scroll,
    };
    let complete = rows.len() < height + scroll;
    let scroll = if complete {
        scroll.min(rows.len().saturating_sub(height))
    } else {
        scroll
    };
    view.max_scroll.set(complete.then_some(scroll));
    let end = rows.len().saturating_sub(scroll);
    let start = end.saturating_sub(height);
    frame.render_widget(Paragraph::new(rows[start..end].to_vec()), messages);
    Shown {
        scroll,
        found: found.map(|(_, nth, count)| (nth, count)),
    }
}

/// What the message pane ended up showing, for the status line.
struct Shown {
    /// Rows scrolled up from the newest.
    scroll: usize,
    /// While searching: which match (0 = newest) of how many.
    found: Option<(usize, usize)>,
}

/// The wrapped rows of the newest lines of `buffer`, at least `wanted` of them when
/// the scrollback has that many, oldest first. With a search `hit` (a line index),
/// the rows reach back to it too, it is drawn reversed, and the second value is
/// how many rows there are from its first row to the end.
fn message_rows(
    state: &State,
    joins: Joins,
    buffer: &Buffer,
    width: usize,
    wanted: usize,
    hit: Option<usize>,
) -> (Vec<TextLine<'static>>, Option<usize>) {
    let mut hit_rows = None;
    let mut rows: Vec<TextLine<'static>> = Vec::new();
    let marker = buffer.marker_index();
    for (index, line) in buffer.lines.iter().enumerate().rev() {
        let mut wrapped = wrap(line_spans(state, joins, line), width.max(TIME_WIDTH + 4));
        if hit == Some(index) {
            for span in wrapped.iter_mut().flat_map(|row| row.spans.iter_mut()) {
                span.style = span.style.add_modifier(Modifier::REVERSED);
            }
            hit_rows = Some(wrapped.len() + rows.len());
        }
        if marker == Some(index) {
            // The read marker: unread lines start below it.
            let text = format!("{:\u{2500}^width$}", " unread ");
            wrapped.insert(
                0,
                TextLine::from(Span::styled(text, Style::new().fg(Color::LightRed))),
            );
        }
        wrapped.extend(rows);
        rows = wrapped;
        if rows.len() >= wanted && hit.is_none_or(|hit| index <= hit) {
            break;
        }
    }
    (rows, hit_rows)
}

fn line_spans(state: &State, joins: Joins, line: &Line) -> Vec<Span<'static>> {
    // A line from the server's history has its time in italics: it was said
    // then, not now.
    let mut time_style = Style::new().fg(Color::DarkGray);
    if line.history {
        time_style = time_style.add_modifier(Modifier::ITALIC);
    }
    let time = Span::styled(format!("{} ", line.time), time_style);
    let nick = line.nick.clone().unwrap_or_default();
    let mut nick_style = Style::new().fg(nick_color(state.key(&nick).as_str()));
    if line.own {
        nick_style = nick_style.add_modifier(Modifier::BOLD);
    }
    let text_style = if line.highlight {
        Style::new()
            .fg(Color::LightYellow)
            .add_modifier(Modifier::BOLD)
    } else {
        Style::new()
    };
    // The text's own formatting goes on top of the style of its kind of line.
    let text = |base: Style| -> Vec<Span<'static>> {
        format::styled(&line.text, base)
            .into_iter()
            .map(|span| {
                let content = displayable(&span.content, joins).into_owned();
                Span::styled(content, span.style)
            })
            .collect()
    };
    let mut spans = vec![time];
    match line.kind {
        LineKind::Message => {
            spans.push(Span::raw("<"));
            spans.push(Span::styled(nick, nick_style));
            spans.push(Span::raw("> "));
            spans.extend(text(text_style));
        }
        LineKind::Action => {
            spans.push(Span::styled("* ", text_style));
            spans.push(Span::styled(nick, nick_style));
            spans.push(Span::styled(" ", text_style));
            spans.extend(text(text_style));
        }
        LineKind::Notice => {
            spans.push(Span::styled("-", Style::new().fg(Color::Magenta)));
            spans.push(Span::styled(nick, nick_style));
            spans.push(Span::styled("- ", Style::new().fg(Color::Magenta)));
            spans.extend(text(text_style));
        }
        LineKind::Event => {
            let style = Style::new().fg(Color::Cyan);
            spans.push(Span::styled("* ", style));
            spans.extend(text(style));
        }
        LineKind::Info => spans.extend(text(Style::new().fg(Color::Gray))),
        LineKind::Error => {
            let style = Style::new().fg(Color::LightRed);
            spans.push(Span::styled("! ", style));
            spans.extend(text(style));
        }
    }
    if line.delivery == Delivery::Failed {
        spans.push(Span::styled(
            " [not delivered]",
            Style::new().fg(Color::LightRed),
        ));
    }
    spans
}

/// Wraps styled spans into rows of `width` columns at spaces where possible (inside
/// long words otherwise); continuation rows are indented by [`TIME_WIDTH`] so the
/// text lines up after the time stamp. It works in grapheme clusters measured as
/// ratatui measures them, so a row never holds more than ratatui draws.
fn wrap(spans: Vec<Span<'static>>, width: usize) -> Vec<TextLine<'static>> {
    let cells: Vec<(&str, Style)> = spans
        .iter()
        .flat_map(|span| span.content.graphemes(true).map(move |g| (g, span.style)))
        .collect();
    let mut rows: Vec<Vec<(&str, Style)>> = Vec::new();
    let mut row: Vec<(&str, Style)> = Vec::new();
    let mut used = 0;
    let mut i = 0;
    while let Some(&(g, style)) = cells.get(i) {
        let w = cluster_width(g);
        if used + w > width && !row.is_empty() {
            // Carry the last word over when the row has a space after the time column.
            let carry = if g == " " {
                None
            } else {
                row.iter()
                    .rposition(|&(cell, _)| cell == " ")
                    .filter(|&p| p >= TIME_WIDTH && p + 1 < row.len())
            };
            let tail = carry.map(|p| row.split_off(p + 1)).unwrap_or_default();
            while row.len() > TIME_WIDTH && row.last().is_some_and(|&(cell, _)| cell == " ") {
                row.pop();
            }
            rows.push(std::mem::take(&mut row));
            row = vec![(" ", Style::new()); TIME_WIDTH];
            used = TIME_WIDTH
                + tail
                    .iter()
                    .map(|&(cell, _)| cluster_width(cell))
                    .sum::<usize>();
            row.extend(tail);
            if g == " " {
                i += 1;
            }
            continue;
        }
        row.push((g, style));
        used += w;
        i += 1;
    }
    rows.push(row);
    rows.into_iter().map(styled_row).collect()
}

/// Groups a row of styled clusters into spans.
fn styled_row(cells: Vec<(&str, Style)>) -> TextLine<'static> {
    let mut spans: Vec<Span<'static>> = Vec::new();
    let mut text = String::new();
    let mut current: Option<Style> = None;
    for (g, style) in cells {
        if current.is_some_and(|s| s != style) {
            spans.push(Span::styled(
                std::mem::take(&mut text),
                current.unwrap_or_default(),
            ));
        }
        current = Some(style);
        text.push_str(g);
    }
    if !text.is_empty() {
        spans.push(Span::styled(text, current.unwrap_or_default()));
    }
    TextLine::from(spans)
}

fn render_nicks(frame: &mut Frame<'_>, area: Rect, state: &State, buffer: &Buffer) {
    let order = state.prefix_order();
    let members = buffer.sorted_members(&order);
    let lines: Vec<TextLine<'_>> = members
        .iter()
        .map(|m| {
            let prefix = m.prefix().unwrap_or(' ');
            let prefix_style = match prefix {
                '@' | '~' | '&' => Style::new()
                    .fg(Color::LightGreen)
                    .add_modifier(Modifier::BOLD),
                '+' | '%' => Style::new().fg(Color::LightYellow),
                _ => Style::new(),
            };
            TextLine::from(vec![
                Span::styled(prefix.to_string(), prefix_style),
                Span::styled(
                    m.nick.clone(),
                    Style::new().fg(nick_color(state.key(&m.nick).as_str())),
                ),
            ])
        })
        .collect();
    let title = match members.len() {
        1 => " 1 user ".to_owned(),
        n => format!(" {n} users "),
    };
    let block = Block::new().borders(Borders::LEFT).title(title);
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn render_status(
    frame: &mut Frame<'_>,
    area: Rect,
    state: &State,
    view: &View,
    buffer: &Buffer,
    shown: &Shown,
) {
    let mut parts = vec![
        format!(
            " {}{}{} @ {}",
            state.nick,
            state
                .account
                .as_ref()
                .map(|account| format!(" [{account}]"))
                .unwrap_or_default(),
            if state.away { " (away)" } else { "" },
            state.server
        ),
        match (&state.conn, view.retry_left) {
            (ConnState::Disconnected { .. }, Some(left)) => {
                // Round up: "retry in 0s" would claim the attempt already began.
                let secs = left.as_millis().div_ceil(1000);
                format!("disconnected, retry in {secs}s (/reconnect: now)")
            }
            (conn, _) => conn.label(),
        },
    ];
    if let Some(lag) = state.lag {
        parts.push(format!("lag {}ms", lag.as_millis()));
    }
    if buffer.kind != BufferKind::Server {
        parts.push(format!("{} ", tab_name(buffer)));
    }
    if view.sending > 1 {
        parts.push(format!("sending, {} lines to go", view.sending));
    }
    match shown.found {
        Some((_, 0)) => parts.push("no match (Esc ends the search)".to_owned()),
        Some((nth, count)) => parts.push(format!(
            "match {} of {count} (Ctrl+R older, Enter stays, Esc ends)",
            nth + 1
        )),
        None if shown.scroll > 0 => {
            parts.push(format!("scrolled up {} (PageDown)", shown.scroll));
        }
        None => {}
    }
    let status =
        Paragraph::new(parts.join(" | ")).style(Style::new().fg(Color::White).bg(Color::Blue));
    frame.render_widget(status, area);
}

fn render_input(frame: &mut Frame<'_>, area: Rect, buffer: &Buffer, view: &View) {
    if let Some(lines) = &view.paste {
        let question = format!(
            "Send {} pasted lines to {}? y: send, any other key: cancel",
            lines.len(),
            displayable(tab_name(buffer), view.joins)
        );
        let line = Span::styled(question, Style::new().fg(Color::Black).bg(Color::Yellow));
        frame.render_widget(Paragraph::new(TextLine::from(line)), area);
        return;
    }
    if let Some(search) = &view.search {
        let query = displayable(&search.query, view.joins);
        let line = TextLine::from(vec![
            Span::styled("(search) ", Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(query.to_string()),
        ]);
        frame.render_widget(Paragraph::new(line), area);
        let x = area.x as usize + 9 + text_width(&query);
        let x = x.min(usize::from(area.right().saturating_sub(1)));
        frame.set_cursor_position((x as u16, area.y));
        return;
    }
    let prompt = displayable(&format!("[{}] ", tab_name(buffer)), view.joins).into_owned();
    let prompt_width = text_width(&prompt);
    let room = usize::from(area.width)
        .saturating_sub(prompt_width + 1)
        .max(1);
    // A password being typed is shown as one `*` per character.
    let value = match crate::commands::secret_start(view.input.value()) {
        Some(at) => {
            let typed = view.input.value();
            let stars = typed[at..].chars().map(|_| '*');
            Cow::Owned(typed[..at].chars().chain(stars).collect())
        }
        None => Cow::Borrowed(view.input.value()),
    };
    let value = value.as_ref();
    let cursor_byte = value
        .char_indices()
        .nth(view.input.inner().cursor())
        .map_or(value.len(), |(i, _)| i);
    // Measured on the text as drawn, so the cursor sits where the terminal has it.
    let cursor = text_width(&displayable(&value[..cursor_byte], view.joins));
    let shown = displayable(value, view.joins);
    // Scroll by whole clusters until the cursor fits.
    let mut scroll = 0;
    let mut clusters = shown.graphemes(true);
    while cursor.saturating_sub(scroll) > room {
        match clusters.next() {
            Some(g) => scroll += cluster_width(g),
            None => break,
        }
    }
    let line = TextLine::from(vec![
        Span::styled(prompt, Style::new().add_modifier(Modifier::BOLD)),
        Span::raw(clusters.as_str().to_owned()),
    ]);
    frame.render_widget(Paragraph::new(line), area);
    let x = area.x as usize + prompt_width + cursor.saturating_sub(scroll);
    let x = x.min(usize::from(area.right().saturating_sub(1)));
    frame.set_cursor_position((x as u16, area.y));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nick_colours_are_stable() {
        assert_eq!(nick_color("alice"), nick_color("alice"));
        assert_ne!(nick_color("alice"), nick_color("bob"));
    }

    #[test]
    fn wrapping_indents_continuations() {
        let rows = wrap(vec![Span::raw("12:00 abcdefghij")], 12);
        let text: Vec<String> = rows.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["12:00 abcdef", "      ghij"]);
        let rows = wrap(vec![Span::raw("12:00 ab cd efgh")], 13);
        let text: Vec<String> = rows.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["12:00 ab cd", "      efgh"]);
    }
}
