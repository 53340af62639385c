//! The command line as people type it, made into the shape clap parses.
//!
//! The Python CLI takes its global options before or after the command
//! (`statehub get k --timeout 5`), unless the command has an option of that
//! name itself (`statehub serve --data-dir D`). Most of ours are clap globals,
//! which clap takes anywhere; `--timeout` cannot be one, because `react` keeps
//! `--timeout` as the old name of its `--exec-timeout`. So a global option that
//! follows the command is moved in front of it here, unless the command has an
//! option of that name, exactly as the Python CLI does. The command tree says
//! which tokens are options and which of them take a value, so an option's value
//! is never taken for an option; `--` still ends the options.

use std::ffi::OsString;

use clap::{Arg, Command};

/// `args` (the program name first) rearranged for clap, and the command's name
/// (`set`, `watch`, ...) when one was found.
pub struct Normalised {
    pub args: Vec<OsString>,
    pub command: Option<String>,
}

/// Move the root's non-global options found after the command to before it.
pub fn normalised(root: &Command, args: Vec<OsString>) -> Normalised {
    let text: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    let mut index = 1;
    while index < text.len() {
        match option(root, &text[index]) {
            Some(takes_value) => index += 1 + usize::from(takes_value),
            None => break,
        }
    }
    let Some(command) = text.get(index).and_then(|name| root.find_subcommand(name)) else {
        return Normalised { args, command: None };
    };
    let name = command.get_name().to_string();
    let movable: Vec<&Arg> = root
        .get_arguments()
        .filter(|arg| !arg.is_global_set() && arg.get_long().is_some())
        .filter(|arg| !has_long(command, arg.get_long().unwrap_or_default()))
        .collect();
    let mut front: Vec<OsString> = args[..index].to_vec();
    let mut tail: Vec<OsString> = vec![args[index].clone()];
    let mut at = index + 1;
    while at < args.len() {
        let token = &text[at];
        if token == "--" {
            tail.extend_from_slice(&args[at..]);
            break;
        }
        let long = token
            .strip_prefix("--")
            .map(|t| t.split_once('=').map_or(t, |(name, _)| name));
        let moved = long.and_then(|long| movable.iter().find(|arg| arg.get_long() == Some(long)));
        let (takes_value, target) = match moved {
            Some(arg) => (takes_value(arg) && !token.contains('='), &mut front),
            None => (option(command, token).unwrap_or(false), &mut tail),
        };
        let end = (at + 1 + usize::from(takes_value)).min(args.len());
        target.extend_from_slice(&args[at..end]);
        at = end;
    }
    front.extend(tail);
    Normalised {
        args: front,
        command: Some(name),
    }
}

/// Some(whether it takes its value from the next token) if `token` is one of `command`'s options.
fn option(command: &Command, token: &str) -> Option<bool> {
    if let Some(rest) = token.strip_prefix("--") {
        let (name, value) = match rest.split_once('=') {
            Some((name, _)) => (name, true),
            None => (rest, false),
        };
        let arg = command
            .get_arguments()
            .find(|arg| long_names(arg).contains(&name))?;
        return Some(takes_value(arg) && !value);
    }
    let mut chars = token.strip_prefix('-')?.chars();
    let short = chars.next()?;
    let arg = command
        .get_arguments()
        .find(|arg| arg.get_short() == Some(short))?;
    Some(takes_value(arg) && chars.next().is_none())
}

fn has_long(command: &Command, long: &str) -> bool {
    command.get_arguments().any(|arg| long_names(arg).contains(&long))
}

/// An option's long name and every alias of it.
fn long_names(arg: &Arg) -> Vec<&str> {
    let mut names: Vec<&str> = arg.get_long().into_iter().collect();
    names.extend(arg.get_all_aliases().unwrap_or_default());
    names
}

fn takes_value(arg: &Arg) -> bool {
    arg.get_action().takes_values()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Arg, ArgAction, Command};

    fn tree() -> Command {
        let timeout = Arg::new("timeout").long("timeout").action(ArgAction::Set);
        let data_dir = Arg::new("data_dir")
            .long("data-dir")
            .global(true)
            .action(ArgAction::Set);
        let get = Command::new("get")
            .arg(Arg::new("key"))
            .arg(Arg::new("rev").long("rev").action(ArgAction::Set));
        let react = Command::new("react").arg(
            Arg::new("exec_timeout")
                .long("exec-timeout")
                .alias("timeout")
                .action(ArgAction::Set),
        );
        let mut root = Command::new("statehub-rs")
            .arg(timeout)
            .arg(data_dir)
            .subcommand(get)
            .subcommand(react);
        root.build();
        root
    }

    fn moved(args: &[&str]) -> (Vec<String>, Option<String>) {
        let args = args.iter().map(OsString::from).collect();
        let found = normalised(&tree(), args);
        let args = found
            .args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        (args, found.command)
    }

    #[test]
    fn a_global_option_after_the_command_moves_before_it() {
        let (args, command) = moved(&["p", "get", "k", "--timeout", "5"]);
        assert_eq!(args, ["p", "--timeout", "5", "get", "k"]);
        assert_eq!(command.as_deref(), Some("get"));
        let (args, _) = moved(&["p", "get", "--timeout=5", "k"]);
        assert_eq!(args, ["p", "--timeout=5", "get", "k"]);
    }

    #[test]
    fn an_option_value_and_what_follows_double_dash_stay() {
        let (args, _) = moved(&["p", "get", "--rev", "--timeout", "k", "--", "--timeout", "1"]);
        assert_eq!(
            args,
            ["p", "get", "--rev", "--timeout", "k", "--", "--timeout", "1"]
        );
    }

    #[test]
    fn a_command_with_an_option_of_that_name_keeps_it() {
        let (args, _) = moved(&["p", "--timeout", "1", "react", "--timeout", "5"]);
        assert_eq!(args, ["p", "--timeout", "1", "react", "--timeout", "5"]);
    }

    #[test]
    fn no_command_leaves_the_line_as_it_is() {
        let (args, command) = moved(&["p", "--timeout", "1", "nope", "--timeout", "2"]);
        assert_eq!(args, ["p", "--timeout", "1", "nope", "--timeout", "2"]);
        assert_eq!(command, None);
    }
}
