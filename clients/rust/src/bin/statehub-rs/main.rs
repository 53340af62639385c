//! `statehub-rs`: the command line of the Rust client.
//!
//! Output is meant to be stable for scripts and tests (see README.md):
//! results on stdout, notices and errors on stderr, and exit codes as the
//! Python CLI: 0 ok, 1 other error, 2 bad input, 3 not found, 4 conflict,
//! 5 hub unavailable.

mod argv;
mod cursor_file;
mod output;
mod react;

use std::error::Error as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, Parser, Subcommand};
use serde_json::Value;
use statehub::{
    rules, Client, Cursor, Error, Event, Fetched, SetOptions, Subscriber, SubscriberOptions, Waterfall,
};

use crate::cursor_file::CursorFile;
use crate::output::{print_json, Notice};
use crate::react::Reactor;

/// How often long-running commands look at the shutdown flag.
const TICK: Duration = Duration::from_millis(200);

#[derive(Parser)]
#[command(
    name = "statehub-rs",
    version,
    // A repeated option counts as given last, as in the Python CLI (`--timeout 1 get k --timeout 5`).
    args_override_self = true,
    about = "Read, write and follow a statehub hub (the Rust client).",
    after_help = "Exit codes: 0 ok, 1 other error, 2 bad input, 3 not found, 4 conflict, 5 hub unavailable, \
                  6 the hub could not persist the change, 7 a write's outcome is unknown (repeating it is safe)."
)]
struct Cli {
    /// The data dir (else $STATEHUB_DATA_DIR, else the platform's user data folder)
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Seconds to wait for the hub (a connection, then the reply) before it counts
    /// as unavailable (before or after the command; after `react`, --timeout is its --exec-timeout)
    #[arg(long, value_name = "SECS", default_value = "0.5", value_parser = parse_timeout)]
    timeout: Duration,
    /// Print results as JSON
    #[arg(long, global = true)]
    json: bool,
    /// A hub on another machine, tcp://HOST:PORT, reached over CURVE (else
    /// $STATEHUB_HUB, else [hub] rpc in client.toml)
    #[arg(long, global = true, value_name = "ENDPOINT")]
    hub: Option<String>,
    /// Its change stream (else $STATEHUB_HUB_EVENTS; default: the --hub port + 1)
    #[arg(long, global = true, value_name = "ENDPOINT")]
    hub_events: Option<String>,
    /// The remote hub's public key, or a file holding it (else $STATEHUB_SERVER_KEY)
    #[arg(long, global = true, value_name = "KEY")]
    server_key: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a key's value (from the mirror, with a notice, when the hub is down)
    Get {
        key: String,
        /// Read it as it was right after revision N (from the hub's history; the hub must be up)
        #[arg(long, value_name = "N")]
        rev: Option<u64>,
    },
    /// Set a key; VALUE is read by the key's type in the hub's schema (a string key keeps 1.10),
    /// else JSON when it parses (30, true, [1,2]), else a string; checked by the schema before sending
    Set {
        key: String,
        #[arg(allow_hyphen_values = true)]
        value: String,
        /// Store VALUE as a string even if it parses as JSON
        #[arg(long)]
        string: bool,
        /// Only if the key is at this revision (0: only if it does not exist)
        #[arg(long, value_name = "N")]
        expect_rev: Option<u64>,
        /// Seconds: the hub removes KEY when it has not been written for this long (a heartbeat)
        #[arg(long, value_name = "SECONDS", allow_hyphen_values = true, value_parser = parse_ttl)]
        ttl: Option<f64>,
    },
    /// Remove a key
    Unset {
        key: String,
        /// Only if the key is at this revision
        #[arg(long, value_name = "N")]
        expect_rev: Option<u64>,
    },
    /// List keys starting with PREFIX (all keys without one)
    List {
        prefix: Option<String>,
        /// Read it as it was right after revision N (from the hub's history; the hub must be up)
        #[arg(long, value_name = "N")]
        rev: Option<u64>,
    },
    /// Show who changed a key, when, and from what to what, newest first
    History {
        key: String,
        /// How many versions
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10000))]
        limit: u32,
    },
    /// Show the hub's status
    Status,
    /// Resolve a key through the waterfall: environment > stored > defaults
    Explain {
        key: String,
        /// The defaults TOML file (else $STATEHUB_DEFAULTS)
        #[arg(long, value_name = "FILE")]
        defaults: Option<PathBuf>,
    },
    /// Print every change under PREFIX as it happens (with --json, one object per line)
    Watch {
        prefix: Option<String>,
        /// Print the current state first, as changes with "origin": "snapshot"
        #[arg(long)]
        initial: bool,
        /// Exit after this many changes
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        count: Option<u64>,
        /// Start after this revision (REV, or EPOCH:REV as the changes' "epoch" and
        /// "rev" give it): every later change is replayed from the hub's history first
        #[arg(long, value_name = "[EPOCH:]REV", value_parser = parse_cursor)]
        since: Option<Cursor>,
    },
    /// Run a command for every change under PREFIX, one at a time, in revision order
    React {
        prefix: String,
        /// The command, run with `sh -c`; the change's JSON is on its stdin and in
        /// STATEHUB_KEY, STATEHUB_VALUE, STATEHUB_REV, STATEHUB_EPOCH, STATEHUB_OP, ...
        #[arg(long, value_name = "CMD")]
        exec: String,
        /// Kill the command (and its process group) after this many seconds (--timeout
        /// after `react` is its old name; before `react`, --timeout is the hub's)
        #[arg(long, alias = "timeout", value_name = "SECS", value_parser = parse_seconds)]
        exec_timeout: Option<Duration>,
        /// Also run it for the current state of every key at start (not when resuming from --state)
        #[arg(long)]
        initial: bool,
        /// Do not run it for backfilled changes (history replayed after the fact,
        /// e.g. `statehub ingest-eds --replay`); they are counted and reported
        #[arg(long)]
        skip_backfill: bool,
        /// Keep the position in the feed in FILE (written atomically after each
        /// command) and resume from it after a restart: every change is handled
        /// at least once, in order (the one in flight at a kill may run twice)
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
    },
    /// Print a completion script for bash, zsh, fish, elvish or powershell
    /// (e.g. `statehub-rs completions bash > /etc/bash_completion.d/statehub-rs`)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds > 0.0 => Ok(Duration::from_secs_f64(seconds)),
        _ => Err(format!("'{text}' is not a positive number of seconds")),
    }
}

