//! The full-screen UI rendered at 80x24 into ratatui's `TestBackend`.
//!
//! The state comes from scripted server lines through the public core API, so these
//! snapshots show what a user would see after that conversation.

use std::time::Duration;

use palaver_client::connection::ConnEvent;
use palaver_client::state::Stamp;
use palaver_client::tui::width::Joins;
use palaver_client::tui::{Search, View, candidates, render, rings, tab_at};
use palaver_client::{Client, ClientConfig};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::style::{Color, Modifier};

fn at(hour: u8, minute: u8) -> Stamp {
    Stamp::new(hour, minute)
}

fn feed(client: &mut Client, time: Stamp, lines: &[&str]) {
    for line in lines {
        client.handle(ConnEvent::Line((*line).to_owned()), time);
    }
}

/// alice in #lobby (active) and #rust, with a private message from bob.
fn conversation() -> Client {
    let mut client = Client::new(
        "127.0.0.1:6667",
        ClientConfig::new("alice", vec!["#lobby".into(), "#rust".into()]),
    );
    let peer = "127.0.0.1:6667".parse().expect("address");
    client.handle(
        ConnEvent::Connected {
            generation: 1,
            peer,
        },
        at(9, 0),
    );
    feed(
        &mut client,
        at(9, 0),
        &[
            ":irc.test 001 alice :Welcome to the Palaver IRC network alice",
            ":irc.test 005 alice PREFIX=(ov)@+ CHANTYPES=# CASEMAPPING=rfc1459 :are supported",
            ":alice!a@h JOIN #lobby",
            ":irc.test 332 alice #lobby :Welcome to the lobby",
            ":irc.test 353 alice = #lobby :alice @carol +bob dave",
            ":irc.test 366 alice #lobby :End of /NAMES list.",
            ":alice!a@h JOIN #rust",
            ":irc.test 353 alice = #rust :alice @ferris",
            ":irc.test 366 alice #rust :End of /NAMES list.",
        ],
    );
    feed(
        &mut client,
        at(9, 5),
        &[
            ":carol!c@h PRIVMSG #lobby :good morning everyone",
            ":bob!b@h PRIVMSG #lobby :morning! has anyone seen the new release notes? they are long enough to wrap onto a second row",
            ":dave!d@h PRIVMSG #lobby :alice: can you review my patch?",
            ":ferris!f@h PRIVMSG #rust :alice, the borrow checker says hi",
            ":ferris!f@h PRIVMSG #rust :and one more line",
            ":bob!b@h PRIVMSG alice :psst, lunch?",
            ":erin!e@h JOIN #lobby",
        ],
    );
    client.handle(ConnEvent::Lag(Duration::from_millis(42)), at(9, 6));
    client.input("morning all", at(9, 6));
    client.input("/me waves", at(9, 6));
    client
}

fn draw(client: &Client, view: &View) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("terminal");
    terminal
        .draw(|frame| render(frame, client.state(), view))
        .expect("draw");
    terminal
}

#[test]
fn channel_with_tabs_nick_list_mention_and_status() {
    let client = conversation();
    let mut view = View::default();
    view.input.set("typing a reply");
    let terminal = draw(&client, &view);
    insta::assert_snapshot!(terminal.backend());

    // The mention is highlighted: its text is drawn in light yellow.
    let buffer = terminal.backend().buffer();
    let row = (0..24)
        .find(|&y| {
            let text: String = (0..80).map(|x| buffer[(x, y)].symbol()).collect();
            text.contains("alice: can you review")
        })
        .expect("mention row");
    let text: String = (0..80).map(|x| buffer[(x, row)].symbol()).collect();
    let column = text.find("alice: can").expect("column") as u16;
    assert_eq!(buffer[(column, row)].fg, Color::LightYellow);
    // Tabs count mentions on inactive buffers: #rust has one, the query with bob one.
    let tabs: String = (0..80).map(|x| buffer[(x, 0)].symbol()).collect();
    assert!(
        tabs.contains("3:#rust (1)") && tabs.contains("4:bob (1)"),
        "{tabs}"
    );
}

#[test]
fn query_buffer_while_disconnected() {
    let mut client = conversation();
    client.switch_to(3);
    client.handle(
        ConnEvent::Disconnected {
            reason: "the server closed the connection".into(),
            retry_in: Duration::from_secs(4),
        },
        at(9, 7),
    );
    let terminal = draw(&client, &View::default());
    insta::assert_snapshot!(terminal.backend());
}

