//! The TOML configuration file (`--config FILE`): every command-line option, written
//! as a key.
//!
//! **Decision: the file is the command line in TOML.** Each key is an option's long
//! name without the dashes (`max-clients-per-ip = 100`, `listen = ["0.0.0.0:6697/tls"]`,
//! `no-history = true`), plus `ip` and `port` and the `[[oper]]` tables. The file's
//! options become arguments placed *before* the real command line, and the command
//! line is parsed with every option overriding itself, so a flag given on the
//! command line wins over the file, and the two can never disagree about what an
//! option means, its default or how its value is checked: both go through the same
//! clap definition and value parsers. The cost is that a value's type is the
//! option's (`sts-duration = "1d"`, not a number of seconds); that is also what the
//! operator reads in `--help`.
//!
//! Every problem is reported at once, each as `FILE:LINE: what is wrong`: TOML
//! syntax, unknown keys (with the spelling that was probably meant), values of the
//! wrong type, values the option's parser refuses, and bad `[[oper]]` entries.

use std::ffi::OsString;
use std::path::Path;

use clap::{Arg, ArgAction, Command};
use toml::de::{DeTable, DeValue};

use crate::opers::OperCredential;

/// Options that make no sense in the file: they choose the file, or are one-off
/// actions rather than settings.
pub const NOT_IN_FILE: &[&str] = &["config", "check-config", "hash-password", "help", "version"];

/// The positional arguments the file may give, in their command-line order.
const POSITIONALS: &[&str] = &["ip", "port"];

/// What a configuration file sets.
#[derive(Debug, Default)]
pub struct FileOptions {
    /// `ip` and `port`, if the file gives them: used only when the command line
    /// gives none.
    pub positionals: Vec<OsString>,
    /// The options, as command-line arguments (`--max-clients`, `100`, ...).
    pub args: Vec<OsString>,
    /// The `[[oper]]` entries.
    pub opers: Vec<OperCredential>,
    /// Each key the file sets and its line, for `--check-config`'s report.
    pub keys: Vec<(String, usize)>,
}

impl FileOptions {
    /// The line that set `key` (an option's long name, `ip` or `port`).
    pub fn line_of(&self, key: &str) -> Option<usize> {
        self.keys
            .iter()
            .find(|(known, _)| known == key)
            .map(|&(_, line)| line)
    }

    /// The full argument list: the program name, the file's positionals unless the
    /// command line has its own, the file's options, then the command line's (which
    /// win: see the module documentation).
    pub fn merged_args(
        &self,
        command_line: &[OsString],
        command_line_has_positionals: bool,
    ) -> Vec<OsString> {
        let mut args = Vec::with_capacity(command_line.len() + self.args.len() + 2);
        let mut real = command_line.iter();
        args.extend(real.next().cloned());
        if !command_line_has_positionals {
            args.extend(self.positionals.iter().cloned());
        }
        args.extend(self.args.iter().cloned());
        args.extend(real.cloned());
        args
    }
}

/// Reads the configuration file at `path` for `command` (the server's clap
/// definition). Problems are sentences starting with `FILE:LINE:`.
pub fn read(path: &Path, command: &Command) -> Result<FileOptions, Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        vec![format!(
            "cannot read the config file {}: {error}",
            path.display()
        )]
    })?;
    parse(&text, command).map_err(|problems| {
        problems
            .into_iter()
            .map(|problem| format!("{}:{problem}", path.display()))
            .collect()
    })
}

/// Parses a configuration file's text (see [`read`]); problems start with `LINE:`.
pub fn parse(text: &str, command: &Command) -> Result<FileOptions, Vec<String>> {
    let line_at = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let table = DeTable::parse(text).map_err(|error| {
        let line = error.span().map_or(1, |span| line_at(span.start));
        vec![format!("{line}: {}", error.message())]
    })?;
    let mut options = FileOptions::default();
    let mut problems: Vec<(usize, String)> = Vec::new();
    let mut positionals: [Option<OsString>; 2] = [None, None];
    let mut positionals_given = 0;
    for (key, value) in table.get_ref() {
        let line = line_at(key.span().start);
        let name = key.get_ref().as_ref();
        let mut problem = |what: String| problems.push((line, what));
        if name == "oper" {
            match crate::opers::parse_oper_tables(value.get_ref()) {
                Ok(opers) => options.opers = opers,
                Err(found) => found.into_iter().for_each(&mut problem),
            }
            options.keys.push((name.to_owned(), line));
            continue;
        }
        if let Some(index) = POSITIONALS.iter().position(|p| *p == name) {
            positionals_given += 1;
            match scalar(value.get_ref()) {
                Some(text) => match check_value(command, name, &text) {
                    Ok(()) => positionals[index] = Some(text.into()),
                    Err(why) => problem(why),
                },
                None => problem(format!(
                    "'{name}' must be a single value, not {}",
                    value.get_ref().type_str()
                )),
            }
            options.keys.push((name.to_owned(), line));
            continue;
        }
        let Some(arg) = settable(command, name) else {
            if value.get_ref().is_table() {
                problem(format!(
                    "unknown section [{name}]: the only tables are [[oper]] entries; options are plain keys"
                ));
            } else {
                problem(unknown_key(command, name));
            }
            continue;
        };
        match arguments(command, arg, name, value.get_ref()) {
            Ok(args) => options.args.extend(args),
            Err(why) => problem(why),
        }
        options.keys.push((name.to_owned(), line));
    }
    match positionals {
        [Some(ip), Some(port)] => options.positionals = vec![ip, port],
        // One of them is missing (or was refused above).
        _ if positionals_given == 1 => {
            problems.push((1, "give both 'ip' and 'port', or neither".to_owned()));
        }
        _ => {}
    }
    if problems.is_empty() {
        Ok(options)
    } else {
        problems.sort_by_key(|&(line, _)| line);
        Err(problems
            .into_iter()
            .map(|(line, what)| format!("{line}: {what}"))
            .collect())
    }
}