/// The shortest hub timeout `--timeout` takes, as the Python CLI's option (`min=0.01`).
const MIN_TIMEOUT: f64 = 0.01;

/// `--timeout`: seconds, refused in the Python CLI's words (`0.0 is not in the range x>=0.01.`).
fn parse_timeout(text: &str) -> Result<Duration, String> {
    let seconds = python_float_option(text, MIN_TIMEOUT)?;
    // NaN and infinities pass Click's range (the Python CLI then waits oddly); no Duration holds them.
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| format!("'{text}' is not a number of seconds: give one such as 0.5 or 5"))
}

/// A number option as Click's `FloatRange(min=...)` reads it, refused in its words.
fn python_float_option(text: &str, min: f64) -> Result<f64, String> {
    let value = text
        .trim()
        .parse::<f64>()
        .map_err(|_| format!("'{text}' is not a valid float range."))?;
    if value < min {
        return Err(format!(
            "{} is not in the range x>={}.",
            statehub::schema::python_float(value),
            statehub::schema::python_float(min)
        ));
    }
    Ok(value)
}

/// The shortest ttl `set --ttl` takes, as the Python CLI's option (`min=0.001`).
const MIN_TTL_OPTION: f64 = 0.001;

/// `set --ttl`: a number of seconds, refused below a millisecond in the Python CLI's words.
/// NaN, infinities and ttls over the limit pass here and are refused by the client before
/// sending, in the hub's words (as the Python CLI leaves them to its client).
fn parse_ttl(text: &str) -> Result<f64, String> {
    python_float_option(text, MIN_TTL_OPTION)
}

