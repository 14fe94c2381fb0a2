//! `midge-bench`: an event-driven MQTT load generator for a broker you run
//! (midge or any MQTT 3.1, 3.1.1 or 5 broker), on this machine or another.
//!
//! Worker threads each drive their share of the clients from one mio loop
//! (no thread per client), so the generator stays cheap; the report shows
//! its own CPU time next to the wall time to prove it was not the
//! bottleneck. Each run connects its clients, warms up, measures for
//! `--duration` (or `--count` messages), waits for what is still in
//! flight, and reports throughput, latency percentiles and per-subscriber
//! loss / duplicates / reordering from the run tag, stream id, sequence
//! number and timestamp carried in every payload.
//!
//! Exit status: 0 on success; 1 if the run failed (setup failed, a client
//! was disconnected, at QoS 1/2 an acknowledged message never arrived, at
//! QoS 2 a message arrived twice); 2 on a usage error.

mod cli;
mod compare;
mod engine;
mod histogram_file;
mod plan;
mod plot;
mod report;
mod scenario;
mod scenario_file;
mod stats;
mod sys;
mod workload;

use report::Header;
use std::process::ExitCode;

const ABOUT: &str = "Usage: midge-bench [options]

Load generator for an MQTT broker you run (a load test is for your own
brokers). Built-in scenarios (--scenario):
  fan-in         P publishers -> 1 subscriber on one topic
  fan-out        1 publisher -> N subscribers
  pairs          P publisher/subscriber pairs on bench/pair/<i>, plus '+' and '#' subscribers
  latency        fixed --rate; latency percentiles from timestamps in the payload
  connections    C idle subscribed clients: connect rate, broker RSS per connection
  subscriptions  S subscriptions (70% exact, 30% wildcard), publish to matching topics
Own workloads: --topic 'sensors/%i/temp' --publishers 1000 --interval 1000
  --filter '#' (%i: the client's number from 1), or --scenario-file FILE.
Compare two runs: midge-bench --compare A.json B.json";

fn main() -> ExitCode {
    let opts = cli::options();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let m = match opts.parse(&args) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("midge-bench: {e}\n{}", opts.short_usage("midge-bench"));
            return ExitCode::from(2);
        }
    };
    if m.opt_present("help") {
        print!("{}", opts.usage(ABOUT));
        return ExitCode::SUCCESS;
    }
    if m.opt_present("compare") {
        let [a, b] = m.free.as_slice() else {
            eprintln!("midge-bench: --compare takes two JSON files: --compare A.json B.json");
            return ExitCode::from(2);
        };
        return match compare::compare(a, b) {
            Ok(t) => {
                print!("{t}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("midge-bench: {e}");
                ExitCode::from(2)
            }
        };
    }
    if let Some(extra) = m.free.first() {
        eprintln!("midge-bench: unexpected argument '{extra}'");
        return ExitCode::from(2);
    }
    let run = match cli::configure(&m) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("midge-bench: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = sys::ensure_files(run.plan.clients() as u64 + 32) {
        eprintln!("midge-bench: {e}");
        return ExitCode::from(2);
    }
    let head = Header::new(&run);
    let rss_before = run.settings.broker_pid.and_then(sys::memory_kib);
    let cli::Run {
        settings,
        plan,
        outputs,
        ..
    } = run;
    let out = engine::run(settings, plan, rss_before);
    if out.setup_failed {
        // Nothing was measured: say what went wrong, not a table of zeros.
        let why = out
            .fatal
            .clone()
            .unwrap_or_else(|| "setup did not finish".into());
        eprintln!("midge-bench: cannot run against {}: {why}", head.target);
        let line = report::json_failed(&head, &why);
        if outputs.json {
            println!("{line}");
        }
        if let Some(path) = &outputs.json_file {
            let _ = std::fs::write(path, format!("{line}\n"));
        }
        return ExitCode::FAILURE;
    }
    let verdict = report::verdict(&out);
    print!("{}", report::table(&head, &out, &verdict));
    let line = report::json(&head, &out, &verdict);
    if outputs.json {
        println!("{line}");
    }
    let mut ok = verdict.is_empty();
    let mut write = |r: Result<(), String>| {
        if let Err(e) = r {
            eprintln!("midge-bench: {e}");
            ok = false;
        }
    };
    if let Some(path) = &outputs.json_file {
        write(
            std::fs::write(path, format!("{line}\n"))
                .map_err(|e| format!("--json-file: {path}: {e}")),
        );
    }
    if let Some(path) = &outputs.histogram {
        write(histogram_file::write(path, &out.latency));
    }
    if let Some(path) = &outputs.plot {
        let title = format!(
            "midge-bench {} against {}: {}",
            head.scenario, head.target, head.label
        );
        write(plot::write(
            path,
            title.trim_end_matches(": "),
            &out.timeline,
            out.window,
        ));
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