#[test]
fn server_buffer_scrolled_back() {
    let mut client = conversation();
    for i in 0..40 {
        feed(
            &mut client,
            at(8, 59),
            &[&format!(":irc.test 372 alice :- MOTD line {i}")],
        );
    }
    client.switch_to(0);
    let mut view = View::default();
    let key = client.state().active_buffer().key.clone();
    view.scroll.insert(key, 10);
    let terminal = draw(&client, &view);
    insta::assert_snapshot!(terminal.backend());
}

#[test]
fn tab_completion_offers_nicks_commands_and_channels() {
    let client = conversation();
    let state = client.state();
    assert_eq!(candidates(state, "da", true), ["dave"]);
    assert_eq!(candidates(state, "/jo", true), ["/join"]);
    assert_eq!(candidates(state, "#r", false), ["#rust"]);
    assert_eq!(candidates(state, "a", false), ["alice"]);
    // Issue 12: `/topic ` then Tab brings the current topic up for editing.
    let edit = palaver_client::tui::topic_to_edit(state, "/topic ");
    assert_eq!(edit.as_deref(), Some("/topic Welcome to the lobby"));
    assert_eq!(palaver_client::tui::topic_to_edit(state, "/topic x"), None);
}

/// Issue 12, bug 6: while disconnected the status line counts down to the next
/// attempt (the loop sets `retry_left` and redraws every second).
#[test]
fn issue_12_status_line_counts_down_to_the_retry() {
    let mut client = conversation();
    client.handle(
        ConnEvent::Disconnected {
            reason: "Server shutting down".into(),
            retry_in: Duration::from_secs(4),
        },
        at(9, 7),
    );
    let status = |left: Duration| {
        let view = View {
            retry_left: Some(left),
            ..View::default()
        };
        let terminal = draw(&client, &view);
        let buffer = terminal.backend().buffer();
        (0..80)
            .map(|x| buffer[(x, 22)].symbol())
            .collect::<String>()
    };
    assert!(status(Duration::from_secs(4)).contains("retry in 4s (/reconnect: now)"));
    assert!(status(Duration::from_millis(2300)).contains("retry in 3s"));
    assert!(status(Duration::from_millis(400)).contains("retry in 1s"));
}

/// Issue 12, bug 5: 13 buffers at 100 columns. The bar scrolls to keep the
/// active buffer in view, says how many buffers are off each end, and colours
/// the marker of the side where unread or mentioned ones are.
#[test]
fn issue_12_the_tab_bar_scrolls_to_the_active_buffer() {
    let mut client = conversation();
    let time = at(9, 10);
    for i in 0..8 {
        feed(
            &mut client,
            time,
            &[&format!(":alice!a@h JOIN #channel-{i}")],
        );
    }
    // A private message opens buffer 13, off screen while #lobby is active.
    feed(
        &mut client,
        time,
        &[":zed!z@h PRIVMSG alice :are you there?"],
    );
    assert_eq!(client.state().buffers.len(), 13);
    client.input("/buffer 2", time);
    let bar = |client: &Client| {
        let mut terminal = Terminal::new(TestBackend::new(100, 24)).expect("terminal");
        terminal
            .draw(|frame| render(frame, client.state(), &View::default()))
            .expect("draw");
        let buffer = terminal.backend().buffer().clone();
        let text: String = (0..100).map(|x| buffer[(x, 0)].symbol()).collect();
        (text, buffer)
    };
    let (text, buffer) = bar(&client);
    insta::assert_snapshot!("tabs_at_the_start", text);
    // The right marker is red: a mention (zed's private message) is over there.
    let marker = text.trim_end().len() - 1;
    assert_eq!(buffer[(marker as u16, 0)].fg, Color::LightRed);

    client.input("/buffer 12", time);
    let (text, _) = bar(&client);
    insta::assert_snapshot!("tabs_scrolled_to_buffer_12", text);
    assert!(text.contains("12:#channel-7"), "{text}");
    assert!(
        client
            .input("/buffer 14", time)
            .iter()
            .any(|c| matches!(c, palaver_client::Change::Line { line, .. } if line.text.contains("no buffer 14")))
    );
}