/// The option whose long name is `name`, if the file may set it.
fn settable<'c>(command: &'c Command, name: &str) -> Option<&'c Arg> {
    if NOT_IN_FILE.contains(&name) {
        return None;
    }
    command
        .get_arguments()
        .find(|arg| arg.get_long() == Some(name))
}

/// "unknown option", with the key that was probably meant.
fn unknown_key(command: &Command, name: &str) -> String {
    if NOT_IN_FILE.contains(&name) {
        return format!("'{name}' is a command-line action, not a setting for the file");
    }
    let dashed = name.replace('_', "-");
    let hint = command
        .get_arguments()
        .filter_map(Arg::get_long)
        .find(|long| *long == dashed || long.trim_start_matches("no-") == dashed)
        .map(|long| format!(" (did you mean '{long}'?)"))
        .unwrap_or_default();
    format!("unknown option '{name}'{hint}; the keys are chat-server's long options, see --help")
}

/// The command-line arguments that `value` stands for as option `arg`.
fn arguments(
    command: &Command,
    arg: &Arg,
    name: &str,
    value: &DeValue<'_>,
) -> Result<Vec<OsString>, String> {
    let flag = OsString::from(format!("--{name}"));
    match arg.get_action() {
        ArgAction::SetTrue => match value.as_bool() {
            Some(true) => Ok(vec![flag]),
            Some(false) => Ok(Vec::new()),
            None => Err(format!(
                "'{name}' is a switch: write {name} = true (or false), not {}",
                value.type_str()
            )),
        },
        ArgAction::Append => {
            let items: Vec<&DeValue<'_>> = match value.as_array() {
                Some(array) => array.iter().map(|item| item.get_ref()).collect(),
                None => vec![value],
            };
            let mut args = Vec::with_capacity(items.len() * 2);
            for item in items {
                let text = scalar(item).ok_or_else(|| {
                    format!(
                        "'{name}' takes a list of values, and {} is not one",
                        item.type_str()
                    )
                })?;
                check_value(command, name, &text)?;
                args.extend([flag.clone(), text.into()]);
            }
            Ok(args)
        }
        _ => {
            let text = scalar(value)
                .ok_or_else(|| format!("'{name}' takes one value, not {}", value.type_str()))?;
            check_value(command, name, &text)?;
            // `--name=value`: a value that starts with '-' stays a value.
            Ok(vec![OsString::from(format!("--{name}={text}"))])
        }
    }
}

/// A string, number or boolean as the text a command line would carry.
fn scalar(value: &DeValue<'_>) -> Option<String> {
    match value {
        DeValue::String(text) => Some(text.to_string()),
        DeValue::Integer(number) => i128::from_str_radix(number.as_str(), number.radix())
            .ok()
            .map(|n| n.to_string()),
        DeValue::Float(number) => Some(number.as_str().replace('_', "")),
        DeValue::Boolean(flag) => Some(flag.to_string()),
        DeValue::Datetime(_) | DeValue::Array(_) | DeValue::Table(_) => None,
    }
}

/// Runs option `name`'s own value parser on `text`, so the file is checked exactly
/// as the command line is, but with the file's line in the message.
fn check_value(command: &Command, name: &str, text: &str) -> Result<(), String> {
    let Some(arg) = command
        .get_arguments()
        .find(|arg| arg.get_long() == Some(name) || arg.get_id() == name)
    else {
        return Ok(());
    };
    // A one-option command with the option's own value parser (its relations to
    // other options are checked later, on the whole command line).
    let mut probe = Arg::new(arg.get_id().clone())
        .value_parser(arg.get_value_parser().clone())
        .action(ArgAction::Set);
    let mut args = vec![OsString::from("chat-server")];
    match arg.get_long() {
        Some(long) => {
            probe = probe.long(long.to_owned());
            args.push(format!("--{long}={text}").into());
        }
        None => args.push(text.into()),
    }
    Command::new("chat-server")
        .no_binary_name(false)
        .arg(probe)
        .try_get_matches_from(args)
        .map(drop)
        .map_err(|error| {
            let rendered = error.render().to_string();
            let first = rendered.lines().next().unwrap_or_default();
            format!("'{name}': {}", first.trim_start_matches("error: "))
        })
}