fn parse_cursor(text: &str) -> Result<Cursor, String> {
    let (epoch, rev) = text.rsplit_once(':').unwrap_or(("", text));
    match rev.parse::<u64>() {
        Ok(rev) => Ok((epoch.to_string(), rev)),
        Err(_) => Err(format!(
            "'{text}' is not a revision: give REV or EPOCH:REV, e.g. 41 or 3f2a9c0d1e2b4a5f:41"
        )),
    }
}

fn main() -> ExitCode {
    let mut root = Cli::command();
    root.build();
    let found = argv::normalised(&root, std::env::args_os().collect());
    let cli = match Cli::try_parse_from(&found.args) {
        Ok(cli) => cli,
        Err(err) => return usage_error(err, root, found.command.as_deref()),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            output::print_error(&err);
            ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(1))
        }
    }
}

/// A value an option refuses, worded as the Python CLI (Click) words it, exit 2:
/// the usage, where to get help, then `Error: Invalid value for '--ttl': ...`.
/// Every other mistake on the command line is clap's to report.
fn usage_error(err: clap::Error, mut root: clap::Command, command: Option<&str>) -> ExitCode {
    let option = match err.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(arg)) if err.kind() == ErrorKind::ValueValidation => {
            arg.split(' ').next().unwrap_or(arg).to_string()
        }
        _ => err.exit(),
    };
    let why = err.source().map(ToString::to_string).unwrap_or_default();
    // A global option is the root's, wherever it was given (argv moves it in front of the command).
    let global = root
        .get_arguments()
        .any(|arg| arg.get_long() == option.strip_prefix("--"));
    let (usage, help) = match command
        .filter(|_| !global)
        .and_then(|name| root.find_subcommand_mut(name))
    {
        Some(sub) => (
            sub.render_usage(),
            format!("statehub-rs {} --help", sub.get_name()),
        ),
        None => (root.render_usage(), "statehub-rs --help".to_string()),
    };
    eprintln!("{usage}\nTry '{help}' for help.\n\nError: Invalid value for '{option}': {why}");
    ExitCode::from(2)
}

fn run(cli: Cli) -> Result<(), Error> {
    if let Command::Completions { shell } = cli.command {
        let mut command = <Cli as clap::CommandFactory>::command();
        clap_complete::generate(shell, &mut command, "statehub-rs", &mut std::io::stdout());
        return Ok(());
    }
    let mut builder = Client::builder().timeout(cli.timeout);
    if let Some(dir) = &cli.data_dir {
        builder = builder.data_dir(dir);
    }
    if let Some(hub) = &cli.hub {
        builder = builder.hub(hub);
    }
    if let Some(events) = &cli.hub_events {
        builder = builder.hub_events(events);
    }
    if let Some(key) = &cli.server_key {
        builder = builder.server_key(key);
    }
    let mut client = builder.build()?;
    let json = cli.json;
    match cli.command {
        Command::Get { key, rev } => get(&mut client, &key, rev, json),
        Command::Set {
            key,
            value,
            string,
            expect_rev,
            ttl,
        } => {
            // The hub's schema (the mirror's when it is down) reads typed input and checks the
            // value before it is sent; with neither to read, the hub alone judges it.
            let typed = match client.load_schema() {
                Ok(schema) if !string => Some(schema.parse_text(&key, &value)?),
                Ok(_) => None,
                Err(statehub::Error::HubUnavailable(_)) => None,
                Err(err) => return Err(err),
            };
            let value = match typed {
                Some(value) => value,
                None if string => Value::String(value),
                None => parse_value(&value),
            };
            let options = SetOptions {
                expect: expect_rev,
                ttl,
            };
            let committed = client.set_with(&key, value.clone(), options)?;
            if json {
                output::print_set_json(&committed);
            } else {
                output::warn_all(&committed.warnings);
                println!(
                    "{key} = {}  (revision {})",
                    output::json_text(&value),
                    committed.rev
                );
            }
            Ok(())
        }
        Command::Unset { key, expect_rev } => {
            let committed = client.unset(&key, expect_rev)?;
            if json {
                output::print_committed_json(&committed);
            } else {
                println!("unset {key}  (revision {})", committed.rev);
            }
            Ok(())
        }
        Command::List { prefix, rev } => list(&mut client, prefix.as_deref().unwrap_or(""), rev, json),
        Command::History { key, limit } => {
            let versions = client.history(&key, limit)?;
            if versions.is_empty() {
                return Err(Error::NotFound(format!(
                    "no history for '{key}' within the hub's retention"
                )));
            }
            output::print_history(&versions, json);
            Ok(())
        }
        Command::Status => {
            let status = client.status()?;
            if json {
                print_json(&status);
            } else {
                output::print_status(&status);
            }
            Ok(())
        }
        Command::Explain { key, defaults } => explain(&mut client, &key, defaults, json),
        Command::Watch {
            prefix,
            initial,
            count,
            since,
        } => {
            let options = SubscriberOptions {
                prefix: prefix.unwrap_or_default(),
                initial,
                since,
            };
            watch(client, options, count, json)
        }
        Command::React {
            prefix,
            exec,
            exec_timeout,
            initial,
            state,
            skip_backfill,
        } => react(client, prefix, exec, exec_timeout, initial, state, skip_backfill),
        Command::Completions { .. } => unreachable!("answered before the client is built"),
    }
}