/// Issue 12, bug 7: flags, ZWJ sequences, skin tones and emoji presentation
/// sequences are drawn at the widths the terminal uses. One the probe found
/// joining nothing gets the clusters as parts of undisputed width (`JP`, three
/// faces); one that joins them gets each as one two-column cell, and wrapping
/// counts it as two columns (not the six its characters add up to).
#[test]
fn issue_12_emoji_clusters_are_drawn_at_the_terminals_widths() {
    let mut client = conversation();
    let family = "\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}";
    feed(
        &mut client,
        at(9, 8),
        &[
            ":bob!b@h PRIVMSG #lobby :from \u{1F1EF}\u{1F1F5} with \u{2764}\u{FE0F} \u{1F44D}\u{1F3FD} end",
            &format!(":bob!b@h PRIVMSG #lobby :{}", family.repeat(24)),
        ],
    );
    for (name, joins) in [("unjoined", Joins::NONE), ("joined", Joins::ALL)] {
        let view = View {
            joins,
            ..View::default()
        };
        let terminal = draw(&client, &view);
        insta::assert_snapshot!(format!("emoji_clusters_{name}"), terminal.backend());
        let buffer = terminal.backend().buffer();
        let rows: Vec<String> = (0..24)
            .map(|y| (0..80).map(|x| buffer[(x, y)].symbol()).collect())
            .collect();
        let flag_row = rows.iter().find(|r| r.contains("from ")).expect("flag row");
        let family_rows = rows.iter().filter(|r| r.contains('\u{1F467}')).count();
        if joins == Joins::NONE {
            // The thumb is one two-column cell: the cell after it is covered.
            assert!(
                flag_row.contains("from JP with \u{2764} \u{1F44D}"),
                "{flag_row}"
            );
            // 24 families of three two-column faces: 144 columns, three rows.
            assert_eq!(family_rows, 3);
        } else {
            assert!(flag_row.contains("\u{1F1EF}\u{1F1F5}"), "{flag_row}");
            // 24 two-column families: 48 columns, one row.
            assert_eq!(family_rows, 1);
        }
    }
}

/// Issue 12: a server password typed with `/password` (or a raw PASS or OPER)
/// never appears on screen, not even while it is being typed.
#[test]
fn issue_12_a_password_is_masked_while_typed() {
    let client = conversation();
    let input_row = |typed: &str| {
        let mut view = View::default();
        view.input.set(typed);
        let terminal = draw(&client, &view);
        let buffer = terminal.backend().buffer();
        let row: String = (0..80).map(|x| buffer[(x, 23)].symbol()).collect();
        (row.trim_end().to_owned(), buffer.clone())
    };
    let (row, _) = input_row("/password hunter2");
    assert_eq!(row, "[#lobby] /password *******");
    let (row, _) = input_row("/quote OPER admin s3cret");
    assert_eq!(row, "[#lobby] /quote OPER admin ******");
    let (row, _) = input_row("/topic hunter2 is not a secret");
    assert_eq!(row, "[#lobby] /topic hunter2 is not a secret");
}

/// Issue 12: a kicked user reads who kicked them and why, highlighted, and the
/// channel's bar and tab show it has been left.
#[test]
fn issue_12_a_kick_shows_the_channel_left() {
    let mut client = conversation();
    feed(
        &mut client,
        at(9, 9),
        &[":carol!c@h KICK #lobby alice :take a break"],
    );
    let terminal = draw(&client, &View::default());
    insta::assert_snapshot!(terminal.backend());
    let buffer = terminal.backend().buffer();
    let topic: String = (0..60).map(|x| buffer[(x, 1)].symbol()).collect();
    assert!(
        topic.contains("#lobby (not joined: /join #lobby)"),
        "{topic}"
    );
}

/// Issue 12: coming back to a channel, a marker shows where the unread lines
/// start, and a line with the full date opens a new day.
#[test]
fn issue_12_read_marker_and_day_change_line() {
    let mut client = conversation();
    let day = |d| time::Date::from_calendar_date(2026, time::Month::December, d).expect("a date");
    let late = at(23, 58).on(day(1));
    feed(
        &mut client,
        late,
        &[":carol!c@h PRIVMSG #lobby :good night"],
    );
    client.switch_to(2);
    let early = at(0, 3).on(day(2));
    feed(
        &mut client,
        early,
        &[
            ":dave!d@h PRIVMSG #lobby :anyone up?",
            ":carol!c@h PRIVMSG #lobby :me",
        ],
    );
    client.switch_to(1);
    let terminal = draw(&client, &View::default());
    insta::assert_snapshot!(terminal.backend());
    let buffer = terminal.backend().buffer();
    let rows: Vec<String> = (0..24)
        .map(|y| (0..68).map(|x| buffer[(x, y)].symbol()).collect::<String>())
        .collect();
    let at_row = |needle: &str| rows.iter().position(|r| r.contains(needle)).expect(needle);
    assert!(at_row("good night") < at_row(" unread "));
    assert_eq!(
        at_row(" unread ") + 1,
        at_row("Day changed to Wednesday, 2 December 2026")
    );
    assert!(at_row("Day changed") < at_row("anyone up?"));
}

