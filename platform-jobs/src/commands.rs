//! The jobs' commands: `queue:work`, `queue:failed`, `queue:retry`,
//! `queue:forget`, `schedule:list`.

use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Arg, ArgAction};
use platform_admin::capability::Command;
use platform_core::Platform;
use platform_core::platform::PlatformBuilder;

use crate::Jobs;

async fn quiet(builder: PlatformBuilder) -> anyhow::Result<(Platform, Arc<Jobs>)> {
    let p = builder.background_tasks(false).build().await?;
    let jobs = p
        .get::<Jobs>()
        .context("the jobs capability is not added to this platform")?;
    Ok((p, jobs))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

pub(crate) fn commands() -> Vec<Command> {
    vec![
        Command::new(
            clap::Command::new("queue:work")
                .about("Runs the job workers until Ctrl-C or SIGTERM")
                .arg(
                    Arg::new("queue")
                        .long("queue")
                        .value_name("Q1,Q2")
                        .value_delimiter(',')
                        .action(ArgAction::Append)
                        .help("Only these queues (default: all)"),
                ),
            |builder, args| async move {
                let queues: Option<Vec<String>> = args
                    .get_many::<String>("queue")
                    .map(|v| v.cloned().collect());
                let p = builder.build().await?;
                let jobs = p
                    .get::<Jobs>()
                    .context("the jobs capability is not added")?;
                if let Some(q) = queues {
                    jobs.only_queues(q)?;
                }
                p.start_workers();
                tracing::info!("job workers running; Ctrl-C or SIGTERM stops them");
                shutdown_signal().await;
                p.shutdown().await;
                Ok(())
            },
        ),
        Command::new(
            clap::Command::new("queue:failed").about("Lists failed jobs"),
            |builder, _args| async move {
                let (p, jobs) = quiet(builder).await?;
                let failed = jobs.failed(1000).await?;
                if failed.is_empty() {
                    println!("No failed jobs.");
                }
                for f in failed {
                    println!(
                        "{}  {}  {}  attempts={}  {}",
                        f.id, f.queue, f.kind, f.attempts, f.error
                    );
                }
                p.shutdown().await;
                Ok(())
            },
        ),
        Command::new(
            clap::Command::new("queue:retry")
                .about("Queues failed jobs again")
                .arg(
                    Arg::new("id")
                        .required(true)
                        .help("A failed job's id, or `all`"),
                ),
            |builder, args| async move {
                let id = args.get_one::<String>("id").cloned().unwrap_or_default();
                let (p, jobs) = quiet(builder).await?;
                let res = if id == "all" {
                    jobs.retry_all().await.map(|n| {
                        println!("{n} failed jobs queued again.");
                    })
                } else {
                    match jobs.retry(&id).await {
                        Ok(true) => {
                            println!("Job {id} queued again.");
                            Ok(())
                        }
                        Ok(false) => {
                            p.shutdown().await;
                            bail!("no failed job {id}");
                        }
                        Err(e) => Err(e),
                    }
                };
                p.shutdown().await;
                Ok(res?)
            },
        ),
        Command::new(
            clap::Command::new("queue:forget")
                .about("Deletes a failed job")
                .arg(Arg::new("id").required(true)),
            |builder, args| async move {
                let id = args.get_one::<String>("id").cloned().unwrap_or_default();
                let (p, jobs) = quiet(builder).await?;
                let found = jobs.forget(&id).await;
                p.shutdown().await;
                if !found? {
                    bail!("no failed job {id}");
                }
                println!("Job {id} forgotten.");
                Ok(())
            },
        ),
        Command::new(
            clap::Command::new("schedule:list").about("Lists the cron schedules"),
            |builder, _args| async move {
                let (p, jobs) = quiet(builder).await?;
                let now = chrono::Utc::now();
                if jobs.schedules().is_empty() {
                    println!("No schedules.");
                }
                for s in jobs.schedules() {
                    println!(
                        "{:<20} {:<24} next: {}",
                        s.job(),
                        s.expression(),
                        s.next_after(now)
                            .map_or_else(|| "never".to_owned(), |t| t.to_rfc3339())
                    );
                }
                p.shutdown().await;
                Ok(())
            },
        ),
    ]
}