fn react(
    client: Client,
    prefix: String,
    exec: String,
    timeout: Option<Duration>,
    initial: bool,
    state: Option<PathBuf>,
    skip_backfill: bool,
) -> Result<(), Error> {
    rules::check_prefix(&prefix)?;
    let (mut cursor_file, since) = match state {
        Some(path) => {
            let (file, since) = CursorFile::open(path)?;
            (Some(file), since)
        }
        None => (None, None),
    };
    let shutdown = shutdown_flag()?;
    let reactor = Reactor::new(exec, timeout, client.layout().data_dir.clone(), shutdown.clone());
    let options = SubscriberOptions {
        prefix,
        // Resuming, the commands already ran for the state at the cursor.
        initial: initial && since.is_none(),
        since,
    };
    let mut failed = None;
    let mut skipped = SkippedBackfill::default();
    follow(
        client,
        options,
        &shutdown,
        None,
        Notices::Text,
        |change, cursor| {
            match change {
                Some(change) if skip_backfill && change.backfill => skipped.add(change.rev),
                Some(change) => {
                    skipped.report();
                    reactor.run(change);
                }
                None => {}
            }
            if let Some(file) = cursor_file.as_mut() {
                if let Err(err) = file.save(cursor) {
                    failed = Some(err);
                    return false;
                }
            }
            true
        },
    )?;
    skipped.report();
    failed.map_or(Ok(()), Err)
}

/// A value on the command line: JSON when it parses, else the text as a string.
fn parse_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

fn get(client: &mut Client, key: &str, rev: Option<u64>, json: bool) -> Result<(), Error> {
    let fetched = match rev {
        Some(rev) => Fetched {
            data: client.get_at(key, rev)?,
            mirror: None,
        },
        None => client.get(key)?,
    };
    if let Some(mirror) = &fetched.mirror {
        Notice::warn(&mirror.notice());
    }
    if json {
        print_json(&output::item_json(&fetched.data, fetched.mirror.as_ref()));
    } else {
        println!("{}", output::text(&fetched.data.value));
    }
    Ok(())
}

fn list(client: &mut Client, prefix: &str, rev: Option<u64>, json: bool) -> Result<(), Error> {
    let fetched = match rev {
        Some(rev) => Fetched {
            data: client.snapshot_at(prefix, Some(rev))?,
            mirror: None,
        },
        None => client.list(prefix)?,
    };
    if let Some(mirror) = &fetched.mirror {
        Notice::warn(&mirror.notice());
    }
    output::print_items(&fetched.data, fetched.mirror.as_ref(), json);
    Ok(())
}

fn explain(client: &mut Client, key: &str, defaults: Option<PathBuf>, json: bool) -> Result<(), Error> {
    let waterfall = match defaults {
        Some(path) => Waterfall::with_defaults_file(&path)?,
        None => Waterfall::from_env()?,
    };
    let explanation = waterfall.explain(client, key)?;
    if json {
        print_json(&explanation);
    } else {
        output::print_explanation(&explanation);
    }
    if explanation.value.is_none() {
        return Err(Error::NotFound(format!("key '{key}' is in no layer")));
    }
    Ok(())
}