/// Issue 12: Ctrl+R (or `/search`) finds text in the scrollback: the match is
/// scrolled into the middle of the pane and drawn reversed, and the status line
/// counts the matches; stepping back reaches older ones.
#[test]
fn issue_12_scrollback_search_shows_the_match() {
    let mut client = conversation();
    for i in 0..40 {
        let text = if i == 3 || i == 30 {
            format!(":dave!d@h PRIVMSG #lobby :line {i} has the NEEDLE in it")
        } else {
            format!(":dave!d@h PRIVMSG #lobby :line {i}")
        };
        feed(&mut client, at(9, 20), &[&text]);
    }
    let changes = client.input("/search needle", at(9, 21));
    let query = changes.iter().find_map(|c| match c {
        palaver_client::Change::Search(query) => Some(query.clone()),
        _ => None,
    });
    assert_eq!(query.as_deref(), Some("needle"));
    let mut view = View {
        search: Some(Search {
            query: "needle".into(),
            nth: 0,
        }),
        ..View::default()
    };
    let terminal = draw(&client, &view);
    insta::assert_snapshot!(terminal.backend());
    let row_of = |terminal: &Terminal<TestBackend>, needle: &str| {
        let buffer = terminal.backend().buffer();
        (0..24u16).find(|&y| {
            let text: String = (0..80).map(|x| buffer[(x, y)].symbol()).collect();
            text.contains(needle)
        })
    };
    let row = row_of(&terminal, "line 30 has").expect("newest match shown");
    let buffer = terminal.backend().buffer();
    assert!(buffer[(20, row)].modifier.contains(Modifier::REVERSED));
    let status: String = (0..80).map(|x| buffer[(x, 22)].symbol()).collect();
    assert!(status.contains("match 1 of 2"), "{status}");

    view.search = Some(Search {
        query: "needle".into(),
        nth: 1,
    });
    let terminal = draw(&client, &view);
    assert!(row_of(&terminal, "line 3 has").is_some());
    assert!(row_of(&terminal, "line 30 has").is_none());
}

/// Issue 12: a click on the tab bar lands on the tab drawn there.
#[test]
fn issue_12_clicks_find_their_tab() {
    let client = conversation();
    let terminal = draw(&client, &View::default());
    let buffer = terminal.backend().buffer();
    let bar: String = (0..80).map(|x| buffer[(x, 0)].symbol()).collect();
    let column = bar.find("3:#rust").expect("tab drawn") as u16;
    let state = client.state();
    assert_eq!(tab_at(state, 80, Joins::NONE, column + 2), Some(2));
    assert_eq!(tab_at(state, 80, Joins::NONE, 1), Some(0));
    assert_eq!(tab_at(state, 80, Joins::NONE, 79), None);
}

/// Issue 12: the bell rings for a private message or a mention, not for other
/// lines nor our own.
#[test]
fn issue_12_the_bell_rings_on_mentions_and_private_messages() {
    let mut client = conversation();
    let mut rings_for = |line: &str| {
        let changes = client.handle(ConnEvent::Line(line.to_owned()), at(9, 30));
        rings(&changes)
    };
    assert!(rings_for(":bob!b@h PRIVMSG alice :psst"));
    assert!(rings_for(":bob!b@h PRIVMSG #rust :alice: look"));
    assert!(!rings_for(":bob!b@h PRIVMSG #rust :nothing for you"));
    assert!(!rings_for(":bob!b@h NOTICE alice :notices are quiet"));
    assert!(!rings(&client.input("alice says alice", at(9, 30))));
}

