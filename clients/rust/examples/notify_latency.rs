//! Change-notification latency as a compiled subscriber sees it: the benchmark's
//! Rust subscriber (`scripts/bench --rust-subscribers`, docs/performance.md).
//!
//!     notify_latency DATA_DIR PREFIX
//!
//! Follows the hub of DATA_DIR with a `Subscriber` (the whole sync algorithm)
//! and prints `ready` once its subscription is live. Then, for each change under
//! PREFIX whose value is a table with `r` (the benchmark's repetition) and `t`
//! (`CLOCK_MONOTONIC` in nanoseconds when the change was written, system-wide on
//! Linux), it prints `R LATENCY_NS`, timed as the change is handed over. Output is
//! flushed whenever the stream pauses, so printing costs no change its latency.
//! It runs until it is killed or its stdout closes.

#[cfg(unix)]
fn main() {
    if let Err(error) = run() {
        eprintln!("notify_latency: {error}");
        std::process::exit(1);
    }
}

#[cfg(not(unix))]
fn main() {
    eprintln!("notify_latency: needs CLOCK_MONOTONIC shared between processes (Linux)");
    std::process::exit(2);
}

#[cfg(unix)]
fn run() -> Result<(), Box<dyn std::error::Error>> {
    use statehub::{Client, Event, Subscriber, SubscriberOptions};
    use std::io::Write;
    use std::time::Duration;

    let args: Vec<String> = std::env::args().skip(1).collect();
    let [data_dir, prefix] = args.as_slice() else {
        return Err("usage: notify_latency DATA_DIR PREFIX".into());
    };
    let client = Client::builder()
        .data_dir(data_dir)
        .timeout(Duration::from_secs(10))
        .build()?;
    let options = SubscriberOptions {
        prefix: prefix.clone(),
        ..SubscriberOptions::default()
    };
    let mut subscriber = Subscriber::new(client, options)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut announced = false;
    let mut unflushed = false;
    loop {
        let event = subscriber.next_event(Duration::from_millis(50))?;
        let now = monotonic_ns();
        if !announced && subscriber.is_live() {
            writeln!(out, "ready")?;
            out.flush()?;
            announced = true;
        }
        match event {
            Some(Event::Change(change)) => {
                let (Some(rep), Some(sent)) = (change.value.get("r"), change.value.get("t")) else {
                    continue;
                };
                if let (Some(rep), Some(sent)) = (rep.as_i64(), sent.as_u64()) {
                    writeln!(out, "{rep} {}", now.saturating_sub(sent))?;
                    unflushed = true;
                }
            }
            Some(_) => {}
            None if unflushed => {
                out.flush()?;
                unflushed = false;
            }
            None => {}
        }
    }
}

#[cfg(unix)]
fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}