fn watch(client: Client, options: SubscriberOptions, count: Option<u64>, json: bool) -> Result<(), Error> {
    rules::check_prefix(&options.prefix)?;
    let shutdown = shutdown_flag()?;
    let notices = if json { Notices::Json } else { Notices::Text };
    follow(client, options, &shutdown, count, notices, |change, _cursor| {
        if let Some(change) = change {
            output::print_change(change, json);
        }
        true
    })
}

/// How `follow` tells of replays, resyncs and hub outages.
#[derive(Clone, Copy)]
enum Notices {
    /// Lines for the person at the terminal, on stderr.
    Text,
    /// JSON objects on stdout among the changes (`watch --json`), as the Python CLI prints them.
    Json,
}

/// Run the sync algorithm until SIGINT or SIGTERM (or `count` changes), handing
/// each change to `step` and telling of replays, resyncs and hub outages as
/// `notices` says. `step` also gets the subscriber's cursor after each change
/// and whenever it is idle (with no change); it returns false to stop.
fn follow(
    client: Client,
    options: SubscriberOptions,
    shutdown: &AtomicBool,
    count: Option<u64>,
    notices: Notices,
    mut step: impl FnMut(Option<&statehub::Change>, Option<Cursor>) -> bool,
) -> Result<(), Error> {
    let mut subscriber = Subscriber::new(client, options)?;
    let mut seen = 0;
    while !shutdown.load(Ordering::Relaxed) && count.is_none_or(|limit| seen < limit) {
        let event = match subscriber.next_event(TICK) {
            Ok(event) => event,
            // A signal interrupts ZeroMQ's poll: that is a shutdown, not a failure.
            Err(_) if shutdown.load(Ordering::Relaxed) => break,
            Err(err) => return Err(err),
        };
        let change = match event {
            Some(Event::Change(change)) => {
                seen += 1;
                Some(change)
            }
            Some(other) => {
                match notices {
                    Notices::Text => tell(&subscriber, other),
                    Notices::Json => output::print_notice(&other),
                }
                None
            }
            None => None,
        };
        if !step(change.as_ref(), subscriber.cursor()) {
            break;
        }
    }
    Ok(())
}

/// Backfilled changes `react --skip-backfill` passed over since it last said so.
#[derive(Default)]
struct SkippedBackfill {
    count: u64,
    first: u64,
    last: u64,
}

impl SkippedBackfill {
    fn add(&mut self, rev: u64) {
        if self.count == 0 {
            self.first = rev;
        }
        self.count += 1;
        self.last = rev;
    }

    /// One line for a run of skipped changes, when the run ends.
    fn report(&mut self) {
        if self.count > 0 {
            Notice::info(&format!(
                "skipped {} backfilled changes (revisions {}..{})",
                self.count, self.first, self.last
            ));
            *self = SkippedBackfill::default();
        }
    }
}

/// Say on stderr what happened to the subscription.
fn tell(subscriber: &Subscriber, event: Event) {
    match event {
        Event::Synced {
            rev,
            resync: false,
            epoch,
            reason,
            ..
        } => Notice::info(&format!(
            "following from revision {rev} (epoch {epoch}): {reason}"
        )),
        Event::Synced { rev, reason, .. } => Notice::warn(&format!(
            "resync #{} from a snapshot at revision {rev}: {reason}; the changes in between are lost",
            subscriber.resync_count()
        )),
        Event::CaughtUp {
            rev,
            replayed,
            reason,
            ..
        } => Notice::info(&format!(
            "caught up at revision {rev}: {replayed} revisions replayed from the hub's history ({reason})"
        )),
        Event::HubDown { reason, .. } => Notice::warn(&format!("hub unavailable ({reason}); waiting for it")),
        Event::Change(_) => {}
    }
}

/// A flag raised by SIGINT or SIGTERM, so long-running commands stop cleanly.
fn shutdown_flag() -> Result<Arc<AtomicBool>, Error> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&flag))
            .map_err(|e| Error::Io(format!("cannot handle signal {signal}: {e}")))?;
    }
    Ok(flag)
}