/// Issue 12: mIRC formatting is drawn as formatting (bold, italic, underline,
/// colours, reset), not stripped, and a tab is shown as spaces.
#[test]
fn issue_12_mirc_formatting_is_drawn_as_styles() {
    let mut client = conversation();
    feed(
        &mut client,
        at(9, 40),
        &[
            ":carol!c@h PRIVMSG #lobby :\u{2}bold\u{2} \u{1d}it\u{1d} \u{1f}under\u{1f} \u{3}4,2red\u{f} plain\tcol",
        ],
    );
    let terminal = draw(&client, &View::default());
    insta::assert_snapshot!(terminal.backend());
    let buffer = terminal.backend().buffer();
    let (row, text) = (0..24u16)
        .map(|y| {
            (
                y,
                (0..80).map(|x| buffer[(x, y)].symbol()).collect::<String>(),
            )
        })
        .find(|(_, text)| text.contains("<carol> bold"))
        .expect("the formatted line");
    assert!(
        text.contains("<carol> bold it under red plain col"),
        "{text}"
    );
    let cell = |word: &str| &buffer[(text.find(word).expect(word) as u16, row)];
    assert!(cell("bold").modifier.contains(Modifier::BOLD));
    assert!(cell("it ").modifier.contains(Modifier::ITALIC));
    assert!(cell("under").modifier.contains(Modifier::UNDERLINED));
    assert_eq!(
        (cell("red").fg, cell("red").bg),
        (Color::LightRed, Color::Blue)
    );
    let plain = cell("plain");
    assert_eq!((plain.fg, plain.bg), (Color::Reset, Color::Reset));
    assert!(plain.modifier.is_empty());
}

/// Issue 12: a paste splits at any line ending, without a phantom last line.
#[test]
fn issue_12_pastes_split_into_lines() {
    use palaver_client::tui::paste_lines;
    assert_eq!(paste_lines("a\r\nb\rc\n"), ["a", "b", "c"]);
    assert_eq!(paste_lines("one"), ["one"]);
    assert!(paste_lines("").is_empty());
}

/// Issue 10: history lines come under their header with the times the server
/// gave them, in italics (said then, not now); a live line after them has its
/// time upright, and a mention in history rings no bell.
#[test]
fn issue_10_history_lines_are_marked_and_silent() {
    let mut client = Client::new(
        "127.0.0.1:6667",
        ClientConfig::new("alice", vec!["#lobby".into()]),
    );
    let peer = "127.0.0.1:6667".parse().expect("address");
    client.handle(
        ConnEvent::Connected {
            generation: 1,
            peer,
        },
        at(9, 0),
    );
    feed(
        &mut client,
        at(9, 0),
        &[
            ":irc.test CAP * LS :batch draft/chathistory message-tags server-time",
            ":irc.test CAP * ACK :batch message-tags draft/chathistory server-time",
            ":irc.test 001 alice :Welcome",
            ":alice!a@h JOIN #lobby",
            ":irc.test BATCH +h chathistory #lobby",
        ],
    );
    let changes = client.handle(
        ConnEvent::Line(
            "@batch=h;time=2026-12-01T08:00:00.000Z;msgid=a :bob!b@h PRIVMSG #lobby :alice: yesterday"
                .to_owned(),
        ),
        at(9, 0),
    );
    assert!(!rings(&changes), "a mention from history rings no bell");
    feed(
        &mut client,
        at(9, 1),
        &[":irc.test BATCH -h", ":bob!b@h PRIVMSG #lobby :today"],
    );
    let terminal = draw(&client, &View::default());
    let buffer = terminal.backend().buffer();
    let row_with = |needle: &str| -> (u16, String) {
        (0..24u16)
            .map(|y| {
                (
                    y,
                    (0..80).map(|x| buffer[(x, y)].symbol()).collect::<String>(),
                )
            })
            .find(|(_, text)| text.contains(needle))
            .unwrap_or_else(|| panic!("no row with {needle:?}"))
    };
    row_with("Recent history of #lobby:");
    let (old, text) = row_with("<bob> alice: yesterday");
    let at_old = text.find("08:00").expect("the server's time") as u16;
    assert!(buffer[(at_old, old)].modifier.contains(Modifier::ITALIC));
    let (new, text) = row_with("<bob> today");
    let at_new = text.find("09:01").expect("the arrival time") as u16;
    assert!(!buffer[(at_new, new)].modifier.contains(Modifier::ITALIC));
    assert!(old < new);
}
