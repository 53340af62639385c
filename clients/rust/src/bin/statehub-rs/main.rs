//! `statehub-rs`: the command line of the Rust client.
//!
//! Output is meant to be stable for scripts and tests (see README.md):
//! results on stdout, notices and errors on stderr, and exit codes as the
//! Python CLI: 0 ok, 1 other error, 2 bad input, 3 not found, 4 conflict,
//! 5 hub unavailable.

mod output;
mod react;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde_json::Value;
use statehub::{rules, Client, Error, Event, Subscriber, SubscriberOptions, Waterfall};

use crate::output::{print_json, Notice};
use crate::react::Reactor;

/// How often long-running commands look at the shutdown flag.
const TICK: Duration = Duration::from_millis(200);

#[derive(Parser)]
#[command(
    name = "statehub-rs",
    version,
    about = "Read, write and follow a statehub hub (the Rust client).",
    after_help = "Exit codes: 0 ok, 1 other error, 2 bad input, 3 not found, 4 conflict, 5 hub unavailable, \
                  6 the hub could not persist the change, 7 a write's outcome is unknown (repeating it is safe)."
)]
struct Cli {
    /// The data dir (else $STATEHUB_DATA_DIR, else the platform's user data folder)
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Seconds to wait for the hub (a connection, then the reply) before it counts
    /// as unavailable (give it before the command)
    #[arg(long, value_name = "SECS", default_value = "0.5", value_parser = parse_seconds)]
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
    Get { key: String },
    /// Set a key; VALUE is JSON when it parses (30, true, [1,2]), else a string
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
    },
    /// Remove a key
    Unset {
        key: String,
        /// Only if the key is at this revision
        #[arg(long, value_name = "N")]
        expect_rev: Option<u64>,
    },
    /// List keys starting with PREFIX (all keys without one)
    List { prefix: Option<String> },
    /// Show a key's history, newest first
    History {
        key: String,
        #[arg(long, default_value_t = 100)]
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
    /// Print every change under PREFIX as one JSON object per line
    Watch {
        prefix: Option<String>,
        /// Print the current state first, as changes with "resync": true
        #[arg(long)]
        initial: bool,
        /// Exit after this many changes
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        count: Option<u64>,
    },
    /// Run a command for every change under PREFIX, one at a time, in revision order
    React {
        prefix: String,
        /// The command, run with `sh -c`; the change's JSON is on its stdin and in
        /// STATEHUB_KEY, STATEHUB_VALUE, STATEHUB_REV, STATEHUB_OP, STATEHUB_SOURCE, ...
        #[arg(long, value_name = "CMD")]
        exec: String,
        /// Kill the command (and its process group) after this many seconds
        #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
        timeout: Option<Duration>,
        /// Also run it for the current state of every key at start
        #[arg(long)]
        initial: bool,
    },
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds > 0.0 => Ok(Duration::from_secs_f64(seconds)),
        _ => Err(format!("'{text}' is not a positive number of seconds")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            output::print_error(&err);
            ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(1))
        }
    }
}

fn run(cli: Cli) -> Result<(), Error> {
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
        Command::Get { key } => get(&mut client, &key, json),
        Command::Set {
            key,
            value,
            string,
            expect_rev,
        } => {
            let value = if string {
                Value::String(value)
            } else {
                parse_value(&value)
            };
            let committed = client.set(&key, value.clone(), expect_rev)?;
            if json {
                output::print_committed_json(&committed);
            } else {
                println!("{key} = {}  (revision {})", output::text(&value), committed.rev);
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
        Command::List { prefix } => list(&mut client, prefix.as_deref().unwrap_or(""), json),
        Command::History { key, limit } => {
            let versions = client.history(&key, limit)?;
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
        } => watch(client, prefix.unwrap_or_default(), initial, count),
        Command::React {
            prefix,
            exec,
            timeout,
            initial,
        } => {
            rules::check_prefix(&prefix)?;
            let shutdown = shutdown_flag()?;
            let reactor = Reactor::new(exec, timeout, client.layout().data_dir.clone(), shutdown.clone());
            follow(client, prefix, initial, &shutdown, None, |change| {
                reactor.run(change)
            })
        }
    }
}

/// A value on the command line: JSON when it parses, else the text as a string.
fn parse_value(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

fn get(client: &mut Client, key: &str, json: bool) -> Result<(), Error> {
    let fetched = client.get(key)?;
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

fn list(client: &mut Client, prefix: &str, json: bool) -> Result<(), Error> {
    let fetched = client.list(prefix)?;
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

fn watch(client: Client, prefix: String, initial: bool, count: Option<u64>) -> Result<(), Error> {
    rules::check_prefix(&prefix)?;
    let shutdown = shutdown_flag()?;
    follow(client, prefix, initial, &shutdown, count, |change| {
        print_json(change);
    })
}

/// Run the sync algorithm until SIGINT or SIGTERM (or `count` changes), handing
/// each change to `on_change` and telling the user on stderr about resyncs and
/// hub outages.
fn follow(
    client: Client,
    prefix: String,
    initial: bool,
    shutdown: &AtomicBool,
    count: Option<u64>,
    mut on_change: impl FnMut(&statehub::Change),
) -> Result<(), Error> {
    let mut subscriber = Subscriber::new(client, SubscriberOptions { prefix, initial })?;
    let mut seen = 0;
    while !shutdown.load(Ordering::Relaxed) && count.is_none_or(|limit| seen < limit) {
        let event = match subscriber.next_event(TICK) {
            Ok(event) => event,
            // A signal interrupts ZeroMQ's poll: that is a shutdown, not a failure.
            Err(_) if shutdown.load(Ordering::Relaxed) => break,
            Err(err) => return Err(err),
        };
        match event {
            None => {}
            Some(Event::Change(change)) => {
                on_change(&change);
                seen += 1;
            }
            Some(Event::Synced {
                rev,
                resync: false,
                epoch,
                ..
            }) => Notice::info(&format!("following from revision {rev} (epoch {epoch})")),
            Some(Event::Synced { rev, reason, .. }) => Notice::info(&format!(
                "resync #{} at revision {rev}: {reason}",
                subscriber.resync_count()
            )),
            Some(Event::HubDown { reason }) => {
                Notice::warn(&format!("hub unavailable ({reason}); waiting for it"))
            }
        }
    }
    Ok(())
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
